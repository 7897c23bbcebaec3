//! The leader's watch over agents: a node whose heartbeats stop for longer than the timeout
//! is marked down (a replicated command, so every member agrees).

use std::time::Duration;

use crate::member::Member;
use crate::server::node_service::now_ms;
use crate::state::Command;

/// Checks every `timeout / 4` while this member leads; returns when the Raft handle stops.
pub async fn watch_nodes(member: Member, timeout: Duration) {
    let period = (timeout / 4).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let metrics = member.raft.metrics().borrow().clone();
        if metrics.running_state.is_err() {
            return;
        }
        if metrics.current_leader != Some(member.id) {
            continue;
        }
        let now = now_ms();
        let stale: Vec<(String, u64)> = member.sm.read(|s| {
            s.nodes
                .values()
                .filter(|n| {
                    n.up && now.saturating_sub(n.last_heartbeat_ms) > timeout.as_millis() as u64
                })
                .map(|n| (n.name.clone(), n.last_heartbeat_ms))
                .collect()
        });
        for (name, last_seen_ms) in stale {
            tracing::info!(node.name = %name, "no heartbeat within {timeout:?}; marking node down");
            let cmd = Command::MarkNodeDown { name, last_seen_ms };
            if let Err(e) = member.write_local(cmd).await {
                tracing::debug!(error = %e, "mark-down not committed; will retry");
            }
        }
    }
}
