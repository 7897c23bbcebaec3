//! The overlay in the lab: addresses from `WEAVE_CIDR` reach across hosts, conflict, move
//! with their container (and are reached from a third host at once), and serve the talk's
//! fig example under docker-compose.

use std::time::{Duration, Instant};

use super::{demo, docker, docker_ok, docker_via_agent, ip_line, stderr, stdout};
use testkit::wait_until;

/// `WEAVE_CIDR=10.255.0.LAST/16`, an address in the lab's overlay.
pub fn cidr(last: u8) -> String {
    format!("WEAVE_CIDR=10.255.0.{last}/16")
}

/// Starts `name` on `node` through its agent with the overlay address `10.255.0.LAST`,
/// `options` for `docker run` and busybox running `command`.
pub fn run_with_address(node: u32, name: &str, last: u8, options: &[&str], command: &[&str]) {
    let env = cidr(last);
    let mut args = vec!["run", "-d", "--name", name, "-e", env.as_str()];
    args.extend_from_slice(options);
    args.push("busybox");
    args.extend_from_slice(command);
    docker_ok(node, &args);
}

/// `docker exec` on `node`'s dockerd itself (not through the agent): what runs inside a
/// container, unchanged by any adapter.
pub fn exec(node: u32, container: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec", container];
    args.extend_from_slice(command);
    docker(node, &args)
}

/// One ping from `container` on `node` to `address`, waiting at most `wait_seconds` for
/// the reply.
pub fn pings(node: u32, container: &str, address: &str, wait_seconds: u32) -> bool {
    let wait = wait_seconds.to_string();
    let out = exec(node, container, &["ping", "-c", "1", "-W", &wait, address]);
    stdout(&out).contains("1 packets received")
}

/// A container started on `node` with the overlay address `10.255.0.LAST` gets an answer
/// from `address` (one ping, 5 s to answer).
fn assert_a_new_container_pings(node: u32, last: u8, address: &str) {
    let env = cidr(last);
    let ping = ["ping", "-c", "1", "-W", "5", address];
    let mut args = vec!["run", "--rm", "-e", env.as_str(), "busybox"];
    args.extend_from_slice(&ping);
    let out = docker_ok(node, &args);
    assert!(
        stdout(&out).contains("1 packets received"),
        "node{node} does not reach {address}: {}",
        stdout(&out)
    );
}

/// Waits until `address` is free to take: its container stopped (the `die` reached the
/// agent and the control service) or was removed (the address released).
pub fn wait_until_free(address: &str) {
    wait_until(
        Duration::from_secs(10),
        &format!("{address} to be released"),
        || ip_line(address).is_none_or(|l| l.contains("stopped")),
    );
}

/// Through the agents' proxies (weave adapter, control-service allocation, overlay over the
/// nodes' eth0): a cross-host ping by overlay address, `ip ls`, a refused conflict, and an
/// address that moves from node1 to node2 with its container, reached from node3 within a
/// second of the new container's start and again after dockerd restarts it.
pub fn overlay_addresses_reach_across_hosts_and_move() {
    run_with_address(1, "a1", 51, &[], &["sleep", "300"]);
    // A watcher on node3 that talks to 10.255.0.51 before and after the move: its ARP
    // cache and node3's VXLAN forwarding table learn a1 on node1 first.
    run_with_address(3, "w3", 54, &[], &["sleep", "300"]);
    assert_a_new_container_pings(2, 52, "10.255.0.51");
    assert!(
        pings(3, "w3", "10.255.0.51", 5),
        "node3 reaches a1 on node1"
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
    let env = cidr(51);
    let conflict = docker_via_agent(
        2,
        &[
            "run", "-d", "--name", "b1", "-e", &env, "busybox", "sleep", "300",
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
    wait_until_free("10.255.0.51");
    run_with_address(2, "a2", 51, &[], &["sleep", "300"]);
    let started = Instant::now();
    // node3 still has a1's MAC for 10.255.0.51 in its caches; the gratuitous ARP from a2's
    // attach replaces it, so the very first ping, allowed one second, is answered.
    let reached = pings(3, "w3", "10.255.0.51", 1);
    let took = started.elapsed();
    assert!(
        reached,
        "node3 did not reach 10.255.0.51 on node2 within a second of its start"
    );
    eprintln!("node3 reached the moved address {took:?} after `docker run` returned");
    let line = ip_line("10.255.0.51").expect("10.255.0.51 is allocated");
    assert!(
        line.contains(" a2 ") && line.contains("node2") && line.contains("running"),
        "{line}"
    );
    assert_a_new_container_pings(1, 53, "10.255.0.51");
    // Restarted by its dockerd itself, not through the agent: the agent sees the events
    // and gives the container its interface and address back.
    let restart = docker(2, &["restart", "-t", "1", "a2"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    // `-w 5`: ping once a second until a reply or 5 s (the restart is asynchronous).
    let after = exec(3, "w3", &["ping", "-c", "1", "-w", "5", "10.255.0.51"]);
    assert!(
        stdout(&after).contains("1 packets received"),
        "a2 keeps 10.255.0.51 across a restart: {}",
        stdout(&after)
    );
    docker_ok(2, &["rm", "-f", "a2"]);
    docker_ok(1, &["rm", "-f", "a1"]);
}

/// `demos/fig-demo`: docker-compose through node1's agent runs the talk's fig example, and
/// the server reaches the api by its `WEAVE_CIDR` address.
pub fn the_fig_example_runs_with_docker_compose() {
    let fig = demo("fig-demo", &["1"]);
    assert!(
        stdout(&fig).contains("hello from the api at 10.255.0.61"),
        "{}{}",
        stdout(&fig),
        stderr(&fig)
    );
    // `down` removed both containers: their addresses are free again.
    for address in ["10.255.0.61", "10.255.0.62"] {
        wait_until(
            Duration::from_secs(10),
            &format!("{address} released after compose down"),
            || ip_line(address).is_none_or(|l| !l.contains("running")),
        );
    }
}

/// What `http://ADDRESS/` serves, fetched by `container` on `node` (asking for about 5 s
/// while the server may still be starting, each try given at most 2 s: busybox wget -T crashes when the connection is refused).
pub fn fetch(node: u32, container: &str, address: &str) -> String {
    let script = format!(
        "for i in $(seq 25); do timeout 2 wget -q -O - http://{address}/ && exit 0; sleep 0.2; done; exit 1"
    );
    let out = exec(node, container, &["sh", "-c", &script]);
    assert!(
        out.status.success(),
        "{container} on node{node} could not fetch http://{address}/: {}",
        stderr(&out)
    );
    stdout(&out)
}
