//! A child process that cannot outlive its test.

use std::process::Child;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait::poll_until;

/// A child process stopped and reaped when dropped, also when the test panics: killed at
/// once ([`Proc::new`]), or asked to stop first ([`Proc::graceful`]).
pub struct Proc {
    /// The process.
    pub child: Child,
    /// How long it may take to stop after SIGTERM before it is killed; `None`: SIGKILL.
    grace: Option<Duration>,
}

impl Proc {
    /// A process killed (SIGKILL) when dropped: a crash, as far as it can tell.
    pub fn new(child: Child) -> Proc {
        Proc { child, grace: None }
    }

    /// A process sent SIGTERM when dropped, and killed if it has not exited within `grace`.
    pub fn graceful(child: Child, grace: Duration) -> Proc {
        Proc {
            child,
            grace: Some(grace),
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(grace) = self.grace {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let child = &mut self.child;
            if poll_until(grace, || child.try_wait().ok().flatten().is_some()) {
                return;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) process `pid` has used so far; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 12 and 13.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// Resident memory of process `pid`, MiB; 0 when it is gone.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
