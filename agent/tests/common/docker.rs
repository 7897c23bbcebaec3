//! A private dockerd for the agent's tests, started inside a network namespace made for the
//! test (so its `docker0`, its iptables rules and the test's overlay bridge never touch the
//! machine's own), with a busybox image imported from the host's busybox-static (no
//! registry). Stopped on drop, also on panic; `restart` stops and starts it on the same
//! data, as a daemon upgrade would.
//!
//! As shared/LAB.md says: `nsenter --net=... unshare -m --propagation slave dockerd`, never
//! `ip netns exec` (it remounts /sys and dockerd dies). Both `nsenter` and `unshare` exec,
//! so the child's PID is dockerd's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{TestNetns, poll_until, prerequisites_with, unique};

/// A dockerd of the test's own inside its own network namespace.
pub struct TestDocker {
    child: Option<Child>,
    dir: PathBuf,
    /// The namespace dockerd runs in (the test's "host").
    pub netns: TestNetns,
}

impl TestDocker {
    /// Starts dockerd in a fresh namespace and imports `busybox:latest`; `None` (skip, with
    /// the reason printed) where the prerequisites are missing, a panic under `CI=true`.
    pub fn start(test: &str) -> Option<TestDocker> {
        if !prerequisites_with(test, &["dockerd", "docker", "busybox", "tar"]) {
            return None;
        }
        let netns = TestNetns::new("agd");
        let dir = std::env::temp_dir().join(unique("agent-docker-"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("docker dir");
        let mut docker = TestDocker {
            child: None,
            dir,
            netns,
        };
        docker.launch();
        docker.import_busybox();
        Some(docker)
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("log file");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.path().display()))
            .args(["unshare", "-m", "--propagation", "slave", "dockerd"])
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--data-root")
            .arg(self.dir.join("root"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.child = Some(child);
        let ready = poll_until(Duration::from_secs(60), || {
            self.cli(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        });
        assert!(ready, "dockerd did not answer in 60 s:\n{}", self.log());
    }

    /// Stops dockerd (its containers stop with it) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let stopped = poll_until(Duration::from_secs(30), || {
            child.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// dockerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// A scratch directory that lives as long as this dockerd.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What dockerd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// The `docker` CLI pointed at `socket`, with a private config and the classic builder.
    pub fn cli_at(&self, socket: &Path) -> Command {
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_BUILDKIT", "0");
        command
    }

    /// `docker ARGS` against this dockerd directly.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_at(&self.socket())
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// `docker build -t TAG` of a Dockerfile given as text (classic builder, no context).
    pub fn build(&self, tag: &str, dockerfile: &str) {
        let context = self
            .dir
            .join(format!("build-{tag}").replace([':', '/'], "_"));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        let out = self
            .cli_at(&self.socket())
            .args(["build", "-q", "-t", tag])
            .arg(&context)
            .output()
            .unwrap();
        assert!(out.status.success(), "docker build {tag}: {}", stderr(&out));
    }

    /// `busybox:latest`, every applet linked, made with `docker import`.
    fn import_busybox(&self) {
        let busybox = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v busybox"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let root = self.dir.join("busybox-root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy(busybox.trim(), root.join("bin/busybox")).unwrap();
        let applets = Command::new(busybox.trim()).arg("--list").output().unwrap();
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
        let mut import = self
            .cli_at(&self.socket())
            .args(["import", "-c", "ENV PATH=/bin", "-", "busybox:latest"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import runs");
        import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(import.wait().unwrap().success(), "docker import failed");
    }
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.cli(&["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = self
                    .cli_at(&self.socket())
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        self.stop();
        // dockerd's mounts live in its own mount namespace and went with it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stdout of a command that must have succeeded.
pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}): {}",
        out.status,
        stderr(out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
