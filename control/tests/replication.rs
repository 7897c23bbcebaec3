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
    let (id, s) = c.add_member(1).await;
    assert_eq!(id, 4);
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

/// A leader whose disk fills (ENOSPC on its log writes) must not leave callers waiting: a
/// write through it fails at once naming the cause, the member exits (its service manager
/// restarts it) instead of answering every call with an error, another member leads and
/// takes writes, and once space is freed the member, started again, catches up. Each
/// member's data directory is a small tmpfs of its own; the leader's is then filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_fills_fails_its_writes_exits_and_catches_up_later() {
    if !testkit::root_and_tools("a full disk (tmpfs mounts)", &["mount", "umount", "dd"]) {
        return;
    }
    let mut c = Cluster::prepare(3, &[]);
    let disks: Vec<SmallDisk> = (1..=3)
        .map(|id| SmallDisk::mount(&c.data_dir(id)))
        .collect();
    for id in 1..=3 {
        c.spawn(id);
    }
    let full = c.leader(1).await;
    let mut client = c.client(full).await;
    client.create_volume(volume("before")).await.unwrap();
    disks[full as usize - 1].fill();

    let started = Instant::now();
    let mut refused = None;
    for i in 0..20 {
        let write = client.create_volume(volume(&format!("full-{i}")));
        match tokio::time::timeout(Duration::from_secs(20), write).await {
            Err(_) => panic!("write {i} through the leader with a full disk never returned"),
            Ok(Ok(_)) => continue,
            Ok(Err(status)) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("20 writes on a full disk all succeeded");
    eprintln!(
        "the full leader refused a write after {:?}: {:?} {}",
        started.elapsed(),
        status.code(),
        status.message()
    );
    assert!(
        status.message().contains("No space left on device"),
        "{status:?}"
    );
    let proc = c.procs[full as usize - 1].as_mut().unwrap();
    let exited = testkit::poll_until(Duration::from_secs(10), || {
        proc.child.try_wait().ok().flatten().is_some()
    });
    assert!(exited, "the member whose Raft stopped is still running");
    let code = proc.child.try_wait().unwrap().unwrap();
    assert!(!code.success(), "it exits with a failure: {code}");
    let log = read_log(&c.log_path(full));
    assert!(
        log.contains("raft stopped") && log.contains("No space left on device"),
        "its log says why: {log}"
    );

    let survivor = (1..=3).find(|id| *id != full).unwrap();
    let after = Instant::now();
    testkit::eventually(
        Duration::from_secs(30),
        "a write through another member",
        || {
            let other = c.client(survivor);
            async move { other.await.create_volume(volume("after")).await.ok() }
        },
    )
    .await;
    eprintln!("another member took a write {:?} later", after.elapsed());

    disks[full as usize - 1].free();
    c.spawn(full);
    testkit::eventually(
        Duration::from_secs(30),
        "the member to catch up",
        || async { volume_names(&c, full).await.contains("after").then_some(()) },
    )
    .await;
}

/// When a majority cannot store the log (the followers' disks are full), writes return within
/// the call timeout with `no quorum`, never hang (the leader's own writes, a move driver's
/// and the liveness watch's, have the same deadline since one such write once hung a move
/// for good); the followers exit, and freed and started again they let the cluster commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_majority_that_can_store_them_fail_within_the_call_timeout() {
    if !testkit::root_and_tools("a full disk (tmpfs mounts)", &["mount", "umount", "dd"]) {
        return;
    }
    let mut c = Cluster::prepare(3, &["--call-timeout", "1500ms"]);
    let disks: Vec<SmallDisk> = (1..=3)
        .map(|id| SmallDisk::mount(&c.data_dir(id)))
        .collect();
    for id in 1..=3 {
        c.spawn(id);
    }
    let leader = c.leader(1).await;
    let mut client = c.client(leader).await;
    client.create_volume(volume("before")).await.unwrap();
    for id in (1..=3).filter(|id| *id != leader) {
        disks[id as usize - 1].fill();
    }
    let started = Instant::now();
    let mut answer = None;
    for i in 0..20 {
        let write = client.create_volume(volume(&format!("no-majority-{i}")));
        match tokio::time::timeout(Duration::from_secs(20), write).await {
            Err(_) => panic!("write {i} without a majority that can store it never returned"),
            Ok(Ok(_)) => continue,
            Ok(Err(status)) => {
                answer = Some(status);
                break;
            }
        }
    }
    let status = answer.expect("20 writes committed with the followers' disks full");
    eprintln!(
        "refused after {:?}: {:?} {}",
        started.elapsed(),
        status.code(),
        status.message()
    );
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("no quorum"), "{status:?}");

    // The followers stopped on their full disks; freed and started again, they store the
    // log again and the cluster commits.
    for id in (1..=3).filter(|id| *id != leader) {
        let proc = c.procs[id as usize - 1].as_mut().unwrap();
        let exited = testkit::poll_until(Duration::from_secs(10), || {
            proc.child.try_wait().ok().flatten().is_some()
        });
        assert!(exited, "member {id} with a full disk is still running");
        disks[id as usize - 1].free();
        c.spawn(id);
    }
    testkit::eventually(
        Duration::from_secs(30),
        "a write once space is freed",
        || {
            let client = c.client(leader);
            async move { client.await.create_volume(volume("freed")).await.ok() }
        },
    )
    .await;
}

/// A tmpfs of 16 MiB mounted on a directory until dropped: a disk that a test can fill.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let at = dir.display().to_string();
        testkit::sh("mount", &["-t", "tmpfs", "-o", "size=16m", "tmpfs", &at]);
        Self(dir.to_owned())
    }

    fn filler(&self) -> std::path::PathBuf {
        self.0.join("filler")
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        let of = format!("of={}", self.filler().display());
        // dd ends with "No space left on device": expected.
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", &of, "bs=64k"])
            .output();
    }

    /// Frees what [`SmallDisk::fill`] took.
    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .output();
    }
}

/// Concurrent writes through the leader commit in fewer log entries than writes (group
/// commit, `control::batch`), each caller gets its own command's answer (of eight creates of
/// one name exactly one succeeds), and every member applies them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries_and_each_gets_its_own_answer() {
    let c = Cluster::start(3, &[]);
    let leader = c.leader(1).await;
    let client = c.client(leader).await;
    client.clone().create_volume(volume("warm")).await.unwrap();
    let before = c.status_with_leader(leader).await.commit_index;
    let writes = (0..64).map(|i| {
        let mut client = client.clone();
        tokio::spawn(async move { client.create_volume(volume(&format!("many-{i}"))).await })
    });
    let same = (0..8).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { client.create_volume(volume("same")).await })
    });
    let writes: Vec<_> = writes.collect();
    let same: Vec<_> = same.collect();
    for w in writes {
        w.await.unwrap().expect("a concurrent create");
    }
    let mut created = 0;
    for w in same {
        match w.await.unwrap() {
            Ok(_) => created += 1,
            Err(status) => assert!(status.message().contains("already exists"), "{status:?}"),
        }
    }
    assert_eq!(created, 1, "one create of `same` succeeds");
    let after = c.status_with_leader(leader).await.commit_index;
    // Heartbeats of no agent run here; a few blank or membership entries at most.
    eprintln!("72 writes took {} log entries", after - before);
    assert!(
        after - before < 72,
        "{} entries for 72 writes",
        after - before
    );
    let s = c.status_with_leader(leader).await;
    c.wait_applied(leader, &[1, 2, 3], s.commit_index).await;
    for id in 1..=3 {
        let names = volume_names(&c, id).await;
        assert!(
            (0..64).all(|i| names.contains(&format!("many-{i}"))) && names.contains("same"),
            "member {id}"
        );
    }
}
