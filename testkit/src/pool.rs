//! A file-backed zpool on zfs-fuse with a unique name, destroyed on drop (also on panic).
//! zfs-fuse is started if it is not running (a daemon left running is used as it is); the
//! daemon this process started is stopped when its last pool goes and no pool is left.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::wait::{poll_until, wait_until};
use crate::{have, is_root, prerequisite, sh, unique};

/// Size of each pool's backing file.
const POOL_BYTES: u64 = 256 * 1024 * 1024;

/// Live pools of this process and the zfs-fuse pid this process started, if any.
static DAEMON: Mutex<(usize, Option<u32>)> = Mutex::new((0, None));

/// A zpool of the test's own on a sparse file.
pub struct TestPool {
    name: String,
    image: PathBuf,
}

/// Whether zfs-fuse answers.
fn daemon_answers() -> bool {
    Command::new("zpool")
        .arg("list")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl TestPool {
    /// The root, tool and device checks of every ZFS test.
    pub fn available() -> bool {
        prerequisite(is_root(), "zfs-fuse needs root")
            && prerequisite(
                have("zfs-fuse") && have("zpool") && have("zfs"),
                "zfs-fuse is not installed (apt-get install zfs-fuse)",
            )
            && prerequisite(Path::new("/dev/fuse").exists(), "/dev/fuse is missing")
    }

    /// A new pool, or `None` (skip) where ZFS cannot run; under CI that panics instead.
    pub fn create() -> Option<TestPool> {
        Self::create_sized(POOL_BYTES)
    }

    /// A new pool on a sparse backing file of `bytes` (benchmarks need more than tests).
    pub fn create_sized(bytes: u64) -> Option<TestPool> {
        if !Self::available() {
            return None;
        }
        {
            let mut daemon = DAEMON.lock().unwrap_or_else(|e| e.into_inner());
            if !daemon_answers() {
                let pidfile = std::env::temp_dir().join(format!("{}.pid", unique("zfsfuse")));
                sh("zfs-fuse", &["--pidfile", pidfile.to_str().unwrap()]);
                wait_until(
                    Duration::from_secs(30),
                    "zfs-fuse to answer",
                    daemon_answers,
                );
                let pid = std::fs::read_to_string(&pidfile).expect("zfs-fuse pidfile");
                daemon.1 = Some(pid.trim().parse().expect("a pid"));
                let _ = std::fs::remove_file(pidfile);
            }
            daemon.0 += 1;
        }
        let name = unique("tp");
        let image = std::env::temp_dir().join(format!("{name}.img"));
        let file = std::fs::File::create(&image).expect("pool image");
        file.set_len(bytes).expect("pool image size");
        let pool = TestPool { name, image };
        sh(
            "zpool",
            &[
                "create",
                "-m",
                "none",
                &pool.name,
                pool.image.to_str().unwrap(),
            ],
        );
        Some(pool)
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every dataset and snapshot in the pool, one per line.
    pub fn datasets(&self) -> String {
        sh(
            "zfs",
            &["list", "-H", "-o", "name", "-t", "all", "-r", &self.name],
        )
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        // zfs-fuse may call a pool busy for a moment after its last unmount: retry.
        let mut last = String::new();
        for _ in 0..50 {
            match Command::new("zpool")
                .args(["destroy", "-f", &self.name])
                .output()
            {
                Ok(out) if out.status.success() => {
                    last.clear();
                    break;
                }
                Ok(out) => last = String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if !last.is_empty() {
            eprintln!("leaked test pool {}: {last}", self.name);
        }
        let _ = std::fs::remove_file(&self.image);
        let mut daemon = DAEMON.lock().unwrap_or_else(|e| e.into_inner());
        daemon.0 -= 1;
        if daemon.0 > 0 {
            return;
        }
        let Some(pid) = daemon.1 else { return };
        let no_pools = Command::new("zpool")
            .args(["list", "-H", "-o", "name"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty());
        if no_pools {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let proc = PathBuf::from(format!("/proc/{pid}"));
            poll_until(Duration::from_secs(5), || !proc.exists());
            daemon.1 = None;
        }
    }
}
