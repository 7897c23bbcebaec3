//! Bringing a volume that another node owns to this node, behind [`VolumePlacement`]:
//! [`ControlMove`] asks the control service to move it (`MoveVolume`, the leader's two-phase
//! push) and waits for the move to end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use proto::control::Lease;
use tonic::Code;

use super::cluster::{Cluster, ControlError};
use super::volumes::VolumeError;
use crate::storage::VolumeName;

/// A boxed future, so the trait stays object-safe.
pub type PlacementFuture<'a> = Pin<Box<dyn Future<Output = Result<(), VolumeError>> + Send + 'a>>;

/// Moves a volume from its owner to this node, or says why it cannot.
pub trait VolumePlacement: Send + Sync {
    /// Makes this node the owner of `volume`, which `owner` holds now with `holders`
    /// (leases of running containers there). Returns once this node owns it.
    fn bring_here<'a>(
        &'a self,
        volume: &'a VolumeName,
        owner: &'a str,
        holders: &'a [Lease],
    ) -> PlacementFuture<'a>;
}

/// How long a volume's leases on its owner may take to go before a move here is refused: a
/// container that just exited there releases its lease when its agent sees the `die` event,
/// a moment after `docker run` returned.
pub const LEASE_GRACE: Duration = Duration::from_secs(5);

/// Placement through the control service: a volume that no container holds on its owner is
/// moved here with `MoveVolume`; one still in use there after [`LEASE_GRACE`] is refused,
/// naming the containers (a move would wait for them, and the Docker client would hang).
#[derive(Clone)]
pub struct ControlMove {
    /// This node's name.
    pub node: String,
    /// The control service.
    pub cluster: Arc<dyn Cluster>,
}

impl ControlMove {
    async fn run(&self, volume: &VolumeName) -> Result<(), VolumeError> {
        let failed = |action: &'static str, message: String, code: Code| VolumeError::Control {
            volume: volume.clone(),
            action,
            message,
            code,
        };
        let mut progress = match self.cluster.move_volume(volume.as_str(), &self.node).await {
            Ok(progress) => progress,
            Err(ControlError::Unreachable(e)) => {
                return Err(failed(
                    "reach the control service to move",
                    e.to_string(),
                    Code::Unavailable,
                ));
            }
            Err(ControlError::Status(s)) => {
                return Err(failed("move", s.message().to_owned(), s.code()));
            }
        };
        loop {
            match progress.next().await {
                Some(Ok(event)) if event.phase == "done" => {
                    tracing::info!(volume.name = %volume, bytes = event.bytes_sent, rounds = event.rounds, "volume moved here");
                    return Ok(());
                }
                Some(Ok(event)) if event.phase == "failed" => {
                    let why = event.error.unwrap_or_else(|| "no reason given".into());
                    return Err(failed("move", why, Code::Aborted));
                }
                Some(Ok(event)) => {
                    tracing::debug!(volume.name = %volume, phase = %event.phase, bytes = event.bytes_sent, "moving here");
                }
                None => {
                    return Err(failed(
                        "move",
                        "the control service ended the progress stream before the move ended; \
                         see `flockerctl volume ls`"
                            .into(),
                        Code::Unavailable,
                    ));
                }
                Some(Err(s)) => {
                    return Err(failed(
                        "follow the move of",
                        s.message().to_owned(),
                        s.code(),
                    ));
                }
            }
        }
    }
}

impl VolumePlacement for ControlMove {
    fn bring_here<'a>(
        &'a self,
        volume: &'a VolumeName,
        owner: &'a str,
        holders: &'a [Lease],
    ) -> PlacementFuture<'a> {
        Box::pin(async move {
            if !holders.is_empty() && !self.leases_go(volume).await {
                return Err(VolumeError::Elsewhere {
                    volume: volume.clone(),
                    owner: owner.to_owned(),
                    node: self.node.clone(),
                    holders: holders.iter().map(|l| l.container_id.clone()).collect(),
                });
            }
            self.run(volume).await
        })
    }
}

impl ControlMove {
    /// Whether every lease on `volume` is released within [`LEASE_GRACE`].
    async fn leases_go(&self, volume: &VolumeName) -> bool {
        let deadline = tokio::time::Instant::now() + LEASE_GRACE;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(leases) = self.cluster.list_leases().await
                && !leases.iter().any(|l| l.volume == volume.as_str())
            {
                return true;
            }
        }
        false
    }
}
