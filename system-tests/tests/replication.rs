//! Replicas kept fresh by the leader (issue 12): real control members and `flocker-agent`s
//! on loopback, each agent with its own zfs-fuse pool, driven with the real `flockerctl`.
//! Needs root and zfs-fuse: skipped with a reason otherwise, failing under `CI=true`.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::eventually;
use testkit::hosts::Host;
use testkit::move_lab::Lab;

const MIB: usize = 1 << 20;

/// The replicas `volume inspect` records: node => (snapshot, taken_ms).
fn replicas(lab: &Lab, volume: &str) -> Vec<(String, String, Option<u64>)> {
    let v = lab.volume(volume);
    v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_owned(),
                r["snapshot"].as_str().unwrap().to_owned(),
                r["taken_ms"].as_u64(),
            )
        })
        .collect()
}

fn read(host: &Host, volume: &str, file: &str) -> Option<Vec<u8>> {
    std::fs::read(host.path(volume).join(file)).ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until `host` reads `want` in `file` of its read-only copy; the time it took.
async fn until_replica_reads(host: &Host, volume: &str, file: &str, want: &[u8]) -> Duration {
    let started = Instant::now();
    eventually(
        Duration::from_secs(30),
        &format!("{}'s replica to read {file}", host.name),
        || async {
            (host.mounted(volume) == Some(true)
                && read(host, volume, file).as_deref() == Some(want))
            .then_some(())
        },
    )
    .await;
    started.elapsed()
}

/// The walk a user relies on: a policy of two replicas with a 2 s max lag set on a volume in
/// use; both copies fill (read-only, same bytes), every later write reaches both within the
/// bound, the age `volume inspect` shows stays under it; a replica's host dying is replaced
/// by the spare host, which catches up; the policy removed stops the refreshes; and a move
/// to a replica is a small increment, not the whole volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_owner_within_the_max_lag_and_are_replaced_when_a_host_dies() {
    let Some(mut lab) = Lab::start_with_flags(1, 4, &["--node-timeout", "5s"]).await else {
        return;
    };
    lab.create("repl", 0).await;
    let big = testkit::random(8 * MIB);
    std::fs::write(lab.hosts[0].path("repl").join("big"), &big).unwrap();
    std::fs::write(lab.hosts[0].path("repl").join("note"), "v1").unwrap();

    // Refused at once, naming the problem; nothing changes.
    let out = lab
        .flockerctl(
            1,
            &[
                "volume",
                "set",
                "repl",
                "--replicas",
                "2",
                "--max-lag",
                "10ms",
            ],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max lag of at least 1s"), "{err}");
    assert!(lab.volume("repl")["replication"].is_null());

    lab.ctl(&[
        "volume",
        "set",
        "repl",
        "--replicas",
        "2",
        "--max-lag",
        "2s",
    ]);
    let v = lab.volume("repl");
    assert_eq!(v["replication"]["copies"], 2, "{v}");
    assert_eq!(v["replication"]["max_lag_ms"], 2000, "{v}");

    // b, c and d hold nothing: b and c are chosen (fewest copies, then by name).
    let (b, c) = (&lab.hosts[1], &lab.hosts[2]);
    for host in [b, c] {
        until_replica_reads(host, "repl", "note", b"v1").await;
        assert_eq!(read(host, "repl", "big").as_deref(), Some(&big[..]));
        let refused = std::fs::write(host.path("repl").join("note"), "stale writer");
        assert!(
            refused.is_err(),
            "{}'s replica must refuse writes",
            host.name
        );
    }
    assert_eq!(lab.hosts[3].mounted("repl"), None, "d holds no copy");

    // Every write reaches both replicas within the bound (2 s, plus the time to read it).
    for round in 2..5 {
        let note = format!("v{round}");
        std::fs::write(lab.hosts[0].path("repl").join("note"), &note).unwrap();
        for host in [b, c] {
            let took = until_replica_reads(host, "repl", "note", note.as_bytes()).await;
            eprintln!("write {note} reached {} in {took:?}", host.name);
            assert!(
                took < Duration::from_secs(5),
                "{note} took {took:?} to reach {}",
                host.name
            );
        }
        for (node, snapshot, taken) in replicas(&lab, "repl") {
            let age = now_ms().saturating_sub(taken.expect("a refreshed replica has its time"));
            assert!(snapshot.starts_with("rep-"), "{node}: {snapshot}");
            assert!(age < 4_000, "{node}'s data is {age} ms old");
        }
    }
    let listed = lab.ctl_table(&["volume", "ls"]);
    assert!(
        listed.contains("host-b(") && listed.contains("host-c("),
        "volume ls shows each replica with its age:\n{listed}"
    );

    // c dies: d takes its place and catches up; b goes on being refreshed.
    lab.hosts[2].kill();
    std::fs::write(lab.hosts[0].path("repl").join("note"), "after c died").unwrap();
    let d = &lab.hosts[3];
    until_replica_reads(d, "repl", "note", b"after c died").await;
    assert_eq!(read(d, "repl", "big").as_deref(), Some(&big[..]));
    until_replica_reads(&lab.hosts[1], "repl", "note", b"after c died").await;
    let nodes: Vec<String> = replicas(&lab, "repl").into_iter().map(|r| r.0).collect();
    assert_eq!(
        nodes,
        ["host-b", "host-c", "host-d"],
        "c's copy stays recorded"
    );

    // No policy: no more refreshes.
    lab.ctl(&["volume", "set", "repl", "--no-replication"]);
    let before = replicas(&lab, "repl");
    std::fs::write(lab.hosts[0].path("repl").join("note"), "unreplicated").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        replicas(&lab, "repl"),
        before,
        "nothing refreshed without a policy"
    );
    assert_eq!(
        read(&lab.hosts[1], "repl", "note").as_deref(),
        Some(&b"after c died"[..])
    );

    // A move to a replica sends what changed since its snapshot, not the 8 MiB.
    let events = lab.move_ok("repl", 1);
    let sent = events.last().unwrap()["bytes_sent"].as_u64().unwrap();
    assert!(
        sent < MIB as u64,
        "a move to a fresh replica sent {sent} bytes"
    );
    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("repl") == Some(false)).then_some(())
    })
    .await;
    assert_eq!(
        read(b, "repl", "note").as_deref(),
        Some(&b"unreplicated"[..])
    );
    assert_eq!(read(b, "repl", "big").as_deref(), Some(&big[..]));
    eprintln!("moved to the replica with {sent} bytes");
    check_no_staging(&lab.hosts[1], "repl");
}

/// No staged receive is left behind on `host`.
fn check_no_staging(host: &Host, volume: &str) {
    let datasets = host.pool.datasets();
    let staged: Vec<&str> = datasets
        .lines()
        .filter(|l| l.contains(volume) && l.contains("staging"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}

/// A policy given at creation (`volume create --replicas`) is kept from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_created_with_replicas_gets_them_at_once() {
    let Some(lab) = Lab::start(1, 2, None).await else {
        return;
    };
    let out = lab.ctl(&[
        "volume",
        "create",
        "born-repl",
        "--owner",
        "host-a",
        "--replicas",
        "1",
        "--max-lag",
        "3s",
    ]);
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created[0]["replication"]["copies"], 1, "{created}");
    let a = &lab.hosts[0];
    eventually(Duration::from_secs(30), "a to mount it", || async {
        (a.mounted("born-repl") == Some(false)).then_some(())
    })
    .await;
    std::fs::write(a.path("born-repl").join("f"), "hello").unwrap();
    until_replica_reads(&lab.hosts[1], "born-repl", "f", b"hello").await;
}

/// Reads `file` of the copy `dataset` (unmounted, e.g. one set aside) by mounting it on a
/// scratch directory for a moment.
fn read_unmounted(dataset: &str, file: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let at = format!("mountpoint={}", dir.path().display());
    testkit::sh("zfs", &["set", &at, dataset]);
    // Setting the mountpoint mounts it, as a rule.
    if testkit::sh("zfs", &["get", "-H", "-o", "value", "mounted", dataset]).trim() != "yes" {
        testkit::sh("zfs", &["mount", dataset]);
    }
    let data = std::fs::read(dir.path().join(file));
    testkit::sh("zfs", &["unmount", dataset]);
    testkit::sh("zfs", &["set", "mountpoint=none", dataset]);
    data.unwrap_or_else(|e| panic!("{file} in {dataset}: {e}"))
}

/// The operator's path through a dead host (issue 12, item 2): the owner's agent dies while
/// its disk stays (a writer there goes on writing into the old copy); promotion is refused
/// while the owner is up and on a node without a copy, then makes the replica the owner at a
/// new epoch with the replica's data; the policy fills a new replica; the old owner, back,
/// never mounts the volume read-write: its copy is read-only, and once something is streamed
/// to it, set aside whole (with the writes made after the replica's snapshot) beside a fresh
/// copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_promoted_when_the_owner_dies_and_the_old_owner_never_writes_again() {
    let Some(mut lab) = Lab::start_with_flags(1, 3, &["--node-timeout", "3s"]).await else {
        return;
    };
    lab.ctl(&[
        "volume",
        "create",
        "prom",
        "--owner",
        "host-a",
        "--replicas",
        "1",
        "--max-lag",
        "2s",
    ]);
    let a_path = lab.hosts[0].path("prom");
    eventually(Duration::from_secs(30), "a to mount it", || async {
        (lab.hosts[0].mounted("prom") == Some(false)).then_some(())
    })
    .await;
    std::fs::write(a_path.join("note"), "v1").unwrap();
    until_replica_reads(&lab.hosts[1], "prom", "note", b"v1").await;

    // a's agent dies; its disk and the mount stay, and a writer there goes on.
    lab.hosts[0].kill();
    std::fs::write(a_path.join("note"), "written on a after its agent died").unwrap();
    let refused = lab
        .flockerctl(1, &["volume", "promote", "prom", "--on", "host-c"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("holds no up-to-date replica"), "{err}");
    eventually(Duration::from_secs(20), "a to be marked down", || async {
        let nodes = lab.ctl(&["node", "ls"]);
        let nodes: Value = serde_json::from_slice(&nodes.stdout).unwrap();
        let a = nodes.as_array()?.iter().find(|n| n["name"] == "host-a")?;
        (a["up"] == false).then_some(())
    })
    .await;
    let promoted = lab.ctl_table(&["volume", "promote", "prom", "--on", "host-b"]);
    assert!(
        promoted.contains("host-b promoted by an operator")
            && promoted.contains("its data is as of"),
        "{promoted}"
    );
    let v = lab.volume("prom");
    assert_eq!(
        (v["owner"].as_str(), v["epoch"].as_u64()),
        (Some("host-b"), Some(2)),
        "{v}"
    );
    assert_eq!(v["promotions"][0]["from"], "host-a", "{v}");
    assert!(v["promotions"][0]["taken_ms"].as_u64().is_some(), "{v}");

    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("prom") == Some(false)).then_some(())
    })
    .await;
    assert_eq!(
        read(b, "prom", "note").as_deref(),
        Some(&b"v1"[..]),
        "the replica's data"
    );
    std::fs::write(b.path("prom").join("note"), "written on b").unwrap();
    // The policy's one replica is now c's (a is down).
    until_replica_reads(&lab.hosts[2], "prom", "note", b"written on b").await;

    // a comes back: read-only at once, never read-write.
    lab.hosts[0].start(&lab.c);
    lab.wait_node_up("host-a").await;
    eventually(
        Duration::from_secs(20),
        "a's stale copy to refuse writes",
        || async { (lab.hosts[0].mounted("prom") == Some(true)).then_some(()) },
    )
    .await;
    assert!(std::fs::write(a_path.join("note"), "stale writer").is_err());
    let v = lab.volume("prom");
    let a_replica = v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == "host-a")
        .cloned();
    assert_eq!(
        a_replica.map(|r| r["diverged"].clone()),
        Some(Value::Bool(true)),
        "{v}"
    );

    // Two replicas: a is chosen again; its copy is set aside, not overwritten.
    lab.ctl(&[
        "volume",
        "set",
        "prom",
        "--replicas",
        "2",
        "--max-lag",
        "2s",
    ]);
    until_replica_reads(&lab.hosts[0], "prom", "note", b"written on b").await;
    let kept = format!("{}/prom:diverged-e1", lab.hosts[0].pool.name());
    assert_eq!(
        read_unmounted(&kept, "note"),
        b"written on a after its agent died",
        "the old owner's last writes are kept"
    );
    let v = lab.volume("prom");
    let diverged: Vec<&Value> = v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["diverged"] == true)
        .collect();
    assert!(diverged.is_empty(), "{v}");
}

/// With `--promote-after`, the leader promotes the freshest replica on its own once the
/// owner has been down that long, and says so in the volume's promotions. The old owner,
/// back, is not the policy's replica (the third host is): a move to it sets its copy aside
/// once, under the epoch it owned, and brings the promoted data (a move has two rounds; a
/// second set-aside took the first round's copy for the diverged one and failed the move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_promotes_a_replica_on_its_own_after_the_owner_is_down_long_enough() {
    let Some(mut lab) = Lab::start_with_flags(1, 3, &["--node-timeout", "2s"]).await else {
        return;
    };
    lab.ctl(&[
        "volume",
        "create",
        "auto",
        "--owner",
        "host-a",
        "--replicas",
        "1",
        "--max-lag",
        "2s",
        "--promote-after",
        "3s",
    ]);
    eventually(Duration::from_secs(30), "a to mount it", || async {
        (lab.hosts[0].mounted("auto") == Some(false)).then_some(())
    })
    .await;
    let a_path = lab.hosts[0].path("auto");
    std::fs::write(a_path.join("f"), "before").unwrap();
    until_replica_reads(&lab.hosts[1], "auto", "f", b"before").await;
    lab.hosts[0].kill();
    std::fs::write(a_path.join("f"), "written on a after its agent died").unwrap();
    let killed = Instant::now();
    let b = &lab.hosts[1];
    eventually(
        Duration::from_secs(30),
        "b to be promoted and mount read-write",
        || async { (b.mounted("auto") == Some(false)).then_some(()) },
    )
    .await;
    eprintln!(
        "promoted and mounted read-write {:?} after the owner's agent died",
        killed.elapsed()
    );
    assert_eq!(read(b, "auto", "f").as_deref(), Some(&b"before"[..]));
    let v = lab.volume("auto");
    assert_eq!(v["owner"], "host-b", "{v}");
    assert_eq!(v["promotions"][0]["automatic"], true, "{v}");

    std::fs::write(b.path("auto").join("f"), "written on b").unwrap();
    until_replica_reads(&lab.hosts[2], "auto", "f", b"written on b").await;
    lab.hosts[0].start(&lab.c);
    lab.wait_node_up("host-a").await;
    let asked = Instant::now();
    let moved = lab
        .flockerctl(1, &["volume", "move", "auto", "--to", "host-a"])
        .output()
        .unwrap();
    assert!(
        moved.status.success(),
        "the move to the old owner: {}",
        String::from_utf8_lossy(&moved.stderr)
    );
    eprintln!("moved to the old owner in {:?}", asked.elapsed());
    let a = &lab.hosts[0];
    eventually(Duration::from_secs(20), "a to mount read-write", || async {
        (a.mounted("auto") == Some(false)).then_some(())
    })
    .await;
    assert_eq!(read(a, "auto", "f").as_deref(), Some(&b"written on b"[..]));
    let pool = a.pool.name();
    assert_eq!(
        read_unmounted(&format!("{pool}/auto:diverged-e1"), "f"),
        b"written on a after its agent died",
        "the old owner's last writes are kept"
    );
    let listing = std::process::Command::new("zfs")
        .args(["list", "-H", "-o", "name", "-r", pool])
        .output()
        .unwrap();
    let set_aside: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|d| d.contains(":diverged"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        set_aside,
        [format!("{pool}/auto:diverged-e1")],
        "set aside once"
    );
}
