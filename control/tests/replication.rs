//! A 3-member cluster as separate processes: replication, leader failover with no committed
//! write lost, catching up from the log and from a snapshot, no commit without a quorum,
//! membership changes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proto::control as pb;
use testkit::Cluster;
use testkit::cluster::{read_log, register, volume};
use tonic::Code;

async fn volume_names(c: &Cluster, via: u64) -> BTreeSet<String> {
    let mut client = c.client(via).await;
    client
        .list_volumes(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .volumes
        .into_iter()
        .map(|v| v.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_no_committed_write_and_restarted_member_catches_up() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader(1).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Writes through a follower are forwarded to the leader and replicate to all.
    let mut client = c.client(follower).await;
    let mut written = BTreeSet::new();
    for i in 0..20 {
        let name = format!("vol-{i}");
        client
            .create_volume(volume(&name))
            .await
            .expect("write via follower");
        written.insert(name);
    }
    let s = c.status_with_leader(follower).await;
    c.wait_applied(follower, &[1, 2, 3], s.commit_index).await;

    // kill -9 the leader: a new one takes over and every committed write is still there.
    c.kill(leader);
    let killed_at = Instant::now();
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let mut client = c.client(survivor).await;
    let new_leader = c.leader(survivor).await;
    assert_ne!(new_leader, leader);
    client
        .create_volume(volume("after-failover"))
        .await
        .expect("write after failover");
    eprintln!(
        "failover: a write committed {:?} after kill -9",
        killed_at.elapsed()
    );
    written.insert("after-failover".into());
    assert_eq!(volume_names(&c, survivor).await, written);

    // flockerctl given the dead member first fails over to the next, like etcdctl.
    let control = format!("{},{}", c.addr(leader), c.addr(survivor));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flockerctl"))
        .args(["--control", &control, "--tls-dir"])
        .arg(c.pki.issue(control::ca::Role::User, "admin"))
        .args(["-o", "json", "volume", "ls"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("after-failover"),
        "flockerctl --control DEAD,ALIVE: {listed} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The killed member restarts from its data dir and catches up from the log.
    c.spawn(leader);
    let s = c.status_with_leader(survivor).await;
    c.wait_applied(survivor, &[leader], s.commit_index).await;
    let log = read_log(&c.log_path(leader));
    assert!(!log.contains("snapshot installed"));
    // A log written to a file holds no terminal colour codes.
    assert!(log.contains("INFO") && !log.contains('\u{1b}'), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_catches_up_from_a_snapshot() {
    let mut c = Cluster::start(3, &["--snapshot-threshold", "10"]);
    let leader = c.leader(1).await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    c.kill(lagging);

    let mut client = c.client(leader).await;
    // A lease in the state: a snapshot must carry it (its map key once could not be
    // written as JSON, and every member failed from the first snapshot on).
    let mut node = c
        .client_with(leader, &c.pki.tls(control::ca::Role::Node, "n1"))
        .await;
    node.register_node(register("n1")).await.unwrap();
    let held = pb::CreateVolumeRequest {
        owner: Some("n1".into()),
        ..volume("held")
    };
    client.create_volume(held).await.unwrap();
    let lease = pb::Lease {
        volume: "held".into(),
        node: "n1".into(),
        container_id: "c1".into(),
        ..Default::default()
    };
    node.acquire_lease(lease.clone()).await.unwrap();
    for i in 0..60 {
        client
            .create_volume(volume(&format!("v{i}")))
            .await
            .unwrap();
    }
    // Snapshots are built in the background: wait for one that covers most of the writes.
    let s = testkit::eventually(
        Duration::from_secs(20),
        "the leader to snapshot and compact",
        || async {
            let s = c.status_with_leader(leader).await;
            let row = s.members.iter().find(|m| m.id == leader)?;
            (row.snapshot_index.unwrap_or(0) >= 50).then_some(s)
        },
    )
    .await;

    c.spawn(lagging);
    let s = c.wait_applied(leader, &[lagging], s.commit_index).await;
    let row = s.members.iter().find(|m| m.id == lagging).unwrap();
    assert!(row.snapshot_index.is_some(), "{row:?}");
    assert!(
        read_log(&c.log_path(lagging)).contains("snapshot installed"),
        "the restarted member should have been sent a snapshot (the log it missed was compacted)"
    );
    assert_eq!(volume_names(&c, lagging).await.len(), 61);
    let leases = c
        .client(lagging)
        .await
        .list_leases(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(leases, [lease], "the snapshot carried the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_member_cannot_commit() {
    let mut c = Cluster::start(3, &["--call-timeout", "1500ms"]);
    let leader = c.leader(1).await;
    let mut client = c.client(leader).await;
    client.create_volume(volume("before")).await.unwrap();
    for id in (1..=3).filter(|id| *id != leader) {
        c.kill(id);
    }
    let started = Instant::now();
    let err = client
        .create_volume(volume("alone"))
        .await
        .expect_err("a lone member must not commit");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("no quorum"), "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_removed_at_run_time() {
    let mut c = Cluster::start(3, &[]);
    c.leader(1).await;
    let mut client = c.client(1).await;
    client.create_volume(volume("existing")).await.unwrap();
    let mut operator = c.operator(1).await;

    // Member 4 starts empty with --join and is added by an operator.
    c.ports.push(testkit::free_port());
    c.procs.push(None);
    c.extra.push("--join".into());
    c.spawn(4);
    let s = operator
        .add_member(pb::AddMemberRequest {
            id: 4,
            address: c.addr(4),
        })
        .await
        .expect("add member")
        .into_inner();
    let four = s
        .members
        .iter()
        .find(|m| m.id == 4)
        .expect("member 4 listed");
    assert!(four.voter, "{s:?}");
    c.wait_applied(1, &[4], s.commit_index).await;

    let s = operator
        .remove_member(pb::RemoveMemberRequest { id: 4 })
        .await
        .unwrap()
        .into_inner();
    assert!(s.members.iter().all(|m| m.id != 4), "{s:?}");
    client.create_volume(volume("after-removal")).await.unwrap();
}
