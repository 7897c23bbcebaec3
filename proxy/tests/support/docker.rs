//! A private dockerd with its own socket, data-root and exec-root, and a busybox image
//! imported from the host's busybox-static (no registry needed). Stopped on drop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{have, is_root, prerequisite, unique_dir, wait_until};

pub struct TestDocker {
    dir: PathBuf,
    child: Child,
}

impl TestDocker {
    /// Starts dockerd, or returns `None` (skip) where it cannot run; under CI a missing
    /// prerequisite panics instead.
    pub fn start() -> Option<TestDocker> {
        if !prerequisite(is_root(), "dockerd needs root")
            || !prerequisite(
                have("dockerd"),
                "dockerd is not installed (apt-get install docker.io)",
            )
            || !prerequisite(have("docker"), "the docker CLI is not installed")
            || !prerequisite(
                Path::new("/bin/busybox").exists(),
                "/bin/busybox missing (apt-get install busybox-static)",
            )
        {
            return None;
        }
        let dir = unique_dir("pstd");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("log file");
        let child = Command::new("dockerd")
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let docker = TestDocker { dir, child };
        let socket = docker.socket();
        wait_until(Duration::from_secs(60), "dockerd to answer /_ping", || {
            Command::new("docker")
                .env("DOCKER_HOST", format!("unix://{}", socket.display()))
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        docker.import_busybox();
        Some(docker)
    }

    /// dockerd's own socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// A scratch directory that lives as long as this dockerd.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `busybox:latest`, every applet linked, made with `docker import`.
    fn import_busybox(&self) {
        let root = self.dir.join("busybox-root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        let applets = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .output()
            .expect("tar runs");
        let mut import = Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .args(["import", "-c", "ENV PATH=/bin", "-", "busybox:latest"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import runs");
        import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(
            import.wait().unwrap().success(),
            "docker import of busybox failed"
        );
    }
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        // Remove what the tests left running, then stop the daemon gracefully.
        let host = format!("unix://{}", self.socket().display());
        if let Ok(out) = Command::new("docker")
            .env("DOCKER_HOST", &host)
            .args(["ps", "-aq"])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .env("DOCKER_HOST", &host)
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..300 {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // dockerd unmounts its own mounts on a clean stop; a crash may leave some behind.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {0}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.display()
            ))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
