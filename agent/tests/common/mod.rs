//! Helpers shared by the root-only integration tests: real network namespaces made small,
//! removed on drop (also when a test panics), a private dockerd ([`docker`]), two overlay
//! hosts ([`overlay`]) and one host's weave stack ([`weave`]).

#![allow(dead_code)] // each test crate uses a different subset

pub mod docker;
pub mod overlay;
pub mod weave;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when the test may run. Not root (or no `ip`/`nsenter`): skip with a reason, unless
/// `CI=true`, where a missing prerequisite is a failure.
pub fn prerequisites(test: &str) -> bool {
    prerequisites_with(test, &[])
}

/// As [`prerequisites`], also needing the commands `extra`.
pub fn prerequisites_with(test: &str, extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_owned());
    }
    let tools = ["ip", "bridge", "nsenter", "unshare", "ping"];
    for tool in tools.iter().chain(extra) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            missing.push(format!("the `{tool}` command"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{test} needs {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (CI=true: a missing prerequisite is a failure)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// A name unique to this test process and call, short enough for an interface name when
/// `prefix` has at most 4 characters.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 1_000_000)
}

/// Run a command, panicking with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Poll `cond` every 10 ms until it holds or `deadline` passes; returns whether it held.
pub fn poll_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct TestNetns {
    /// The name under /run/netns.
    pub name: String,
}

impl TestNetns {
    /// Make a fresh namespace with `lo` up.
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        // Tolerate a leftover of the same name from a crashed run.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The bind-mounted namespace file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `ip -n NAME ARGS...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command that runs `program` inside this namespace (through `nsenter`, which execs:
    /// the child's PID is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
