//! The agent's membership in the cluster: register, then heartbeat, and follow the change
//! stream (the [`Cluster`] session's one watch stream), each loop starting again (on any
//! member) after a failure, with backoff. A refusal of our identity (wrong certificate) is
//! fatal: retrying cannot fix it.

use std::future::Future;
use std::time::Instant;

use foundation::retry::Backoff;

use proto::control::{HeartbeatRequest, RegisterNodeRequest};
use tonic::{Code, Status};
use tracing::{Instrument, info_span};

use crate::cluster::{Cluster, Control};
use crate::config::AgentConfig;
use crate::fencing::SelfFence;

/// The agent cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control service refused our certificate for this node.
    #[error(
        "control service refused node {node:?}: {message} (issue a node certificate with `flockerctl ca issue --role node --name {node}`)"
    )]
    Refused {
        /// The node.
        node: String,
        /// The refusal.
        message: String,
    },
}

/// The error to stop for if `status` refuses this node's identity (retrying cannot fix it).
pub fn refused(node: &str, status: &Status) -> Option<AgentError> {
    matches!(
        status.code(),
        Code::PermissionDenied | Code::Unauthenticated
    )
    .then(|| AgentError::Refused {
        node: node.to_owned(),
        message: status.message().to_owned(),
    })
}

/// Registers, heartbeats and follows the cluster's changes until `shutdown` completes or
/// the identity is refused.
pub async fn run(
    config: AgentConfig,
    cluster: Cluster,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let heartbeat = heartbeat_loop(&config, cluster.control(), cluster.fence())
        .instrument(info_span!("agent.heartbeat", node.name = %config.node));
    tokio::select! {
        r = heartbeat => r,
        r = cluster.follow() => r,
        () = shutdown => Ok(()),
    }
}

/// Registers the node, then heartbeats every `config.heartbeat`, telling `fence` of every
/// answer.
async fn heartbeat_loop(
    config: &AgentConfig,
    control: &Control,
    fence: &SelfFence,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::reconnect();
    loop {
        let started = Instant::now();
        let failed = heartbeat_session(config, control, fence).await;
        if let Some(fatal) = refused(&config.node, &failed) {
            return Err(fatal);
        }
        tracing::warn!(node.name = %config.node, error = %failed.message(), "control call failed; retrying");
        backoff.wait_after(started.elapsed()).await;
    }
}

/// Registers, then heartbeats until a call fails; returns the failure.
async fn heartbeat_session(config: &AgentConfig, control: &Control, fence: &SelfFence) -> Status {
    let register = RegisterNodeRequest {
        name: config.node.clone(),
        address: config.address.clone(),
        storage: config.storage.clone(),
    };
    let node = match control
        .call(register, |mut c, register| async move {
            c.register_node(register).await
        })
        .await
    {
        Ok(node) => node,
        Err(status) => return status,
    };
    fence.answered();
    tracing::info!(node.name = %node.name, node.address = %node.address, "registered with the control service");
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.tick().await;
    loop {
        tick.tick().await;
        let beat = HeartbeatRequest {
            name: config.node.clone(),
        };
        // Each beat a trace of its own, not one child more of this endless loop.
        let answered = control
            .call(beat, |mut c, beat| async move { c.heartbeat(beat).await })
            .instrument(info_span!(parent: None, "agent.beat", node.name = %config.node))
            .await;
        crate::metrics::METRICS.heartbeat(answered.is_ok());
        match answered {
            Ok(_) => fence.answered(),
            Err(status) => return status,
        }
    }
}
