//! The per-host agent. So far it joins the cluster: registers its node with the control
//! service, heartbeats, and follows the watch stream of state changes. Storage, network and
//! the Docker proxy come in later issues and plug in beside these modules.
//!
//! - [`control_client`]: connecting to any of several control members, with mutual TLS.
//! - [`membership`]: register, heartbeat and watch loops that reconnect on failure.
//! - [`config`]: the agent's validated configuration.
//!
//! Binaries: `flocker-agent`.
#![forbid(unsafe_code)]

pub mod config;
pub mod control_client;
pub mod membership;

pub use config::AgentConfig;
pub use membership::run;
