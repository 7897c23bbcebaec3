//! The lab (`demos/lab`) on this machine, three hosts and a 3-member control service, all
//! driven through the hosts' agents as a user's `docker` would: the hosts come up and
//! reach each other, a /flocker volume works and follows its user to another host (the
//! killer demo), containers reach each other across hosts by their `WEAVE_CIDR` addresses
//! and an address moves with its container (seen from a third host within a second), the
//! talk's fig example runs with docker-compose, a container with both a portable volume
//! and a portable address moves with both, moves survive a writer, a killed sending agent
//! and a killed control leader, and `down` leaves nothing behind. Needs root,
//! dockerd, zfs-fuse and docker-compose; skipped with a reason otherwise, a failure under
//! CI. Uses the lab's fixed names (node*, labbr, lab*), so it is one test that first tears
//! down whatever an earlier run left. `ssh` deploys with Terraform onto the lab's SSH mode
//! (a lab of its own names).

mod moves;
mod network;
mod promote;
mod ssh;
mod swarm;
mod volumes;
mod walk;

use std::path::PathBuf;
use std::process::{Command, Output};

use testkit::{have, is_root, prerequisite};

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demos/lab")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        // The lab runs the binaries cargo built for these tests, not a release build, and
        // its agents send slowly enough for a test to act in the middle of a move.
        .env("BIN_DIR", bin_dir())
        .env("LAB_SEND_LIMIT", moves::SEND_LIMIT)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// Where flocker-agent, flocker-control and flockerctl of this build are.
fn bin_dir() -> PathBuf {
    let control = testkit::binary("flocker-control");
    let dir = control.parent().unwrap().to_owned();
    assert!(
        dir.join("flocker-agent").exists(),
        "flocker-agent is built beside flocker-control"
    );
    dir
}

/// Runs `demos/NAME ARGS...`, which must succeed; its output.
fn demo(name: &str, args: &[&str]) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../demos")
        .join(name);
    let out = run(script.to_str().unwrap(), args);
    assert!(
        out.status.success(),
        "demos/{name} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn lab(args: &[&str]) -> Output {
    let out = run(lab_script().to_str().unwrap(), args);
    assert!(
        out.status.success(),
        "demos/lab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `demos/lab down` when dropped, also when the test panics (unless
/// `LAB_KEEP_ON_FAILURE=1`, to look at what failed).
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_logs();
            if std::env::var("LAB_KEEP_ON_FAILURE").is_ok_and(|v| v == "1") {
                eprintln!("LAB_KEEP_ON_FAILURE=1: the lab stays up; `demos/lab down` when done");
                return;
            }
        }
        let _ = run(lab_script().to_str().unwrap(), &["down"]);
    }
}

/// The end of every agent's and control member's log, before `down` deletes them: what a
/// failed run needs to be understood.
fn print_logs() {
    for node in 1..=3 {
        for name in ["agent.log", "control.log"] {
            let path = format!("/var/lib/lab/node{node}/{name}");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("==== {path} (last 40 lines)");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

fn docker(node: u32, args: &[&str]) -> Output {
    let host = format!("unix:///var/lib/lab/node{node}/docker.sock");
    let mut all = vec!["-H", host.as_str()];
    all.extend_from_slice(args);
    run("docker", &all)
}

/// `docker` through node's agent (its Docker proxy with the flocker adapter).
fn docker_via_agent(node: u32, args: &[&str]) -> Output {
    let host = format!("unix:///var/lib/lab/node{node}/flocker.sock");
    let mut all = vec!["-H", host.as_str()];
    all.extend_from_slice(args);
    run("docker", &all)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab's names are fixed: one test at a time holds it.
static LAB_HELD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the lab for this test (also after another test failed holding it).
fn hold_the_lab() -> std::sync::MutexGuard<'static, ()> {
    LAB_HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lab, held by this test, brought up afresh with three hosts and taken down when the
/// guard drops (before the hold is let go: a tuple drops its fields in order); `None` when
/// the lab cannot run here (a failure under CI).
fn three_fresh_hosts() -> Option<(Lab, std::sync::MutexGuard<'static, ()>)> {
    if !lab_possible() {
        return None;
    }
    let held = hold_the_lab();
    lab(&["down"]);
    let guard = Lab;
    lab(&["up", "3"]);
    Some((guard, held))
}

/// Whether the lab can run here: root and the tools (a failure under CI when not).
fn lab_possible() -> bool {
    let tools = [
        "dockerd",
        "docker",
        "docker-compose",
        "zfs-fuse",
        "ip",
        "iptables",
        "nsenter",
        "unshare",
    ];
    prerequisite(is_root(), "the lab needs root")
        && prerequisite(
            tools.iter().all(|t| have(t)),
            "the lab needs dockerd, docker, docker-compose, zfs-fuse, iproute2, iptables and util-linux",
        )
}

#[test]
fn three_hosts_come_up_share_volumes_and_addresses_and_go_away() {
    if !lab_possible() {
        return;
    }
    let _held = hold_the_lab();
    lab(&["down"]);
    let guard = Lab;
    let up = lab(&["up", "3"]);
    assert!(
        stdout(&up).contains("node3  192.168.77.13"),
        "{}",
        stdout(&up)
    );

    for node in [1, 2, 3] {
        let version = docker(node, &["version", "--format", "{{.Server.Version}}"]);
        assert!(version.status.success(), "node{node}'s dockerd answers");
    }
    let ping = run(
        "nsenter",
        &[
            "--net=/run/netns/node1",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "192.168.77.12",
        ],
    );
    assert!(
        ping.status.success(),
        "node1 reaches node2: {}",
        stdout(&ping)
    );
    let hi = docker(2, &["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(
        stdout(&hi).trim(),
        "hi",
        "{}",
        String::from_utf8_lossy(&hi.stderr)
    );
    // The cluster: three members, one leader, and every agent joined.
    let status: serde_json::Value = serde_json::from_str(&stdout(&lab(&[
        "ctl", "--output", "json", "cluster", "status",
    ])))
    .expect("cluster status is JSON");
    let members = status["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{status}");
    assert!(
        members
            .iter()
            .all(|m| m["voter"] == true && m["up"] == true),
        "{status}"
    );
    assert!(status["leader"].is_u64(), "{status}");
    let nodes = lab(&["ctl", "node", "ls"]);
    for node in ["node1", "node2", "node3"] {
        assert!(
            stdout(&nodes)
                .lines()
                .any(|l| l.starts_with(node) && l.contains(" up ")),
            "{}",
            stdout(&nodes)
        );
    }
    // A /flocker volume through node1's agent: created on first use, data kept.
    let write = docker_via_agent(
        1,
        &[
            "run",
            "--rm",
            "-v",
            "/flocker/lab-demo:/data",
            "busybox",
            "sh",
            "-c",
            "echo fish > /data/file",
        ],
    );
    assert!(
        write.status.success(),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    let read = docker_via_agent(
        1,
        &[
            "run",
            "--rm",
            "-v",
            "/flocker/lab-demo:/data",
            "busybox",
            "cat",
            "/data/file",
        ],
    );
    assert_eq!(
        stdout(&read),
        "fish\n",
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let volumes = lab(&["ctl", "volume", "ls"]);
    assert!(
        stdout(&volumes)
            .lines()
            .any(|l| l.starts_with("lab-demo") && l.contains("node1")),
        "{}",
        stdout(&volumes)
    );
    volumes::the_killer_demo_moves_a_volume_to_where_it_is_used();
    network::overlay_addresses_reach_across_hosts_and_move();
    network::the_fig_example_runs_with_docker_compose();
    volumes::a_container_moves_with_its_volume_and_address();
    volumes::bad_names_and_volumes_held_elsewhere_are_refused();
    volumes::the_volume_plugin_moves_a_volume_to_where_it_is_mounted();
    moves::a_move_while_a_writer_runs_loses_no_acknowledged_write();
    moves::killing_the_sending_agent_fails_the_move_cleanly_and_a_retry_succeeds();
    moves::killing_the_control_leader_does_not_stop_a_move();
    // A container left running must not stop `down`.
    let sleeper = docker(1, &["run", "-d", "busybox", "sleep", "1000"]);
    assert!(sleeper.status.success());

    lab(&["down"]);
    drop(guard);
    let netns = stdout(&run("ip", &["netns", "list"]));
    assert!(!netns.lines().any(|l| l.starts_with("node")), "{netns}");
    assert!(!run("ip", &["link", "show", "labbr"]).status.success());
    let links = stdout(&run("ip", &["-o", "link"]));
    assert!(!links.contains("vlab"), "{links}");
    let pools = stdout(&run("zpool", &["list", "-H", "-o", "name"]));
    assert!(!pools.lines().any(|p| p.starts_with("lab")), "{pools}");
    let rule = [
        "-C", "FORWARD", "-i", "labbr", "-o", "labbr", "-j", "ACCEPT",
    ];
    assert!(!run("iptables", &rule).status.success());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains("/var/lib/lab"), "{mounts}");
    let ps = stdout(&run("ps", &["-eo", "args"]));
    assert!(
        !ps.lines()
            .any(|l| l.contains("/var/lib/lab") || l == "sleep 1000"),
        "{ps}"
    );
}

/// Swarm mode on a lab of its own (docs/swarm.md): made through the agents, a service's task
/// rescheduled by Swarm takes its volume (copied while the old task runs) and its address,
/// and a dead host is named by the rescheduled task's error.
#[test]
fn swarm_reschedules_take_data_and_addresses_along() {
    let Some(_lab) = three_fresh_hosts() else {
        return;
    };
    swarm::a_swarm_of_the_hosts_schedules_flocker_services_at_once();
    swarm::a_rescheduled_task_takes_its_data_and_address_and_a_dead_host_is_named();
    swarm::with_a_replica_a_task_whose_host_dies_runs_elsewhere();
}

/// A host cut off the network with its agent and dockerd killed, its volume promoted on
/// another host, then back (`promote`), on a lab of its own.
#[test]
fn a_dead_host_is_promoted_past_and_comes_back_fenced() {
    let Some(_lab) = three_fresh_hosts() else {
        return;
    };
    promote::a_host_cut_off_and_killed_is_promoted_past_and_comes_back_fenced();
}

/// The seeded walk of `walk` on a lab of its own: the fixed seed and a random one, or
/// `LAB_WALK_SEED` alone, `LAB_WALK_STEPS` steps each (see docs/volumes.md). A move waits
/// at most 3 s for a volume's containers, so a refused move is quick.
#[test]
fn walk_keeps_every_invariant() {
    if !lab_possible() {
        return;
    }
    let _held = hold_the_lab();
    lab(&["down"]);
    let _guard = Lab;
    let up = Command::new(lab_script())
        .args(["up", "3"])
        .env("BIN_DIR", bin_dir())
        .env("LAB_SEND_LIMIT", moves::SEND_LIMIT)
        .env("LAB_LEASE_WAIT_MS", "3000")
        .output()
        .expect("demos/lab runs");
    assert!(up.status.success(), "demos/lab up: {}", stderr(&up));
    for seed in walk::seeds() {
        walk::Walk::run(seed, walk::steps());
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `docker` through node's agent, which must succeed.
fn docker_ok(node: u32, args: &[&str]) -> Output {
    let out = docker_via_agent(node, args);
    assert!(
        out.status.success(),
        "node{node}: docker {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The line of `flockerctl ip ls` for `address`, if any.
fn ip_line(address: &str) -> Option<String> {
    let ls = lab(&["ctl", "ip", "ls"]);
    stdout(&ls)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(address))
        .map(str::to_owned)
}
