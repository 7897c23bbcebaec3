//! The leader's watch over agents: a node up in the replicated state whose heartbeats to
//! this leader stop for longer than the timeout is marked down (a logged command, so every
//! member agrees). Heartbeats themselves are the leader's soft state ([`crate::soft`]): a
//! new leader counts every node up as seen when it took over.

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
        if member.raft.metrics().borrow().running_state.is_err() {
            return;
        }
        let Some(term) = member.leader_term() else {
            continue;
        };
        let up: Vec<String> = member.sm.read(|s| {
            let up = s.nodes.values().filter(|n| n.up);
            up.map(|n| n.name.clone()).collect()
        });
        for name in up {
            if stale(&member, term, &name, timeout).is_some() {
                mark_down(&member, term, name, timeout).await;
            }
        }
    }
}

/// The node's logged up-time and the last heartbeat this leader saw, if that is longer
/// ago than `timeout` and the node is still recorded up.
fn stale(member: &Member, term: u64, name: &str, timeout: Duration) -> Option<(u64, u64)> {
    let logged = member.sm.read(|s| {
        s.nodes
            .get(name)
            .filter(|n| n.up)
            .map(|n| n.last_heartbeat_ms)
    })?;
    let now = now_ms();
    let seen = member.soft.last_seen(term, now, name, logged);
    (now.saturating_sub(seen) > timeout.as_millis() as u64).then_some((logged, seen))
}

/// Judges `name` again under its judging lock (no heartbeat is taken meanwhile) and, if it
/// is still stale, marks it down with the times judged.
async fn mark_down(member: &Member, term: u64, name: String, timeout: Duration) {
    let _judging = member.soft.judging(&name).await;
    let Some((last_seen_ms, seen)) = stale(member, term, &name, timeout) else {
        return;
    };
    tracing::info!(node.name = %name, "no heartbeat within {timeout:?}; marking node down");
    let cmd = Command::MarkNodeDown {
        name,
        last_seen_ms,
        seen_ms: Some(seen),
    };
    if let Err(e) = member.write_local(cmd).await {
        tracing::debug!(error = %e, "mark-down not committed; will retry");
    }
}
