//! What the workspace's tests and benchmarks share: real parts made small, each stopped and
//! removed when dropped (also when a test panics), and one copy of each small helper.
//!
//! - Whether a test can run here: [`prerequisite`] (skip with a reason, or fail under
//!   `CI=true`), [`is_root`], [`have`].
//! - Waiting: [`wait`] (poll a condition until a deadline, in a thread or a task).
//! - Processes and names: [`Proc`], [`free_port`], [`unique`], [`Scratch`], the workspace's
//!   programs ([`bins`]).
//! - Real parts: a private dockerd ([`docker::TestDocker`]), zfs-fuse pools
//!   ([`pool::TestPool`]), network namespaces ([`netns::TestNetns`]), an OTLP trace
//!   receiver in Python ([`otlp::OtlpReceiver`]), a TCP relay a test can cut (a partition,
//!   [`relay::Relay`]).
//! - The proxy: a `powerstrip` process ([`powerstrip::Powerstrip`]), HTTP adapters
//!   served from the test ([`adapter::AdapterServer`]), one request read off a raw stream
//!   ([`http::read_request`]).
//! - The cluster: a CA and control members as processes ([`cluster`]), hosts running
//!   `flocker-agent` ([`hosts`], [`weave_agent`]), the move lab ([`move_lab`]), one host's
//!   whole stack for the Docker side ([`stack`]).
//! - With the `agent` feature, the helpers that run the agent's own code in the test
//!   process: two overlay hosts (`overlay`) and one host's weave stack (`weave`).

pub mod adapter;
pub mod bins;
pub mod cluster;
pub mod docker;
pub mod hosts;
pub mod http;
pub mod move_lab;
pub mod netns;
pub mod otlp;
#[cfg(feature = "agent")]
pub mod overlay;
pub mod pool;
pub mod powerstrip;
mod proc;
pub mod prometheus;
pub mod relay;
mod scratch;
pub mod stack;
pub mod wait;
#[cfg(feature = "agent")]
pub mod weave;
pub mod weave_agent;

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

pub use bins::binary;
pub use cluster::{Cluster, Pki};
pub use proc::{Proc, cpu_seconds, rss_mib};
pub use scratch::Scratch;
pub use wait::{eventually, poll_until, wait_until};

/// Whether a prerequisite holds. When it does not: under CI (`CI=true` or `CI=1`) the test
/// fails, anywhere else it is skipped with the reason.
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

/// Whether `test` may run: root and each of `tools` on the PATH (see [`prerequisite`]); the
/// reason names everything that is missing.
pub fn root_and_tools(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root".to_owned());
    }
    for tool in tools {
        if !have(tool) {
            missing.push(format!("the `{tool}` command"));
        }
    }
    prerequisite(
        missing.is_empty(),
        &format!("{test} needs {}", missing.join(", ")),
    )
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A name no other test, run or engineer uses at the same time: `prefix`, the pid, a
/// counter. Short enough for an interface name when `prefix` has at most 4 characters.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 1_000_000)
}

/// A new, empty directory `/tmp/<unique(prefix)>` (short: unix socket paths must stay under
/// 108 bytes), left in place; [`Scratch`] removes its directory on drop.
pub fn unique_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory under /tmp");
    dir
}

/// A free loopback port, bound and released. Below the kernel's ephemeral range
/// (32768-60999): a port picked there can be taken again as the source port of some
/// outgoing connection before the server binds it. Each process starts at its own offset.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 600) as u16 * 20;
    loop {
        let port = 20_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `len` random bytes (from /dev/urandom).
pub fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
}

/// Runs `program args...`; panics with its stderr unless it succeeds.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        stderr(&out)
    );
    out
}

/// Runs `program args...` and returns its stdout; panics with its stderr unless it succeeds.
pub fn sh(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(program, args).stdout).into_owned()
}

/// The stdout of a command that must have succeeded, exactly as printed.
pub fn stdout_exact(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stdout of a command that must have succeeded, trimmed.
pub fn stdout(out: &Output) -> String {
    stdout_exact(out).trim().to_owned()
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
