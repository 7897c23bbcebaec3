//! Finishing a volume deletion: each node that may hold a copy of the deleted volume (its
//! owner, its replicas, the target of a failed move) is told to destroy it, and each
//! confirmation is written through Raft, so a node that was down when the volume was
//! deleted is cleaned when it is back, and a new leader carries on where the old one was.

use super::agents::{AgentLink, CleanUp};
use super::drive::{CLEAN_UP_RETRY, Driver};
use crate::state::Command;

impl Driver {
    /// Has every node still listed in deletion `id` destroy its copy, recording each one;
    /// when a node cannot be reached, waits (5 s) and leaves it for the next
    /// scan.
    pub async fn finish_deletion(&self, id: u64) {
        let Some(deletion) = self.member.sm.read(|s| s.deletions.get(&id).cloned()) else {
            return;
        };
        let _volume = self.lock_volume(&deletion.name).await;
        let mut all = true;
        for node in &deletion.nodes {
            let destroyed = async {
                let mut link = AgentLink::connect(&self.node(node)?, &self.tls).await?;
                let what = CleanUp {
                    snapshots: Vec::new(),
                    staging: true,
                    copy: true,
                    set_aside_as: None,
                };
                link.clean_up(&deletion.name, what).await
            };
            match destroyed.await {
                Ok(gone) => {
                    tracing::info!(volume.name = %deletion.name, node.name = %node, destroyed = ?gone, "deleted volume's copy gone");
                    let cmd = Command::CopyDestroyed {
                        id,
                        node: node.clone(),
                    };
                    if let Err(e) = self.write(cmd).await {
                        tracing::info!(error = %e, "copy destroyed but not recorded; repeated");
                        all = false;
                    }
                }
                Err(e) => {
                    all = false;
                    tracing::warn!(volume.name = %deletion.name, node.name = %node, error = %e, "cannot destroy the deleted volume's copy yet; retried");
                }
            }
        }
        if !all {
            tokio::time::sleep(CLEAN_UP_RETRY).await;
        }
    }
}
