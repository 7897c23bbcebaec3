//! The walk's view of the lab: `docker` through a host's agent or straight to its
//! dockerd, `flockerctl` through `demos/lab ctl` (also when it fails), the pools, and
//! waiting until the cluster is whole again.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::model::NODES;
use super::retention::{self, Pool};
use crate::{bin_dir, lab_script, run, stderr, stdout};
use testkit::wait_until;

/// `docker ARGS` through node's agent; the output, also when it fails.
pub fn docker(node: u32, args: &[&str]) -> Output {
    crate::docker_via_agent(node, args)
}

/// `docker ARGS` straight to node's dockerd.
pub fn dockerd(node: u32, args: &[&str]) -> Output {
    crate::docker(node, args)
}

/// The control member `flockerctl` talks to: 1 unless the walk killed it.
static VIA: AtomicU32 = AtomicU32::new(1);

/// Makes `flockerctl` talk to member `k` (the walk kills the others).
pub fn set_via(k: u32) {
    VIA.store(k, Ordering::Relaxed);
}

/// `flockerctl ARGS` against the lab; the output, also when it fails.
pub fn ctl(args: &[&str]) -> Output {
    let via = format!("192.168.77.1{}:4523", VIA.load(Ordering::Relaxed));
    Command::new(lab_script())
        .arg("ctl")
        .args(args)
        .env("BIN_DIR", bin_dir())
        .env("FLOCKER_CONTROL", via)
        .output()
        .expect("demos/lab ctl runs")
}

/// `flockerctl --output json ARGS`, which must succeed within a few tries (a member that
/// just lost its leader answers `unavailable` for a moment); its JSON.
pub fn ctl_json(args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let mut last = String::new();
    for _ in 0..20 {
        let out = ctl(&all);
        if out.status.success() {
            return serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
                panic!("flockerctl {args:?} is not JSON ({e}): {}", stdout(&out))
            });
        }
        last = stderr(&out);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("flockerctl {args:?} kept failing: {last}")
}

/// What node's pool `labK` holds.
pub fn pool(node: u32) -> Pool {
    let name = format!("lab{node}");
    let out = run(
        "zfs",
        &["list", "-H", "-t", "all", "-o", "name", "-r", &name],
    );
    assert!(out.status.success(), "zfs list {name}: {}", stderr(&out));
    retention::parse_pool(&name, &stdout(&out))
}

/// Every node's pool, by node name.
pub fn pools() -> BTreeMap<String, Pool> {
    NODES
        .iter()
        .map(|k| (format!("node{k}"), pool(*k)))
        .collect()
}

/// The ids of the containers running on node, straight from its dockerd.
pub fn running_ids(node: u32) -> BTreeSet<String> {
    let out = dockerd(node, &["ps", "-q", "--no-trunc"]);
    assert!(
        out.status.success(),
        "docker ps on node{node}: {}",
        stderr(&out)
    );
    stdout(&out).lines().map(str::to_owned).collect()
}

/// The read-write mounts of pool datasets, as (node, volume, mountpoint), from /proc/mounts
/// (zfs-fuse mounts in the root namespace, which every host's mount namespace receives).
/// zfs-fuse shows a read-only dataset's mount as `rw` too: only a write tells them apart.
pub fn rw_mounts() -> BTreeSet<(u32, String, String)> {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    let mut out = BTreeSet::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [source, target, _, options, ..] = fields[..] else {
            continue;
        };
        let Some((pool, volume)) = source.split_once('/') else {
            continue;
        };
        let Some(node) = pool.strip_prefix("lab").and_then(|k| k.parse().ok()) else {
            continue;
        };
        if options.split(',').any(|o| o == "rw") {
            out.insert((node, volume.to_owned(), target.to_owned()));
        }
    }
    out
}

/// Lines a writer container acknowledged (`acked N` in its log), from node's dockerd.
pub fn acked(node: u32, name: &str) -> usize {
    let out = dockerd(node, &["logs", name]);
    assert!(
        out.status.success(),
        "docker logs {name} on node{node}: {}",
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .filter(|l| l.starts_with("acked "))
        .count()
}

/// Waits until every control member is up with a leader among them and every node's agent
/// is up in `node ls`: what the walk needs before its next step.
pub fn wait_until_whole() {
    wait_until(
        Duration::from_secs(60),
        "the cluster to be whole again",
        || {
            let status = ctl(&["--output", "json", "cluster", "status"]);
            let nodes = ctl(&["--output", "json", "node", "ls"]);
            if !status.status.success() || !nodes.status.success() {
                return false;
            }
            let status: Value = serde_json::from_str(&stdout(&status)).unwrap_or_default();
            let nodes: Value = serde_json::from_str(&stdout(&nodes)).unwrap_or_default();
            let members_up = status["members"]
                .as_array()
                .is_some_and(|ms| ms.len() == 3 && ms.iter().all(|m| m["up"] == true));
            let agents_up = nodes
                .as_array()
                .is_some_and(|ns| ns.iter().filter(|n| n["up"] == true).count() == NODES.len());
            members_up && status["leader"].is_u64() && agents_up
        },
    );
}

/// Now, in wall-clock milliseconds (the clock the control service's times are in).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The control leader's member id.
pub fn leader() -> u64 {
    ctl_json(&["cluster", "status"])["leader"]
        .as_u64()
        .expect("a leader")
}

/// The leader's member id, if the member asked knows one now.
pub fn leader_or_none() -> Option<u64> {
    let out = ctl(&["--output", "json", "cluster", "status"]);
    let status: Value = serde_json::from_str(&stdout(&out)).ok()?;
    status["leader"].as_u64()
}
