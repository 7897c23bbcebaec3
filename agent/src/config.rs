//! The agent's configuration, validated before anything starts.

use std::time::Duration;

use proto::tls::TlsDir;

/// Default agent gRPC port (announced to the control service as the node's address).
pub const DEFAULT_AGENT_PORT: u16 = 4524;

/// Everything the membership loops need.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's name; must match the name in its `node` certificate.
    pub node: String,
    /// Control members to try, in order.
    pub controls: Vec<String>,
    /// The node certificate.
    pub tls: TlsDir,
    /// Address announced for this agent.
    pub address: String,
    /// Storage kind announced (`dir:/path`, `zfs:pool`).
    pub storage: String,
    /// Time between heartbeats.
    pub heartbeat: Duration,
    /// How long unanswered heartbeats make the volumes owned here read-only
    /// ([`crate::fencing`]).
    pub fence_after: Duration,
}
