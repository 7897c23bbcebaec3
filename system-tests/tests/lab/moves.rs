//! Moves that something gets in the way of, in the lab: a writer that keeps writing until
//! the move stops it, the sending agent killed with SIGKILL, the control leader killed. The lab's
//! agents send at most `SEND_LIMIT` bytes a second, so a 48 MiB volume takes a few seconds
//! to copy and the kills land in the middle of it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

use super::volumes::volume_row;
use super::{bin_dir, docker, docker_ok, lab, lab_script, stdout};

/// The agents' send limit in the lab test: 16 MiB/s.
pub const SEND_LIMIT: &str = "16777216";

/// MiB of random data the kill scenarios move: three seconds at `SEND_LIMIT`.
const BLOB_MIB: u32 = 48;

/// Fills `/flocker/NAME/blob` with random data from a container on `node`; its md5.
fn fill(node: u32, name: &str) -> String {
    let bind = format!("/flocker/{name}:/data");
    let script = format!(
        "dd if=/dev/urandom of=/data/blob bs=1M count={BLOB_MIB} 2>/dev/null && md5sum /data/blob"
    );
    let out = docker_ok(
        node,
        &["run", "--rm", "-v", &bind, "busybox", "sh", "-c", &script],
    );
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

/// The md5 of `/flocker/NAME/blob` as a container on `node` sees it.
fn checksum(node: u32, name: &str) -> String {
    let bind = format!("/flocker/{name}:/data");
    let out = docker_ok(
        node,
        &[
            "run",
            "--rm",
            "-v",
            &bind,
            "busybox",
            "md5sum",
            "/data/blob",
        ],
    );
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

/// A running `flockerctl --output json volume move`, asked of control member `via`.
struct Move {
    child: Child,
    events: BufReader<ChildStdout>,
    seen: Vec<Value>,
}

impl Move {
    fn start(via: u64, name: &str, to: u32, options: &[&str]) -> Self {
        let mut child = Command::new(lab_script())
            .env("BIN_DIR", bin_dir())
            .env("FLOCKER_CONTROL", format!("192.168.77.1{via}:4523"))
            .args(["ctl", "--output", "json", "volume", "move", name])
            .args(["--to", &format!("node{to}")])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("demos/lab ctl runs");
        let events = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The next progress event, `None` once the command ended.
    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        if self.events.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let event: Value = serde_json::from_str(&line).expect("an event is JSON");
        self.seen.push(event.clone());
        Some(event)
    }

    /// Reads events until one satisfies `condition`.
    fn until(&mut self, what: &str, condition: impl Fn(&Value) -> bool) {
        while let Some(event) = self.next() {
            if condition(&event) {
                return;
            }
        }
        panic!("the move ended before {what}: {:?}", self.seen);
    }

    /// Reads to the end: whether the command succeeded, the last event's phase, and what
    /// to show when that is not as expected (the events and flockerctl's stderr).
    fn finish(mut self) -> (bool, String, String) {
        while self.next().is_some() {}
        let out = self.child.wait_with_output().expect("flockerctl exits");
        let phase = self
            .seen
            .last()
            .and_then(|e| e["phase"].as_str())
            .unwrap_or_default()
            .to_owned();
        let story = format!("{:?}; {}", self.seen, String::from_utf8_lossy(&out.stderr));
        (out.status.success(), phase, story)
    }
}

fn bytes_flow(event: &Value) -> bool {
    event["bytes_sent"].as_u64().unwrap_or(0) > 0
}

/// A container on node1 appends a line, fsyncs it, then prints that it is written, many
/// times a second, while its volume is copied to node2. `volume move --stop` stops the
/// writer at the handoff; on node2 every line it acknowledged is there.
pub fn a_move_while_a_writer_runs_loses_no_acknowledged_write() {
    let writer = "trap 'exit 0' TERM; i=0; while true; do echo \"line $i\" >> /data/lines && sync /data/lines \
                  && echo \"acked $i\"; i=$((i+1)); sleep 0.02; done";
    docker_ok(
        1,
        &[
            "run",
            "-d",
            "--name",
            "writer",
            "-v",
            "/flocker/writer:/data",
            "busybox",
            "sh",
            "-c",
            writer,
        ],
    );
    let acked = || stdout(&docker(1, &["logs", "writer"])).lines().count();
    testkit::wait_until(
        std::time::Duration::from_secs(20),
        "the writer's first acknowledged lines",
        || acked() >= 20,
    );
    // `--stop`: at the handoff the move stops the writer (SIGTERM, which its trap turns
    // into an exit) instead of waiting for its lease.
    let (ok, phase, events) = Move::start(1, "writer", 2, &["--stop"]).finish();
    assert!(ok && phase == "done", "{events}");
    let state = docker(
        1,
        &[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.ExitCode}}",
            "writer",
        ],
    );
    assert_eq!(
        stdout(&state).trim(),
        "false 0",
        "the move stopped the writer"
    );

    let logs = stdout(&docker(1, &["logs", "writer"]));
    let last: u64 = logs
        .lines()
        .filter_map(|l| l.strip_prefix("acked ")?.parse().ok())
        .max()
        .expect("the writer acknowledged lines");
    let on_node2 = stdout(&docker_ok(
        2,
        &[
            "run",
            "--rm",
            "-v",
            "/flocker/writer:/data",
            "busybox",
            "cat",
            "/data/lines",
        ],
    ));
    let written: std::collections::HashSet<&str> = on_node2.lines().collect();
    for i in 0..=last {
        assert!(
            written.contains(format!("line {i}").as_str()),
            "acknowledged line {i} of {last} lost in the move"
        );
    }
    docker_ok(1, &["rm", "writer"]);
}

/// SIGKILL to node1's agent while it sends: the move fails, node1 still owns the volume
/// with its data; once the agent is back, the same move succeeds and node2 has the data;
/// the move back to node1 is incremental.
pub fn killing_the_sending_agent_fails_the_move_cleanly_and_a_retry_succeeds() {
    let sum = fill(1, "crash");
    let mut mover = Move::start(1, "crash", 2, &[]);
    mover.until("bytes flowed", bytes_flow);
    lab(&["kill", "agent", "1"]);
    let (ok, phase, events) = mover.finish();
    assert!(!ok && phase == "failed", "the move must fail: {events}");
    let row = volume_row("crash");
    assert_eq!(row.get(2).map(String::as_str), Some("node1"), "{row:?}");
    assert_eq!(row.get(3).map(String::as_str), Some("1"), "{row:?}");

    lab(&["start", "agent", "1"]);
    assert_eq!(checksum(1, "crash"), sum, "node1's data after the crash");
    let retry = Move::start(1, "crash", 2, &[]);
    let (ok, phase, events) = retry.finish();
    assert!(ok && phase == "done", "the retry: {events}");
    assert_eq!(checksum(2, "crash"), sum, "node2's data after the retry");

    // node1 kept a read-only replica at the move's final snapshot: the way back sends
    // only what changed since (nothing but metadata), not the 48 MiB again.
    let mut back = Move::start(2, "crash", 1, &[]);
    let sent = std::iter::from_fn(|| back.next())
        .filter_map(|e| e["bytes_sent"].as_u64())
        .max()
        .unwrap_or(0);
    let (ok, phase, events) = back.finish();
    assert!(ok && phase == "done", "the move back: {events}");
    assert!(
        sent < 1 << 20,
        "the move back sent {sent} bytes: not incremental"
    );
    assert_eq!(
        checksum(1, "crash"),
        sum,
        "node1's data after the move back"
    );
}

/// SIGKILL to the control leader while node3 sends a volume to node1 (the move asked of a
/// follower): a new leader takes the move over from the replicated record and finishes it.
pub fn killing_the_control_leader_does_not_stop_a_move() {
    let sum = fill(3, "failover");
    let status: Value = serde_json::from_str(&stdout(&lab(&[
        "ctl", "--output", "json", "cluster", "status",
    ])))
    .unwrap();
    let leader = status["leader"].as_u64().expect("a leader");
    let via = (1..=3).find(|m| *m != leader).unwrap();
    let mut mover = Move::start(via, "failover", 1, &[]);
    mover.until("bytes flowed", bytes_flow);
    lab(&["kill", "member", &leader.to_string()]);
    let (ok, phase, events) = mover.finish();
    assert!(ok && phase == "done", "the move must complete: {events}");
    lab(&["start", "member", &leader.to_string()]);
    assert_eq!(
        checksum(1, "failover"),
        sum,
        "node1's data after the failover"
    );
    let row = volume_row("failover");
    assert_eq!(row.get(2).map(String::as_str), Some("node1"), "{row:?}");
}
