//! The leader's soft state: what only the leader holds and never writes to the Raft log.
//! Per node, the last heartbeat the leader saw; per move under way, the bytes sent so far.
//! Both change every second or two on every host; logging them made liveness alone 500
//! fsynced entries a second at 1,000 hosts.
//!
//! The soft state belongs to one term of this member's leadership. A member that starts
//! leading in a new term starts it empty, at that moment (`since_ms`): every node the
//! replicated state says is up counts as seen then, so a leader change alone marks no node
//! down, and a node is marked down only after a full timeout without heartbeats to the new
//! leader. What stays logged: a node marked up (`Heartbeat` while it is down, `RegisterNode`)
//! or down (`MarkNodeDown`), and a move's phases and rounds (`AdvanceMigration` at the end of
//! each round). Reads on the leader lay these values over the replicated ones
//! ([`Soft::soften`] through [`crate::proposal::Read::soften`], in one place:
//! [`crate::member::Member`]'s linearizable read).

use std::collections::HashMap;
use std::sync::Mutex;

use foundation::locks::KeyedLocks;
use tokio::sync::OwnedMutexGuard;

use crate::state::{Migration, Node};

/// The leader's soft state, shared by its heartbeat path, liveness watch, move driver and
/// reads.
#[derive(Debug, Default)]
pub struct Soft {
    held: Mutex<Held>,
    /// One lock per node: a heartbeat and the liveness judgment of the same node never
    /// interleave, so a heartbeat acknowledged as up is never followed by a mark-down judged
    /// before it.
    judging: KeyedLocks<String>,
}

/// The soft values of one term.
#[derive(Debug, Default)]
struct Held {
    /// The term they belong to.
    term: u64,
    /// When this member started holding them (its clock, ms): every node up counts as seen then.
    since_ms: u64,
    /// Node name -> last heartbeat seen, ms.
    beats: HashMap<String, u64>,
    /// Migration id -> bytes sent so far.
    sent: HashMap<u64, u64>,
}

impl Soft {
    /// The values of `term`: emptied and started at `now_ms` when this member held another
    /// term's (or none). A term older than the one held gets a throwaway copy.
    fn with<T>(&self, term: u64, now_ms: u64, f: impl FnOnce(&mut Held) -> T) -> T {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.term < term {
            *held = Held {
                term,
                since_ms: now_ms,
                ..Held::default()
            };
        }
        if held.term > term {
            return f(&mut Held::default());
        }
        f(&mut held)
    }

    /// Records a heartbeat of `node` at `at_ms` seen while leading in `term`.
    pub fn beat(&self, term: u64, node: &str, at_ms: u64) {
        self.with(term, crate::server::node_service::now_ms(), |h| {
            let seen = h.beats.entry(node.to_owned()).or_default();
            *seen = (*seen).max(at_ms);
        });
    }

    /// Records that move `id` has sent `bytes` so far, seen while leading in `term`.
    pub fn progress(&self, term: u64, id: u64, bytes: u64) {
        self.with(term, crate::server::node_service::now_ms(), |h| {
            let sent = h.sent.entry(id).or_default();
            *sent = (*sent).max(bytes);
        });
    }

    /// Forgets move `id`'s progress (its driver stopped) and returns it, if any was noted.
    pub fn take_move(&self, id: u64) -> Option<u64> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.sent.remove(&id)
    }

    /// When the leader of `term` last saw `node` (up, last logged up at `logged_ms`): its
    /// newest heartbeat this term, else the term's start, and never before `logged_ms`.
    pub fn last_seen(&self, term: u64, now_ms: u64, node: &str, logged_ms: u64) -> u64 {
        self.with(term, now_ms, |h| h.last_seen(node, logged_ms))
    }

    /// Lays the soft values of `term` over `nodes` and `moves` read from the replicated
    /// state: each up node's last heartbeat, each move under way's bytes sent.
    pub fn soften(&self, term: u64, now_ms: u64, nodes: &mut [Node], moves: &mut [Migration]) {
        self.with(term, now_ms, |h| {
            for n in nodes.iter_mut().filter(|n| n.up) {
                n.last_heartbeat_ms = h.last_seen(&n.name, n.last_heartbeat_ms);
            }
            for m in moves.iter_mut().filter(|m| !m.phase.is_terminal()) {
                m.bytes_sent = m.bytes_sent.max(h.sent.get(&m.id).copied().unwrap_or(0));
            }
        });
    }

    /// Holds `node`'s judging lock until the guard drops (see the field).
    pub async fn judging(&self, node: &str) -> OwnedMutexGuard<()> {
        self.judging.lock(node).await
    }
}

impl Held {
    fn last_seen(&self, node: &str, logged_ms: u64) -> u64 {
        let soft = self.beats.get(node).copied().unwrap_or(self.since_ms);
        soft.max(logged_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Phase;

    #[test]
    fn a_new_term_counts_every_node_as_seen_when_it_starts() {
        let soft = Soft::default();
        soft.beat(1, "a", 1_000);
        assert_eq!(soft.last_seen(1, 5_000, "a", 0), 1_000);
        // Term 2 starts at 9_000: a's beat of term 1 is gone; a and b count as seen then.
        assert_eq!(soft.last_seen(2, 9_000, "a", 0), 9_000);
        assert_eq!(soft.last_seen(2, 20_000, "b", 0), 9_000);
        // A logged up-time after the start wins.
        assert_eq!(soft.last_seen(2, 20_000, "b", 12_000), 12_000);
        soft.beat(2, "a", 15_000);
        assert_eq!(soft.last_seen(2, 20_000, "a", 0), 15_000);
        // A caller still on term 1 neither sees nor changes term 2's values.
        soft.beat(1, "a", 30_000);
        assert_eq!(soft.last_seen(2, 40_000, "a", 0), 15_000);
    }

    #[test]
    fn soften_lays_beats_over_up_nodes_and_bytes_over_moves_under_way() {
        let soft = Soft::default();
        soft.beat(3, "up", 7_000);
        soft.beat(3, "down", 7_000);
        soft.progress(3, 1, 500);
        soft.progress(3, 2, 500);
        let node = |name: &str, up| Node {
            name: name.into(),
            address: String::new(),
            storage: String::new(),
            last_heartbeat_ms: 1_000,
            up,
        };
        let mut nodes = vec![node("up", true), node("down", false)];
        let mv = |id, phase| Migration {
            id,
            volume: "v".into(),
            from: "a".into(),
            to: "b".into(),
            phase,
            bytes_sent: 100,
            rounds: 0,
            error: None,
            stop_containers: false,
            cleanup_pending: false,
            started_ms: None,
            handoff_ms: None,
            ended_ms: None,
            trace: Default::default(),
        };
        let (under_way, ended) = (mv(1, Phase::Copying), mv(2, Phase::Done));
        let mut moves = vec![under_way, ended];
        soft.soften(3, 8_000, &mut nodes, &mut moves);
        assert_eq!(nodes[0].last_heartbeat_ms, 7_000);
        assert_eq!(
            nodes[1].last_heartbeat_ms, 1_000,
            "a down node shows its logged time"
        );
        assert_eq!(moves[0].bytes_sent, 500);
        assert_eq!(
            moves[1].bytes_sent, 100,
            "an ended move shows its logged bytes"
        );
        assert_eq!(soft.take_move(1), Some(500));
        soft.soften(3, 8_000, &mut nodes, &mut moves);
        assert_eq!(moves[0].bytes_sent, 500, "never lower than shown");
    }
}
