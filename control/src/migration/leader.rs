//! While this member leads, drive every unfinished move and finish every failed move's
//! clean-up and every deletion; when it stops leading, stop driving (dropping a push cancels it on the agents)
//! and let the new leader resume from the record.

use std::collections::HashMap;
use std::time::Duration;

use proto::tls::TlsDir;
use tokio::task::JoinHandle;

use super::MoveConfig;
use super::drive::Driver;
use crate::member::Member;

/// How often the leader looks for moves to drive.
pub const SCAN_EVERY: Duration = Duration::from_millis(200);

/// What the leader drives, by its record's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Work {
    /// A move, or a failed move's clean-up.
    Move(u64),
    /// A deleted volume's copies.
    Deletion(u64),
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
        let open: Vec<Work> = member.sm.read(|s| {
            let moves = s
                .migrations
                .values()
                .filter(|m| !m.phase.is_terminal() || m.cleanup_pending)
                .map(|m| Work::Move(m.id));
            moves
                .chain(s.deletions.keys().map(|id| Work::Deletion(*id)))
                .collect()
        });
        for work in open {
            running.entry(work).or_insert_with(|| {
                let driver = driver.clone();
                tokio::spawn(async move {
                    match work {
                        Work::Move(id) => driver.run(id).await,
                        Work::Deletion(id) => driver.finish_deletion(id).await,
                    }
                })
            });
        }
    }
    for task in running.into_values() {
        task.abort();
    }
}
