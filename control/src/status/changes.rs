//! What a watched change means to an operator (`flockerctl events`): the change compared with
//! the [`View`] before it, as one line — a volume created, a move's phase, a node down, an
//! address claimed. Routine changes (heartbeats, a move's byte counts, a replica's refresh)
//! are [`Change::routine`], shown only when asked for.

use proto::control as pb;
use serde::Serialize;

use super::view::View;

/// One watched change, described.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The Raft log index of the command that made it.
    pub index: u64,
    /// What changed: `node`, `volume`, `lease`, `move`, `address` or `pool`.
    pub kind: &'static str,
    /// Which one: a node or volume name, a move's `VOLUME#ID`, an address, a CIDR.
    pub name: String,
    /// What happened, in a few words (`created`, `down`, `moving a -> b`, ...).
    pub what: String,
    /// A heartbeat, a move's progress, a replica's refresh: not worth a line by default.
    pub routine: bool,
}

/// Describes `event` against `before`, the view it has not been applied to yet; `None` for
/// an event with no object.
pub fn describe(before: &View, event: &pb::WatchEvent) -> Option<Change> {
    use pb::watch_event::Object;
    let deleted = event.deleted;
    let (kind, name, what, routine) = match event.object.as_ref()? {
        Object::Node(n) => {
            let (what, routine) = node(before.nodes.get(&n.name), n, deleted);
            ("node", n.name.clone(), what, routine)
        }
        Object::Volume(v) => {
            let (what, routine) = volume(before.volumes.get(&v.name), v, deleted);
            ("volume", v.name.clone(), what, routine)
        }
        Object::Lease(l) => {
            let holder = l
                .container_name
                .clone()
                .unwrap_or_else(|| short(&l.container_id));
            let what = if deleted {
                format!("released by {holder} on {}", l.node)
            } else {
                format!("held by {holder} on {}", l.node)
            };
            let known = before
                .leases
                .contains_key(&(l.volume.clone(), l.container_id.clone()));
            ("lease", l.volume.clone(), what, !deleted && known)
        }
        Object::Migration(m) => {
            let (what, routine) = migration(before.moves.get(&m.id), m, deleted);
            ("move", format!("{}#{}", m.volume, m.id), what, routine)
        }
        Object::Allocation(a) => {
            let (what, routine) = allocation(before.allocations.get(&a.address), a, deleted);
            ("address", a.address.clone(), what, routine)
        }
        Object::Pool(p) => {
            let what = match (deleted, before.pools.contains_key(&p.cidr)) {
                (true, _) => "removed".to_owned(),
                (false, false) => format!("added ({} addresses)", p.size),
                (false, true) => format!("{} of {} allocated", p.allocated, p.size),
            };
            let routine = !deleted && before.pools.contains_key(&p.cidr);
            ("pool", p.cidr.clone(), what, routine)
        }
    };
    Some(Change {
        index: event.index,
        kind,
        name,
        what,
        routine,
    })
}

fn node(old: Option<&pb::Node>, n: &pb::Node, deleted: bool) -> (String, bool) {
    if deleted {
        return ("removed".into(), false);
    }
    match old {
        None => (
            format!("registered at {} ({})", n.address, n.storage),
            false,
        ),
        Some(o) if o.up != n.up => ((if n.up { "up" } else { "down" }).into(), false),
        Some(o) if o.address != n.address || o.storage != n.storage => {
            (format!("now at {} ({})", n.address, n.storage), false)
        }
        Some(_) => ("heartbeat".into(), true),
    }
}

fn volume(old: Option<&pb::Volume>, v: &pb::Volume, deleted: bool) -> (String, bool) {
    if deleted {
        return ("deleted".into(), false);
    }
    let owner = v.owner.as_deref().unwrap_or("no owner");
    let Some(o) = old else {
        return (format!("created (owner {owner})"), false);
    };
    let mut said = Vec::new();
    if o.owner != v.owner {
        said.push(format!(
            "owner {} -> {owner}",
            o.owner.as_deref().unwrap_or("none")
        ));
    }
    if o.epoch != v.epoch {
        said.push(format!("epoch {}", v.epoch));
    }
    if let Some(p) = v.promotions.last()
        && o.promotions.last() != Some(p)
    {
        said.push(format!("promoted a replica on {owner}"));
    }
    let nodes =
        |vol: &pb::Volume| -> Vec<String> { vol.replicas.iter().map(|r| r.node.clone()).collect() };
    if nodes(o) != nodes(v) {
        let list = nodes(v);
        said.push(if list.is_empty() {
            "no replicas".to_owned()
        } else {
            format!("replicas on {}", list.join(", "))
        });
    }
    if o.replication != v.replication {
        said.push(match &v.replication {
            Some(r) => format!(
                "replication: {} copies, max lag {} ms",
                r.copies, r.max_lag_ms
            ),
            None => "replication off".to_owned(),
        });
    }
    if o.size_limit != v.size_limit || o.metadata != v.metadata {
        said.push("settings changed".into());
    }
    if said.is_empty() {
        ("replicas refreshed".into(), true)
    } else {
        (said.join("; "), false)
    }
}

fn migration(old: Option<&pb::Migration>, m: &pb::Migration, deleted: bool) -> (String, bool) {
    if deleted {
        return ("forgotten".into(), true);
    }
    let phase = m.phase();
    let path = format!("{} -> {}", m.from, m.to);
    if old.is_some_and(|o| o.phase == m.phase && o.cleanup_pending == m.cleanup_pending) {
        return (
            format!(
                "{path}: {} sent, round {}",
                crate::convert::human_bytes(m.bytes_sent),
                m.rounds
            ),
            true,
        );
    }
    let what = match phase {
        pb::MovePhase::Copying | pb::MovePhase::Unspecified => format!("{path}: copying"),
        pb::MovePhase::Handoff => format!("{path}: handoff"),
        pb::MovePhase::Done => match m.downtime_ms {
            Some(ms) => format!(
                "{path}: done, {} sent, {:.2} s downtime",
                crate::convert::human_bytes(m.bytes_sent),
                ms as f64 / 1000.0
            ),
            None => format!("{path}: done"),
        },
        pb::MovePhase::Failed if old.is_some_and(|o| o.phase() == pb::MovePhase::Failed) => {
            format!("{path}: failed move cleaned up")
        }
        pb::MovePhase::Failed => format!(
            "{path}: failed: {}",
            m.error.as_deref().unwrap_or("no reason recorded")
        ),
    };
    (what, false)
}

fn allocation(old: Option<&pb::Allocation>, a: &pb::Allocation, deleted: bool) -> (String, bool) {
    let holder = if a.container_name.is_empty() {
        short(&a.container_id)
    } else {
        a.container_name.clone()
    };
    if deleted {
        return (format!("released by {holder}"), false);
    }
    match old {
        None => (format!("claimed by {holder} on {}", a.node), false),
        Some(o) if o.container_id != a.container_id || o.node != a.node => {
            (format!("now held by {holder} on {}", a.node), false)
        }
        Some(o) if o.running != a.running => (
            format!("{holder} {}", if a.running { "running" } else { "stopped" }),
            false,
        ),
        Some(_) => ("unchanged".into(), true),
    }
}

/// A container id as Docker shows it (12 characters).
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::watch_event::Object;

    fn event(object: Object, deleted: bool) -> pb::WatchEvent {
        pb::WatchEvent {
            index: 7,
            deleted,
            key: String::new(),
            object: Some(object),
        }
    }

    fn node_named(name: &str, up: bool, beat: u64) -> pb::Node {
        pb::Node {
            name: name.into(),
            address: "10.0.0.1:4524".into(),
            storage: "zfs:tank".into(),
            last_heartbeat_ms: beat,
            up,
        }
    }

    fn said(view: &View, e: &pb::WatchEvent) -> (String, bool) {
        let c = describe(view, e).unwrap();
        (c.what, c.routine)
    }

    #[test]
    fn a_node_is_registered_beats_routinely_and_goes_down_and_up() {
        let mut view = View::default();
        let first = event(Object::Node(node_named("a", true, 1)), false);
        assert_eq!(
            said(&view, &first),
            ("registered at 10.0.0.1:4524 (zfs:tank)".into(), false)
        );
        view.apply(first);
        let beat = event(Object::Node(node_named("a", true, 2)), false);
        assert_eq!(said(&view, &beat), ("heartbeat".into(), true));
        view.apply(beat);
        let down = event(Object::Node(node_named("a", false, 2)), false);
        assert_eq!(said(&view, &down), ("down".into(), false));
        view.apply(down);
        let up = event(Object::Node(node_named("a", true, 3)), false);
        assert_eq!(said(&view, &up), ("up".into(), false));
    }

    #[test]
    fn a_volume_is_created_moves_gets_replicas_is_refreshed_and_deleted() {
        let mut view = View::default();
        let mut v = pb::Volume {
            name: "db".into(),
            owner: Some("a".into()),
            epoch: 1,
            ..Default::default()
        };
        let created = event(Object::Volume(v.clone()), false);
        assert_eq!(said(&view, &created), ("created (owner a)".into(), false));
        view.apply(created);
        v.owner = Some("b".into());
        v.epoch = 2;
        v.replicas = vec![pb::Replica {
            node: "a".into(),
            snapshot: "s1".into(),
            ..Default::default()
        }];
        let moved = event(Object::Volume(v.clone()), false);
        assert_eq!(
            said(&view, &moved),
            ("owner a -> b; epoch 2; replicas on a".into(), false)
        );
        view.apply(moved);
        v.replicas[0].snapshot = "s2".into();
        let refreshed = event(Object::Volume(v.clone()), false);
        assert_eq!(said(&view, &refreshed), ("replicas refreshed".into(), true));
        view.apply(refreshed);
        assert_eq!(
            said(&view, &event(Object::Volume(v), true)),
            ("deleted".into(), false)
        );
    }

    #[test]
    fn a_move_says_each_phase_once_and_its_progress_is_routine() {
        let mut view = View::default();
        let mut m = pb::Migration {
            id: 3,
            volume: "db".into(),
            from: "a".into(),
            to: "b".into(),
            phase: pb::MovePhase::Copying as i32,
            ..Default::default()
        };
        let started = event(Object::Migration(m.clone()), false);
        let c = describe(&view, &started).unwrap();
        assert_eq!((c.kind, c.name.as_str()), ("move", "db#3"));
        assert_eq!(c.what, "a -> b: copying");
        view.apply(started);
        m.bytes_sent = 2048;
        m.rounds = 1;
        let progress = event(Object::Migration(m.clone()), false);
        assert_eq!(
            said(&view, &progress),
            ("a -> b: 2.0 KiB sent, round 1".into(), true)
        );
        view.apply(progress);
        m.phase = pb::MovePhase::Done as i32;
        m.downtime_ms = Some(1500);
        assert_eq!(
            said(&view, &event(Object::Migration(m.clone()), false)),
            ("a -> b: done, 2.0 KiB sent, 1.50 s downtime".into(), false)
        );
        m.phase = pb::MovePhase::Failed as i32;
        m.error = Some("b is down".into());
        assert_eq!(
            said(&view, &event(Object::Migration(m), false)),
            ("a -> b: failed: b is down".into(), false)
        );
    }

    #[test]
    fn an_address_is_claimed_stopped_and_released() {
        let mut view = View::default();
        let mut a = pb::Allocation {
            address: "10.255.0.5".into(),
            pool: "10.255.0.0/16".into(),
            container_id: "0123456789abcdef".into(),
            container_name: String::new(),
            node: "a".into(),
            running: true,
        };
        let claimed = event(Object::Allocation(a.clone()), false);
        assert_eq!(
            said(&view, &claimed),
            ("claimed by 0123456789ab on a".into(), false)
        );
        view.apply(claimed);
        a.running = false;
        let stopped = event(Object::Allocation(a.clone()), false);
        assert_eq!(
            said(&view, &stopped),
            ("0123456789ab stopped".into(), false)
        );
        view.apply(stopped);
        assert_eq!(
            said(&view, &event(Object::Allocation(a), true)),
            ("released by 0123456789ab".into(), false)
        );
    }
}
