//! Moving volumes between real agents: control members and `flocker-agent`s as processes on
//! loopback, each agent with its own zfs-fuse pool, driven with the real `flockerctl`.
//! Needs root and zfs-fuse: skipped with a reason otherwise, failing under `CI=true`.

mod common;
#[path = "common/hosts.rs"]
mod hosts;
#[path = "common/move_lab.rs"]
mod move_lab;
#[path = "../../agent/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use common::eventually;
use control::ca::Role;
use move_lab::{Lab, Mover};
use proto::control as pb;
use serde_json::Value;

const MIB: usize = 1 << 20;

fn write_random(path: &std::path::Path, len: usize) -> Vec<u8> {
    let data = support::behaviour::random(len);
    std::fs::write(path, &data).unwrap();
    data
}

fn bytes_sent(events: &[Value]) -> u64 {
    events.last().unwrap()["bytes_sent"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_to_another_node_and_back_incrementally() {
    let Some(lab) = Lab::start(1, 2, None).await else {
        return;
    };
    lab.create("data", 0).await;
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let big = write_random(&a.path("data").join("big"), 16 * MIB);
    std::fs::write(a.path("data").join("note"), "written on a\n").unwrap();

    let first = lab.move_ok("data", 1);
    assert!(
        first.iter().any(|e| e["phase"] == "copying")
            && first.iter().any(|e| e["phase"] == "handoff"),
        "{first:?}"
    );
    let v = lab.volume("data");
    assert_eq!(v["owner"], "host-b");
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["replicas"][0]["node"], "host-a", "{v}");
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("data") == Some(false)).then_some(())
    })
    .await;
    assert_eq!(std::fs::read(b.path("data").join("big")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(b.path("data").join("note")).unwrap(),
        "written on a\n"
    );
    std::fs::write(b.path("data").join("note"), "written on b\n").unwrap();
    eventually(
        Duration::from_secs(20),
        "a to keep a read-only replica",
        || async { (a.mounted("data") == Some(true)).then_some(()) },
    )
    .await;
    assert_eq!(std::fs::read(a.path("data").join("big")).unwrap(), big);
    let refused = std::fs::write(a.path("data").join("note"), "stale writer\n");
    assert!(refused.is_err(), "the replica on a must refuse writes");

    let back = lab.move_ok("data", 0);
    let (there, home) = (bytes_sent(&first), bytes_sent(&back));
    assert!(
        home * 10 < there,
        "moving back must be incremental: {home} bytes back vs {there} there"
    );
    eventually(
        Duration::from_secs(20),
        "a to mount read-write again",
        || async { (a.mounted("data") == Some(false)).then_some(()) },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(a.path("data").join("note")).unwrap(),
        "written on b\n"
    );
    assert_eq!(lab.volume("data")["epoch"], 3);
    eprintln!("moved 16 MiB: {there} bytes there, {home} bytes back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_under_a_writer_loses_no_acknowledged_write() {
    let Some(lab) = Lab::start(1, 2, None).await else {
        return;
    };
    lab.create("log", 0).await;
    write_random(&lab.hosts[0].path("log").join("ballast"), 8 * MIB);
    // The writer's container holds a lease on host-a: the handoff waits for it to go.
    let node_tls = lab.c.pki.tls(Role::Node, "host-a");
    let mut node = lab.c.client_with(1, &node_tls).await;
    let lease = pb::Lease {
        volume: "log".into(),
        node: "host-a".into(),
        container_id: "writer".into(),
    };
    node.acquire_lease(lease.clone()).await.unwrap();

    let path = lab.hosts[0].path("log").join("lines");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .unwrap();
                f.write_all(format!("line {acked}\n").as_bytes()).unwrap();
                f.sync_all().unwrap();
                acked += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut m = lab.start_move(1, "log", 1);
    let mut events = Vec::new();
    while let Some(e) = m.next() {
        let handoff = e["phase"] == "handoff";
        events.push(e);
        if handoff {
            break;
        }
    }
    // Handoff: the writer stops, its container lets go of the volume.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.join().unwrap();
    node.release_lease(lease).await.unwrap();
    events.extend(m.rest());
    m.expect_success(&events);

    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("log") == Some(false)).then_some(())
    })
    .await;
    let lines = std::fs::read_to_string(b.path("log").join("lines")).unwrap();
    assert!(acked > 10, "the writer ran ({acked} lines)");
    for i in 0..acked {
        assert!(
            lines.contains(&format!("line {i}\n")),
            "acknowledged line {i} of {acked} lost"
        );
    }
}

/// Polls a move's events until it reports bytes sent.
fn until_bytes(m: &mut Mover) -> Vec<Value> {
    let mut events = Vec::new();
    while let Some(e) = m.next() {
        let sent = e["bytes_sent"].as_u64().unwrap_or(0) > 0;
        events.push(e);
        if sent {
            return events;
        }
    }
    panic!("the move ended before any progress: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_sending_agent_fails_the_move_cleanly_and_a_retry_succeeds() {
    let Some(mut lab) = Lab::start(1, 2, Some(4 * MIB as u64)).await else {
        return;
    };
    lab.create("big", 0).await;
    let data = write_random(&lab.hosts[0].path("big").join("data"), 24 * MIB);

    let mut m = lab.start_move(1, "big", 1);
    let mut events = until_bytes(&mut m);
    lab.hosts[0].kill();
    events.extend(m.rest());
    let (ok, err) = m.wait();
    assert!(!ok, "the move must fail: {events:?}");
    assert_eq!(events.last().unwrap()["phase"], "failed", "{err}");
    let v = lab.volume("big");
    assert_eq!(v["owner"], "host-a");
    assert_eq!(v["epoch"], 1);
    assert_eq!(
        std::fs::read(lab.hosts[0].path("big").join("data")).unwrap(),
        data
    );
    assert!(
        !lab.hosts[1].pool.datasets().contains("/big@"),
        "the target kept a partial receive: {}",
        lab.hosts[1].pool.datasets()
    );

    let c = &lab.c;
    lab.hosts[0].start(c);
    lab.wait_node_up("host-a").await;
    lab.move_ok("big", 1);
    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("big") == Some(false)).then_some(())
    })
    .await;
    assert_eq!(std::fs::read(b.path("big").join("data")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_finishes_a_move_the_old_one_started() {
    let Some(mut lab) = Lab::start(3, 2, Some(4 * MIB as u64)).await else {
        return;
    };
    lab.create("cont", 0).await;
    let data = write_random(&lab.hosts[0].path("cont").join("data"), 16 * MIB);
    let leader = lab.c.leader(1).await;
    let via = (1..=3).find(|id| *id != leader).unwrap();

    let mut m = lab.start_move(via, "cont", 1);
    let mut events = until_bytes(&mut m);
    lab.c.kill(leader);
    events.extend(m.rest());
    m.expect_success(&events);
    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("cont") == Some(false)).then_some(())
    })
    .await;
    assert_eq!(std::fs::read(b.path("cont").join("data")).unwrap(), data);
}
