//! A host that is gone but whose disk is not (issue 12, item 5): node1 owns a volume with two
//! replicas while a writer appends acknowledged lines; node1 is cut off the network and its
//! agent and dockerd are killed (the writer goes on writing into node1's copy); an operator
//! promotes node2's replica; a writer there goes on; node1 comes back. What was lost is
//! exactly what the promotion said (the writes after the replica's snapshot), the stale copy
//! is never used again (set aside, never mounted read-write, its writer stopped), and every
//! write acknowledged after the promotion survives node1's return and a move back to node1.

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{bin_dir, docker, docker_ok, docker_via_agent, lab, stderr, stdout};
use testkit::wait_until;

const VOLUME: &str = "lab-pf";
const OLD_WRITER: &str = "lab-pf-w1";
const NEW_WRITER: &str = "lab-pf-w2";
/// The volume's max lag, in seconds.
const MAX_LAG_S: f64 = 2.0;

/// Appends `N UPTIME` lines to /data/log, numbering on from the file's last line, and
/// prints N once the line is on disk (`sync`): a printed number is an acknowledged write.
const WRITER: &str = "i=$(tail -n 1 /data/log 2>/dev/null | cut -d' ' -f1); i=${i:-0}; \
     while true; do i=$((i+1)); echo \"$i $(cut -d' ' -f1 /proc/uptime)\" >> /data/log; \
     sync; echo $i; sleep 0.05; done";

/// `flockerctl ARGS` against control member `member` (node1's is cut off at times).
fn ctl_via(member: u32, args: &[&str]) -> Output {
    Command::new(bin_dir().join("flockerctl"))
        .args(args)
        .env("FLOCKER_TLS_DIR", "/var/lib/lab/user")
        .env("FLOCKER_CONTROL", format!("192.168.77.1{member}:4523"))
        .output()
        .expect("flockerctl runs")
}

/// `flockerctl --output json volume inspect` through member 2, parsed.
fn inspect() -> serde_json::Value {
    let out = ctl_via(2, &["--output", "json", "volume", "inspect", VOLUME]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The host's uptime in seconds: the clock the writers stamp their lines with.
fn uptime() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// Wall-clock milliseconds `ms` as this host's uptime.
fn as_uptime(ms: u64) -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    ms as f64 / 1000.0 - (now.as_secs_f64() - uptime())
}

/// The numbers a writer acknowledged, from its output on `node`'s dockerd.
fn acked(node: u32, writer: &str) -> Vec<u64> {
    let out = docker(node, &["logs", writer]);
    stdout(&out)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `/data/log` of the volume read by a container on `node`, through its agent (which moves
/// the volume there if it is elsewhere): `(number, stamp)` per line.
fn read_log(node: u32) -> Vec<(u64, f64)> {
    let bind = format!("/flocker/{VOLUME}:/data");
    let out = docker_ok(
        node,
        &["run", "--rm", "-v", &bind, "busybox", "cat", "/data/log"],
    );
    parse(&stdout(&out))
}

fn parse(log: &str) -> Vec<(u64, f64)> {
    log.lines()
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            (n.parse().unwrap(), t.parse().unwrap())
        })
        .collect()
}

/// The lines are numbered 1, 2, 3... with no gap and no repeat: one writer's sequence.
fn assert_one_sequence(lines: &[(u64, f64)], what: &str) {
    for (i, (n, _)) in lines.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1, "{what}: line {} is numbered {n}", i + 1);
    }
}

/// The whole scenario; the lab is up with three hosts and holds no `lab-pf` volume.
pub fn a_host_cut_off_and_killed_is_promoted_past_and_comes_back_fenced() {
    let start = Instant::now();
    let mark = |what: &str| eprintln!("promote: {:>6.1?} {what}", start.elapsed());
    // node1 owns the volume (its first container runs there) with two replicas.
    let bind = format!("/flocker/{VOLUME}:/data");
    docker_ok(
        1,
        &[
            "run", "-d", "--name", OLD_WRITER, "-v", &bind, "busybox", "sh", "-c", WRITER,
        ],
    );
    let set = ctl_via(
        2,
        &[
            "volume",
            "set",
            VOLUME,
            "--replicas",
            "2",
            "--max-lag",
            "2s",
        ],
    );
    assert!(set.status.success(), "{}", stderr(&set));
    wait_until(Duration::from_secs(60), "two fresh replicas", || {
        inspect()["replicas"]
            .as_array()
            .is_some_and(|r| r.iter().filter(|r| r["taken_ms"].is_u64()).count() == 2)
    });
    mark("two fresh replicas");
    // Under the policy for a while: the replicas have been refreshed several times.
    std::thread::sleep(Duration::from_secs(5));

    // node1 is gone: off the network, its agent and dockerd killed; its disk stays, and its
    // container goes on writing into node1's copy.
    let before_death = acked(1, OLD_WRITER);
    lab(&["cut", "1"]);
    let died = uptime();
    lab(&["kill", "agent", "1"]);
    lab(&["kill", "dockerd", "1"]);
    assert!(
        before_death.len() > 20,
        "the writer wrote: {before_death:?}"
    );
    wait_until(Duration::from_secs(60), "node1 marked down", || {
        stdout(&ctl_via(2, &["node", "ls"]))
            .lines()
            .any(|l| l.starts_with("node1 ") && l.contains(" down "))
    });
    mark("node1 marked down");
    // A promotion while the owner is down needs no --force.
    let asked = Instant::now();
    let promoted = ctl_via(2, &["volume", "promote", VOLUME, "--on", "node2"]);
    let promote_took = asked.elapsed();
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    let said = stdout(&promoted);
    assert!(said.contains("node2 promoted by an operator"), "{said}");
    docker_ok(
        2,
        &[
            "run", "-d", "--name", NEW_WRITER, "-v", &bind, "busybox", "sh", "-c", WRITER,
        ],
    );
    wait_until(
        Duration::from_secs(30),
        "the new writer's first write",
        || !acked(2, NEW_WRITER).is_empty(),
    );
    let writing = asked.elapsed();

    mark("a container writes on node2");
    // What the promotion kept is exactly what it said: every write up to the replica's
    // snapshot, within the max lag of the death; and no write of anyone else.
    let v = inspect();
    assert_eq!(v["owner"], "node2", "{v}");
    let promotion = &v["promotions"][0];
    assert_eq!(promotion["from"], "node1", "{v}");
    assert_eq!(promotion["automatic"], false, "{v}");
    let taken = as_uptime(
        promotion["taken_ms"]
            .as_u64()
            .expect("the promoted data's time"),
    );
    std::thread::sleep(Duration::from_secs(3));
    let docker_stop = docker_via_agent(2, &["stop", "-t", "1", NEW_WRITER]);
    assert!(docker_stop.status.success(), "{}", stderr(&docker_stop));
    let new_acked = acked(2, NEW_WRITER);
    let on_node2 = read_log(2);
    assert_one_sequence(&on_node2, "the log on node2");
    let first_new = *new_acked.first().unwrap();
    let kept: Vec<(u64, f64)> = on_node2
        .iter()
        .copied()
        .filter(|(n, _)| *n < first_new)
        .collect();
    let last_kept = kept.last().map_or(0.0, |(_, t)| *t);
    let lost = died - last_kept;
    println!(
        "promote: node1 cut off and killed with two replicas (max lag {MAX_LAG_S} s): \
         `volume promote` took {:.2} s, a container wrote on node2 {:.2} s after it was asked; \
         the promoted data ends {lost:.2} s before the death ({} of {} acknowledged writes \
         before it kept)",
        promote_took.as_secs_f64(),
        writing.as_secs_f64(),
        kept.len(),
        before_death.len()
    );
    assert!(
        last_kept >= taken - 0.5,
        "the promotion said its data is as of {taken:.2} (uptime), but its last write is of {last_kept:.2}"
    );
    assert!(
        lost <= MAX_LAG_S + 1.0,
        "lost the last {lost:.2} s of writes, more than the max lag ({MAX_LAG_S} s) allows"
    );
    assert!(kept.len() > 20, "kept {} lines", kept.len());
    assert!(
        new_acked.iter().all(|n| (*n as usize) <= on_node2.len()),
        "every write acknowledged on node2 is in its log: {new_acked:?} vs {} lines",
        on_node2.len()
    );

    mark("node2's log read");
    // node1 comes back: its killed dockerd's container stops as it starts, its agent finds
    // the volume promoted elsewhere, and its copy is set aside, never mounted read-write.
    lab(&["heal", "1"]);
    lab(&["start", "dockerd", "1"]);
    lab(&["start", "agent", "1"]);
    wait_until(Duration::from_secs(60), "node1 up again", || {
        stdout(&ctl_via(2, &["node", "ls"]))
            .lines()
            .any(|l| l.starts_with("node1 ") && l.contains(" up "))
    });
    mark("node1 up again");
    let ps = stdout(&docker(
        1,
        &["ps", "-q", "--filter", &format!("name={OLD_WRITER}")],
    ));
    assert!(ps.trim().is_empty(), "the stale writer runs again: {ps}");
    wait_until(
        Duration::from_secs(60),
        "node1's copy set aside and replaced by a replica of node2's",
        || {
            let names = stdout(&super::run(
                "zfs",
                &["list", "-H", "-o", "name,readonly,mounted", "-r", "lab1"],
            ));
            let aside = names
                .lines()
                .any(|l| l.starts_with(&format!("lab1/{VOLUME}:diverged-e")));
            let replica = names.lines().any(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f[0] == format!("lab1/{VOLUME}") && (f[1] == "on" || f[2] == "no")
            });
            aside && replica
        },
    );
    mark("node1's copy set aside");
    assert_eq!(
        inspect()["owner"],
        "node2",
        "node1's return changes no owner"
    );

    // Every write acknowledged after the promotion survives a move back to node1, and none
    // of what node1's writer wrote after its replica's snapshot comes back.
    let on_node1 = read_log(1);
    assert_eq!(on_node1, on_node2, "node1 reads exactly node2's log");
    assert_eq!(
        inspect()["owner"],
        "node1",
        "the read moved the volume to node1"
    );
    mark("moved back to node1");
    docker_ok(1, &["rm", "-f", OLD_WRITER]);
    docker_ok(2, &["rm", "-f", NEW_WRITER]);
}
