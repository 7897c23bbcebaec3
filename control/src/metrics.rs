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
    pool_addresses: Family<Vec<(&'static str, String)>, Gauge>,
    moves: Family<Labels, Gauge>,
    moved_bytes: Gauge,
    move_downtime_seconds: Gauge<f64, AtomicU64>,
    move_copy_seconds: Gauge<f64, AtomicU64>,
    replica_age_max_seconds: Gauge<f64, AtomicU64>,
    replicas_over_lag: Gauge,
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
            pool_addresses: Family::default(),
            moves: Family::default(),
            moved_bytes: Gauge::default(),
            move_downtime_seconds: Gauge::default(),
            move_copy_seconds: Gauge::default(),
            replica_age_max_seconds: Gauge::default(),
            replicas_over_lag: Gauge::default(),
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
            "pool_addresses",
            "Host addresses of each IP pool, by state (allocated, free)",
            m.pool_addresses.clone(),
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
        r.register(
            "move_copy_seconds",
            "Sum of the copying phase of the moves recorded (start to the handoff: the volume stays in use)",
            m.move_copy_seconds.clone(),
        );
        r.register(
            "replica_age_max_seconds",
            "The oldest data among the replicas kept under a replication policy (now minus its snapshot's time)",
            m.replica_age_max_seconds.clone(),
        );
        r.register(
            "replicas_over_lag",
            "Replicas kept under a policy whose data is older than the policy's max lag",
            m.replicas_over_lag.clone(),
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
            self.pool_addresses.clear();
            for pool in &s.pools {
                let allocated = s.allocations.values().filter(|a| a.pool == *pool).count();
                let label = |state| vec![("pool", pool.to_string()), ("state", state)];
                let free = pool.host_count().saturating_sub(allocated as u64);
                self.pool_addresses
                    .get_or_create(&label("allocated".into()))
                    .set(allocated as i64);
                self.pool_addresses
                    .get_or_create(&label("free".into()))
                    .set(free as i64);
            }
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
            let copy_ms: u64 = s
                .migrations
                .values()
                .filter_map(|m| Some(m.handoff_ms?.saturating_sub(m.started_ms?)))
                .sum();
            self.move_copy_seconds.set(copy_ms as f64 / 1000.0);
            let (oldest_ms, over) = replica_ages(s, crate::server::node_service::now_ms());
            self.replica_age_max_seconds.set(oldest_ms as f64 / 1000.0);
            self.replicas_over_lag.set(over as i64);
        });
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
/// Over the replicas of volumes with a replication policy (not a diverged old owner's): the
/// age of the oldest data, in milliseconds at `now_ms`, and how many are older than their
/// policy's max lag.
fn replica_ages(s: &crate::state::State, now_ms: u64) -> (u64, usize) {
    let mut oldest = 0;
    let mut over = 0;
    for v in s.volumes.values() {
        let Some(policy) = v.replication else {
            continue;
        };
        for taken in v
            .replicas
            .iter()
            .filter(|r| !r.diverged)
            .filter_map(|r| r.taken_ms)
        {
            let age = now_ms.saturating_sub(taken);
            oldest = oldest.max(age);
            over += usize::from(age > policy.max_lag_ms);
        }
    }
    (oldest, over)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Replica, Replication, State, Volume};

    #[test]
    fn replica_ages_count_only_policy_replicas_that_are_not_diverged() {
        let replica = |node: &str, taken_ms, diverged| Replica {
            node: node.into(),
            snapshot: "rep-1".into(),
            taken_ms,
            diverged,
        };
        let volume = |name: &str, replication, replicas| Volume {
            name: name.into(),
            id: 1,
            size_limit: None,
            owner: Some("a".into()),
            epoch: 1,
            replicas,
            replication,
            promotions: Vec::new(),
            snapshots: Vec::new(),
            origin: None,
            snapshot_schedule: None,
            created_ms: 0,
            metadata: Default::default(),
        };
        let policy = Some(Replication {
            copies: 2,
            max_lag_ms: 10_000,
            promote_after_ms: None,
        });
        let mut s = State::default();
        for v in [
            volume(
                "kept",
                policy,
                vec![
                    replica("b", Some(95_000), false),
                    replica("c", Some(85_000), false),
                ],
            ),
            volume("left-by-a-move", None, vec![replica("b", Some(1), false)]),
            volume("promoted", policy, vec![replica("a", Some(2), true)]),
        ] {
            s.volumes.insert(v.name.clone(), v);
        }
        assert_eq!(replica_ages(&s, 100_000), (15_000, 1));
        assert_eq!(replica_ages(&State::default(), 100_000), (0, 0));
    }
}
