//! Moving volumes between real agents: control members and `flocker-agent`s as processes on
//! loopback, each agent with its own zfs-fuse pool, driven with the real `flockerctl`; for
//! `--stop`, the source agent in front of a private dockerd (testkit's `TestDocker`,
//! in its own network namespace) running a real container on the volume.
//! Needs root and zfs-fuse (and dockerd for `--stop`): skipped with a reason otherwise,
//! failing under `CI=true`.

use std::io::Write;
use std::time::Duration;

use control::ca::Role;
use proto::control as pb;
use serde_json::Value;
use testkit::docker::TestDocker;
use testkit::hosts::Host;
use testkit::move_lab::{Lab, Mover};
use testkit::{eventually, stderr, stdout};

const MIB: usize = 1 << 20;

fn write_random(path: &std::path::Path, len: usize) -> Vec<u8> {
    let data = testkit::random(len);
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

/// The snapshots of `volume` on `host`, by name.
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

/// The walk of issue 9: a volume visits three hosts and comes back. Every move after the
/// first to a host that held a copy is incremental; afterwards each host holds what the
/// retention rule allows (the owner: exactly its replicas' snapshots; a replica: its own,
/// and no snapshot that is not a replica's), and no staging dataset is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_visits_three_hosts_and_every_move_back_is_incremental() {
    let Some(lab) = Lab::start(1, 3, None).await else {
        return;
    };
    lab.create("tour", 0).await;
    let big = write_random(&lab.hosts[0].path("tour").join("big"), 8 * MIB);
    let mut sent = Vec::new();
    for (step, to) in [1, 2, 0, 1, 2].into_iter().enumerate() {
        let events = lab.move_ok("tour", to);
        sent.push(bytes_sent(&events));
        let host = &lab.hosts[to];
        eventually(
            Duration::from_secs(20),
            "the new owner to mount",
            || async { (host.mounted("tour") == Some(false)).then_some(()) },
        )
        .await;
        assert_eq!(std::fs::read(host.path("tour").join("big")).unwrap(), big);
        let note = format!("step {step} on {}\n", host.name);
        std::fs::write(host.path("tour").join("note"), &note).unwrap();
        let v = lab.volume("tour");
        assert_eq!(v["owner"], host.name.as_str(), "{v}");
        let replicas = v["replicas"].as_array().unwrap();
        let mut pinned: Vec<String> = replicas
            .iter()
            .map(|r| r["snapshot"].as_str().unwrap().to_owned())
            .collect();
        pinned.sort();
        eventually(
            Duration::from_secs(20),
            "the retention rule to hold",
            || async {
                let owner_ok = snapshots_on(host, "tour") == pinned;
                let replicas_ok = replicas.iter().all(|r| {
                    let h = lab.hosts.iter().find(|h| h.name == r["node"]).unwrap();
                    let held = snapshots_on(h, "tour");
                    let own = r["snapshot"].as_str().unwrap().to_owned();
                    held.contains(&own) && held.iter().all(|s| pinned.contains(s))
                });
                let no_staging = lab.hosts.iter().all(|h| !h.pool.datasets().contains(':'));
                (owner_ok && replicas_ok && no_staging).then_some(())
            },
        )
        .await;
    }
    eprintln!("bytes sent per move a>b>c>a>b>c: {sent:?}");
    // a>b and b>c are full (no copy there); c>a, a>b and b>c go to replica holders.
    for (i, bytes) in sent.iter().enumerate().skip(2) {
        assert!(
            bytes * 10 < sent[0],
            "move {i} to a replica holder must be incremental: {bytes} vs {} in full",
            sent[0]
        );
    }
    // `volume rm` destroys the copy on the owner and on every replica holder.
    let rm = lab.ctl(&["volume", "rm", "tour"]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    eventually(
        Duration::from_secs(20),
        "every copy to be destroyed",
        || async {
            lab.hosts
                .iter()
                .all(|h| !h.pool.datasets().contains("/tour"))
                .then_some(())
        },
    )
    .await;
}

/// `volume rm` while a replica holder's agent is down: the copies that can be reached go at
/// once, the name stays taken (naming the node) until the down one's copy is destroyed too,
/// which happens when its agent is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_deleted_while_a_holder_is_down_is_destroyed_there_when_it_is_back() {
    let Some(mut lab) = Lab::start(1, 2, None).await else {
        return;
    };
    lab.create("gone", 0).await;
    write_random(&lab.hosts[0].path("gone").join("data"), MIB);
    lab.move_ok("gone", 1);
    let (a, b) = (0, 1);
    eventually(
        Duration::from_secs(20),
        "host-a to keep a replica",
        || async { (lab.hosts[a].mounted("gone") == Some(true)).then_some(()) },
    )
    .await;
    lab.hosts[a].kill();

    let rm = lab.ctl(&["volume", "rm", "gone"]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    let on = |lab: &Lab, h: usize| lab.hosts[h].pool.datasets().contains("/gone");
    eventually(
        Duration::from_secs(20),
        "host-b's copy to be destroyed",
        || async { (!on(&lab, b)).then_some(()) },
    )
    .await;
    assert!(on(&lab, a), "host-a is down: its copy cannot have gone yet");
    let create = |lab: &Lab| {
        lab.flockerctl(1, &["volume", "create", "gone"])
            .output()
            .unwrap()
    };
    let again = create(&lab);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("host-a") && err.contains("deleted"),
        "re-creating the name while host-a holds the old copy must be refused naming it: {err}"
    );

    let c = &lab.c;
    lab.hosts[a].start(c);
    eventually(
        Duration::from_secs(30),
        "host-a's copy to be destroyed",
        || async { (!on(&lab, a)).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the name to be free again",
        || async { create(&lab).status.success().then_some(()) },
    )
    .await;
    assert!(
        !on(&lab, a) && !on(&lab, b),
        "a new volume starts empty, with no old copy"
    );
    let rm = lab.ctl(&["volume", "rm", "gone"]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
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
        ..Default::default()
    };
    node.acquire_lease(lease.clone()).await.unwrap();

    let path = lab.hosts[0].path("log").join("lines");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let path = path.clone();
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
    eventually(
        Duration::from_secs(10),
        "the writer to be under way",
        || async {
            let lines = std::fs::read_to_string(&path).unwrap_or_default();
            (lines.lines().count() >= 20).then_some(())
        },
    )
    .await;
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
    // The clean-up stayed pending while host-a was down; the leader finishes it now.
    let a = &lab.hosts[0];
    eventually(
        Duration::from_secs(30),
        "the failed move's snapshots to go from host-a",
        || async { (!snapshots_on(a, "big").iter().any(|s| s.starts_with("m1-"))).then_some(()) },
    )
    .await;
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

/// A lab whose first host's agent fronts a private dockerd. Fields drop in order: dockerd
/// with its containers first (they hold the source's mounts), then the lab.
struct DockerLab {
    docker: TestDocker,
    lab: Lab,
}

impl DockerLab {
    /// Hosts `host-a` (with dockerd) and `host-b`, one control member started with `flags`;
    /// `None` (skip) without ZFS or dockerd.
    async fn start(test: &str, flags: &[&str]) -> Option<DockerLab> {
        Self::start_with_send_limit(test, flags, None).await
    }

    /// As [`DockerLab::start`], host-b sending at most `send_limit` bytes a second.
    async fn start_with_send_limit(
        test: &str,
        flags: &[&str],
        send_limit: Option<u64>,
    ) -> Option<DockerLab> {
        let mut a = Host::new("host-a", None)?;
        let b = Host::new("host-b", send_limit)?;
        a.share_volume_root();
        let docker = TestDocker::start(test)?;
        a.docker_socket = Some(docker.socket());
        let lab = Lab::with_hosts_flags(1, vec![a, b], flags).await;
        Some(DockerLab { docker, lab })
    }

    /// `docker ARGS` through host-a's agent (its `flocker` adapter in front of dockerd).
    fn docker(&self, args: &[&str]) -> String {
        let out = self
            .docker
            .cli_at(&self.lab.hosts[0].proxy_socket())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}\nagent log:\n{}",
            stderr(&out),
            self.lab.hosts[0].log()
        );
        stdout(&out)
    }

    /// Runs a container on host-a that holds `volume` at /data, writes `started` there, and on
    /// SIGTERM writes `stopping` and exits 143; waits for its lease.
    async fn run_holder(&self, volume: &str) -> String {
        let script = "trap 'echo stopping >> /data/log; exit 143' TERM; \
                      echo started >> /data/log; \
                      while true; do sleep 1 & wait $!; done";
        let bind = format!("/flocker/{volume}:/data");
        let id = self.docker(&["run", "-d", "-v", &bind, "busybox", "sh", "-c", script]);
        let c = self.lab.c.client(1).await;
        eventually(Duration::from_secs(30), "the container's lease", || {
            let mut c = c.clone();
            let id = id.clone();
            async move {
                let leases = c.list_leases(pb::Empty {}).await.ok()?.into_inner().leases;
                leases
                    .iter()
                    .any(|l| l.volume == volume && l.node == "host-a" && l.container_id == id)
                    .then_some(())
            }
        })
        .await;
        id
    }

    /// `docker inspect` of the container's status and exit code, e.g. `exited 143`.
    fn state(&self, id: &str) -> String {
        let out = self
            .docker
            .cli(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id]);
        stdout(&out)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_with_stop_stops_the_holding_container_and_moves_its_last_writes() {
    let test = "a_move_with_stop_stops_the_holding_container_and_moves_its_last_writes";
    let Some(dl) = DockerLab::start(test, &[]).await else {
        return;
    };
    let lab = &dl.lab;
    lab.create("app", 0).await;
    write_random(&lab.hosts[0].path("app").join("ballast"), 4 * MIB);
    let id = dl.run_holder("app").await;

    let mut m = lab.start_move_with(1, "app", 1, &["--stop"]);
    let events = m.rest();
    m.expect_success(&events);

    // Stopped by SIGTERM (its handler's exit code), and not started again.
    assert_eq!(dl.state(&id), "exited 143", "{}", lab.hosts[0].log());
    let v = lab.volume("app");
    assert_eq!(v["owner"], "host-b", "{v}");
    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("app") == Some(false)).then_some(())
    })
    .await;
    // What the application wrote as it stopped is on the target: the final snapshot was
    // taken after it exited.
    assert_eq!(
        std::fs::read_to_string(b.path("app").join("log")).unwrap(),
        "started\nstopping\n"
    );
    let mut c = lab.c.client(1).await;
    let leases = c
        .list_leases(pb::Empty {})
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert!(leases.is_empty(), "{leases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stop_a_move_of_a_held_volume_fails_naming_the_container_and_node() {
    let test = "without_stop_a_move_of_a_held_volume_fails_naming_the_container_and_node";
    let Some(dl) = DockerLab::start(test, &["--lease-wait=3s"]).await else {
        return;
    };
    let lab = &dl.lab;
    lab.create("busy", 0).await;
    let id = dl.run_holder("busy").await;

    let mut m = lab.start_move(1, "busy", 1);
    let events = m.rest();
    let (ok, err) = m.wait();
    assert!(
        !ok,
        "the move must fail while the container runs: {events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["phase"], "failed", "{events:?}");
    let error = last["error"].as_str().unwrap();
    assert!(
        error.contains(&id) && error.contains("host-a") && err.contains(&id),
        "the error must name the container and its node: {error} / {err}"
    );
    eprintln!("flockerctl said: {}", err.trim());
    // Nothing changed: the container runs on, the source owns its volume at the same epoch.
    assert_eq!(dl.state(&id), "running 0");
    assert_source_untouched(lab, "busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_the_holders_docker_cannot_do_fails_the_move_and_says_what_to_do() {
    let Some(lab) = Lab::start(1, 2, None).await else {
        return;
    };
    lab.create("held", 0).await;
    // A lease taken as host-a's agent would; host-a has no dockerd to stop it with.
    let node_tls = lab.c.pki.tls(Role::Node, "host-a");
    let mut node = lab.c.client_with(1, &node_tls).await;
    let lease = pb::Lease {
        volume: "held".into(),
        node: "host-a".into(),
        container_id: "web1".into(),
        ..Default::default()
    };
    node.acquire_lease(lease).await.unwrap();

    let mut m = lab.start_move_with(1, "held", 1, &["--stop"]);
    let events = m.rest();
    let (ok, err) = m.wait();
    assert!(!ok, "{events:?}");
    assert_eq!(events.last().unwrap()["phase"], "failed", "{events:?}");
    for part in [
        "container web1",
        "node host-a",
        "cannot reach Docker",
        "docker stop",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    eprintln!("flockerctl said: {}", err.trim());
    assert_source_untouched(&lab, "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_ls_shows_the_bytes_the_owner_reports_and_dash_when_it_is_down() {
    let Some(mut lab) = Lab::start(1, 1, None).await else {
        return;
    };
    lab.create("sized", 0).await;
    let before = eventually(Duration::from_secs(20), "a used size", || async {
        lab.used("sized")
    })
    .await;
    let mut f = std::fs::File::create(lab.hosts[0].path("sized").join("data")).unwrap();
    f.write_all(&testkit::random(8 * MIB)).unwrap();
    f.sync_all().unwrap();
    let after = eventually(
        Duration::from_secs(60),
        "the used size to grow by 8 MiB",
        || async { lab.used("sized").filter(|u| *u >= before + 8 * MIB as u64) },
    )
    .await;
    let table = lab.ctl_table(&["volume", "ls"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("USED") && header.contains("SIZE LIMIT"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("sized ")).unwrap();
    assert!(row.contains(" MiB"), "{table}");
    eprintln!("used before {before} B, after writing 8 MiB {after} B\n{table}");

    // The owner's agent is down: the size is unknown, not made up.
    lab.hosts[0].kill();
    assert_eq!(lab.used("sized"), None);
    let table = lab.ctl_table(&["volume", "ls"]);
    let row = table.lines().find(|l| l.starts_with("sized ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    // NAME ID OWNER EPOCH STATE USED SIZE-LIMIT (no replicas)
    assert_eq!(cells[5], "-", "{table}");
}

/// A refused move changed nothing: host-a owns `name` at epoch 1, mounted read-write.
fn assert_source_untouched(lab: &Lab, name: &str) {
    let v = lab.volume(name);
    assert_eq!(
        (v["owner"].as_str(), v["epoch"].as_u64()),
        (Some("host-a"), Some(1)),
        "{v}"
    );
    assert_eq!(
        lab.hosts[0].mounted(name),
        Some(false),
        "{name} still read-write on host-a"
    );
}

/// Work is serialised per volume, not per node: while `docker run -v /flocker/far` on host-a
/// waits for `far` to be moved there (24 MiB at 4 MiB/s), a run of `near`, already on
/// host-a, goes through and ends first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_one_volume_does_not_wait_for_another_volumes_move_here() {
    let test = "unrelated";
    let Some(dl) = DockerLab::start_with_send_limit(test, &[], Some(4 * MIB as u64)).await else {
        return;
    };
    dl.lab.create("far", 1).await;
    write_random(&dl.lab.hosts[1].path("far").join("data"), 24 * MIB);
    dl.lab.create("near", 0).await;

    let mut far = dl
        .docker
        .cli_at(&dl.lab.hosts[0].proxy_socket())
        .args(["run", "--rm", "-v", "/flocker/far:/data", "busybox", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = &dl.lab.hosts[1];
    eventually(
        Duration::from_secs(30),
        "the move of far to start",
        || async { (!snapshots_on(b, "far").is_empty()).then_some(()) },
    )
    .await;
    dl.docker(&[
        "run",
        "--rm",
        "-v",
        "/flocker/near:/data",
        "busybox",
        "true",
    ]);
    assert!(
        far.try_wait().unwrap().is_none(),
        "the run of near ended only after far's move: the agent serialised unrelated volumes"
    );
    let far = far.wait_with_output().unwrap();
    assert!(far.status.success(), "{}", stderr(&far));
    assert_eq!(dl.lab.volume("far")["owner"], "host-a");
}

/// SIGTERM stops an agent cleanly and soon: every part is cancelled, its listeners close
/// and it exits 0 within its shutdown grace, even with a move's stream open to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_an_agent_cleanly_within_its_grace() {
    let Some(mut lab) = Lab::start(1, 2, Some(4 * MIB as u64)).await else {
        return;
    };
    lab.create("term", 0).await;
    write_random(&lab.hosts[0].path("term").join("data"), 24 * MIB);
    let mut m = lab.start_move(1, "term", 1);
    until_bytes(&mut m);
    let target = lab.hosts[1].agent.as_mut().expect("host-b's agent runs");
    let pid = target.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = target.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the agent did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let log = lab.hosts[1].log();
    assert!(log.contains("shutting down"), "{log}");
    let (ok, _) = m.wait();
    assert!(!ok, "the move to a stopped agent must fail");
    assert_eq!(lab.volume("term")["owner"], "host-a");
}
