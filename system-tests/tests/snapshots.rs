//! User snapshots, clones and backups (issue 12, item 4): real control members and
//! `flocker-agent`s on loopback, each agent with its own zfs-fuse pool, driven with the real
//! `flockerctl`. Needs root and zfs-fuse: skipped with a reason otherwise, failing under
//! `CI=true`.

use std::time::Duration;

use serde_json::Value;
use testkit::eventually;
use testkit::hosts::Host;
use testkit::move_lab::Lab;

/// The snapshots of `volume` on `host`'s pool, by name, sorted.
fn snapshots_on(host: &Host, volume: &str) -> Vec<String> {
    let prefix = format!("{}/{volume}@", host.pool.name());
    let mut found: Vec<String> = host
        .pool
        .datasets()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    found.sort();
    found
}

/// The user snapshots (`u-…`) of `volume` on `host`.
fn user_snapshots_on(host: &Host, volume: &str) -> Vec<String> {
    snapshots_on(host, volume)
        .into_iter()
        .filter(|s| s.starts_with("u-"))
        .collect()
}

/// `flockerctl --output json ARGS` expected to fail: its exit code and stderr.
fn refused(lab: &Lab, args: &[&str]) -> (i32, String) {
    let out = lab.flockerctl(1, args).output().unwrap();
    assert!(
        !out.status.success(),
        "flockerctl {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The user snapshots `volume snapshots NAME` lists, by name.
fn listed(lab: &Lab, volume: &str) -> Vec<Value> {
    json(&lab.ctl(&["volume", "snapshots", volume]))
        .as_array()
        .unwrap()
        .clone()
}

fn names(snapshots: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = snapshots
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

/// The walk a user relies on: snapshots taken (labelled and not) on the owner, listed
/// cluster-wide and in `inspect`; bad input refused with what to do and nothing taken; a move
/// carries them to the new owner and the old owner keeps them as a replica (the retention rule
/// no longer destroys them); a replica filled by a policy gets them and keeps them through its
/// refreshes; a snapshot on the new owner at the new epoch; one deleted by label is gone from
/// every pool; and with the owner's agent down a snapshot is refused naming the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_snapshots_survive_moves_and_refreshes_until_deleted() {
    let Some(mut lab) = Lab::start_with_flags(1, 3, &["--node-timeout", "3s"]).await else {
        return;
    };
    let (a, b, c) = (0, 1, 2);
    lab.create("snap", a).await;
    let path = |h: usize| lab.hosts[h].path("snap").join("note");
    std::fs::write(path(a), "v1").unwrap();
    let before = json(&lab.ctl(&["volume", "snapshot", "snap", "--label", "before"]));
    assert_eq!(before["name"], "u-before", "{before}");
    assert_eq!(before["label"], "before");
    assert_eq!(
        (&before["node"], &before["epoch"]),
        (&"host-a".into(), &1.into())
    );
    std::fs::write(path(a), "v2").unwrap();
    let plain = json(&lab.ctl(&["volume", "snapshot", "snap"]));
    let plain_name = plain["name"].as_str().unwrap().to_owned();
    assert_eq!(plain_name, format!("u-{}", plain["taken_ms"]), "{plain}");
    assert!(plain["label"].is_null());
    let both = {
        let mut n = vec!["u-before".to_owned(), plain_name.clone()];
        n.sort();
        n
    };
    assert_eq!(names(&listed(&lab, "snap")), both);
    assert_eq!(user_snapshots_on(&lab.hosts[a], "snap"), both);
    let inspected = lab.volume("snap");
    assert_eq!(names(inspected["snapshots"].as_array().unwrap()), both);
    let table = lab.ctl_table(&["volume", "snapshots", "snap"]);
    assert!(
        table.contains("u-before") && table.contains("before") && table.contains("host-a"),
        "{table}"
    );
    assert!(
        lab.ctl_table(&["volume", "inspect", "snap"])
            .contains("Snapshots:"),
        "inspect shows the snapshots"
    );

    // Bad input: refused with what to do, nothing taken.
    let (code, err) = refused(&lab, &["volume", "snapshot", "nope"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no volume named \"nope\""), "{err}");
    let (code, err) = refused(
        &lab,
        &["volume", "snapshot", "snap", "--label", "Bad/Label"],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("invalid snapshot label"), "{err}");
    let (code, err) = refused(&lab, &["volume", "snapshot", "snap", "--label", "before"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("already has a snapshot \"u-before\""), "{err}");
    lab.ctl(&["volume", "create", "loose"]);
    let (code, err) = refused(&lab, &["volume", "snapshot", "loose"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("volume move loose --to NODE"), "{err}");
    let (code, err) = refused(&lab, &["volume", "snapshot", "snap", "--delete", "nope"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no snapshot \"nope\"") && err.contains("before"),
        "{err}"
    );
    assert_eq!(user_snapshots_on(&lab.hosts[a], "snap"), both);
    assert_eq!(names(&listed(&lab, "snap")), both);

    // A move carries them along; the old owner, now a replica, keeps them.
    lab.move_ok("snap", b);
    eventually(
        Duration::from_secs(30),
        "b to mount the volume read-write",
        || async { (lab.hosts[b].mounted("snap") == Some(false)).then_some(()) },
    )
    .await;
    assert_eq!(std::fs::read_to_string(path(b)).unwrap(), "v2");
    assert_eq!(user_snapshots_on(&lab.hosts[b], "snap"), both);
    assert_eq!(user_snapshots_on(&lab.hosts[a], "snap"), both);
    // Round snapshots are still pruned (after the commit, so soon rather than at once).
    eventually(
        Duration::from_secs(20),
        "the move's round snapshots to go",
        || async {
            snapshots_on(&lab.hosts[b], "snap")
                .iter()
                .all(|s| s.starts_with("u-") || s.ends_with("-final"))
                .then_some(())
        },
    )
    .await;
    assert_eq!(user_snapshots_on(&lab.hosts[b], "snap"), both);
    assert_eq!(user_snapshots_on(&lab.hosts[a], "snap"), both);

    // A snapshot on the new owner, at the new epoch.
    std::fs::write(path(b), "v3").unwrap();
    let after = json(&lab.ctl(&["volume", "snapshot", "snap", "--label", "after"]));
    assert_eq!(
        (&after["node"], &after["epoch"]),
        (&"host-b".into(), &2.into())
    );

    // Two replicas kept fresh: c gets every user snapshot, and refreshes keep them.
    lab.ctl(&[
        "volume",
        "set",
        "snap",
        "--replicas",
        "2",
        "--max-lag",
        "2s",
    ]);
    let all = {
        let mut n = both.clone();
        n.push("u-after".into());
        n.sort();
        n
    };
    eventually(
        Duration::from_secs(30),
        "c's replica to hold every user snapshot",
        || async { (user_snapshots_on(&lab.hosts[c], "snap") == all).then_some(()) },
    )
    .await;
    // Several refreshes later, every copy still holds them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for h in [a, b, c] {
        assert_eq!(
            user_snapshots_on(&lab.hosts[h], "snap"),
            all,
            "{}",
            lab.hosts[h].name
        );
    }

    // Deleted by its label: gone from every copy and from the record.
    lab.ctl(&["volume", "snapshot", "snap", "--delete", "before"]);
    let rest: Vec<String> = all.iter().filter(|s| *s != "u-before").cloned().collect();
    assert_eq!(names(&listed(&lab, "snap")), rest);
    for h in [a, b, c] {
        assert_eq!(
            user_snapshots_on(&lab.hosts[h], "snap"),
            rest,
            "{}",
            lab.hosts[h].name
        );
    }

    // The owner's agent down: refused, naming the node; nothing recorded.
    lab.ctl(&["volume", "set", "snap", "--no-replication"]);
    lab.hosts[b].kill();
    eventually(Duration::from_secs(20), "b to be marked down", || async {
        let nodes = json(&lab.ctl(&["node", "ls"]));
        nodes
            .as_array()?
            .iter()
            .any(|n| n["name"] == "host-b" && n["up"] == false)
            .then_some(())
    })
    .await;
    let (code, err) = refused(&lab, &["volume", "snapshot", "snap", "--label", "down"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("\"host-b\", which is down"), "{err}");
    assert_eq!(names(&listed(&lab, "snap")), rest);
}

/// Snapshot, move, clone on the new owner: the clone is a volume of its own on that node
/// (mounted read-write by its agent, holding the snapshot's data), refusals name what to do,
/// its origin snapshot and the source volume cannot be deleted while it exists (a clear
/// refusal, not a ZFS error), it moves like any volume, and once it is deleted the snapshot
/// can go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_of_a_snapshot_is_a_volume_of_its_own_and_keeps_its_origin() {
    let Some(lab) = Lab::start(1, 3, None).await else {
        return;
    };
    let (a, b, c) = (0, 1, 2);
    lab.create("orig", a).await;
    let note = |h: usize, v: &str| lab.hosts[h].path(v).join("note");
    std::fs::write(note(a, "orig"), "v1").unwrap();
    lab.ctl(&["volume", "snapshot", "orig", "--label", "v1"]);
    std::fs::write(note(a, "orig"), "v2").unwrap();
    lab.move_ok("orig", b);

    let made = json(&lab.ctl(&["volume", "clone", "orig@v1", "copy"]));
    assert_eq!(made[0]["owner"], "host-b", "{made}");
    assert_eq!(made[0]["origin"]["snapshot"], "u-v1", "{made}");
    eventually(
        Duration::from_secs(30),
        "b to mount the clone read-write",
        || async { (lab.hosts[b].mounted("copy") == Some(false)).then_some(()) },
    )
    .await;
    assert_eq!(std::fs::read_to_string(note(b, "copy")).unwrap(), "v1");
    std::fs::write(note(b, "copy"), "mine").unwrap();
    assert_eq!(std::fs::read_to_string(note(b, "orig")).unwrap(), "v2");
    assert!(
        lab.ctl_table(&["volume", "inspect", "copy"])
            .contains("orig@u-v1"),
        "inspect names the origin"
    );

    // Bad input, each refused with what to do.
    let (code, err) = refused(&lab, &["volume", "clone", "orig@nope", "x"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no snapshot \"nope\"") && err.contains("v1"),
        "{err}"
    );
    let (code, err) = refused(&lab, &["volume", "clone", "orig@v1", "copy"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("\"copy\" already exists"), "{err}");
    let (code, err) = refused(&lab, &["volume", "clone", "orig@v1", "Bad"]);
    assert_eq!(code, 6, "{err}");
    let (code, err) = refused(&lab, &["volume", "clone", "orig", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NAME@SNAP"), "{err}");
    let (code, err) = refused(&lab, &["volume", "clone", "nope@v1", "x"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        !lab.hosts[b].pool.datasets().contains("/x\n"),
        "no stray clone"
    );

    // The origin snapshot and the source are kept while the clone exists.
    let (code, err) = refused(&lab, &["volume", "snapshot", "orig", "--delete", "v1"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("origin of clone(s) copy") && err.contains("delete them first"),
        "{err}"
    );
    assert_eq!(user_snapshots_on(&lab.hosts[b], "orig"), ["u-v1"]);
    let (code, err) = refused(&lab, &["volume", "rm", "orig"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("has clone(s) copy"), "{err}");

    // The clone moves like any volume.
    lab.move_ok("copy", c);
    eventually(
        Duration::from_secs(30),
        "c to mount the clone read-write",
        || async { (lab.hosts[c].mounted("copy") == Some(false)).then_some(()) },
    )
    .await;
    assert_eq!(std::fs::read_to_string(note(c, "copy")).unwrap(), "mine");

    // Deleted, it frees its origin.
    lab.ctl(&["volume", "rm", "copy"]);
    eventually(
        Duration::from_secs(30),
        "every copy of the clone to go",
        || async {
            [b, c]
                .iter()
                .all(|h| !lab.hosts[*h].pool.datasets().contains("/copy"))
                .then_some(())
        },
    )
    .await;
    lab.ctl(&["volume", "snapshot", "orig", "--delete", "v1"]);
    for h in [a, b] {
        assert!(user_snapshots_on(&lab.hosts[h], "orig").is_empty());
    }
    assert!(listed(&lab, "orig").is_empty());
}

/// The manifests in a backup directory, oldest first.
fn manifests_in(dir: &std::path::Path) -> Vec<Value> {
    let mut all: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "json")
                .then(|| serde_json::from_slice(&std::fs::read(p).ok()?).ok())?
        })
        .collect();
    all.sort_by_key(|m| m["created_ms"].as_u64());
    all
}

/// Backup and restore across clusters: a full backup, more writes, an incremental one (only
/// what changed), a full one refused into the same directory, a restore over the live volume
/// refused; the first cluster torn down; on a fresh cluster a corrupted copy of the directory
/// restores nothing and names the file, the chain restores on the node named with identical
/// data and its snapshots recorded, restoring it again under the same name is refused, and a
/// restore under another name goes to a node the control service chooses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_chain_restores_on_a_fresh_cluster_and_a_corrupt_file_restores_nothing() {
    let dir = testkit::Scratch::new("backup");
    let backups = dir.path().join("data");
    let to = backups.to_str().unwrap();
    let big = testkit::random(4 << 20);
    let more = testkit::random(256 << 10);
    {
        let Some(lab) = Lab::start(1, 1, None).await else {
            return;
        };
        lab.create("data", 0).await;
        let root = lab.hosts[0].path("data");
        std::fs::write(root.join("big"), &big).unwrap();
        std::fs::write(root.join("note"), "v1").unwrap();
        let full = json(&lab.ctl(&["volume", "backup", "data", "--to", to]));
        assert!(full["base"].is_null(), "{full}");
        assert!(full["size"].as_u64().unwrap() > 4 << 20, "{full}");
        assert_eq!(full["storage"], "zfs");
        let (code, err) = refused(&lab, &["volume", "backup", "data", "--to", to]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("add to it with --incremental"), "{err}");

        std::fs::write(root.join("note"), "v2").unwrap();
        std::fs::write(root.join("more"), &more).unwrap();
        let inc = json(&lab.ctl(&["volume", "backup", "data", "--to", to, "--incremental"]));
        assert_eq!(inc["base"], full["snapshot"], "{inc}");
        let size = inc["size"].as_u64().unwrap();
        assert!(
            size > 256 << 10 && size < 2 << 20,
            "the increment carries what changed: {size} bytes"
        );
        assert_eq!(manifests_in(&backups).len(), 2);
        assert_eq!(listed(&lab, "data").len(), 2, "backups are user snapshots");
        let (code, err) = refused(&lab, &["volume", "restore", "data", "--from", to]);
        assert_eq!(code, 5, "{err}");
        assert!(err.contains("\"data\" already exists"), "{err}");
    }

    // A fresh cluster.
    let Some(lab) = Lab::start(1, 2, None).await else {
        return;
    };
    // A corrupted copy of the chain: nothing restored, the file named.
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    for e in std::fs::read_dir(&backups).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, bad_dir.join(p.file_name().unwrap())).unwrap();
    }
    let second = manifests_in(&bad_dir)[1]["file"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = std::fs::read(bad_dir.join(&second)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(bad_dir.join(&second), bytes).unwrap();
    let (code, err) = refused(
        &lab,
        &[
            "volume",
            "restore",
            "data",
            "--from",
            bad_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains(&second) && err.contains("corrupted") && err.contains("nothing was restored"),
        "{err}"
    );
    let (code, _) = refused(&lab, &["volume", "inspect", "data"]);
    assert_eq!(code, 4, "no volume was made");
    for h in &lab.hosts {
        assert!(
            !h.pool.datasets().contains("/data"),
            "{}",
            h.pool.datasets()
        );
    }

    // The chain, on the node named.
    let restored = json(&lab.ctl(&["volume", "restore", "data", "--from", to, "--on", "host-b"]));
    assert_eq!(restored["owner"], "host-b", "{restored}");
    let b = &lab.hosts[1];
    eventually(
        Duration::from_secs(30),
        "host-b to mount the restored volume read-write",
        || async { (b.mounted("data") == Some(false)).then_some(()) },
    )
    .await;
    assert_eq!(std::fs::read(b.path("data").join("big")).unwrap(), big);
    assert_eq!(std::fs::read(b.path("data").join("more")).unwrap(), more);
    assert_eq!(
        std::fs::read_to_string(b.path("data").join("note")).unwrap(),
        "v2"
    );
    let names_there = names(&listed(&lab, "data"));
    let chain: Vec<String> = manifests_in(&backups)
        .iter()
        .map(|m| m["snapshot"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names_there, {
        let mut c = chain.clone();
        c.sort();
        c
    });
    assert_eq!(user_snapshots_on(b, "data").len(), 2);
    // Restoring it again: refused, nothing touched.
    let (code, err) = refused(&lab, &["volume", "restore", "data", "--from", to]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(b.path("data").join("note")).unwrap(),
        "v2"
    );
    // Under another name, where the control service chooses: host-a holds nothing.
    let copy = json(&lab.ctl(&["volume", "restore", "data2", "--from", to]));
    assert_eq!(copy["owner"], "host-a", "{copy}");
    let a = &lab.hosts[0];
    eventually(
        Duration::from_secs(30),
        "host-a to mount the second restore",
        || async { (a.mounted("data2") == Some(false)).then_some(()) },
    )
    .await;
    assert_eq!(std::fs::read(a.path("data2").join("big")).unwrap(), big);
    // And it goes on: an incremental backup of the restored volume into its own chain.
    let again = dir.path().join("again");
    let again = again.to_str().unwrap();
    lab.ctl(&["volume", "backup", "data", "--to", again]);
    std::fs::write(b.path("data").join("note"), "v3").unwrap();
    let inc = json(&lab.ctl(&["volume", "backup", "data", "--to", again, "--incremental"]));
    assert!(inc["size"].as_u64().unwrap() < 1 << 20, "{inc}");
}

/// A schedule of one snapshot a second keeping two: the leader takes them on the owner and
/// deletes the oldest past two, on the owner's pool and in the record, while a snapshot taken
/// by hand stays; a bad schedule is refused; removed, no more are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_schedule_takes_and_prunes_its_own_snapshots_only() {
    let Some(lab) = Lab::start(1, 1, None).await else {
        return;
    };
    lab.create("sched", 0).await;
    let by_hand = json(&lab.ctl(&["volume", "snapshot", "sched", "--label", "keepme"]));
    assert_eq!(by_hand["name"], "u-keepme");

    let (code, err) = refused(
        &lab,
        &[
            "volume",
            "set",
            "sched",
            "--snapshot-every",
            "100ms",
            "--keep",
            "2",
        ],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("at most every 1s"), "{err}");

    let set = lab.ctl(&[
        "volume",
        "set",
        "sched",
        "--snapshot-every",
        "1s",
        "--keep",
        "2",
    ]);
    assert!(set.status.success(), "{set:?}");
    assert_eq!(
        json(&set)[0]["snapshot_schedule"],
        serde_json::json!({"every_ms": 1000, "keep": 2})
    );
    // After a few seconds: two scheduled ones (the newest), the one by hand, on the pool too;
    // every scheduled one seen was taken a second or more after the one before.
    let mut seen = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        for s in listed(&lab, "sched") {
            if s["scheduled"] == true {
                seen.insert(s["taken_ms"].as_u64().unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.len() >= 4, "a snapshot about every second: {seen:?}");
    let times: Vec<u64> = seen.iter().copied().collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 1000),
        "no sooner than every second: {times:?}"
    );
    let listing = eventually(Duration::from_secs(10), "two scheduled kept", || async {
        let now = listed(&lab, "sched");
        (now.iter().filter(|s| s["scheduled"] == true).count() == 2).then_some(now)
    })
    .await;
    let recorded = names(&listing);
    assert!(recorded.contains(&"u-keepme".to_owned()), "{recorded:?}");
    eventually(
        Duration::from_secs(10),
        "the pool to match the record",
        || async {
            let now = names(&listed(&lab, "sched"));
            (user_snapshots_on(&lab.hosts[0], "sched") == now).then_some(())
        },
    )
    .await;

    // Removing the schedule starts no snapshot after it returns; one already due (named by
    // its due time) may still land, then nothing more does.
    let off = lab.ctl(&["volume", "set", "sched", "--no-snapshot-schedule"]);
    assert!(off.status.success(), "{off:?}");
    let off_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let before = names(&listed(&lab, "sched"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = names(&listed(&lab, "sched"));
    for late in after.iter().filter(|n| !before.contains(n)) {
        let due: u64 = late
            .strip_prefix("u-")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("a snapshot {late} appeared after the schedule was removed"));
        assert!(
            due <= off_ms,
            "scheduled snapshot {late} was due after the schedule was removed ({off_ms})"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        names(&listed(&lab, "sched")),
        after,
        "no more scheduled snapshots"
    );
}
