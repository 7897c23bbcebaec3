//! The member's Prometheus metrics, served as text on `GET /metrics` at `--metrics-listen`
//! (plain HTTP, off unless set: bind it to loopback or a private network). Raft: term,
//! whether this member leads, leader changes seen, applied and last log index, commit
//! latency of the writes this member proposed as leader. The cluster as this member has
//! applied it: nodes up and down, volumes, leases, addresses, moves by phase, bytes moved
//! and the downtime of finished moves (gauges read from the state at each scrape, so every
//! member reports the same figures for the same applied index).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::member::Member;
use crate::raft::Raft;
use crate::state::Phase;

type Labels = Vec<(&'static str, &'static str)>;

/// The member's metrics.
pub struct Metrics {
    registry: Registry,
    commit_seconds: Histogram,
    leader_changes: Counter,
    term: Gauge,
    is_leader: Gauge,
    applied_index: Gauge,
    last_log_index: Gauge,
    nodes: Family<Labels, Gauge>,
    volumes: Gauge,
    leases: Gauge,
    addresses: Gauge,
    moves: Family<Labels, Gauge>,
    moved_bytes: Gauge,
    move_downtime_seconds: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Every series registered, at zero.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("flocker");
        let m = Metrics {
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            leader_changes: Counter::default(),
            term: Gauge::default(),
            is_leader: Gauge::default(),
            applied_index: Gauge::default(),
            last_log_index: Gauge::default(),
            nodes: Family::default(),
            volumes: Gauge::default(),
            leases: Gauge::default(),
            addresses: Gauge::default(),
            moves: Family::default(),
            moved_bytes: Gauge::default(),
            move_downtime_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "raft_commit_seconds",
            "Time from proposing a write as leader to its being applied",
            m.commit_seconds.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Leader changes this member has seen since it started",
            m.leader_changes.clone(),
        );
        r.register(
            "raft_term",
            "The member's current Raft term",
            m.term.clone(),
        );
        r.register(
            "raft_is_leader",
            "1 while this member leads, else 0",
            m.is_leader.clone(),
        );
        r.register(
            "raft_applied_index",
            "The last log index applied to the state",
            m.applied_index.clone(),
        );
        r.register(
            "raft_last_log_index",
            "The last log index this member holds",
            m.last_log_index.clone(),
        );
        r.register(
            "nodes",
            "Agents' nodes by state (up, down)",
            m.nodes.clone(),
        );
        r.register("volumes", "Volumes in the namespace", m.volumes.clone());
        r.register("leases", "Leases held on volumes", m.leases.clone());
        r.register(
            "addresses",
            "Overlay addresses allocated",
            m.addresses.clone(),
        );
        r.register(
            "moves",
            "Volume moves recorded, by phase (copying, handoff, done, failed)",
            m.moves.clone(),
        );
        r.register(
            "moved_bytes",
            "Bytes sent by the moves recorded (finished and under way)",
            m.moved_bytes.clone(),
        );
        r.register(
            "move_downtime_seconds",
            "Sum of the downtime of the finished moves recorded (holders gone to done)",
            m.move_downtime_seconds.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// Records the commit latency of one write this member proposed as leader.
    pub fn observe_commit(&self, elapsed: Duration) {
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    /// Counts leader changes until the Raft handle stops.
    pub async fn follow_leader(self: Arc<Self>, raft: Raft) {
        let mut metrics = raft.metrics();
        let mut leader = metrics.borrow().current_leader;
        while metrics.changed().await.is_ok() {
            let now = metrics.borrow().current_leader;
            if now != leader {
                if now.is_some() {
                    self.leader_changes.inc();
                }
                leader = now;
            }
        }
    }

    /// The metrics in Prometheus' text format, with the gauges read from `member` now.
    pub fn render(&self, member: &Member) -> String {
        let raft = member.raft.metrics().borrow().clone();
        self.term.set(raft.current_term as i64);
        self.is_leader
            .set(i64::from(raft.current_leader == Some(member.id)));
        self.applied_index
            .set(raft.last_applied.map_or(0, |l| l.index) as i64);
        self.last_log_index
            .set(raft.last_log_index.unwrap_or(0) as i64);
        member.sm.read(|s| {
            let up = s.nodes.values().filter(|n| n.up).count() as i64;
            self.nodes.get_or_create(&vec![("state", "up")]).set(up);
            self.nodes
                .get_or_create(&vec![("state", "down")])
                .set(s.nodes.len() as i64 - up);
            self.volumes.set(s.volumes.len() as i64);
            self.leases.set(s.leases.len() as i64);
            self.addresses.set(s.allocations.len() as i64);
            for phase in [Phase::Copying, Phase::Handoff, Phase::Done, Phase::Failed] {
                let n = s.migrations.values().filter(|m| m.phase == phase).count();
                self.moves
                    .get_or_create(&vec![("phase", phase.as_str())])
                    .set(n as i64);
            }
            self.moved_bytes
                .set(s.migrations.values().map(|m| m.bytes_sent as i64).sum());
            let downtime_ms: u64 = s.migrations.values().filter_map(|m| m.downtime_ms()).sum();
            self.move_downtime_seconds.set(downtime_ms as f64 / 1000.0);
        });
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
