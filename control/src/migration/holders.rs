//! The start of the handoff: the containers holding the volume must let go before the
//! source unmounts it. A move waits for their leases to go; a move asked to stop them
//! (`volume move --stop`, [`Migration::stop_containers`]) has each holder's agent stop
//! them through its Docker (the stop signal, then a kill after the grace period), and the
//! leases go as the agents' event watchers see the containers die. A new leader repeats
//! the stop, which is harmless for containers already stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::MoveError;
use super::agents::AgentLink;
use super::drive::Driver;
use crate::proposal::ExecError;
use crate::state::{Command, CommandError, Lease, Migration};

/// How often the handoff looks at the volume's leases.
pub const LEASE_POLL: Duration = Duration::from_millis(100);

impl Driver {
    /// Returns once no container holds `m.volume`: stopping the holders first when the move
    /// was asked to, failing at the deadline with the container and node named.
    pub(super) async fn release_holders(&self, m: &Migration) -> Result<(), MoveError> {
        let mut wait = self.config.lease_wait;
        if m.stop_containers {
            wait += self.config.stop_grace;
        }
        let deadline = Instant::now() + wait;
        let mut asked: BTreeSet<Lease> = BTreeSet::new();
        loop {
            let held = self.leases(&m.volume);
            let Some(first) = held.first().cloned() else {
                return Ok(());
            };
            if m.stop_containers {
                let new: Vec<Lease> = held.into_iter().filter(|l| !asked.contains(l)).collect();
                if !new.is_empty() {
                    self.stop(m, &new).await?;
                    asked.extend(new);
                    continue;
                }
            }
            if Instant::now() >= deadline {
                let (volume, container, node) = (m.volume.clone(), first.container_id, first.node);
                return Err(if asked.is_empty() {
                    MoveError::Leased {
                        volume,
                        container,
                        node,
                    }
                } else {
                    MoveError::StillLeased {
                        volume,
                        container,
                        node,
                    }
                });
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    fn leases(&self, volume: &str) -> Vec<Lease> {
        self.member.sm.read(|s| {
            s.leases
                .values()
                .filter(|l| l.volume == volume)
                .cloned()
                .collect()
        })
    }

    /// Asks each holder's agent to stop its containers; a lease whose container was not
    /// running there any more (stopped before, or removed) is stale and released here.
    async fn stop(&self, m: &Migration, leases: &[Lease]) -> Result<(), MoveError> {
        let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for l in leases {
            by_node
                .entry(l.node.as_str())
                .or_default()
                .push(l.container_id.clone());
        }
        for (node, containers) in by_node {
            let failed = |message: String| MoveError::Stop {
                volume: m.volume.clone(),
                container: containers.join(","),
                node: node.to_owned(),
                message,
            };
            let mut agent = AgentLink::connect(&self.node(node)?, &self.tls)
                .await
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!(move.phase = "handoff", node.name = node, containers = ?containers,
                "asking the agent to stop the containers holding the volume");
            let stopped = agent
                .stop_containers(&m.volume, containers.clone(), self.config.stop_grace)
                .await
                .map_err(|e| failed(e.to_string()))?;
            for container_id in stopped.not_running {
                tracing::info!(container.id = %container_id, node.name = node,
                    "container does not run on its host: releasing its stale lease");
                let release = Command::ReleaseLease {
                    volume: m.volume.clone(),
                    container_id,
                };
                match self.write(release).await {
                    // Released meanwhile (the agent's watcher saw it die): what was wanted.
                    Err(MoveError::Raft(ExecError::Command(CommandError::NoSuchLease {
                        ..
                    })))
                    | Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
