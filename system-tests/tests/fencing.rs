//! Self-fencing (issue 12): an owner whose agent is alive but cut off from the control
//! service stops taking writes before the cluster may promote a replica, so no write is
//! acknowledged on the old owner after the promotion, and the writes lost are exactly those
//! after the promoted replica's snapshot, within the policy's bound.
//!
//! Real control member and `flocker-agent`s on loopback, each with its own zfs-fuse pool;
//! host-a's agent dials the control service through a relay the test cuts (a partition:
//! the leader still reaches host-a's agent, host-a's agent no longer reaches the control
//! service). A container on host-a (a real dockerd behind host-a's agent) appends numbered
//! lines to the volume, `sync`s, and only then prints the number: each printed line, with
//! Docker's timestamp, is a write acknowledged to its writer. Needs root, zfs-fuse and
//! dockerd: skipped with a reason otherwise, failing under `CI=true`.

use std::time::Duration;

use serde_json::Value;
use testkit::docker::TestDocker;
use testkit::eventually;
use testkit::hosts::Host;
use testkit::move_lab::Lab;
use testkit::relay::Relay;

/// host-a's `--fence-after` (its heartbeat is 300 ms).
const FENCE_AFTER: Duration = Duration::from_millis(1500);
/// The members' `--node-timeout`: after it, host-a is down and its replica may be promoted.
const NODE_TIMEOUT: &str = "3s";
/// The volume's `--max-lag`.
const MAX_LAG_MS: u64 = 2000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The writer's acknowledged lines: (number, Docker's time of the line in ms).
fn acked(docker: &TestDocker, id: &str) -> Vec<(u64, u64)> {
    let out = docker.cli(&["logs", "--timestamps", id]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (at, n) = l.split_once(' ')?;
            let at = humantime::parse_rfc3339(at).ok()?;
            let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
            Some((n.trim().parse().ok()?, ms))
        })
        .collect()
}

fn state(docker: &TestDocker, id: &str) -> String {
    let out = docker.cli(&["inspect", "-f", "{{.State.Status}}", id]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// host-a (whose agent's proxy is in front of a dockerd of the test's, for the writer) and
/// host-b, one control member with the test's node timeout; `None` (skip) without ZFS or
/// dockerd.
async fn docker_lab(test: &str) -> Option<(Lab, TestDocker)> {
    let mut a = Host::new("host-a", None)?;
    let b = Host::new("host-b", None)?;
    a.share_volume_root();
    let docker = TestDocker::start(test)?;
    a.docker_socket = Some(docker.socket());
    let lab = Lab::with_hosts_flags(1, vec![a, b], &["--node-timeout", NODE_TIMEOUT]).await;
    Some((lab, docker))
}

/// Volume `name` owned by host-a with one replica kept within [`MAX_LAG_MS`], mounted.
async fn create_replicated(lab: &Lab, name: &str) {
    let max_lag = format!("{MAX_LAG_MS}ms");
    let created = lab.ctl(&[
        "volume",
        "create",
        name,
        "--owner",
        "host-a",
        "--replicas",
        "1",
        "--max-lag",
        &max_lag,
    ]);
    assert!(created.status.success(), "{created:?}");
    eventually(
        Duration::from_secs(30),
        "a to mount it read-write",
        || async { (lab.hosts[0].mounted(name) == Some(false)).then_some(()) },
    )
    .await;
}

fn node_up(lab: &Lab, name: &str) -> Option<bool> {
    let nodes: Value = serde_json::from_slice(&lab.ctl(&["node", "ls"]).stdout).ok()?;
    nodes
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .and_then(|n| n["up"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_owner_fences_itself_before_its_replica_is_promoted() {
    let test = "a_partitioned_owner_fences_itself_before_its_replica_is_promoted";
    let Some((mut lab, docker)) = docker_lab(test).await else {
        return;
    };
    // host-a's agent dials the control service through a relay the test can cut.
    let relay = Relay::start(&lab.c.addr(1)).await;
    let a = &mut lab.hosts[0];
    a.kill();
    a.controls = Some(vec![relay.addr()]);
    a.env.push((
        "FLOCKER_AGENT_FENCE_AFTER".into(),
        format!("{}ms", FENCE_AFTER.as_millis()).into(),
    ));
    a.start(&lab.c);
    lab.wait_node_up("host-a").await;

    create_replicated(&lab, "fenced").await;
    let script = "i=0; while true; do i=$((i+1)); echo $i >> /data/log && /bin/busybox sync && \
                  echo $i; sleep 0.05; done";
    let out = docker
        .cli_at(&lab.hosts[0].proxy_socket())
        .args([
            "run",
            "-d",
            "-v",
            "/flocker/fenced:/data",
            "busybox",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker run: {out:?}\n{}",
        lab.hosts[0].log()
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // The replica on b holds some of the writes.
    eventually(
        Duration::from_secs(30),
        "b's replica to refresh",
        || async {
            let v = lab.volume("fenced");
            let taken = v["replicas"][0]["taken_ms"].as_u64()?;
            let first = acked(&docker, &id).first()?.1;
            (v["replicas"][0]["node"] == "host-b" && taken > first + 500).then_some(())
        },
    )
    .await;

    // The partition: host-a's agent goes on, but hears nothing from the control service.
    let cut_ms = now_ms();
    relay.cut();
    eventually(
        FENCE_AFTER + Duration::from_secs(5),
        "the writer to be frozen",
        || async { (state(&docker, &id) == "paused").then_some(()) },
    )
    .await;
    let paused_ms = now_ms();
    let log = lab.hosts[0].log();
    assert!(
        log.contains("fenced: the control service has not answered"),
        "{log}"
    );
    let last_ack_ms = acked(&docker, &id).last().unwrap().1;
    eprintln!(
        "frozen within {} ms of the cut; last write acknowledged {} ms after it",
        paused_ms - cut_ms,
        last_ack_ms.saturating_sub(cut_ms)
    );
    assert!(
        last_ack_ms < cut_ms + FENCE_AFTER.as_millis() as u64 + 1000,
        "no write acknowledged after the fence closed"
    );
    // The copy is read-only too (zfs-fuse refuses at least a truncating write).
    assert!(std::fs::write(lab.hosts[0].path("fenced").join("log"), "x").is_err());

    // Only now does the control service see host-a down and allow the promotion.
    eventually(Duration::from_secs(20), "a to be marked down", || async {
        (node_up(&lab, "host-a") == Some(false)).then_some(())
    })
    .await;
    let promote = lab.ctl(&["volume", "promote", "fenced", "--on", "host-b"]);
    assert!(promote.status.success(), "{promote:?}");
    let promoted_ms = now_ms();
    assert!(
        last_ack_ms < promoted_ms,
        "no write acknowledged on the old owner after the promotion"
    );
    let v = lab.volume("fenced");
    let taken_ms = v["promotions"][0]["taken_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("the promotion records its data's time: {v}"));

    // The new owner has every write acknowledged before its snapshot was taken; the ones
    // lost are all later, and the fence bounds how much later.
    let b = &lab.hosts[1];
    eventually(Duration::from_secs(20), "b to mount read-write", || async {
        (b.mounted("fenced") == Some(false)).then_some(())
    })
    .await;
    let kept: Vec<u64> = std::fs::read_to_string(b.path("fenced").join("log"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let acks = acked(&docker, &id);
    let kept_through = kept.last().copied().unwrap_or(0);
    assert_eq!(
        kept,
        (1..=kept_through).collect::<Vec<_>>(),
        "a prefix of the writes"
    );
    for (n, at) in &acks {
        if *at + 50 < taken_ms {
            assert!(
                *n <= kept_through,
                "write {n} acked at {at}, before the snapshot at {taken_ms}, is lost"
            );
        }
    }
    let lost: Vec<&(u64, u64)> = acks.iter().filter(|(n, _)| *n > kept_through).collect();
    let window = last_ack_ms.saturating_sub(taken_ms);
    eprintln!(
        "{} writes acknowledged; the promoted replica has the first {kept_through}; {} lost, acknowledged within {window} ms after its snapshot (max lag {MAX_LAG_MS} ms, fence after {} ms)",
        acks.len(),
        lost.len(),
        FENCE_AFTER.as_millis()
    );
    assert!(
        window <= MAX_LAG_MS + FENCE_AFTER.as_millis() as u64 + 1000,
        "the loss is bounded by the max lag plus the fence: {window} ms"
    );

    // The partition heals: host-a's agent hears the control service again, lifts its fence,
    // finds the volume is no longer its own: its copy stays read-only and the writer, whose
    // volume is now elsewhere, is killed without being thawed.
    relay.heal();
    eventually(Duration::from_secs(30), "a's fence to lift", || async {
        lab.hosts[0].log().contains("fence lifted").then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "the stale writer to be killed",
        || async { (state(&docker, &id) == "exited").then_some(()) },
    )
    .await;
    assert_eq!(
        acked(&docker, &id).last().map(|a| a.0),
        Some(acks.last().unwrap().0),
        "no write acknowledged after the fence, also not after it lifted"
    );
    assert!(
        std::fs::write(lab.hosts[0].path("fenced").join("log"), "stale").is_err(),
        "the old owner's copy never takes writes again"
    );
    std::fs::write(b.path("fenced").join("after"), "on b").unwrap();
}

/// The other way a stale owner can write: its agent died (not cut off), so it never fenced;
/// a container there goes on writing into its copy while the replica is promoted. When the
/// agent comes back it finds the volume owned elsewhere: the copy goes read-only and the
/// container still holding it is killed (and not restarted by its restart policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_old_owner_kills_the_containers_still_holding_the_volume() {
    let test = "a_returning_old_owner_kills_the_containers_still_holding_the_volume";
    let Some((mut lab, docker)) = docker_lab(test).await else {
        return;
    };
    create_replicated(&lab, "stale").await;
    let script = "i=0; while true; do i=$((i+1)); echo $i >> /data/log && \
                  echo $i; sleep 0.05; done";
    let out = docker
        .cli_at(&lab.hosts[0].proxy_socket())
        .args([
            "run",
            "-d",
            "--restart",
            "always",
            "-v",
            "/flocker/stale:/data",
        ])
        .args(["busybox", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker run: {out:?}\n{}",
        lab.hosts[0].log()
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eventually(Duration::from_secs(30), "b's replica", || async {
        let v = lab.volume("stale");
        (v["replicas"][0]["taken_ms"].as_u64().is_some()).then_some(())
    })
    .await;

    // a's agent dies: nothing fences its copy, and the container goes on writing.
    lab.hosts[0].kill();
    eventually(Duration::from_secs(20), "a to be marked down", || async {
        (node_up(&lab, "host-a") == Some(false)).then_some(())
    })
    .await;
    let promote = lab.ctl(&["volume", "promote", "stale", "--on", "host-b"]);
    assert!(promote.status.success(), "{promote:?}");
    assert_eq!(state(&docker, &id), "running", "nothing stopped it yet");

    // The agent is back: it kills the stale holder, which stays down.
    let back = std::time::Instant::now();
    lab.hosts[0].start(&lab.c);
    eventually(
        Duration::from_secs(30),
        "the stale holder to be killed",
        || async { (state(&docker, &id) == "exited").then_some(()) },
    )
    .await;
    eprintln!(
        "the stale holder killed {:.1} s after its agent came back",
        back.elapsed().as_secs_f64()
    );
    let log = lab.hosts[0].log();
    assert!(
        log.contains("a container here holds a volume another node owns"),
        "{log}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state(&docker, &id), "exited", "not restarted by its policy");
    assert!(
        std::fs::write(lab.hosts[0].path("stale").join("log"), "x").is_err(),
        "a's copy is read-only"
    );
}
