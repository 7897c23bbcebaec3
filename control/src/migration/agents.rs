//! Calling an agent's API from the control leader, with the member's control certificate and
//! the agent's node name as the name its certificate must carry.

use std::time::Duration;

use proto::agent as pb;
use proto::agent::agent_client::AgentClient;
use proto::tls::TlsDir;
use proto::trace::{Traced, traced};
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;

use super::MoveError;
use crate::state::Node;

/// How long connecting to an agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a short agent call (mount, inventory, clean-up) may take; a stop may take the
/// grace period more.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one node's agent.
pub struct AgentLink {
    /// The node.
    pub node: Node,
    client: AgentClient<Traced>,
}

impl AgentLink {
    /// Connects to `node`'s agent.
    pub async fn connect(node: &Node, tls: &TlsDir) -> Result<Self, MoveError> {
        let fail = |e: String| MoveError::Agent {
            node: node.name.clone(),
            message: format!("cannot connect to {}: {e}", node.address),
        };
        let channel = Endpoint::from_shared(format!("https://{}", node.address))
            .map_err(|e| fail(e.to_string()))?
            .tls_config(tls.client_config_for_node(&node.name))
            .map_err(|e| fail(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| fail(format!("{e:?}")))?;
        Ok(Self {
            node: node.clone(),
            client: AgentClient::new(traced(channel)),
        })
    }

    fn failed(&self, status: tonic::Status) -> MoveError {
        MoveError::Agent {
            node: self.node.name.clone(),
            message: status.message().to_owned(),
        }
    }

    /// Every volume on this node with its snapshots and bytes used.
    pub async fn inventory(&mut self) -> Result<Vec<pb::VolumeSnapshots>, MoveError> {
        let mut req = tonic::Request::new(pb::InventoryRequest {});
        req.set_timeout(CALL_TIMEOUT);
        let inv = self
            .client
            .inventory(req)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(inv.into_inner().volumes)
    }

    /// The snapshots of `volume` here with their GUIDs, oldest first (empty when the volume
    /// is absent).
    pub async fn snapshots(&mut self, volume: &str) -> Result<Vec<pb::Snapshot>, MoveError> {
        Ok(self
            .inventory()
            .await?
            .into_iter()
            .find(|v| v.volume == volume)
            .map(|v| v.snapshots)
            .unwrap_or_default())
    }

    /// Stops `containers` (which hold `volume`) through this node's Docker: the stop signal,
    /// then a kill after `grace`.
    pub async fn stop_containers(
        &mut self,
        volume: &str,
        containers: Vec<String>,
        grace: Duration,
    ) -> Result<pb::StoppedContainers, MoveError> {
        let mut req = tonic::Request::new(pb::StopContainersRequest {
            volume: volume.to_owned(),
            container_ids: containers,
            grace_seconds: grace.as_secs().try_into().unwrap_or(u32::MAX),
        });
        req.set_timeout(grace + CALL_TIMEOUT);
        let stopped = self
            .client
            .stop_containers(req)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(stopped.into_inner())
    }

    /// Pushes `volume` to `target`, calling `on_progress` with the bytes sent so far.
    pub async fn push(
        &mut self,
        volume: &str,
        target: &Node,
        base: Option<&pb::Snapshot>,
        snapshot: &str,
        last: bool,
        mut on_progress: impl FnMut(u64),
    ) -> Result<u64, MoveError> {
        let req = pb::PushRequest {
            volume: volume.to_owned(),
            to_address: target.address.clone(),
            to_node: target.name.clone(),
            base_snapshot: base.map(|b| b.name.clone()).unwrap_or_default(),
            base_guid: base.map_or(0, |b| b.guid),
            snapshot: snapshot.to_owned(),
            r#final: last,
        };
        let mut stream = self
            .client
            .push(req)
            .await
            .map_err(|s| self.failed(s))?
            .into_inner();
        while let Some(p) = stream.next().await {
            let p = p.map_err(|s| self.failed(s))?;
            on_progress(p.bytes);
            if p.done {
                return Ok(p.bytes);
            }
        }
        Err(MoveError::Agent {
            node: self.node.name.clone(),
            message: "the push stream ended before the push finished (did the agent stop?)".into(),
        })
    }

    /// Mounts `volume` here, read-write at `epoch` or read-only.
    pub async fn mount(
        &mut self,
        volume: &str,
        read_write: bool,
        epoch: u64,
    ) -> Result<(), MoveError> {
        let mut req = tonic::Request::new(pb::MountRequest {
            volume: volume.to_owned(),
            read_write,
            epoch,
        });
        req.set_timeout(CALL_TIMEOUT);
        self.client.mount(req).await.map_err(|s| self.failed(s))?;
        Ok(())
    }

    /// Takes snapshot `snapshot` of `volume` here (one that exists already is answered as it
    /// is) and returns it with its GUID.
    pub async fn snapshot(
        &mut self,
        volume: &str,
        snapshot: &str,
    ) -> Result<pb::Snapshot, MoveError> {
        let mut req = tonic::Request::new(pb::SnapshotRequest {
            volume: volume.to_owned(),
            snapshot: snapshot.to_owned(),
        });
        req.set_timeout(CALL_TIMEOUT);
        let taken = self
            .client
            .snapshot(req)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(taken.into_inner())
    }

    /// Makes volume `clone` here from snapshot `snapshot` of `volume`.
    pub async fn clone_volume(
        &mut self,
        volume: &str,
        snapshot: &str,
        clone: &str,
    ) -> Result<(), MoveError> {
        let mut req = tonic::Request::new(pb::CloneRequest {
            volume: volume.to_owned(),
            snapshot: snapshot.to_owned(),
            clone: clone.to_owned(),
        });
        req.set_timeout(CALL_TIMEOUT);
        self.client
            .clone_snapshot(req)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(())
    }

    /// One backend stream of `snapshot` of `volume` here, in full or since `base`, as it is
    /// read (no deadline: a backup takes as long as the volume takes to read).
    pub async fn export(
        &mut self,
        volume: &str,
        snapshot: &str,
        base: Option<&str>,
    ) -> Result<tonic::Streaming<pb::ExportChunk>, MoveError> {
        let req = pb::ExportRequest {
            volume: volume.to_owned(),
            snapshot: snapshot.to_owned(),
            base: base.unwrap_or_default().to_owned(),
        };
        let stream = self.client.export(req).await.map_err(|s| self.failed(s))?;
        Ok(stream.into_inner())
    }

    /// Streams `chunks` (a header, then parts) into this node's `Receive`.
    pub async fn receive(
        &mut self,
        chunks: impl tokio_stream::Stream<Item = pb::Chunk> + Send + 'static,
    ) -> Result<pb::Received, MoveError> {
        let received = self
            .client
            .receive(chunks)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(received.into_inner())
    }

    /// Removes what `what` names of `volume` here (idempotent); returns what was destroyed.
    pub async fn clean_up(
        &mut self,
        volume: &str,
        what: CleanUp,
    ) -> Result<Vec<String>, MoveError> {
        let mut req = tonic::Request::new(pb::CleanUpRequest {
            volume: volume.to_owned(),
            snapshots: what.snapshots,
            staging: what.staging,
            copy: what.copy,
            set_aside_as: what.set_aside_as.unwrap_or_default(),
        });
        req.set_timeout(CALL_TIMEOUT);
        let done = self
            .client
            .clean_up(req)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(done.into_inner().destroyed)
    }
}

/// What [`AgentLink::clean_up`] removes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanUp {
    /// These snapshots.
    pub snapshots: Vec<String>,
    /// A staged full receive.
    pub staging: bool,
    /// The node's whole copy (refused by the owner's agent).
    pub copy: bool,
    /// Set the node's whole copy aside under this label instead (refused by the owner's
    /// agent).
    pub set_aside_as: Option<String>,
}

impl CleanUp {
    /// Only these snapshots.
    pub fn snapshots(snapshots: Vec<String>) -> Self {
        Self {
            snapshots,
            ..Self::default()
        }
    }
}
