//! Real network namespaces made small: named (`ip netns add`), with `lo` up, deleted on drop
//! (also when a test panics).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};

use nix::sched::{CloneFlags, setns};

use crate::{root_and_tools, run, unique};

/// The commands every namespace test uses.
pub const TOOLS: [&str; 5] = ["ip", "bridge", "nsenter", "unshare", "ping"];

/// True when `test` may run: root and [`TOOLS`]; otherwise skipped with a reason, or a
/// failure under `CI=true` (see [`crate::prerequisite`]).
pub fn prerequisites(test: &str) -> bool {
    prerequisites_with(test, &[])
}

/// As [`prerequisites`], also needing the commands `extra`.
pub fn prerequisites_with(test: &str, extra: &[&str]) -> bool {
    let tools: Vec<&str> = TOOLS.iter().chain(extra).copied().collect();
    root_and_tools(test, &tools)
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct TestNetns {
    /// The name under /run/netns.
    pub name: String,
}

impl TestNetns {
    /// A fresh namespace named after `prefix` (at most 4 characters: see
    /// [`unique`]), with `lo` up.
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

    /// Runs `job` on a thread that has entered this namespace, and returns what it returns:
    /// a socket made there stays in the namespace for its life.
    pub fn run_in<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            setns(&file, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("enter {}: {e}", path.display()));
            job()
        })
        .join()
        .expect("the job in the namespace panicked")
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The IPv4 addresses on `ethwe` in the network namespace of process `pid`, as `ip` prints
/// them (empty when there is no `ethwe`).
pub fn ethwe_of(pid: u32) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-4", "-o", "addr", "show", "dev", "ethwe"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
