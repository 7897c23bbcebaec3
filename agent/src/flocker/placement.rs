//! Bringing a volume that another node owns to this node, behind [`VolumePlacement`]:
//! [`ControlMove`] asks the control service to move it (`MoveVolume`, the leader's two-phase
//! push) and waits for the move to end.

use std::future::Future;
use std::pin::Pin;

use proto::control::{Lease, MoveVolumeRequest};
use proto::tls::TlsDir;
use tonic::Code;

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

/// Placement through the control service: a volume that no container holds on its owner is
/// moved here with `MoveVolume`; one that is in use there is refused at once, naming the
/// containers (a move would wait for them, and the Docker client would hang meanwhile).
#[derive(Debug, Clone)]
pub struct ControlMove {
    /// This node's name.
    pub node: String,
    /// Control members to try.
    pub controls: Vec<String>,
    /// This node's certificate.
    pub tls: TlsDir,
}

impl ControlMove {
    async fn run(&self, volume: &VolumeName) -> Result<(), VolumeError> {
        let failed = |action: &'static str, message: String, code: Code| VolumeError::Control {
            volume: volume.clone(),
            action,
            message,
            code,
        };
        let mut control = crate::control_client::connect_any(&self.controls, &self.tls)
            .await
            .map_err(|e| {
                failed(
                    "reach the control service to move",
                    e.to_string(),
                    Code::Unavailable,
                )
            })?;
        let request = MoveVolumeRequest {
            name: volume.to_string(),
            to: self.node.clone(),
            stop_containers: false,
        };
        let mut progress = control
            .move_volume(request)
            .await
            .map_err(|s| failed("move", s.message().to_owned(), s.code()))?
            .into_inner();
        loop {
            match progress.message().await {
                Ok(Some(event)) if event.phase == "done" => {
                    tracing::info!(volume.name = %volume, bytes = event.bytes_sent, rounds = event.rounds, "volume moved here");
                    return Ok(());
                }
                Ok(Some(event)) if event.phase == "failed" => {
                    let why = event.error.unwrap_or_else(|| "no reason given".into());
                    return Err(failed("move", why, Code::Aborted));
                }
                Ok(Some(event)) => {
                    tracing::debug!(volume.name = %volume, phase = %event.phase, bytes = event.bytes_sent, "moving here");
                }
                Ok(None) => {
                    return Err(failed(
                        "move",
                        "the control service ended the progress stream before the move ended; \
                         see `flockerctl volume ls`"
                            .into(),
                        Code::Unavailable,
                    ));
                }
                Err(s) => {
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
            if !holders.is_empty() {
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
