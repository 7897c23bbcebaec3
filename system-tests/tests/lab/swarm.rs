//! Swarm mode on the lab (docs/swarm.md): a Swarm made of the hosts' dockerds through their
//! agents, a service with a flocker volume and a per-slot `WEAVE_CIDR` rescheduled from
//! host to host by the Swarm itself, and a host that dies under its task.

use std::time::{Duration, Instant};

use testkit::wait::{poll_until, wait_until};

use super::volumes::volume_row;
use super::{docker, docker_ok, ip_line, lab, stderr, stdout};

/// The service every step below moves: one task, its volume `lab-sw-1`, its address
/// `10.255.0.31`, a 64 MiB blob written once and then a line of the host's uptime every
/// 50 ms. It ignores SIGTERM, so Swarm stops the old task only after the stop grace: the
/// window in which the new node copies the volume.
const SERVICE: &str = "labsw";
const VOLUME: &str = "lab-sw-1";
const ADDRESS: &str = "10.255.0.31";
const BLOB_MIB: u64 = 64;
const STOP_GRACE: &str = "4s";

/// The same bytes a second as the lab's agents send at most (`moves::SEND_LIMIT`).
const SEND_LIMIT_MIB_PER_S: u64 = 16;

/// `docker service ...` through node1's agent (the manager).
fn service(args: &[&str]) -> std::process::Output {
    let mut all = vec!["service"];
    all.extend_from_slice(args);
    docker_ok(1, &all)
}

/// The id of the running container of `service` on `node`, if any.
fn task_container(node: u32, service: &str) -> Option<String> {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let ps = docker(node, &["ps", "-q", "--filter", &label]);
    stdout(&ps).lines().next().map(str::to_owned)
}

/// Runs `command` in the task's container on `node`.
fn in_task(node: u32, container: &str, command: &str) -> String {
    let out = docker(node, &["exec", container, "sh", "-c", command]);
    assert!(
        out.status.success(),
        "node{node}: {command}: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// Waits until `service`'s task runs on `node` (and no longer on the others); its container.
fn wait_for_task_on(node: u32, service: &str, within: Duration) -> String {
    let mut found = None;
    let placed = poll_until(within, || {
        found = task_container(node, service);
        found.is_some()
            && [1, 2, 3]
                .iter()
                .all(|&k| k == node || task_container(k, service).is_none())
    });
    let ps = stdout(&docker_ok(1, &["service", "ps", "--no-trunc", service]));
    assert!(
        placed,
        "{service}'s task runs on node{node} within {within:?}:\n{ps}"
    );
    found.unwrap()
}

/// The uptime stamps the task wrote, in order.
fn stamps(node: u32, container: &str) -> Vec<f64> {
    in_task(node, container, "cat /data/log")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The longest pause between two writes, and the stamp of the first write after it.
fn longest_pause(stamps: &[f64]) -> (f64, f64) {
    stamps
        .windows(2)
        .map(|w| (w[1] - w[0], w[1]))
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

/// `docker swarm` on a lab just brought up: every node in, the driver schedulable, also
/// on a node whose dockerd has just restarted.
pub fn a_swarm_of_the_hosts_schedules_flocker_services_at_once() {
    let out = lab(&["swarm"]);
    assert!(
        stdout(&out).lines().filter(|l| l.contains("Ready")).count() == 3,
        "{}",
        stdout(&out)
    );
    // A restarted dockerd forgets its plugins; the agent registers the driver again, so a
    // service created at once does not sit "missing plugin" (Swarm refreshes a node's
    // description every 20 s at most).
    lab(&["kill", "dockerd", "2", "TERM"]);
    lab(&["start", "dockerd", "2"]);
    let started = Instant::now();
    service(&[
        "create",
        "-d",
        "--name",
        "labsw-fresh",
        "--no-resolve-image",
        "--constraint",
        "node.labels.lab==node2",
        "--mount",
        "type=volume,source=lab-sw-fresh,target=/data,volume-driver=flocker",
        "busybox",
        "sleep",
        "600",
    ]);
    wait_for_task_on(2, "labsw-fresh", Duration::from_secs(60));
    println!(
        "swarm: a task with a flocker volume ran {:.1} s after its node's dockerd restarted",
        started.elapsed().as_secs_f64()
    );
    service(&["rm", "labsw-fresh"]);
}

/// A rescheduled task takes its data and its address to its new node; the copy runs while
/// the old task still runs, so the pause in its writes is the handoff, not the copy; a
/// client on a third host reaches the address again within a second of the new task's
/// first write. Then its node dies: the task rescheduled elsewhere fails at once, saying
/// why, and runs with its data when the node is back.
pub fn a_rescheduled_task_takes_its_data_and_address_and_a_dead_host_is_named() {
    // A client on node1 pings the task's address every 100 ms, stamping each answer with
    // the host's uptime (one clock for every container).
    docker_ok(1, &["rm", "-f", "lab-sw-client"]);
    docker_ok(
        1,
        &[
            "run",
            "-d",
            "--name",
            "lab-sw-client",
            "-e",
            "WEAVE_CIDR=10.255.0.90/16",
            "busybox",
            "sh",
            "-c",
            &format!(
                "ping -i 0.1 {ADDRESS} | while read -r reply; do case $reply in *'bytes from'*) \
                 cut -d' ' -f1 /proc/uptime >> /tmp/answers;; esac; done"
            ),
        ],
    );
    let writer = format!(
        "trap '' TERM; [ -f /data/blob ] || head -c {} /dev/urandom > /data/blob; \
         while true; do cut -d' ' -f1 /proc/uptime >> /data/log; sleep 0.05; done",
        BLOB_MIB << 20
    );
    service(&[
        "create",
        "-d",
        "--name",
        SERVICE,
        "--no-resolve-image",
        "--constraint",
        "node.labels.lab==node2",
        "--stop-grace-period",
        STOP_GRACE,
        "--mount",
        "type=volume,source=lab-sw-{{.Task.Slot}},target=/data,volume-driver=flocker",
        "-e",
        "WEAVE_CIDR=10.255.0.3{{.Task.Slot}}/16",
        "busybox",
        "sh",
        "-c",
        &writer,
    ]);
    let old = wait_for_task_on(2, SERVICE, Duration::from_secs(60));
    wait_until(
        Duration::from_secs(60),
        "the blob written and the log going",
        || {
            in_task(2, &old, "cat /data/log 2>/dev/null | wc -l")
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                > 5
        },
    );
    let blob = in_task(2, &old, "md5sum /data/blob");
    wait_until(
        Duration::from_secs(10),
        "node1's client reaches the task",
        || {
            stdout(&docker(
                1,
                &["exec", "lab-sw-client", "cat", "/tmp/answers"],
            ))
            .lines()
            .count()
                > 0
        },
    );

    // Swarm moves the task to node3.
    service(&[
        "update",
        "-d",
        "--no-resolve-image",
        "--constraint-rm",
        "node.labels.lab==node2",
        "--constraint-add",
        "node.labels.lab==node3",
        SERVICE,
    ]);
    let new = wait_for_task_on(3, SERVICE, Duration::from_secs(90));
    let row = volume_row(VOLUME);
    assert_eq!(row.get(2).map(String::as_str), Some("node3"), "{row:?}");
    assert_eq!(
        in_task(3, &new, "md5sum /data/blob"),
        blob,
        "the blob moved intact"
    );
    let address = in_task(3, &new, "ip -4 addr show ethwe");
    assert!(address.contains(&format!("{ADDRESS}/16")), "{address}");
    let line = ip_line(ADDRESS).unwrap_or_default();
    assert!(line.contains("node3") && line.contains("running"), "{line}");
    // The old task wrote until Swarm killed it; the new one goes on in the same file.
    let written = stamps(3, &new);
    assert!(
        written.windows(2).all(|w| w[0] <= w[1]),
        "one log, in order"
    );
    let (pause, resumed) = longest_pause(&written);
    let full_copy = (BLOB_MIB / SEND_LIMIT_MIB_PER_S) as f64;
    println!(
        "swarm: reschedule node2 -> node3 of a {BLOB_MIB} MiB volume: writes paused {pause:.2} s \
         (copying it alone takes {full_copy:.0} s at the lab's send limit)"
    );
    assert!(
        pause < full_copy,
        "the writes paused {pause:.2} s, as long as a full copy ({full_copy} s): the copy did not run before the old task stopped"
    );
    wait_until(
        Duration::from_secs(10),
        "node1's client reaches the moved task",
        || stamps_after(resumed).is_some(),
    );
    let reached = stamps_after(resumed).unwrap();
    println!(
        "swarm: node1's client reached {ADDRESS} {:.2} s after the new task's first write",
        reached - resumed
    );
    assert!(
        reached - resumed <= 1.0,
        "reached {:.2} s after the first write",
        reached - resumed
    );

    // node3 dies (agent and dockerd killed; its disk stays).
    lab(&["kill", "agent", "3"]);
    lab(&["kill", "dockerd", "3"]);
    wait_until(
        Duration::from_secs(60),
        "the control service marks node3 down",
        || {
            stdout(&lab(&["ctl", "node", "ls"]))
                .lines()
                .any(|l| l.starts_with("node3") && l.contains(" down "))
        },
    );
    let line = ip_line(ADDRESS).unwrap_or_default();
    assert!(
        line.contains("stopped"),
        "a down node's address is released for the rescheduled task: {line}"
    );
    service(&[
        "update",
        "-d",
        "--no-resolve-image",
        "--constraint-rm",
        "node.labels.lab==node3",
        "--constraint-add",
        "node.labels.lab==node2",
        SERVICE,
    ]);
    let mut ps = String::new();
    let named = poll_until(Duration::from_secs(30), || {
        ps = stdout(&docker_ok(1, &["service", "ps", "--no-trunc", SERVICE]));
        ps.contains(&format!(
            "volume \"{VOLUME}\" is on node \"node3\", which is down"
        ))
    });
    assert!(
        named,
        "the mount on node2 fails naming the down owner:\n{ps}"
    );
    // node3 is back: the next attempt moves the volume to node2.
    lab(&["start", "dockerd", "3"]);
    lab(&["start", "agent", "3"]);
    let back = wait_for_task_on(2, SERVICE, Duration::from_secs(90));
    assert_eq!(in_task(2, &back, "md5sum /data/blob"), blob);
    assert!(stamps(2, &back).len() >= written.len(), "no write lost");
    assert!(in_task(2, &back, "ip -4 addr show ethwe").contains(ADDRESS));
    service(&["rm", SERVICE]);
    docker_ok(1, &["rm", "-f", "lab-sw-client"]);
}

/// The first answer node1's client got after `stamp`, if any.
fn stamps_after(stamp: f64) -> Option<f64> {
    let answers = stdout(&docker(
        1,
        &["exec", "lab-sw-client", "cat", "/tmp/answers"],
    ));
    answers
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .find(|&t| t >= stamp)
}
