//! Portable volumes in the lab: the killer demo, and a container that takes both its
//! volume and its address to another host.

use std::time::Duration;

use super::network::{fetch, run_with_address, wait_until_free};
use super::{demo, docker, docker_ok, docker_via_agent, ip_line, lab, stderr, stdout};

/// The row of `flockerctl volume ls` for `name`, split into words: NAME ID OWNER EPOCH
/// STATE, then USED and SIZE LIMIT (a size may be two words, `8.1 MiB`), then REPLICAS and
/// HELD BY (`-` when no container holds it).
pub fn volume_row(name: &str) -> Vec<String> {
    let volumes = stdout(&lab(&["ctl", "volume", "ls"]));
    volumes
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `demos/killer-demo`: written on node1, read on node2 through the agents' proxies; the
/// read on node2 moved the volume there, and node1 keeps a read-only replica.
pub fn the_killer_demo_moves_a_volume_to_where_it_is_used() {
    let demo = demo("killer-demo", &["killer"]);
    assert_eq!(stdout(&demo), "fish\n", "{}", stderr(&demo));
    let row = volume_row("killer");
    assert_eq!(row.get(2).map(String::as_str), Some("node2"), "{row:?}");
    assert_eq!(
        row.get(3).map(String::as_str),
        Some("2"),
        "the move bumps the epoch: {row:?}"
    );
    // REPLICAS lists `NODE(AGE)`: the age of the replica's data.
    let replicas = row.get(row.len().saturating_sub(2)).map(String::as_str);
    assert!(
        replicas.is_some_and(|r| r.starts_with("node1(") && r.ends_with("s)")),
        "node1 keeps a replica: {row:?}"
    );
    assert_eq!(
        row.last().map(String::as_str),
        Some("-"),
        "held by nobody: {row:?}"
    );
    // And back: the move back is incremental, and the data is still there.
    let moved = lab(&["ctl", "volume", "move", "killer", "--to", "node1"]);
    assert!(stdout(&moved).contains("done"), "{}", stdout(&moved));
    let read = docker_via_agent(
        1,
        &[
            "run",
            "--rm",
            "-v",
            "/flocker/killer:/data",
            "busybox",
            "cat",
            "/data/file",
        ],
    );
    assert_eq!(stdout(&read), "fish\n", "{}", stderr(&read));
}

/// `pre: [weave, flocker]` on one container: started on node1 with a /flocker volume and a
/// `WEAVE_CIDR` address, it serves its volume's file over the overlay; removed there and
/// started on node2, the same address serves the same data (the volume moved, the address
/// followed), as seen from node3.
pub fn a_container_moves_with_its_volume_and_address() {
    let bind = "/flocker/both:/data";
    let serve = ["httpd", "-f", "-p", "80", "-h", "/data"];
    let first = docker_ok(
        1,
        &[
            "run",
            "--rm",
            "-v",
            bind,
            "busybox",
            "sh",
            "-c",
            "echo written-on-node1 > /data/index.html",
        ],
    );
    assert!(first.status.success());
    run_with_address(1, "fw1", 71, &["-v", bind], &serve);
    assert_eq!(fetch(3, "w3", "10.255.0.71"), "written-on-node1\n");

    docker_ok(1, &["rm", "-f", "fw1"]);
    wait_until_free("10.255.0.71");
    run_with_address(2, "fw2", 71, &["-v", bind], &serve);
    assert_eq!(
        fetch(3, "w3", "10.255.0.71"),
        "written-on-node1\n",
        "the data and the address moved to node2 together"
    );
    let row = volume_row("both");
    assert_eq!(row.get(2).map(String::as_str), Some("node2"), "{row:?}");
    let line = ip_line("10.255.0.71").expect("10.255.0.71 is allocated");
    assert!(
        line.contains(" fw2 ") && line.contains("node2") && line.contains("running"),
        "{line}"
    );
    docker_ok(2, &["rm", "-f", "fw2"]);
}

/// What the flocker adapter refuses, through node1's and node2's agents: names that are
/// not volume names (nothing is created), and a volume a container on another node holds
/// (the error names the container and the node, at once rather than after a wait).
pub fn bad_names_and_volumes_held_elsewhere_are_refused() {
    let long = format!("/flocker/{}:/x", "a".repeat(64));
    for (bad, says) in [
        ("/flocker/../etc:/x", "does not name a flocker volume"),
        ("/flocker/:/x", "must not be empty"),
        (long.as_str(), "at most 63"),
    ] {
        let out = docker_via_agent(1, &["run", "--rm", "-v", bad, "busybox", "true"]);
        assert!(
            !out.status.success() && stderr(&out).contains(says),
            "{bad}: {}",
            stderr(&out)
        );
    }
    let names = stdout(&lab(&["ctl", "volume", "ls"]));
    assert!(!names.contains("etc") && !names.contains("aaaa"), "{names}");

    let holder = docker_ok(
        1,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "-v",
            "/flocker/held:/data",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let id = stdout(&holder).trim()[..12].to_owned();
    let started = std::time::Instant::now();
    let out = docker_via_agent(
        2,
        &[
            "run",
            "--rm",
            "-v",
            "/flocker/held:/data",
            "busybox",
            "true",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&id) && err.contains("node1"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused only after {:?}",
        started.elapsed()
    );
    docker_ok(1, &["rm", "-f", "holder"]);
}

/// The volume plugin on its own, straight to the hosts' dockerds (no adapter): `docker
/// volume create -d flocker`, a `--mount` that writes on node1, and one on node2 that
/// finds the data there (the plugin's Mount moved the volume).
pub fn the_volume_plugin_moves_a_volume_to_where_it_is_mounted() {
    let ok = |node: u32, args: &[&str]| {
        let out = docker(node, args);
        assert!(
            out.status.success(),
            "node{node}: docker {args:?}: {}",
            stderr(&out)
        );
        stdout(&out)
    };
    ok(1, &["volume", "create", "-d", "flocker", "pv"]);
    let mount = "type=volume,src=pv,dst=/data,volume-driver=flocker";
    ok(
        1,
        &[
            "run",
            "--rm",
            "--mount",
            mount,
            "busybox",
            "sh",
            "-c",
            "echo plugged > /data/f",
        ],
    );
    let read = ok(
        2,
        &["run", "--rm", "--mount", mount, "busybox", "cat", "/data/f"],
    );
    assert_eq!(read, "plugged\n");
    let row = volume_row("pv");
    assert_eq!(row.get(2).map(String::as_str), Some("node2"), "{row:?}");
    let listed = ok(3, &["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert!(listed.lines().any(|l| l == "flocker pv"), "{listed}");
}
