//! The lab (`demos/lab`) on this machine: two hosts come up with working dockerds that can
//! reach each other, a /flocker volume works through an agent, containers on the two hosts
//! reach each other over the overlay by their `WEAVE_CIDR` addresses (and an address moves
//! with its container), and `down` leaves nothing behind. Needs root, dockerd and zfs-fuse;
//! skipped with a reason otherwise, a failure under CI. Uses the lab's fixed names (node*,
//! labbr, lab*), so it first tears down whatever an earlier run left.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{have, is_root, prerequisite};

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demos/lab")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        // The lab runs the binaries cargo built for these tests, not a release build.
        .env("BIN_DIR", bin_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// Where flocker-agent, flocker-control and flockerctl of this build are.
fn bin_dir() -> PathBuf {
    let control = support::stack::control_bin("flocker-control");
    let dir = control.parent().unwrap().to_owned();
    assert!(
        dir.join("flocker-agent").exists(),
        "flocker-agent is built beside flocker-control"
    );
    dir
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

/// Runs `demos/lab down` when dropped, also when the test panics.
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run(lab_script().to_str().unwrap(), &["down"]);
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

#[test]
fn two_hosts_come_up_reach_each_other_and_go_away() {
    let tools = [
        "dockerd", "docker", "zfs-fuse", "ip", "iptables", "nsenter", "unshare",
    ];
    if !prerequisite(is_root(), "the lab needs root")
        || !prerequisite(
            tools.iter().all(|t| have(t)),
            "the lab needs dockerd, docker, zfs-fuse, iproute2, iptables and util-linux",
        )
    {
        return;
    }
    lab(&["down"]);
    let guard = Lab;
    let up = lab(&["up", "2"]);
    assert!(
        stdout(&up).contains("node2  192.168.77.12"),
        "{}",
        stdout(&up)
    );

    for node in [1, 2] {
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
    // The cluster: both agents joined the control service.
    let nodes = lab(&["ctl", "node", "ls"]);
    for node in ["node1", "node2"] {
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
    the_killer_demo_moves_a_volume_to_where_it_is_used();
    overlay_addresses_reach_across_hosts_and_move();
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

/// Through the agents' proxies (weave adapter, control-service allocation, overlay over the
/// nodes' eth0): a cross-host ping by overlay address, `ip ls`, a refused conflict, and an
/// address that moves from node1 to node2 with its container.
fn overlay_addresses_reach_across_hosts_and_move() {
    let cidr = |last: u8| format!("WEAVE_CIDR=10.255.0.{last}/16");
    docker_ok(
        1,
        &[
            "run",
            "-d",
            "--name",
            "a1",
            "-e",
            &cidr(51),
            "busybox",
            "sleep",
            "300",
        ],
    );
    let ping = ["ping", "-c", "1", "-W", "5", "10.255.0.51"];
    let mut args = vec!["run", "--rm", "-e"];
    let c52 = cidr(52);
    args.extend_from_slice(&[c52.as_str(), "busybox"]);
    args.extend_from_slice(&ping);
    let out = docker_ok(2, &args);
    assert!(
        stdout(&out).contains("1 packets received"),
        "{}",
        stdout(&out)
    );

    let line = ip_line("10.255.0.51").expect("10.255.0.51 is allocated");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (cols[1], cols[3], cols[4]),
        ("a1", "node1", "running"),
        "{line}"
    );

    // The same address on node2 while `a1` runs: refused, naming the holder. (Docker
    // refuses one-letter container names, hence `a1`.)
    let conflict = docker_via_agent(
        2,
        &[
            "run",
            "-d",
            "--name",
            "b1",
            "-e",
            &cidr(51),
            "busybox",
            "sleep",
            "300",
        ],
    );
    assert!(!conflict.status.success(), "{}", stdout(&conflict));
    let message = stderr(&conflict);
    assert!(
        message.contains("\"a1\"") && message.contains("node1"),
        "{message}"
    );
    docker_ok(2, &["rm", "-f", "b1"]);

    // Stop `a1` on node1; once the control service knows, the address can move to node2.
    docker_ok(1, &["stop", "-t", "1", "a1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ip_line("10.255.0.51").is_some_and(|l| l.contains("stopped")) {
        assert!(
            std::time::Instant::now() < deadline,
            "10.255.0.51 not released within 10 s: {:?}",
            ip_line("10.255.0.51")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    docker_ok(
        2,
        &[
            "run",
            "-d",
            "--name",
            "a2",
            "-e",
            &cidr(51),
            "busybox",
            "sleep",
            "300",
        ],
    );
    let line = ip_line("10.255.0.51").expect("10.255.0.51 is allocated");
    assert!(
        line.contains(" a2 ") && line.contains("node2") && line.contains("running"),
        "{line}"
    );
    let c53 = cidr(53);
    let mut args = vec!["run", "--rm", "-e", c53.as_str(), "busybox"];
    args.extend_from_slice(&ping);
    let out = docker_ok(1, &args);
    assert!(
        stdout(&out).contains("1 packets received"),
        "{}",
        stdout(&out)
    );
}

/// `demos/killer-demo`: written on node1, read on node2 through the agents' proxies; the
/// read on node2 moved the volume there, and node1 keeps a read-only replica.
fn the_killer_demo_moves_a_volume_to_where_it_is_used() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demos/killer-demo");
    let demo = run(script.to_str().unwrap(), &["killer"]);
    assert!(
        demo.status.success(),
        "killer demo failed: {}",
        stderr(&demo)
    );
    assert_eq!(stdout(&demo), "fish\n", "{}", stderr(&demo));
    let volumes = stdout(&lab(&["ctl", "volume", "ls"]));
    let row = volumes
        .lines()
        .find(|l| l.starts_with("killer "))
        .unwrap_or_default();
    let fields: Vec<&str> = row.split_whitespace().collect();
    // NAME ID OWNER EPOCH STATE USED SIZE-LIMIT REPLICAS (USED may hold a space)
    assert_eq!(fields.get(2), Some(&"node2"), "{volumes}");
    assert_eq!(
        fields.get(3),
        Some(&"2"),
        "the move bumps the epoch: {volumes}"
    );
    assert_eq!(
        fields.last(),
        Some(&"node1"),
        "node1 keeps a replica: {volumes}"
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
