//! `flockerctl events`: the real CLI against three real members on loopback. It prints each
//! change once, told from what it changed (a node registered then down after missing its
//! heartbeats, a volume created and deleted, an address claimed, a pool added), leaves out
//! routine changes unless `--all`, and goes on through another member when the one it
//! watched is killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use proto::control as pb;
use serde_json::Value;
use testkit::binary;
use testkit::cluster::{Cluster, Role, flockerctl};

/// A running `flockerctl events --output json`, its lines read on a thread.
struct Events {
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// Its stderr lines that say it watches (one per connection).
    watching: mpsc::Receiver<String>,
    seen: Vec<Value>,
}

impl Events {
    fn start(c: &Cluster, extra: &[&str]) -> Events {
        let members: Vec<String> = (1..=c.ports.len() as u64).map(|id| c.addr(id)).collect();
        let mut child = Command::new(binary("flockerctl"))
            .args(["--control", &members.join(","), "--tls-dir"])
            .arg(c.pki.issue(Role::User, "admin"))
            .args(["--output", "json", "events"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flockerctl runs");
        let err = BufReader::new(child.stderr.take().unwrap());
        let (said, watching) = mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("{line}");
                if line.contains("events: watching") && said.send(line).is_err() {
                    return;
                }
            }
        });
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let events = Events {
            child,
            lines,
            watching,
            seen: Vec::new(),
        };
        events.wait_watching();
        events
    }

    /// Waits until it has listed the state and watches (again, after a reconnection).
    fn wait_watching(&self) {
        self.watching
            .recv_timeout(Duration::from_secs(20))
            .expect("flockerctl events to say it watches within 20 s");
    }

    /// Waits for the line of `kind` `name` whose `what` starts with `what`.
    fn expect(&mut self, kind: &str, name: &str, what: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line["kind"] == kind
                        && line["name"] == name
                        && line["what"].as_str().is_some_and(|w| w.starts_with(what))
                    {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no event {kind} {name} {what:?} within 20 s; seen:\n{}",
                    self.seen
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl_ok(c: &Cluster, args: &[&str]) {
    let out = flockerctl(c, args);
    assert!(
        out.status.success(),
        "flockerctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tells_each_change_once_and_goes_on_through_another_member() {
    let mut c = Cluster::start(3, &["--node-timeout", "1s"]);
    let leader = c.leader(1).await;
    let mut events = Events::start(&c, &[]);
    let mut all = Events::start(&c, &["--all"]);
    ctl_ok(&c, &["ip", "add-pool", "10.231.0.0/24"]);
    events.expect("pool", "10.231.0.0/24", "added (254 addresses)");
    all.expect("pool", "10.231.0.0/24", "added");

    let mut node = c.register_node("n1", "127.0.0.1:4524").await;
    events.expect("node", "n1", "registered at 127.0.0.1:4524");
    // A heartbeat of a node that is up is the leader's soft state: no change, no event.
    node.heartbeat(pb::HeartbeatRequest { name: "n1".into() })
        .await
        .unwrap();
    ctl_ok(&c, &["volume", "create", "evts", "--owner", "n1"]);
    events.expect("volume", "evts", "created (owner n1)");
    node.allocate_ip(pb::AllocateRequest {
        pool: "10.231.0.0/24".into(),
        container_id: "c0ffee0123456789".into(),
        container_name: "web".into(),
        node: "n1".into(),
        dry_run: false,
    })
    .await
    .unwrap();
    let claimed = events.expect("address", "10.231.0.1", "claimed by web on n1");
    assert!(claimed["time_ms"].as_u64().is_some(), "{claimed}");
    // No more heartbeats: the leader declares the node down after --node-timeout (and
    // releases what it held).
    let down = events.expect("node", "n1", "down");
    assert!(down["index"].as_u64() > Some(0), "{down}");
    // A heartbeat brings it back up: a logged change.
    node.heartbeat(pb::HeartbeatRequest { name: "n1".into() })
        .await
        .unwrap();
    events.expect("node", "n1", "up");
    all.expect("node", "n1", "up");

    // The member both watch through (the first listed, member 1) dies; they reconnect to
    // another and go on. Kill a follower if member 1 leads, so writes go on at once.
    let watched = 1;
    c.kill(watched);
    if leader == watched {
        c.leader(2).await;
    }
    events.wait_watching();
    all.wait_watching();
    let after = flockerctl_via(&c, 2, &["volume", "rm", "evts"]);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    events.expect("volume", "evts", "deleted");
    all.expect("volume", "evts", "deleted");

    // Routine changes only with --all: the default stream never printed one; and no
    // heartbeat made a change at all.
    assert!(
        events.seen.iter().all(|l| l["routine"] == false),
        "{:?}",
        events.seen
    );
    assert!(
        all.seen.iter().all(|l| l["what"] != "heartbeat"),
        "{:?}",
        all.seen
    );
}

/// `flockerctl ARGS` through member `id` only.
fn flockerctl_via(c: &Cluster, id: u64, args: &[&str]) -> std::process::Output {
    Command::new(binary("flockerctl"))
        .args(["--control", &c.addr(id), "--tls-dir"])
        .arg(c.pki.issue(Role::User, "admin"))
        .args(args)
        .output()
        .expect("flockerctl runs")
}
