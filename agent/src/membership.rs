//! The agent's membership in the cluster: register, then heartbeat and follow the watch
//! stream, each loop reconnecting (to any member) after a failure, with backoff. A refusal of our identity
//! (wrong certificate) is fatal: retrying cannot fix it.

use std::future::Future;
use std::time::Instant;

use foundation::retry::Backoff;

use proto::control::watch_event::Object;
use proto::control::{HeartbeatRequest, RegisterNodeRequest, WatchEvent, WatchRequest};
use tokio_stream::StreamExt;
use tonic::{Code, Status};
use tracing::{Instrument, info_span};

use crate::config::AgentConfig;
use proto::connect::connect_any;

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

fn fatal(config: &AgentConfig, status: &Status) -> Option<AgentError> {
    matches!(
        status.code(),
        Code::PermissionDenied | Code::Unauthenticated
    )
    .then(|| AgentError::Refused {
        node: config.node.clone(),
        message: status.message().to_owned(),
    })
}

/// Registers, heartbeats and watches until `shutdown` completes or the identity is refused.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let heartbeat =
        heartbeat_loop(&config).instrument(info_span!("agent.heartbeat", node.name = %config.node));
    let watch = watch_loop(&config).instrument(info_span!("agent.watch", node.name = %config.node));
    tokio::select! {
        r = heartbeat => r,
        r = watch => r,
        () = shutdown => Ok(()),
    }
}

/// Registers the node, then heartbeats every `config.heartbeat`.
async fn heartbeat_loop(config: &AgentConfig) -> Result<(), AgentError> {
    let mut backoff = Backoff::reconnect();
    loop {
        let started = Instant::now();
        match heartbeat_session(config).await {
            Ok(()) => {}
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) => {
                tracing::warn!(node.name = %config.node, error = %e, "control call failed; retrying")
            }
        }
        backoff.wait_after(started.elapsed()).await;
    }
}

enum Failure {
    Fatal(AgentError),
    Retry(String),
}

fn failure(config: &AgentConfig, status: Status) -> Failure {
    match fatal(config, &status) {
        Some(e) => Failure::Fatal(e),
        None => Failure::Retry(status.message().to_owned()),
    }
}

async fn heartbeat_session(config: &AgentConfig) -> Result<(), Failure> {
    let mut client = connect_any::<proto::connect::NodeClient>(&config.controls, &config.tls)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let node = client
        .register_node(RegisterNodeRequest {
            name: config.node.clone(),
            address: config.address.clone(),
            storage: config.storage.clone(),
        })
        .await
        .map_err(|s| failure(config, s))?
        .into_inner();
    tracing::info!(node.name = %node.name, node.address = %node.address, "registered with the control service");
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.tick().await;
    loop {
        tick.tick().await;
        client
            .heartbeat(HeartbeatRequest {
                name: config.node.clone(),
            })
            .await
            .map_err(|s| failure(config, s))?;
    }
}

/// Follows the watch stream and logs what arrives.
async fn watch_loop(config: &AgentConfig) -> Result<(), AgentError> {
    let mut backoff = Backoff::reconnect();
    loop {
        let started = Instant::now();
        match watch_session(config).await {
            Ok(()) => tracing::info!("watch stream ended; reconnecting"),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) => tracing::warn!(error = %e, "watch failed; reconnecting"),
        }
        backoff.wait_after(started.elapsed()).await;
    }
}

async fn watch_session(config: &AgentConfig) -> Result<(), Failure> {
    let mut client = connect_any::<proto::connect::NodeClient>(&config.controls, &config.tls)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let mut stream = client
        .watch(WatchRequest {})
        .await
        .map_err(|s| failure(config, s))?
        .into_inner();
    tracing::info!("following the control service's change stream");
    while let Some(event) = stream.next().await {
        log_event(&event.map_err(|s| failure(config, s))?);
    }
    Ok(())
}

fn log_event(e: &WatchEvent) {
    let kind = match &e.object {
        Some(Object::Node(_)) => "node",
        Some(Object::Volume(_)) => "volume",
        Some(Object::Lease(_)) => "lease",
        Some(Object::Migration(_)) => "migration",
        Some(Object::Allocation(_)) => "allocation",
        Some(Object::Pool(_)) => "pool",
        None => "unknown",
    };
    if kind == "node" {
        tracing::debug!(watch.index = e.index, watch.kind = kind, watch.key = %e.key, watch.deleted = e.deleted, "change");
    } else {
        tracing::info!(watch.index = e.index, watch.kind = kind, watch.key = %e.key, watch.deleted = e.deleted, "change");
    }
}
