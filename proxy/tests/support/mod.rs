//! Real parts made small, for the proxy's integration tests: a private dockerd
//! ([`docker::TestDocker`]), a `powerstrip` process ([`powerstrip::Powerstrip`]) and HTTP
//! adapters served from the test ([`adapter::AdapterServer`]).

#![allow(dead_code, missing_docs)]

pub mod adapter;
pub mod docker;
pub mod powerstrip;

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
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    std::process::Command::new("sh")
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A short unique directory under /tmp (unix socket paths must stay under 108 bytes).
pub fn unique_dir(prefix: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
