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

/// The replicated service of [`with_a_replica_a_task_whose_host_dies_runs_elsewhere`].
const REPLICATED: &str = "labsr";
const REPLICATED_VOLUME: &str = "lab-sr-1";
/// Its policy's max lag, in seconds.
const MAX_LAG_S: f64 = 2.0;

/// The host's uptime, the clock the tasks stamp their writes with.
fn uptime() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// `flockerctl --output json volume inspect NAME`, parsed.
fn inspect(volume: &str) -> serde_json::Value {
    let out = lab(&["ctl", "--output", "json", "volume", "inspect", volume]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Issue 12, item 3: a service's volume with one replica (max lag 2 s) and automatic
/// promotion after 5 s; its host dies (agent and dockerd killed) while the task writes;
/// Swarm's new task elsewhere runs with the replica's data: what it lost is the writes of
/// the last max lag before the death at most, and `volume inspect` records the promotion
/// and what its data is as of. The dead host, back, only holds a diverged, read-only copy.
pub fn with_a_replica_a_task_whose_host_dies_runs_elsewhere() {
    let writer =
        "trap '' TERM; while true; do cut -d' ' -f1 /proc/uptime >> /data/log; sleep 0.05; done";
    service(&[
        "create",
        "-d",
        "--name",
        REPLICATED,
        "--no-resolve-image",
        "--constraint",
        "node.labels.lab==node2",
        "--stop-grace-period",
        STOP_GRACE,
        "--mount",
        "type=volume,source=lab-sr-{{.Task.Slot}},target=/data,volume-driver=flocker",
        "busybox",
        "sh",
        "-c",
        writer,
    ]);
    let old = wait_for_task_on(2, REPLICATED, Duration::from_secs(60));
    wait_until(Duration::from_secs(30), "the task writing", || {
        in_task(2, &old, "cat /data/log 2>/dev/null | wc -l")
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            > 5
    });
    let set = lab(&[
        "ctl",
        "volume",
        "set",
        REPLICATED_VOLUME,
        "--replicas",
        "1",
        "--max-lag",
        "2s",
        "--promote-after",
        "5s",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    wait_until(Duration::from_secs(60), "a fresh replica", || {
        inspect(REPLICATED_VOLUME)["replicas"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["taken_ms"].is_u64()))
    });
    // Run a while under the policy, so the replica has been refreshed several times.
    std::thread::sleep(Duration::from_secs(6));

    lab(&["kill", "agent", "2"]);
    lab(&["kill", "dockerd", "2"]);
    let died = uptime();
    service(&[
        "update",
        "-d",
        "--no-resolve-image",
        "--constraint-rm",
        "node.labels.lab==node2",
        "--constraint-add",
        "node.labels.lab==node3",
        REPLICATED,
    ]);
    let new = wait_for_task_on(3, REPLICATED, Duration::from_secs(120));
    let running = uptime();
    let written = stamps(3, &new);
    let before: Vec<f64> = written.iter().copied().filter(|&t| t <= died).collect();
    let last = before.last().copied().unwrap_or(0.0);
    let lost = died - last;
    println!(
        "swarm: node2 died under a task with one replica (max lag {MAX_LAG_S} s, promote after 5 s): the task ran on node3 {:.1} s later with the writes up to {lost:.2} s before the death",
        running - died
    );
    assert!(
        before.len() > 100,
        "the replica's data: {} lines",
        before.len()
    );
    assert!(
        lost <= MAX_LAG_S + 1.0,
        "lost the last {lost:.2} s of writes, more than the max lag ({MAX_LAG_S} s) allows"
    );
    let v = inspect(REPLICATED_VOLUME);
    let promotion = &v["promotions"][0];
    assert_eq!(promotion["from"], "node2", "{v}");
    assert_eq!(promotion["automatic"], true, "{v}");
    assert!(promotion["taken_ms"].is_u64(), "{v}");
    assert_eq!(v["owner"], "node3", "{v}");

    // node2 is back: its copy is a diverged replica, never the owner's.
    lab(&["start", "dockerd", "2"]);
    lab(&["start", "agent", "2"]);
    wait_until(Duration::from_secs(60), "node2 up again", || {
        stdout(&lab(&["ctl", "node", "ls"]))
            .lines()
            .any(|l| l.starts_with("node2") && l.contains(" up "))
    });
    let v = inspect(REPLICATED_VOLUME);
    assert_eq!(v["owner"], "node3", "{v}");
    let node2 = v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == "node2")
        .cloned();
    assert_eq!(
        node2.map(|r| r["diverged"].clone()),
        Some(serde_json::Value::Bool(true)),
        "{v}"
    );
    assert!(
        stamps(3, &new).len() > written.len(),
        "the task goes on writing on node3"
    );
    service(&["rm", REPLICATED]);
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
