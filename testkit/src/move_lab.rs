//! A control cluster with agent hosts, driven through the real `flockerctl`: what the move
//! tests and the move benchmark share.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use proto::control as pb;
use serde_json::Value;

use crate::cluster::{Cluster, Role, flockerctl};
use crate::hosts::Host;
use crate::{binary, eventually};

/// How long any one `flockerctl` call (a whole move included) may take, by default.
pub const MOVE_DEADLINE: Duration = Duration::from_secs(90);

/// A control cluster and agent hosts `host-a`, `host-b`, ...
pub struct Lab {
    /// How long any one `flockerctl` call (a whole move included) may take.
    pub deadline: Duration,
    /// The agent hosts.
    pub hosts: Vec<Host>,
    /// The control members.
    pub c: Cluster,
}

impl Lab {
    /// `members` control members and `n` hosts, or `None` (skip) without ZFS.
    pub async fn start(members: usize, n: usize, send_limit: Option<u64>) -> Option<Lab> {
        let mut hosts = Vec::new();
        for i in 0..n {
            let name = format!("host-{}", (b'a' + i as u8) as char);
            hosts.push(Host::new(&name, send_limit)?);
        }
        Some(Self::with_hosts(members, hosts).await)
    }

    /// As [`Lab::start`] without a send limit, each control member started with `flags`.
    pub async fn start_with_flags(members: usize, n: usize, flags: &[&str]) -> Option<Lab> {
        let mut hosts = Vec::new();
        for i in 0..n {
            let name = format!("host-{}", (b'a' + i as u8) as char);
            hosts.push(Host::new(&name, None)?);
        }
        Some(Self::with_hosts_flags(members, hosts, flags).await)
    }

    /// `members` control members and the given hosts, started.
    pub async fn with_hosts(members: usize, hosts: Vec<Host>) -> Lab {
        Self::with_hosts_flags(members, hosts, &[]).await
    }

    /// As [`Lab::with_hosts`], each control member started with `flags`.
    pub async fn with_hosts_flags(members: usize, mut hosts: Vec<Host>, flags: &[&str]) -> Lab {
        let c = Cluster::start(members, flags);
        c.leader(1).await;
        for h in &mut hosts {
            h.start(&c);
        }
        let lab = Lab {
            deadline: MOVE_DEADLINE,
            hosts,
            c,
        };
        for h in &lab.hosts {
            lab.wait_node_up(&h.name).await;
        }
        lab
    }

    /// Waits until node `name` is registered and up and, for one of this lab's hosts, its
    /// agent accepts connections (a restarted agent's node can still be up from before).
    pub async fn wait_node_up(&self, name: &str) {
        let c = self.c.client(1).await;
        let port = self.hosts.iter().find(|h| h.name == name).map(|h| h.port);
        eventually(Duration::from_secs(30), "agent to register", || {
            let mut c = c.clone();
            async move {
                let nodes = c.list_nodes(pb::Empty {}).await.ok()?.into_inner().nodes;
                let listening =
                    port.is_none_or(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok());
                (listening && nodes.iter().any(|n| n.name == name && n.up)).then_some(())
            }
        })
        .await;
    }

    /// `flockerctl --output json ARGS` through member `via`, killed after `self.deadline`
    /// so a move that never ends fails the test instead of hanging it.
    pub fn flockerctl(&self, via: u64, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", &self.deadline.as_secs().to_string()])
            .arg(binary("flockerctl"))
            .args(["--control", &self.c.addr(via), "--tls-dir"])
            .arg(self.c.pki.issue(Role::User, "admin"))
            .args(["--output", "json"])
            .args(args);
        cmd
    }

    /// `flockerctl ARGS` (human output) through member 1; panics unless it succeeds.
    pub fn ctl_table(&self, args: &[&str]) -> String {
        let out = flockerctl(&self.c, args);
        assert!(
            out.status.success(),
            "flockerctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `flockerctl --output json ARGS` through member 1; panics unless it succeeds.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let out = self.flockerctl(1, args).output().unwrap();
        assert!(
            out.status.success(),
            "flockerctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Creates `name` on `owner` and waits for its owner's agent to mount it read-write.
    pub async fn create(&self, name: &str, owner: usize) {
        self.ctl(&["volume", "create", name, "--owner", &self.hosts[owner].name]);
        let h = &self.hosts[owner];
        eventually(
            Duration::from_secs(30),
            "the owner to mount the volume",
            || async { (h.mounted(name) == Some(false)).then_some(()) },
        )
        .await;
    }

    /// Starts `flockerctl volume move` through member `via`; events arrive on the reader.
    pub fn start_move(&self, via: u64, name: &str, to: usize) -> Mover {
        self.start_move_with(via, name, to, &[])
    }

    /// As [`Lab::start_move`], with more flags (`--stop`).
    pub fn start_move_with(&self, via: u64, name: &str, to: usize, flags: &[&str]) -> Mover {
        let mut args = vec!["volume", "move", name, "--to", &self.hosts[to].name];
        args.extend_from_slice(flags);
        let mut child = self
            .flockerctl(via, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Mover { child, out }
    }

    /// Moves and returns every progress event; panics unless the move is done.
    pub fn move_ok(&self, name: &str, to: usize) -> Vec<Value> {
        let mut m = self.start_move(1, name, to);
        let events = m.rest();
        m.expect_success(&events);
        events
    }

    /// What `volume ls --output json` says `name` uses (`None`: unknown, shown as `-`).
    pub fn used(&self, name: &str) -> Option<u64> {
        let out = self.ctl(&["volume", "ls"]);
        let all: Value = serde_json::from_slice(&out.stdout).unwrap();
        let v = all
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name} not listed: {all}"));
        v["used_bytes"].as_u64()
    }

    /// `volume inspect NAME`, parsed.
    pub fn volume(&self, name: &str) -> Value {
        let out = self.ctl(&["volume", "inspect", name]);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A running `flockerctl volume move`.
pub struct Mover {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Mover {
    /// The next progress event (`None`: the output ended).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        (self.out.read_line(&mut line).unwrap() > 0).then(|| serde_json::from_str(&line).unwrap())
    }

    /// Every event still to come.
    pub fn rest(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.next()).collect()
    }

    /// Waits for it to exit: whether it succeeded, and its stderr.
    pub fn wait(&mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status.success(), err)
    }

    /// Panics unless it succeeded with `events` ending in `done`.
    pub fn expect_success(&mut self, events: &[Value]) {
        let (ok, err) = self.wait();
        assert!(ok, "move failed: {err}; events {events:?}");
        assert_eq!(events.last().unwrap()["phase"], "done", "{events:?}");
    }
}
