//! While this member leads, drive every unfinished move; when it stops leading, stop driving
//! (dropping a push cancels it on the agents) and let the new leader resume from the record.

use std::collections::HashMap;
use std::time::Duration;

use proto::tls::TlsDir;
use tokio::task::JoinHandle;

use super::MoveConfig;
use super::drive::Driver;
use crate::member::Member;

/// How often the leader looks for moves to drive.
pub const SCAN_EVERY: Duration = Duration::from_millis(200);

/// Runs until the Raft handle stops.
pub async fn run(member: Member, tls: TlsDir, config: MoveConfig) {
    let driver = Driver {
        member: member.clone(),
        tls,
        config,
    };
    let mut running: HashMap<u64, JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(SCAN_EVERY);
    loop {
        tick.tick().await;
        let metrics = member.raft.metrics().borrow().clone();
        if metrics.running_state.is_err() {
            break;
        }
        running.retain(|_, task| !task.is_finished());
        if metrics.current_leader != Some(member.id) {
            for (id, task) in running.drain() {
                tracing::info!(
                    migration.id = id,
                    "no longer leader: stopped driving the move"
                );
                task.abort();
            }
            continue;
        }
        let open: Vec<u64> = member.sm.read(|s| {
            s.migrations
                .values()
                .filter(|m| !m.phase.is_terminal())
                .map(|m| m.id)
                .collect()
        });
        for id in open {
            running.entry(id).or_insert_with(|| {
                let driver = driver.clone();
                tokio::spawn(async move { driver.run(id).await })
            });
        }
    }
    for task in running.into_values() {
        task.abort();
    }
}
