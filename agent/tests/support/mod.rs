//! Real parts made small for the agent's integration tests: a file-backed zpool on zfs-fuse
//! ([`pool::TestPool`]), scratch directories that unmount what they hold
//! ([`scratch::Scratch`]), and the behaviour every storage backend must show
//! ([`behaviour`]), and one host's control member, dockerd and agent ([`stack::Stack`]).
//! The small helpers below are the same as the proxy's test support.

#![allow(dead_code, missing_docs)]

pub mod behaviour;
pub mod plugin_docker;
pub mod pool;
pub mod scratch;
pub mod stack;

use std::process::Command;
use std::time::{Duration, Instant};

/// Whether a prerequisite holds. When it does not: under CI (`CI=true`) the test fails,
/// anywhere else it is skipped with the reason.
pub fn prerequisite(holds: bool, what: &str) -> bool {
    if holds {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("prerequisite missing under CI: {what}");
    }
    eprintln!("skipped: {what}");
    false
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Polls `condition` until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A name no other test, run or engineer uses at the same time: `prefix`, the pid, a counter.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `program args...` and returns its stdout; panics with stderr when it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
