//! Fencing: before mounting a volume read-write the agent asks the control service (a
//! linearizable read) whether this node owns it at the epoch the order carries. A stale
//! order, from a deposed leader or for an old epoch, is refused.

use proto::control::VolumeName as VolumeRequest;

use super::TransferError;
use crate::cluster::Control;

/// Where to ask and who we are.
#[derive(Clone)]
pub struct Fence {
    /// This node's name.
    pub node: String,
    /// The agent's control connection.
    pub control: Control,
}

impl Fence {
    /// The owner and epoch of `volume` according to the control service; nobody at epoch 0
    /// for a volume it does not know (deleted).
    async fn owner(&self, volume: &str) -> Result<(String, u64), TransferError> {
        let control = |reason: String| TransferError::Control {
            volume: volume.to_owned(),
            reason,
        };
        let asked = self
            .control
            .call(
                VolumeRequest {
                    name: volume.to_owned(),
                },
                |mut c, name| async move { c.get_volume(name).await },
            )
            .await;
        match asked {
            Ok(v) => Ok((v.owner.unwrap_or_default(), v.epoch)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok((String::new(), 0)),
            Err(s) => Err(control(s.message().to_owned())),
        }
    }

    /// Succeeds only if the control service names this node owner of `volume` at `epoch`.
    #[tracing::instrument(name = "fence.check_owner", skip_all, fields(volume.name = %volume, volume.epoch = epoch))]
    pub async fn check_owner(&self, volume: &str, epoch: u64) -> Result<(), TransferError> {
        let (owner, current) = self.owner(volume).await?;
        if owner == self.node && current == epoch {
            return Ok(());
        }
        Err(TransferError::NotOwner {
            volume: volume.to_owned(),
            node: self.node.clone(),
            asked: epoch,
            owner: if owner.is_empty() {
                "nobody".into()
            } else {
                owner
            },
            epoch: current,
        })
    }

    /// Fails if this node owns `volume`: a stream may only replace a replica, never the
    /// owner's live copy.
    #[tracing::instrument(name = "fence.check_not_owner", skip_all, fields(volume.name = %volume))]
    pub async fn check_not_owner(&self, volume: &str) -> Result<(), TransferError> {
        let (owner, _) = self.owner(volume).await?;
        if owner == self.node {
            return Err(TransferError::OwnedHere {
                volume: volume.to_owned(),
                node: owner,
            });
        }
        Ok(())
    }
}
