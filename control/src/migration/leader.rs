//! While this member leads, drive every unfinished move, finish every failed move's
//! clean-up and every deletion, keep replicas fresh and promote one when the policy says,
//! take and prune scheduled snapshots; when it stops leading, stop driving (dropping a push
//! cancels it on the agents)
//! and let the new leader resume from the record.

use std::collections::HashMap;
use std::time::Duration;

use proto::tls::TlsDir;
use tokio::task::JoinHandle;

use super::drive::Driver;
use super::{MoveConfig, replicate, schedule};
use crate::member::Member;
use crate::server::node_service::now_ms;

/// How often the leader looks for moves to drive.
pub const SCAN_EVERY: Duration = Duration::from_millis(200);

/// What the leader drives, by its record's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Work {
    /// A move, or a failed move's clean-up.
    Move(u64),
    /// A deleted volume's copies.
    Deletion(u64),
    /// A volume's replicas, by volume id.
    Replicas(u64),
    /// A volume's automatic promotion, by volume id.
    Promotion(u64),
    /// A volume's snapshot schedule, by volume id.
    Schedule(u64),
}

/// Runs until the Raft handle stops.
pub async fn run(member: Member, tls: TlsDir, config: MoveConfig) {
    let driver = Driver::new(member.clone(), tls, config);
    let mut running: HashMap<Work, JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(SCAN_EVERY);
    loop {
        tick.tick().await;
        let metrics = member.raft.metrics().borrow().clone();
        if metrics.running_state.is_err() {
            break;
        }
        running.retain(|_, task| !task.is_finished());
        if metrics.current_leader != Some(member.id) {
            for (work, task) in running.drain() {
                tracing::info!(?work, "no longer leader: stopped");
                task.abort();
            }
            continue;
        }
        let now = now_ms();
        let open: Vec<(Work, String, Option<String>)> = member.sm.read(|s| {
            let moves = s
                .migrations
                .values()
                .filter(|m| !m.phase.is_terminal() || m.cleanup_pending)
                .map(|m| (Work::Move(m.id), m.volume.clone()));
            let deletions = s
                .deletions
                .iter()
                .map(|(id, d)| (Work::Deletion(*id), d.name.clone()));
            let refreshes = s
                .volumes
                .values()
                .filter(|v| replicate::needs_refresh(v, s, now))
                .map(|v| (Work::Replicas(v.id), v.name.clone(), None));
            let promotions = s.volumes.values().filter_map(|v| {
                let node = replicate::automatic_promotion(v, s, now)?;
                Some((Work::Promotion(v.id), v.name.clone(), Some(node)))
            });
            let schedules = s
                .volumes
                .values()
                .filter(|v| schedule::due(v, s, now))
                .map(|v| (Work::Schedule(v.id), v.name.clone(), None));
            moves
                .map(|(w, v)| (w, v, None))
                .chain(deletions.map(|(w, v)| (w, v, None)))
                .chain(refreshes)
                .chain(promotions)
                .chain(schedules)
                .collect()
        });
        for (work, volume, node) in open {
            running.entry(work).or_insert_with(|| {
                let driver = driver.clone();
                tokio::spawn(async move {
                    match work {
                        Work::Move(id) => driver.run(id).await,
                        Work::Deletion(id) => driver.finish_deletion(id).await,
                        Work::Replicas(_) => driver.refresh_replicas(&volume).await,
                        Work::Schedule(_) => driver.keep_schedule(&volume).await,
                        Work::Promotion(_) => {
                            let node = node.expect("a promotion names its replica");
                            driver.promote_automatically(&volume, &node).await
                        }
                    }
                })
            });
        }
    }
    for task in running.into_values() {
        task.abort();
    }
}
