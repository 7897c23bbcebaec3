//! Bringing a volume that another node owns to this node. The real move (the control
//! leader's migration, `MoveVolume`) plugs in behind [`VolumePlacement`]; until it is wired,
//! [`ManualMove`] refuses with the command an operator runs to move the volume.

use std::future::Future;
use std::pin::Pin;

use proto::control::Lease;

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

/// Placement that never moves anything: it names the owner and the command to run.
#[derive(Debug, Clone)]
pub struct ManualMove {
    /// This node's name.
    pub node: String,
}

impl VolumePlacement for ManualMove {
    fn bring_here<'a>(
        &'a self,
        volume: &'a VolumeName,
        owner: &'a str,
        holders: &'a [Lease],
    ) -> PlacementFuture<'a> {
        Box::pin(async move {
            Err(VolumeError::Elsewhere {
                volume: volume.clone(),
                owner: owner.to_owned(),
                node: self.node.clone(),
                holders: holders.iter().map(|l| l.container_id.clone()).collect(),
            })
        })
    }
}
