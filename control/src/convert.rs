//! Protobuf <-> domain conversions, in one place.

use proto::control as pb;

use crate::proposal::PoolUsage;
use crate::state::{
    Allocation, Lease, Migration, Node, Phase, Promotion, Replication, Response, UserSnapshot,
    Volume,
};

/// Domain node to wire.
pub fn node(n: Node) -> pb::Node {
    pb::Node {
        name: n.name,
        address: n.address,
        storage: n.storage,
        last_heartbeat_ms: n.last_heartbeat_ms,
        up: n.up,
    }
}

/// Domain volume to wire.
pub fn volume(v: Volume) -> pb::Volume {
    pb::Volume {
        name: v.name,
        id: v.id,
        size_limit: v.size_limit,
        owner: v.owner,
        epoch: v.epoch,
        replicas: v
            .replicas
            .into_iter()
            .map(|r| pb::Replica {
                node: r.node,
                snapshot: r.snapshot,
                taken_ms: r.taken_ms,
                diverged: r.diverged,
            })
            .collect(),
        replication: v.replication.map(replication),
        promotions: v.promotions.into_iter().map(promotion).collect(),
        snapshots: v.snapshots.into_iter().map(user_snapshot).collect(),
        origin: v.origin.map(|o| pb::Origin {
            volume: o.volume,
            snapshot: o.snapshot,
        }),
        snapshot_schedule: v.snapshot_schedule.map(|s| pb::SnapshotSchedule {
            every_ms: s.every_ms,
            keep: s.keep,
        }),
        state: pb::VolumeState::Unspecified.into(),
        moving: None,
        moves: Vec::new(),
        created_ms: v.created_ms,
        metadata: v.metadata.into_iter().collect(),
    }
}

/// Domain replication policy to wire.
pub fn replication(r: Replication) -> pb::Replication {
    pb::Replication {
        copies: r.copies,
        max_lag_ms: r.max_lag_ms,
        promote_after_ms: r.promote_after_ms,
    }
}

/// Wire replication policy to domain (validated when the command is applied).
pub fn replication_from(r: pb::Replication) -> Replication {
    Replication {
        copies: r.copies,
        max_lag_ms: r.max_lag_ms,
        promote_after_ms: r.promote_after_ms,
    }
}

/// Domain user snapshot to wire.
pub fn user_snapshot(s: UserSnapshot) -> pb::UserSnapshot {
    pb::UserSnapshot {
        name: s.name,
        label: s.label,
        taken_ms: s.taken_ms,
        epoch: s.epoch,
        node: s.node,
        scheduled: s.scheduled,
    }
}

/// Domain promotion to wire.
pub fn promotion(p: Promotion) -> pb::Promotion {
    pb::Promotion {
        at_ms: p.at_ms,
        from: p.from,
        to: p.to,
        epoch: p.epoch,
        snapshot: p.snapshot,
        taken_ms: p.taken_ms,
        forced: p.forced,
        automatic: p.automatic,
    }
}

/// Domain lease to wire.
pub fn lease(l: Lease) -> pb::Lease {
    pb::Lease {
        volume: l.volume,
        node: l.node,
        container_id: l.container_id,
        container_name: l.container_name,
        service: l.service,
        task: l.task,
    }
}

/// Wire lease to domain.
pub fn lease_from(l: pb::Lease) -> Lease {
    Lease {
        volume: l.volume,
        node: l.node,
        container_id: l.container_id,
        container_name: l.container_name,
        service: l.service,
        task: l.task,
    }
}

/// Domain move phase to wire.
pub fn phase(p: Phase) -> pb::MovePhase {
    match p {
        Phase::Copying => pb::MovePhase::Copying,
        Phase::Handoff => pb::MovePhase::Handoff,
        Phase::Done => pb::MovePhase::Done,
        Phase::Failed => pb::MovePhase::Failed,
    }
}

/// Wire move phase to domain (`None` for an unset or unknown one).
pub fn phase_from(p: pb::MovePhase) -> Option<Phase> {
    match p {
        pb::MovePhase::Unspecified => None,
        pb::MovePhase::Copying => Some(Phase::Copying),
        pb::MovePhase::Handoff => Some(Phase::Handoff),
        pb::MovePhase::Done => Some(Phase::Done),
        pb::MovePhase::Failed => Some(Phase::Failed),
    }
}

/// A wire move phase's word (`copying`, `handoff`, `done`, `failed`), as `flockerctl`
/// prints it; `unknown` for an unset one.
pub fn phase_word(p: pb::MovePhase) -> &'static str {
    phase_from(p).map_or("unknown", Phase::as_str)
}

/// Human-readable bytes, as `flockerctl` and the status page print them: `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A member's state as printed: `leader`, `follower`, `candidate`, `learner`, `shutdown` or
/// `unreachable`.
pub fn member_state_word(s: pb::MemberState) -> &'static str {
    match s {
        pb::MemberState::Unspecified => "unknown",
        pb::MemberState::Leader => "leader",
        pb::MemberState::Follower => "follower",
        pb::MemberState::Candidate => "candidate",
        pb::MemberState::Learner => "learner",
        pb::MemberState::Shutdown => "shutdown",
        pb::MemberState::Unreachable => "unreachable",
    }
}

/// A volume's state as printed: `ready`, `moving to NODE (PHASE)` or `no owner`.
pub fn volume_state_word(v: &pb::Volume) -> String {
    match (v.state(), &v.moving) {
        (pb::VolumeState::Moving, Some(m)) => {
            format!("moving to {} ({})", m.to, phase_word(m.phase()))
        }
        (pb::VolumeState::Moving, None) => "moving".to_owned(),
        (pb::VolumeState::Ready, _) => "ready".to_owned(),
        (pb::VolumeState::NoOwner, _) => "no owner".to_owned(),
        (pb::VolumeState::Unspecified, _) => "unknown".to_owned(),
    }
}

/// Who holds a lease, for people: the Swarm task, else the container's name, else its
/// short id; then `@NODE`.
pub fn lease_holder(l: &pb::Lease) -> String {
    let who = l.task.clone().or_else(|| l.container_name.clone());
    let who = who.unwrap_or_else(|| l.container_id.chars().take(12).collect());
    format!("{who}@{}", l.node)
}

/// A replica as printed: `NODE(AGE)` with the age of its data by the clock that gave
/// `now_ms` (`NODE` alone when unknown, `NODE(diverged)` for an old owner whose copy is set
/// aside before it receives again).
pub fn replica_word(r: &pb::Replica, now_ms: u64) -> String {
    if r.diverged {
        return format!("{}(diverged)", r.node);
    }
    match r.taken_ms {
        Some(taken) => format!("{}({})", r.node, age_word(now_ms.saturating_sub(taken))),
        None => r.node.clone(),
    }
}

/// An age in whole seconds, minutes or hours: `4s`, `12m`, `3h`.
pub fn age_word(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// A replication policy as printed: `2 replicas, max lag 10s[, promoted after 30s down]`,
/// or `-` for none.
pub fn replication_word(r: Option<&pb::Replication>) -> String {
    let Some(r) = r else {
        return "-".to_owned();
    };
    let lag = std::time::Duration::from_millis(r.max_lag_ms);
    let auto = r.promote_after_ms.map_or_else(String::new, |ms| {
        let after = std::time::Duration::from_millis(ms);
        format!(
            ", promoted after {} down",
            humantime::format_duration(after)
        )
    });
    format!(
        "{} replica{}, max lag {}{auto}",
        r.copies,
        if r.copies == 1 { "" } else { "s" },
        humantime::format_duration(lag)
    )
}

/// Domain migration to wire.
pub fn migration(m: Migration) -> pb::Migration {
    pb::Migration {
        downtime_ms: m.downtime_ms(),
        started_ms: m.started_ms,
        handoff_ms: m.handoff_ms,
        ended_ms: m.ended_ms,
        id: m.id,
        volume: m.volume,
        from: m.from,
        to: m.to,
        phase: phase(m.phase).into(),
        bytes_sent: m.bytes_sent,
        rounds: m.rounds,
        error: m.error,
        stop_containers: m.stop_containers,
        cleanup_pending: m.cleanup_pending,
    }
}

/// Domain allocation to wire.
pub fn allocation(a: Allocation) -> pb::Allocation {
    pb::Allocation {
        address: a.address.to_string(),
        pool: a.pool.to_string(),
        container_id: a.container_id,
        container_name: a.container_name,
        node: a.node,
        running: a.running,
    }
}

/// Pool usage to wire.
pub fn pool(p: PoolUsage) -> pb::Pool {
    pb::Pool {
        cidr: p.cidr.to_string(),
        allocated: p.allocated,
        size: p.cidr.host_count(),
    }
}

/// Allocations a write changed or released, to wire.
pub fn allocations(all: Vec<Allocation>) -> pb::AllocationList {
    pb::AllocationList {
        allocations: all.into_iter().map(allocation).collect(),
    }
}

/// An applied change as a watch event.
pub fn watch_event(index: u64, r: Response) -> Option<pb::WatchEvent> {
    use pb::watch_event::Object;
    let (deleted, key, object) = match r {
        Response::Node(n) => (false, n.name.clone(), Object::Node(node(n))),
        Response::Volume(v) => (false, v.name.clone(), Object::Volume(volume(v))),
        Response::VolumeDeleted(v) => (true, v.name.clone(), Object::Volume(volume(v))),
        Response::Lease(l) => (false, lease_key(&l), Object::Lease(lease(l))),
        Response::LeaseReleased(l) => (true, lease_key(&l), Object::Lease(lease(l))),
        Response::Migration(m) => (false, m.id.to_string(), Object::Migration(migration(m))),
        Response::Pool(c) => (
            false,
            c.to_string(),
            Object::Pool(pool(PoolUsage {
                cidr: c,
                allocated: 0,
            })),
        ),
        Response::Allocation(a) => (
            false,
            a.address.to_string(),
            Object::Allocation(allocation(a)),
        ),
        Response::AllocationReleased(a) => (
            true,
            a.address.to_string(),
            Object::Allocation(allocation(a)),
        ),
        // Split by `Response::into_changes` before they reach watchers.
        Response::Allocations(_)
        | Response::AllocationsReleased(_)
        | Response::NodeDown { .. }
        | Response::Batch { .. }
        | Response::Unchanged => {
            return None;
        }
    };
    Some(pb::WatchEvent {
        index,
        deleted,
        key,
        object: Some(object),
    })
}

fn lease_key(l: &Lease) -> String {
    format!("{}/{}", l.volume, l.container_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_travel_as_enums_and_print_as_before() {
        for p in [Phase::Copying, Phase::Handoff, Phase::Done, Phase::Failed] {
            assert_eq!(phase_from(phase(p)), Some(p));
            assert_eq!(phase_word(phase(p)), p.as_str());
        }
        assert_eq!(phase_from(pb::MovePhase::Unspecified), None);
        let words: Vec<_> = [Phase::Copying, Phase::Handoff, Phase::Done, Phase::Failed]
            .map(|p| phase_word(phase(p)))
            .to_vec();
        assert_eq!(words, ["copying", "handoff", "done", "failed"]);
    }

    #[test]
    fn states_print_as_words() {
        let mut v = pb::Volume::default();
        v.set_state(pb::VolumeState::Ready);
        assert_eq!(volume_state_word(&v), "ready");
        v.set_state(pb::VolumeState::NoOwner);
        assert_eq!(volume_state_word(&v), "no owner");
        v.set_state(pb::VolumeState::Moving);
        v.moving = Some(pb::VolumeMove {
            to: "n2".into(),
            phase: pb::MovePhase::Handoff.into(),
        });
        assert_eq!(volume_state_word(&v), "moving to n2 (handoff)");
        assert_eq!(member_state_word(pb::MemberState::Leader), "leader");
        assert_eq!(
            member_state_word(pb::MemberState::Unreachable),
            "unreachable"
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn a_replica_shows_its_node_and_the_age_of_its_data() {
        let r = |taken_ms| pb::Replica {
            node: "node2".into(),
            snapshot: "rep-1".into(),
            taken_ms,
            diverged: false,
        };
        let now = 1_800_000_000_000;
        assert_eq!(replica_word(&r(Some(now - 4_200)), now), "node2(4s)");
        assert_eq!(replica_word(&r(Some(now - 600_000)), now), "node2(10m)");
        assert_eq!(
            replica_word(&r(Some(now - 3 * 3_600_000)), now),
            "node2(3h)"
        );
        assert_eq!(replica_word(&r(None), now), "node2");
        let policy = pb::Replication {
            copies: 2,
            max_lag_ms: 10_000,
            promote_after_ms: None,
        };
        assert_eq!(replication_word(Some(&policy)), "2 replicas, max lag 10s");
        let auto = pb::Replication {
            promote_after_ms: Some(30_000),
            ..policy
        };
        assert_eq!(
            replication_word(Some(&auto)),
            "2 replicas, max lag 10s, promoted after 30s down"
        );
        let diverged = pb::Replica {
            diverged: true,
            ..r(Some(now))
        };
        assert_eq!(replica_word(&diverged, now), "node2(diverged)");
        assert_eq!(replication_word(None), "-");
    }
}
