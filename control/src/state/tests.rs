//! Unit and property tests of the state machine, with no cluster.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::state::apply::{may_snapshot, validate_snapshot_label};

fn ok(state: &mut State, c: Command) -> Response {
    apply(state, c).expect("command should apply")
}

fn node(name: &str) -> Command {
    Command::RegisterNode {
        name: name.into(),
        address: format!("{name}:4524"),
        storage: "dir:/tmp".into(),
        at_ms: 1,
    }
}

fn volume(name: &str, owner: Option<&str>) -> Command {
    Command::CreateVolume {
        name: name.into(),
        size_limit: None,
        owner: owner.map(Into::into),
        metadata: BTreeMap::new(),
        at_ms: 5,
        replication: None,
    }
}

fn alloc(pool: &str, id: &str, node: &str) -> Command {
    Command::AllocateIp {
        pool: pool.into(),
        container_id: id.into(),
        container_name: format!("{id}-name"),
        node: node.into(),
    }
}

fn claim(addr: &str, id: &str, node: &str) -> Command {
    Command::ClaimIp {
        address: addr.into(),
        container_id: id.into(),
        container_name: format!("{id}-name"),
        node: node.into(),
    }
}

fn cluster() -> State {
    let mut s = State::default();
    ok(&mut s, node("a"));
    ok(&mut s, node("b"));
    ok(
        &mut s,
        Command::AddPool {
            cidr: "10.0.0.0/29".into(),
        },
    );
    s
}

#[test]
fn volumes_validate_names_and_reject_duplicates() {
    let mut s = cluster();
    assert!(matches!(
        apply(&mut s, volume("Bad/Name", None)),
        Err(CommandError::InvalidVolumeName { .. })
    ));
    ok(&mut s, volume("db", Some("a")));
    assert_eq!(
        apply(&mut s, volume("db", None)),
        Err(CommandError::VolumeExists { name: "db".into() })
    );
    assert!(matches!(
        apply(&mut s, volume("x", Some("nope"))),
        Err(CommandError::UnknownNode { .. })
    ));
    assert_eq!(s.volumes["db"].epoch, 1);
    assert_eq!(s.volumes["db"].id, 1);
}

#[test]
fn owner_change_bumps_epoch_and_same_owner_does_not() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(
        &mut s,
        Command::SetOwner {
            name: "db".into(),
            owner: "a".into(),
        },
    );
    assert_eq!(s.volumes["db"].epoch, 1);
    ok(
        &mut s,
        Command::SetOwner {
            name: "db".into(),
            owner: "b".into(),
        },
    );
    assert_eq!(s.volumes["db"].epoch, 2);
    assert_eq!(s.volumes["db"].owner.as_deref(), Some("b"));
}

#[test]
fn leases_block_delete_and_must_be_on_owner() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let lease = Lease {
        volume: "db".into(),
        node: "b".into(),
        container_id: "c1".into(),
        ..Default::default()
    };
    assert!(matches!(
        apply(&mut s, Command::AcquireLease(lease.clone())),
        Err(CommandError::NotOwner { .. })
    ));
    let lease = Lease {
        node: "a".into(),
        ..lease
    };
    ok(&mut s, Command::AcquireLease(lease.clone()));
    assert!(matches!(
        apply(&mut s, Command::DeleteVolume { name: "db".into() }),
        Err(CommandError::VolumeInUse { .. })
    ));
    ok(
        &mut s,
        Command::ReleaseLease {
            volume: "db".into(),
            container_id: "c1".into(),
        },
    );
    ok(&mut s, Command::DeleteVolume { name: "db".into() });
    assert!(s.volumes.is_empty());
}

#[test]
fn moving_an_ownerless_volume_gives_it_to_the_node_at_once() {
    let mut s = cluster();
    ok(&mut s, volume("fresh", None));
    let Response::Migration(m) = ok(
        &mut s,
        Command::RecordMigration {
            volume: "fresh".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    ) else {
        panic!("expected a migration");
    };
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(s.volumes["fresh"].owner.as_deref(), Some("b"));
    assert_eq!(s.volumes["fresh"].epoch, 1);
    assert!(s.volumes["fresh"].replicas.is_empty());
    // Watchers see the new owner, not only the migration (found by the lab walk, seed
    // 2390167860993262554: the new owner's agent never made the volume).
    let changes = Response::Migration(m).into_changes(&s);
    assert!(
        changes.iter().any(
            |c| matches!(c, Response::Volume(v) if v.name == "fresh" && v.owner.as_deref() == Some("b"))
        ),
        "{changes:?}"
    );
}

#[test]
fn migration_done_hands_over_with_new_epoch() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let Response::Migration(m) = ok(
        &mut s,
        Command::RecordMigration {
            volume: "db".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    ) else {
        panic!("expected a migration");
    };
    assert!(matches!(
        apply(
            &mut s,
            Command::RecordMigration {
                volume: "db".into(),
                to: "b".into(),
                stop_containers: false,
                at_ms: None,
                trace: Default::default(),
            }
        ),
        Err(CommandError::VolumeMoving { .. })
    ));
    let step = |phase| Command::AdvanceMigration {
        id: m.id,
        phase,
        bytes_sent: 10,
        rounds: 1,
        at_ms: None,
    };
    ok(&mut s, step(Phase::Handoff));
    assert!(matches!(
        apply(&mut s, step(Phase::Copying)),
        Err(CommandError::BadPhase { .. })
    ));
    ok(&mut s, step(Phase::Done));
    let v = &s.volumes["db"];
    assert_eq!((v.owner.as_deref(), v.epoch), (Some("b"), 2));
    assert_eq!(v.replicas[0].node, "a");
    assert!(matches!(
        apply(
            &mut s,
            Command::FailMigration {
                id: m.id,
                error: "x".into(),
                at_ms: None,
            }
        ),
        Err(CommandError::BadPhase { .. })
    ));
}

#[test]
fn a_held_volume_is_not_handed_over() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let lease = Lease {
        volume: "db".into(),
        node: "a".into(),
        container_id: "c1".into(),
        ..Default::default()
    };
    ok(&mut s, Command::AcquireLease(lease));
    let Response::Migration(m) = ok(
        &mut s,
        Command::RecordMigration {
            volume: "db".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    ) else {
        panic!("expected a migration");
    };
    let done = Command::AdvanceMigration {
        id: m.id,
        phase: Phase::Done,
        bytes_sent: 1,
        rounds: 1,
        at_ms: None,
    };
    assert!(matches!(
        apply(&mut s, done.clone()),
        Err(CommandError::VolumeInUse { .. })
    ));
    assert_eq!(s.volumes["db"].owner.as_deref(), Some("a"));
    ok(
        &mut s,
        Command::ReleaseLease {
            volume: "db".into(),
            container_id: "c1".into(),
        },
    );
    ok(&mut s, done);
    assert_eq!(s.volumes["db"].owner.as_deref(), Some("b"));
}

#[test]
fn failed_migration_keeps_owner() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(
        &mut s,
        Command::RecordMigration {
            volume: "db".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    );
    ok(
        &mut s,
        Command::FailMigration {
            id: 1,
            error: "disk full".into(),
            at_ms: None,
        },
    );
    assert_eq!(s.volumes["db"].owner.as_deref(), Some("a"));
    assert_eq!(s.migrations[&1].error.as_deref(), Some("disk full"));
}

#[test]
fn a_failed_moves_clean_up_is_recorded_until_done() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let record = Command::RecordMigration {
        volume: "db".into(),
        to: "b".into(),
        stop_containers: false,
        at_ms: None,
        trace: Default::default(),
    };
    ok(&mut s, record);
    // Only a failed move has a clean-up to record.
    assert!(apply(&mut s, Command::MigrationCleanedUp { id: 1 }).is_err());
    let fail = Command::FailMigration {
        id: 1,
        error: "refused".into(),
        at_ms: None,
    };
    ok(&mut s, fail);
    assert!(s.migrations[&1].cleanup_pending);
    ok(&mut s, Command::MigrationCleanedUp { id: 1 });
    assert!(!s.migrations[&1].cleanup_pending);
    // Repeating it (a leader that applied it but did not hear back) is harmless.
    ok(&mut s, Command::MigrationCleanedUp { id: 1 });
    // Records written before the flag existed have nothing pending.
    let mut json = serde_json::to_value(&s.migrations[&1]).unwrap();
    json.as_object_mut().unwrap().remove("cleanup_pending");
    let old: crate::state::Migration = serde_json::from_value(json).unwrap();
    assert!(!old.cleanup_pending);
}

#[test]
fn the_stop_choice_is_replicated_and_older_entries_mean_wait() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let record = Command::RecordMigration {
        volume: "db".into(),
        to: "b".into(),
        stop_containers: true,
        at_ms: None,
        trace: Default::default(),
    };
    let Response::Migration(m) = ok(&mut s, record) else {
        panic!("expected a migration");
    };
    assert!(m.stop_containers && s.migrations[&m.id].stop_containers);
    // Log entries and snapshots written before the flag existed decode as "wait".
    let old: Command =
        serde_json::from_str(r#"{"op":"record_migration","volume":"db","to":"b"}"#).unwrap();
    assert!(matches!(
        old,
        Command::RecordMigration {
            stop_containers: false,
            ..
        }
    ));
    let mut json = serde_json::to_value(&s.migrations[&m.id]).unwrap();
    json.as_object_mut().unwrap().remove("stop_containers");
    let old: Migration = serde_json::from_value(json).unwrap();
    assert!(!old.stop_containers);
}

fn record(volume: &str, to: &str, at_ms: u64) -> Command {
    Command::RecordMigration {
        volume: volume.into(),
        to: to.into(),
        stop_containers: false,
        at_ms: Some(at_ms),
        trace: Default::default(),
    }
}

fn advance(id: u64, phase: Phase, bytes_sent: u64, at_ms: u64) -> Command {
    Command::AdvanceMigration {
        id,
        phase,
        bytes_sent,
        rounds: 1,
        at_ms: Some(at_ms),
    }
}

fn fail(id: u64, at_ms: u64) -> Command {
    Command::FailMigration {
        id,
        error: "refused".into(),
        at_ms: Some(at_ms),
    }
}

#[test]
fn a_moves_times_come_from_its_commands_and_its_downtime_runs_from_the_handoff_to_the_end() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let lease = Lease {
        volume: "db".into(),
        node: "a".into(),
        container_id: "c1".into(),
        ..Default::default()
    };
    ok(&mut s, Command::AcquireLease(lease));
    ok(&mut s, record("db", "b", 1_000));
    ok(&mut s, advance(1, Phase::Copying, 10, 2_000));
    // The handoff begins while c1 still holds the volume: not yet downtime.
    ok(&mut s, advance(1, Phase::Handoff, 10, 3_000));
    assert_eq!(s.migrations[&1].handoff_ms, None);
    let release = Command::ReleaseLease {
        volume: "db".into(),
        container_id: "c1".into(),
    };
    ok(&mut s, release);
    ok(&mut s, advance(1, Phase::Handoff, 10, 4_000));
    // Progress of the final increment does not move the start of the downtime.
    ok(&mut s, advance(1, Phase::Handoff, 20, 4_500));
    assert_eq!(s.migrations[&1].downtime_ms(), None, "not ended yet");
    ok(&mut s, advance(1, Phase::Done, 30, 5_500));
    let m = &s.migrations[&1];
    let times = (m.started_ms, m.handoff_ms, m.ended_ms, m.downtime_ms());
    assert_eq!(times, (Some(1_000), Some(4_000), Some(5_500), Some(1_500)));
    assert_eq!(m.bytes_sent, 30);

    // A move that fails after its handoff began was down until it failed; one that fails
    // while copying never was.
    ok(&mut s, record("db", "a", 10_000));
    ok(&mut s, advance(2, Phase::Handoff, 0, 11_000));
    ok(&mut s, fail(2, 11_700));
    assert_eq!(s.migrations[&2].downtime_ms(), Some(700));
    ok(&mut s, record("db", "a", 20_000));
    ok(&mut s, fail(3, 21_000));
    let m = &s.migrations[&3];
    assert_eq!((m.ended_ms, m.downtime_ms()), (Some(21_000), None));

    // An ownerless volume's first owner: started and ended at once, no downtime.
    ok(&mut s, volume("fresh", None));
    ok(&mut s, record("fresh", "b", 30_000));
    let m = &s.migrations[&4];
    let times = (m.started_ms, m.handoff_ms, m.ended_ms);
    assert_eq!(times, (Some(30_000), None, Some(30_000)));
}

#[test]
fn the_history_keeps_the_20_newest_finished_moves_of_a_volume_and_every_move_under_way() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(&mut s, volume("other", Some("a")));
    ok(&mut s, record("other", "b", 1));
    ok(&mut s, advance(1, Phase::Done, 1, 2));
    // Move 2 fails and its clean-up stays pending: kept however old.
    ok(&mut s, record("db", "b", 3));
    ok(&mut s, fail(2, 4));
    let mut owner = "a";
    for id in 3..=23 {
        let to = if owner == "a" { "b" } else { "a" };
        ok(&mut s, record("db", to, id * 10));
        ok(&mut s, advance(id, Phase::Done, 1, id * 10 + 5));
        owner = to;
    }
    let ids = |s: &State| -> Vec<u64> {
        let db = s.migrations.values().filter(|m| m.volume == "db");
        db.map(|m| m.id).collect()
    };
    // 22 finished moves of db: the 20 newest (4..=23) and the pending clean-up (2) are kept.
    let mut kept: Vec<u64> = (4..=23).collect();
    kept.insert(0, 2);
    assert_eq!(ids(&s), kept);
    assert!(
        s.migrations.contains_key(&1),
        "another volume's history is its own"
    );

    // Once cleaned up, the old failed move goes too.
    ok(&mut s, Command::MigrationCleanedUp { id: 2 });
    assert_eq!(ids(&s), (4..=23).collect::<Vec<_>>());

    // A move under way is never pruned and does not count; when it ends, the oldest goes.
    let to = if owner == "a" { "b" } else { "a" };
    ok(&mut s, record("db", to, 1_000));
    assert_eq!(ids(&s), (4..=24).collect::<Vec<_>>());
    ok(&mut s, advance(24, Phase::Done, 1, 1_001));
    assert_eq!(ids(&s), (5..=24).collect::<Vec<_>>());

    // A deleted volume's history goes with it: a new one of that name starts afresh.
    ok(&mut s, Command::DeleteVolume { name: "db".into() });
    assert_eq!(ids(&s), Vec::<u64>::new());
}

#[test]
fn moves_and_leases_written_before_times_and_holders_were_kept_still_load() {
    let old = r#"{"id":7,"volume":"db","from":"a","to":"b","phase":"done","bytes_sent":42,
        "rounds":2,"error":null}"#;
    let m: Migration = serde_json::from_str(old).unwrap();
    let times = (m.started_ms, m.handoff_ms, m.ended_ms, m.downtime_ms());
    assert_eq!(times, (None, None, None, None));
    assert_eq!((m.bytes_sent, m.rounds), (42, 2));
    let old = r#"{"volume":"db","node":"a","container_id":"c1"}"#;
    let l: Lease = serde_json::from_str(old).unwrap();
    assert_eq!((l.container_name, l.service, l.task), (None, None, None));
    for old in [
        r#"{"op":"advance_migration","id":7,"phase":"handoff","bytes_sent":1,"rounds":1}"#,
        r#"{"op":"fail_migration","id":7,"error":"x"}"#,
        r#"{"op":"record_migration","volume":"db","to":"b"}"#,
    ] {
        let c: Command = serde_json::from_str(old).unwrap();
        let at_ms = match c {
            Command::AdvanceMigration { at_ms, .. }
            | Command::FailMigration { at_ms, .. }
            | Command::RecordMigration { at_ms, .. } => at_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(at_ms, None);
    }
}

#[test]
fn allocation_is_idempotent_per_container() {
    let mut s = cluster();
    let a1 = ok(&mut s, alloc("10.0.0.0/29", "c1", "a"));
    let a2 = ok(&mut s, alloc("10.0.0.0/29", "c1", "a"));
    assert_eq!(a1, a2);
    let Response::Allocation(a) = a1 else {
        panic!()
    };
    assert_eq!(a.address.to_string(), "10.0.0.1");
    assert!(matches!(
        apply(&mut s, alloc("10.9.0.0/24", "c2", "a")),
        Err(CommandError::NoSuchPool { .. })
    ));
}

#[test]
fn pool_exhaustion_is_an_error() {
    let mut s = cluster();
    for i in 0..6 {
        ok(&mut s, alloc("10.0.0.0/29", &format!("c{i}"), "a"));
    }
    assert!(matches!(
        apply(&mut s, alloc("10.0.0.0/29", "c7", "a")),
        Err(CommandError::PoolExhausted { .. })
    ));
}

#[test]
fn claim_rules() {
    let mut s = cluster();
    assert!(matches!(
        apply(&mut s, claim("192.168.1.1", "c1", "a")),
        Err(CommandError::AddressOutsidePools { .. })
    ));
    assert!(matches!(
        apply(&mut s, claim("10.0.0.3", "c1", "zz")),
        Err(CommandError::UnknownNode { .. })
    ));
    ok(&mut s, claim("10.0.0.3", "c1", "a"));
    let err = apply(&mut s, claim("10.0.0.3", "c2", "b")).unwrap_err();
    assert!(err.to_string().contains("c1-name"), "{err}");
    assert!(err.to_string().contains("\"a\""), "{err}");
    // Once c1 stopped, the address moves to c2.
    ok(
        &mut s,
        Command::ContainerStopped {
            container_id: "c1".into(),
        },
    );
    ok(&mut s, claim("10.0.0.3", "c2", "b"));
    assert!(!s.allocations.values().any(|a| a.container_id == "c1"));
    // Restarting c2 elsewhere keeps its address.
    let Response::Allocation(a) = ok(&mut s, claim("10.0.0.3", "c2", "a")) else {
        panic!()
    };
    assert_eq!((a.node.as_str(), a.running), ("a", true));
    ok(
        &mut s,
        Command::ReleaseIp {
            container_id: "c2".into(),
        },
    );
    assert!(s.allocations.is_empty());
}

#[test]
fn mark_down_ignores_stale_judgement() {
    let mut s = cluster();
    ok(
        &mut s,
        Command::Heartbeat {
            name: "a".into(),
            at_ms: 10,
        },
    );
    assert_eq!(
        ok(
            &mut s,
            Command::MarkNodeDown {
                name: "a".into(),
                last_seen_ms: 1,
                seen_ms: None,
            }
        ),
        Response::Unchanged
    );
    ok(
        &mut s,
        Command::MarkNodeDown {
            name: "a".into(),
            last_seen_ms: 10,
            seen_ms: None,
        },
    );
    assert!(!s.nodes["a"].up);
    ok(
        &mut s,
        Command::Heartbeat {
            name: "a".into(),
            at_ms: 11,
        },
    );
    assert!(s.nodes["a"].up);
}

/// With heartbeats soft, the leader judges a node by its logged up-time (`last_seen_ms`) and
/// carries the last heartbeat it saw (`seen_ms`): a logged command that brought the node up
/// after the judgment (its up-time changed) keeps it up; a mark-down that applies keeps the
/// seen time as the node's last heartbeat; an entry without `seen_ms` (an older version's)
/// applies as it always did.
#[test]
fn mark_down_compares_the_logged_up_time_and_keeps_the_heartbeat_seen() {
    let mut s = cluster();
    let logged = s.nodes["a"].last_heartbeat_ms;
    let judged = Command::MarkNodeDown {
        name: "a".into(),
        last_seen_ms: logged,
        seen_ms: Some(logged + 30_000),
    };
    // Re-registered (an agent restart) after the leader judged: not marked down.
    let mut again = s.clone();
    ok(
        &mut again,
        Command::RegisterNode {
            name: "a".into(),
            address: "a:1".into(),
            storage: "dir:/tmp".into(),
            at_ms: logged + 40_000,
        },
    );
    assert_eq!(ok(&mut again, judged.clone()), Response::Unchanged);
    assert!(again.nodes["a"].up);
    // Otherwise down, with the heartbeat the leader saw last.
    ok(&mut s, judged.clone());
    assert!(!s.nodes["a"].up);
    assert_eq!(s.nodes["a"].last_heartbeat_ms, logged + 30_000);
    // The leader logs the heartbeat that brings it back after its recorded time.
    ok(
        &mut s,
        Command::Heartbeat {
            name: "a".into(),
            at_ms: logged + 30_001,
        },
    );
    assert!(s.nodes["a"].up);
    // Replayed again (a retried proposal), the old judgment no longer matches.
    assert_eq!(ok(&mut s, judged), Response::Unchanged);
    assert!(s.nodes["a"].up);
    // The old entry's JSON (no seen_ms) still reads and applies as before.
    let old: Command = serde_json::from_str(&format!(
        r#"{{"op":"mark_node_down","name":"a","last_seen_ms":{}}}"#,
        logged + 30_001
    ))
    .unwrap();
    ok(&mut s, old);
    assert_eq!(
        (s.nodes["a"].up, s.nodes["a"].last_heartbeat_ms),
        (false, logged + 30_001)
    );
}

/// A volume cannot be moved from a node that is down (its data is there, out of reach) or
/// to one; the refusal names the node and what to do, and a heartbeat lifts it.
#[test]
fn moves_from_or_to_a_node_that_is_down_are_refused_until_it_is_back() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let down = |s: &mut State, name: &str| {
        let last_seen_ms = s.nodes[name].last_heartbeat_ms;
        ok(
            s,
            Command::MarkNodeDown {
                name: name.into(),
                last_seen_ms,
                seen_ms: None,
            },
        );
    };
    let move_to = |to: &str| Command::RecordMigration {
        volume: "db".into(),
        to: to.into(),
        stop_containers: false,
        at_ms: Some(60),
        trace: Default::default(),
    };
    down(&mut s, "a");
    let err = apply(&mut s, move_to("b")).unwrap_err();
    assert!(matches!(err, CommandError::OwnerDown { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"a\", which is down") && text.contains("start its agent"),
        "{text}"
    );
    ok(
        &mut s,
        Command::Heartbeat {
            name: "a".into(),
            at_ms: 50,
        },
    );
    down(&mut s, "b");
    let err = apply(&mut s, move_to("b")).unwrap_err();
    assert!(matches!(err, CommandError::DestinationDown { .. }), "{err}");
    ok(
        &mut s,
        Command::Heartbeat {
            name: "b".into(),
            at_ms: 50,
        },
    );
    ok(&mut s, move_to("b"));
}

/// A node marked down lets go of what its containers held, so that a task rescheduled
/// elsewhere is not blocked by them: its leases are released and its addresses stopped
/// (claimable), and watchers see each change.
#[test]
fn marking_a_node_down_releases_its_leases_and_stops_its_addresses() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(&mut s, volume("web", Some("b")));
    let lease = |volume: &str, node: &str| Lease {
        volume: volume.into(),
        node: node.into(),
        container_id: format!("{volume}-task"),
        ..Default::default()
    };
    ok(&mut s, Command::AcquireLease(lease("db", "a")));
    ok(&mut s, Command::AcquireLease(lease("web", "b")));
    ok(&mut s, claim("10.0.0.3", "db-task", "a"));
    ok(&mut s, claim("10.0.0.4", "web-task", "b"));
    let last_seen_ms = s.nodes["a"].last_heartbeat_ms;
    let down = ok(
        &mut s,
        Command::MarkNodeDown {
            name: "a".into(),
            last_seen_ms,
            seen_ms: None,
        },
    );
    let changes = down.into_changes(&s);
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Response::Node(n) if !n.up => "node down",
            Response::LeaseReleased(l) if l.node == "a" => "lease released",
            Response::Allocation(a) if a.node == "a" && !a.running => "address stopped",
            other => panic!("unexpected change {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["node down", "lease released", "address stopped"]);
    assert_eq!(s.leases.len(), 1, "b's lease stays");
    assert!(s.allocations[&"10.0.0.4".parse().unwrap()].running);
    // The task rescheduled on b takes the address over.
    ok(&mut s, claim("10.0.0.3", "db-task-2", "b"));
}

fn arb_command() -> impl Strategy<Value = Command> {
    let node = prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
    let vol = prop::sample::select(vec!["v1", "v2", "V3", "v4"]).prop_map(String::from);
    let cid = prop::sample::select(vec!["c1", "c2", "c3", "c4", "c5"]).prop_map(String::from);
    let addr = (0u8..10).prop_map(|i| format!("10.0.0.{i}"));
    let pool = prop::sample::select(vec!["10.0.0.0/29", "10.0.0.8/29", "10.0.0.0/28"])
        .prop_map(String::from);
    prop_oneof![
        node.clone().prop_map(|n| node_cmd(&n)),
        (vol.clone(), prop::option::of(node.clone())).prop_map(|(v, o)| volume(&v, o.as_deref())),
        vol.clone().prop_map(|name| Command::DeleteVolume { name }),
        (vol.clone(), node.clone()).prop_map(|(name, owner)| Command::SetOwner { name, owner }),
        (vol.clone(), node.clone(), cid.clone()).prop_map(|(volume, node, container_id)| {
            Command::AcquireLease(Lease {
                volume,
                node,
                container_id,
                ..Default::default()
            })
        }),
        (vol.clone(), cid.clone()).prop_map(|(volume, container_id)| Command::ReleaseLease {
            volume,
            container_id,
        }),
        (vol.clone(), node.clone()).prop_map(|(volume, to)| Command::RecordMigration {
            volume,
            to,
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        }),
        (
            1u64..4,
            prop::sample::select(vec![
                Phase::Copying,
                Phase::Handoff,
                Phase::Done,
                Phase::Failed
            ])
        )
            .prop_map(|(id, phase)| Command::AdvanceMigration {
                id,
                phase,
                bytes_sent: 1,
                rounds: 1,
                at_ms: None,
            }),
        pool.clone().prop_map(|cidr| Command::AddPool { cidr }),
        (pool, cid.clone(), node.clone()).prop_map(|(p, c, n)| alloc(&p, &c, &n)),
        (addr, cid.clone(), node.clone()).prop_map(|(a, c, n)| claim(&a, &c, &n)),
        cid.clone()
            .prop_map(|container_id| Command::ContainerStopped { container_id }),
        cid.prop_map(|container_id| Command::ReleaseIp { container_id }),
        (node.clone(), proptest::option::of(0u64..100)).prop_map(|(name, seen_ms)| {
            Command::MarkNodeDown {
                name,
                last_seen_ms: 1,
                seen_ms,
            }
        }),
        node.prop_map(|node| Command::ReclaimNode { node }),
    ]
}

fn node_cmd(name: &str) -> Command {
    node(name)
}

fn check_invariants(s: &State) {
    let mut seen = std::collections::BTreeSet::new();
    for (address, a) in &s.allocations {
        assert_eq!(address, &a.address);
        assert!(
            seen.insert(a.address),
            "address {} allocated twice",
            a.address
        );
        assert!(
            a.pool.is_host(a.address),
            "{} outside {}",
            a.address,
            a.pool
        );
        assert!(s.pools.contains(&a.pool));
    }
    for (i, p) in s.pools.iter().enumerate() {
        for q in &s.pools[i + 1..] {
            assert!(!p.overlaps(*q), "pools {p} and {q} overlap");
        }
    }
    for (name, v) in &s.volumes {
        assert!(names::validate_volume_name(name).is_ok());
        if let Some(o) = &v.owner {
            assert!(s.nodes.contains_key(o));
        }
    }
    for l in s.leases.values() {
        assert_eq!(s.volumes[&l.volume].owner.as_deref(), Some(l.node.as_str()));
    }
    let active: Vec<_> = s
        .migrations
        .values()
        .filter(|m| !m.phase.is_terminal())
        .map(|m| &m.volume)
        .collect();
    let unique: std::collections::BTreeSet<_> = active.iter().collect();
    assert_eq!(active.len(), unique.len(), "two active moves of one volume");
    for volume in s.migrations.values().map(|m| &m.volume) {
        let finished = s
            .migrations
            .values()
            .filter(|m| &m.volume == volume && m.phase.is_terminal() && !m.cleanup_pending);
        assert!(
            finished.count() <= MOVE_HISTORY,
            "{volume}: history unbounded"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of commands keeps the invariants; a rejected command changes nothing; an
    /// epoch never goes down, and it goes up exactly when the owner changes.
    #[test]
    fn invariants_hold(commands in prop::collection::vec(arb_command(), 1..60)) {
        let mut s = State::default();
        for c in commands {
            let before = s.clone();
            match apply(&mut s, c.clone()) {
                Err(_) => prop_assert_eq!(&before, &s),
                Ok(_) => {
                    // A running container's address never passes to another container.
                    for (addr, a) in before.allocations.iter().filter(|(_, a)| a.running) {
                        if let Some(now) = s.allocations.get(addr) {
                            prop_assert_eq!(&now.container_id, &a.container_id, "{:?}", c);
                        }
                    }
                    for (name, v) in &s.volumes {
                        if let Some(old) = before.volumes.get(name) {
                            prop_assert!(v.epoch >= old.epoch);
                            prop_assert_eq!(v.epoch != old.epoch, v.owner != old.owner, "{:?}", c);
                        }
                    }
                }
            }
            check_invariants(&s);
            // What a snapshot stores: the state survives JSON whatever it holds (a lease's
            // tuple key once made every snapshot with a lease fail, and the members with it).
            let json = serde_json::to_vec(&s).expect("the state serialises");
            let back: State = serde_json::from_slice(&json).expect("the state deserialises");
            prop_assert_eq!(&back, &s);
        }
    }

    /// Allocating twice for one container gives the same address and changes nothing else.
    #[test]
    fn allocation_idempotent(commands in prop::collection::vec(arb_command(), 0..40), cid in "c[1-5]") {
        let mut s = State::default();
        for c in commands {
            let _ = apply(&mut s, c);
        }
        let _ = apply(&mut s, node_cmd("a"));
        let _ = apply(&mut s, Command::AddPool { cidr: "10.0.0.0/29".into() });
        let first = apply(&mut s, alloc("10.0.0.0/29", &cid, "a"));
        let snapshot = s.clone();
        let second = apply(&mut s, alloc("10.0.0.0/29", &cid, "a"));
        prop_assert_eq!(first, second);
        prop_assert_eq!(snapshot, s);
    }
}

/// A policy is set at creation or later, removed with `None`, and refused outside what the
/// leader can keep (no copies, more than 8, a lag under a second), naming the volume.
#[test]
fn a_replication_policy_is_set_changed_and_validated() {
    let mut s = cluster();
    let policy = |copies, max_lag_ms| {
        Some(crate::state::Replication {
            copies,
            max_lag_ms,
            promote_after_ms: None,
        })
    };
    let mut create = volume("db", Some("a"));
    if let Command::CreateVolume { replication, .. } = &mut create {
        *replication = policy(2, 10_000);
    }
    ok(&mut s, create);
    assert_eq!(s.volumes["db"].replication, policy(2, 10_000));
    let set = |replication| Command::SetReplication {
        name: "db".into(),
        replication,
    };
    ok(&mut s, set(policy(1, 1_000)));
    assert_eq!(s.volumes["db"].replication, policy(1, 1_000));
    for bad in [policy(0, 10_000), policy(9, 10_000), policy(1, 999)] {
        let err = apply(&mut s, set(bad)).unwrap_err();
        assert!(
            matches!(err, CommandError::InvalidReplication { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("\"db\""), "{err}");
    }
    assert_eq!(s.volumes["db"].replication, policy(1, 1_000), "unchanged");
    let mut bad_create = volume("other", Some("a"));
    if let Command::CreateVolume { replication, .. } = &mut bad_create {
        *replication = policy(0, 10_000);
    }
    assert!(apply(&mut s, bad_create).is_err());
    assert!(!s.volumes.contains_key("other"), "nothing created");
    ok(&mut s, set(None));
    assert_eq!(s.volumes["db"].replication, None);
    assert!(matches!(
        apply(
            &mut s,
            Command::SetReplication {
                name: "nope".into(),
                replication: policy(1, 5_000)
            }
        ),
        Err(CommandError::NoSuchVolume { .. })
    ));
}

fn replica(s: &mut State, node: &str, snapshot: &str, taken_ms: u64) {
    ok(
        s,
        Command::SetReplica {
            name: "db".into(),
            node: node.into(),
            snapshot: snapshot.into(),
            taken_ms: Some(taken_ms),
        },
    );
}

fn promote(node: &str, force: bool) -> Command {
    Command::PromoteVolume {
        name: "db".into(),
        node: node.into(),
        force,
        automatic: false,
        at_ms: 50_000,
    }
}

fn down(s: &mut State, node: &str) {
    let last_seen_ms = s.nodes[node].last_heartbeat_ms;
    ok(
        s,
        Command::MarkNodeDown {
            name: node.into(),
            last_seen_ms,
            seen_ms: None,
        },
    );
}

/// Promotion: only a usable replica on a node that is up, only while the owner is down
/// unless forced (and then never under a running container); the replica becomes the
/// owner at a new epoch, the old owner a diverged replica, and the promotion says what the
/// data is as of.
#[test]
fn a_replica_is_promoted_only_while_the_owner_is_down_unless_forced() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(&mut s, node("c"));
    replica(&mut s, "b", "rep-20000", 20_000);
    let err = apply(&mut s, promote("b", false)).unwrap_err();
    assert!(matches!(err, CommandError::OwnerUp { .. }), "{err}");
    assert!(err.to_string().contains("its data is 30 s old"), "{err}");
    let err = apply(&mut s, promote("c", false)).unwrap_err();
    assert!(matches!(err, CommandError::NotAReplica { .. }), "{err}");
    assert!(err.to_string().contains("(replicas: b)"), "{err}");
    let held = Lease {
        volume: "db".into(),
        node: "a".into(),
        container_id: "c1".into(),
        ..Default::default()
    };
    ok(&mut s, Command::AcquireLease(held));
    let err = apply(&mut s, promote("b", true)).unwrap_err();
    assert!(matches!(err, CommandError::VolumeInUse { .. }), "{err}");
    assert_eq!(s.volumes["db"].owner.as_deref(), Some("a"), "unchanged");

    down(&mut s, "a");
    let v = match ok(&mut s, promote("b", false)) {
        Response::Volume(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!((v.owner.as_deref(), v.epoch), (Some("b"), 2));
    assert_eq!(v.replicas.len(), 1, "{v:?}");
    let old = &v.replicas[0];
    assert_eq!((old.node.as_str(), old.diverged), ("a", true));
    let p = v.promotions.last().unwrap();
    assert_eq!((p.from.as_str(), p.to.as_str(), p.epoch), ("a", "b", 2));
    assert_eq!(
        (p.snapshot.as_str(), p.taken_ms),
        ("rep-20000", Some(20_000))
    );
    assert!(!p.forced && !p.automatic);
    // The diverged copy cannot be promoted back before it received again.
    let err = apply(&mut s, promote("a", true)).unwrap_err();
    assert!(matches!(err, CommandError::NotAReplica { .. }), "{err}");
}

#[test]
fn replicas_metadata_and_size_limit() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(
        &mut s,
        Command::SetReplica {
            name: "db".into(),
            node: "b".into(),
            snapshot: "s1".into(),
            taken_ms: Some(10),
        },
    );
    ok(
        &mut s,
        Command::SetReplica {
            name: "db".into(),
            node: "b".into(),
            snapshot: "s2".into(),
            taken_ms: Some(20),
        },
    );
    assert_eq!(
        s.volumes["db"].replicas,
        vec![Replica {
            node: "b".into(),
            snapshot: "s2".into(),
            taken_ms: Some(20),
            diverged: false,
        }]
    );
    assert!(matches!(
        apply(
            &mut s,
            Command::SetReplica {
                name: "db".into(),
                node: "zz".into(),
                snapshot: "s".into(),
                taken_ms: None,
            }
        ),
        Err(CommandError::UnknownNode { .. })
    ));
    ok(
        &mut s,
        Command::SetMetadata {
            name: "db".into(),
            key: "tier".into(),
            value: Some("gold".into()),
        },
    );
    assert_eq!(s.volumes["db"].metadata["tier"], "gold");
    ok(
        &mut s,
        Command::SetMetadata {
            name: "db".into(),
            key: "tier".into(),
            value: None,
        },
    );
    assert!(s.volumes["db"].metadata.is_empty());
    ok(
        &mut s,
        Command::SetSizeLimit {
            name: "db".into(),
            size_limit: Some(1 << 30),
        },
    );
    assert_eq!(s.volumes["db"].size_limit, Some(1 << 30));
    assert!(matches!(
        apply(
            &mut s,
            Command::SetSizeLimit {
                name: "nope".into(),
                size_limit: None
            }
        ),
        Err(CommandError::NoSuchVolume { .. })
    ));
}

#[test]
fn leases_block_owner_change_and_handoff() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(
        &mut s,
        Command::AcquireLease(Lease {
            volume: "db".into(),
            node: "a".into(),
            container_id: "c1".into(),
            ..Default::default()
        }),
    );
    assert!(matches!(
        apply(
            &mut s,
            Command::SetOwner {
                name: "db".into(),
                owner: "b".into()
            }
        ),
        Err(CommandError::VolumeInUse { .. })
    ));
    // Copying may start while the volume is in use; the handoff waits for the lease.
    ok(
        &mut s,
        Command::RecordMigration {
            volume: "db".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    );
    let done = Command::AdvanceMigration {
        id: 1,
        phase: Phase::Done,
        bytes_sent: 1,
        rounds: 1,
        at_ms: None,
    };
    assert!(matches!(
        apply(&mut s, done.clone()),
        Err(CommandError::VolumeInUse { .. })
    ));
    ok(
        &mut s,
        Command::ReleaseLease {
            volume: "db".into(),
            container_id: "c1".into(),
        },
    );
    ok(&mut s, done);
    assert_eq!(s.volumes["db"].owner.as_deref(), Some("b"));
}

#[test]
fn a_deletion_lists_every_holder_until_each_destroys_its_copy() {
    let mut s = cluster();
    ok(&mut s, node("c"));
    ok(&mut s, volume("db", Some("a")));
    let to_b = Command::RecordMigration {
        volume: "db".into(),
        to: "b".into(),
        stop_containers: false,
        at_ms: None,
        trace: Default::default(),
    };
    ok(&mut s, to_b);
    let done = Command::AdvanceMigration {
        id: 1,
        phase: Phase::Done,
        bytes_sent: 1,
        rounds: 1,
        at_ms: None,
    };
    ok(&mut s, done);
    let to_c = Command::RecordMigration {
        volume: "db".into(),
        to: "c".into(),
        stop_containers: false,
        at_ms: None,
        trace: Default::default(),
    };
    ok(&mut s, to_c);
    let fail = Command::FailMigration {
        id: 2,
        error: "refused".into(),
        at_ms: None,
    };
    ok(&mut s, fail);
    let id = s.volumes["db"].id;
    ok(&mut s, Command::DeleteVolume { name: "db".into() });
    // The owner, the replica and the failed move's target; the move's own clean-up is
    // folded into the deletion, and the volume's move history goes with it.
    let holders: Vec<&str> = s.deletions[&id].nodes.iter().map(String::as_str).collect();
    assert_eq!(holders, ["a", "b", "c"]);
    assert!(s.migrations.is_empty());
    // The name stays taken, naming who still holds a copy.
    let err = apply(&mut s, volume("db", None)).unwrap_err();
    assert!(matches!(err, CommandError::StillDeleting { .. }), "{err}");
    assert!(err.to_string().contains("a, b, c"), "{err}");
    for node in ["a", "b", "b", "c"] {
        let destroyed = Command::CopyDestroyed {
            id,
            node: node.into(),
        };
        ok(&mut s, destroyed);
    }
    assert!(s.deletions.is_empty());
    ok(&mut s, volume("db", None));
    // A volume nobody held leaves nothing to do.
    ok(&mut s, Command::DeleteVolume { name: "db".into() });
    assert!(s.deletions.is_empty());
}

fn user_snap(label: Option<&str>, taken_ms: u64, node: &str, epoch: u64) -> Command {
    Command::RecordSnapshot {
        volume: "db".into(),
        snapshot: UserSnapshot {
            name: user_snapshot_name(label, taken_ms),
            label: label.map(Into::into),
            taken_ms,
            epoch,
            node: node.into(),
            scheduled: false,
        },
    }
}

/// User snapshots: recorded only for the owner at its epoch, with no move under way and the
/// owner up; names and labels unique; found by name or label; forgotten by either; a refusal
/// changes nothing and says what to do.
#[test]
fn user_snapshots_are_recorded_for_the_owner_at_its_epoch_and_forgotten_by_name_or_label() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(&mut s, volume("loose", None));
    ok(&mut s, user_snap(Some("before-upgrade"), 10, "a", 1));
    ok(&mut s, user_snap(None, 11, "a", 1));
    let v = &s.volumes["db"];
    assert_eq!(
        v.snapshots
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>(),
        ["u-before-upgrade", "u-11"]
    );
    assert_eq!(
        v.user_snapshot("before-upgrade").unwrap().name,
        "u-before-upgrade"
    );
    assert_eq!(v.user_snapshot("u-11").unwrap().taken_ms, 11);
    let before = s.clone();
    // The same label again, or a label naming an existing snapshot.
    let err = apply(&mut s, user_snap(Some("before-upgrade"), 12, "a", 1)).unwrap_err();
    assert!(matches!(err, CommandError::SnapshotExists { .. }), "{err}");
    assert!(err.is_conflict());
    let err = apply(&mut s, user_snap(Some("11"), 12, "a", 1)).unwrap_err();
    assert!(matches!(err, CommandError::SnapshotExists { .. }), "{err}");
    // A label that is not a name, or too long to carry the `u-` prefix.
    for bad in ["Bad", "../x", "", &"a".repeat(62)] {
        let err = apply(&mut s, user_snap(Some(bad), 12, "a", 1)).unwrap_err();
        assert!(
            matches!(err, CommandError::InvalidSnapshotLabel { .. }),
            "{bad}: {err}"
        );
    }
    assert!(validate_snapshot_label(&"a".repeat(61)).is_ok());
    // Not the owner, or an old epoch: the volume changed hands while it was taken.
    let err = apply(&mut s, user_snap(Some("x"), 12, "b", 1)).unwrap_err();
    assert!(matches!(err, CommandError::OwnerChanged { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("take the snapshot, or make the clone, again"),
        "{err}"
    );
    let err = apply(&mut s, user_snap(Some("x"), 12, "a", 2)).unwrap_err();
    assert!(matches!(err, CommandError::OwnerChanged { .. }), "{err}");
    // Unknown volume, no owner.
    let mut unknown = user_snap(Some("x"), 12, "a", 1);
    if let Command::RecordSnapshot { volume, .. } = &mut unknown {
        *volume = "nope".into();
    }
    assert!(apply(&mut s, unknown).unwrap_err().is_not_found());
    let err = may_snapshot(&s, "loose", None).unwrap_err();
    assert!(
        err.to_string().contains("volume move loose --to NODE"),
        "{err}"
    );
    // Under a move, or with the owner down.
    ok(
        &mut s,
        Command::RecordMigration {
            volume: "db".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    );
    let err = apply(&mut s, user_snap(Some("x"), 12, "a", 1)).unwrap_err();
    assert!(matches!(err, CommandError::VolumeMoving { .. }), "{err}");
    let mut down_owner = before.clone();
    down(&mut down_owner, "a");
    let err = apply(&mut down_owner, user_snap(Some("x"), 12, "a", 1)).unwrap_err();
    assert!(matches!(err, CommandError::OwnerDown { .. }), "{err}");
    // Forgotten by label; an unknown one names those there are.
    let mut s = before;
    let forget = |snapshot: &str| Command::ForgetSnapshot {
        volume: "db".into(),
        snapshot: snapshot.into(),
    };
    ok(&mut s, forget("before-upgrade"));
    let err = apply(&mut s, forget("before-upgrade")).unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("(its snapshots: u-11;"), "{err}");
    ok(&mut s, forget("u-11"));
    let err = apply(&mut s, forget("u-11")).unwrap_err();
    assert!(err.to_string().contains("(its snapshots: none;"), "{err}");
}

/// A move keeps the volume's user snapshots recorded (the transfer carries them along).
#[test]
fn user_snapshots_stay_recorded_across_a_move() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(&mut s, user_snap(Some("keep"), 10, "a", 1));
    let Response::Migration(m) = ok(
        &mut s,
        Command::RecordMigration {
            volume: "db".into(),
            to: "b".into(),
            stop_containers: false,
            at_ms: None,
            trace: Default::default(),
        },
    ) else {
        panic!("a migration")
    };
    ok(
        &mut s,
        Command::AdvanceMigration {
            id: m.id,
            phase: Phase::Done,
            bytes_sent: 1,
            rounds: 1,
            at_ms: None,
        },
    );
    let v = &s.volumes["db"];
    assert_eq!((v.owner.as_deref(), v.epoch), (Some("b"), 2));
    assert_eq!(v.user_snapshot("keep").unwrap().node, "a");
    // A snapshot on the new owner at the new epoch.
    ok(&mut s, user_snap(Some("after"), 20, "b", 2));
}

#[test]
fn user_snapshots_written_before_they_existed_load_as_none() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    let mut json = serde_json::to_value(&s).unwrap();
    json["volumes"]["db"]
        .as_object_mut()
        .unwrap()
        .remove("snapshots");
    let back: State = serde_json::from_value(json).unwrap();
    assert!(back.volumes["db"].snapshots.is_empty());
}

fn clone_cmd(name: &str, snapshot: &str, owner: &str) -> Command {
    Command::CloneVolume {
        name: name.into(),
        source: "db".into(),
        snapshot: snapshot.into(),
        owner: owner.into(),
        at_ms: 30,
    }
}

/// A clone is a volume of the source's owner that records its origin; while it exists, its
/// origin snapshot cannot be forgotten and the source cannot be deleted; once it is gone,
/// both can. Refusals name what to do and change nothing.
#[test]
fn a_clone_is_a_volume_on_the_owner_that_keeps_its_origin_snapshot() {
    let mut s = cluster();
    ok(&mut s, volume("db", Some("a")));
    ok(&mut s, user_snap(Some("v1"), 10, "a", 1));
    let Response::Volume(c) = ok(&mut s, clone_cmd("db-v1", "v1", "a")) else {
        panic!("a volume")
    };
    assert_eq!((c.owner.as_deref(), c.epoch), (Some("a"), 1));
    assert_eq!(
        c.origin,
        Some(Origin {
            volume: "db".into(),
            snapshot: "u-v1".into()
        })
    );
    assert!(c.snapshots.is_empty() && c.replicas.is_empty());
    let before = s.clone();
    for (cmd, what) in [
        (clone_cmd("db-v1", "v1", "a"), "exists"),
        (clone_cmd("Bad", "v1", "a"), "invalid volume name"),
        (clone_cmd("x", "nope", "a"), "no snapshot \"nope\""),
        (clone_cmd("x", "v1", "b"), "changed owner"),
    ] {
        let err = apply(&mut s, cmd).unwrap_err();
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    let err = apply(
        &mut s,
        Command::ForgetSnapshot {
            volume: "db".into(),
            snapshot: "v1".into(),
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, CommandError::SnapshotHasClones { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("db-v1"), "{err}");
    let err = apply(&mut s, Command::DeleteVolume { name: "db".into() }).unwrap_err();
    assert!(matches!(err, CommandError::VolumeHasClones { .. }), "{err}");
    assert_eq!(s, before);
    // The clone can move like any volume, and be deleted; then the origin can go.
    ok(
        &mut s,
        Command::DeleteVolume {
            name: "db-v1".into(),
        },
    );
    ok(
        &mut s,
        Command::ForgetSnapshot {
            volume: "db".into(),
            snapshot: "v1".into(),
        },
    );
    ok(&mut s, Command::DeleteVolume { name: "db".into() });
}

/// A batch applies each command in turn as if alone: one refused leaves the others applied
/// and the state as the same commands one entry each would have left it; each result is
/// its own command's, and its changes reach watchers.
#[test]
fn a_batch_applies_each_command_as_if_alone() {
    let commands = vec![
        volume("a", Some("a")),
        volume("a", Some("b")),
        volume("bad name!", None),
        volume("b", None),
    ];
    let mut one_by_one = cluster();
    let alone: Vec<_> = commands
        .iter()
        .map(|c| apply(&mut one_by_one, c.clone()))
        .collect();
    let mut batched = cluster();
    let Response::Batch { results } = ok(&mut batched, Command::Batch { commands }) else {
        panic!("a batch answers a batch");
    };
    assert_eq!(results, alone);
    assert_eq!(batched, one_by_one);
    assert!(matches!(results[1], Err(CommandError::VolumeExists { .. })));
    let changes = Response::Batch { results }.into_changes(&batched);
    let names: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Response::Volume(v) => v.name.as_str(),
            other => panic!("unexpected change {other:?}"),
        })
        .collect();
    assert_eq!(names, ["a", "b"]);
}
