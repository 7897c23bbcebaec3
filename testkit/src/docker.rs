//! A private dockerd: its own socket, data-root and exec-root in a scratch directory, a mount
//! namespace of its own (`unshare -m --propagation slave`: its mounts go with it), and a
//! busybox image imported from the host's busybox-static (no registry). Stopped on drop,
//! also on panic, after the containers left running are removed; [`TestDocker::restart`]
//! stops and starts it on the same data, as a daemon upgrade would.
//!
//! Where it runs:
//! - [`TestDocker::start`]: inside a network namespace made for the test, so that its
//!   `docker0`, its iptables rules and the test's overlay bridge never touch the machine's
//!   own. As shared/LAB.md says: `nsenter --net=... unshare -m --propagation slave
//!   dockerd`, never `ip netns exec` (it remounts /sys and dockerd dies). Both `nsenter`
//!   and `unshare` exec, so the child's PID is dockerd's.
//! - [`TestDocker::start_on_host`]: in the machine's network namespace.
//! - [`TestDocker::start_with_plugins`]: in the machine's network namespace, with a
//!   directory of the test's as its `/run/docker/plugins` (so that it finds that test's
//!   volume plugin and no other).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::netns::{self, TestNetns};
use crate::wait::poll_until;
use crate::{Proc, Scratch, prerequisite, root_and_tools, stderr};

/// The busybox the image is made of: it must be static (busybox-static).
const BUSYBOX: &str = "/bin/busybox";
/// How long dockerd may take to answer after it starts.
const START: Duration = Duration::from_secs(120);
/// How long dockerd may take to stop after SIGTERM.
const STOP: Duration = Duration::from_secs(30);

/// A dockerd of the test's own; see the module doc.
pub struct TestDocker {
    child: Option<Proc>,
    netns: Option<TestNetns>,
    plugins: Option<PathBuf>,
    dir: Scratch,
}

impl TestDocker {
    /// Starts dockerd in a fresh network namespace and imports `busybox:latest`; `None`
    /// (skip, with the reason printed) where the prerequisites are missing, a panic under
    /// `CI=true`.
    pub fn start(test: &str) -> Option<TestDocker> {
        if !netns::prerequisites_with(test, &["dockerd", "docker", "tar"]) || !busybox() {
            return None;
        }
        Some(Self::launch_new(Some(TestNetns::new("agd")), None))
    }

    /// As [`TestDocker::start`], in the machine's network namespace.
    pub fn start_on_host(test: &str) -> Option<TestDocker> {
        if !Self::available_on_host(test) {
            return None;
        }
        Some(Self::launch_new(None, None))
    }

    /// As [`TestDocker::start_on_host`], with `plugins` as its `/run/docker/plugins`. `/`
    /// is made a shared mount first (as shared/LAB.md step 1): with `/` private, dockerd's
    /// namespace would never see the volume mounts zfs-fuse makes after dockerd starts, and
    /// containers would bind the empty directories under them instead of the volumes.
    pub fn start_with_plugins(test: &str, plugins: &Path) -> Option<TestDocker> {
        if !Self::available_on_host(test) {
            return None;
        }
        std::fs::create_dir_all(plugins).unwrap();
        std::fs::create_dir_all("/run/docker/plugins").unwrap();
        let shared = Command::new("mount")
            .args(["--make-rshared", "/"])
            .status()
            .expect("mount runs");
        assert!(shared.success(), "mount --make-rshared / failed");
        Some(Self::launch_new(None, Some(plugins.to_owned())))
    }

    /// Whether dockerd can run here in the machine's network namespace (see
    /// [`crate::prerequisite`]).
    pub fn available_on_host(test: &str) -> bool {
        root_and_tools(test, &["dockerd", "docker", "tar", "unshare"]) && busybox()
    }

    fn launch_new(netns: Option<TestNetns>, plugins: Option<PathBuf>) -> TestDocker {
        let mut docker = TestDocker {
            child: None,
            netns,
            plugins,
            dir: Scratch::new("dkr"),
        };
        docker.launch();
        docker.import_busybox();
        docker
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("dockerd.log"))
            .expect("log file");
        let dir = self.dir().display().to_string();
        let dockerd = [
            "dockerd".to_owned(),
            "-H".to_owned(),
            format!("unix://{}", self.socket().display()),
            "--data-root".to_owned(),
            format!("{dir}/root"),
            "--exec-root".to_owned(),
            format!("{dir}/exec"),
            "--pidfile".to_owned(),
            format!("{dir}/docker.pid"),
        ];
        let mut command = match &self.netns {
            Some(ns) => {
                let mut nsenter = Command::new("nsenter");
                nsenter
                    .arg(format!("--net={}", ns.path().display()))
                    .arg("unshare");
                nsenter
            }
            None => Command::new("unshare"),
        };
        command.args(["-m", "--propagation", "slave"]);
        match &self.plugins {
            Some(plugins) => command.args([
                "sh",
                "-c",
                &format!(
                    "mount --bind {} /run/docker/plugins && exec {}",
                    plugins.display(),
                    dockerd.join(" ")
                ),
            ]),
            None => command.args(&dockerd),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.child = Some(Proc::graceful(child, STOP));
        let ready = poll_until(START, || {
            self.cli(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        });
        assert!(
            ready,
            "dockerd did not answer within {START:?}; its log:\n{}",
            self.log()
        );
    }

    /// Stops dockerd (its containers stop with it) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.child = None;
        self.launch();
    }

    /// dockerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("docker.sock")
    }

    /// A scratch directory that lives as long as this dockerd.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The network namespace dockerd runs in (the test's "host"); panics for a dockerd in
    /// the machine's namespace.
    pub fn netns(&self) -> &TestNetns {
        self.netns
            .as_ref()
            .expect("a dockerd started with TestDocker::start")
    }

    /// What dockerd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("dockerd.log")).unwrap_or_default()
    }

    /// The `docker` CLI pointed at `socket`, with a private config and the classic builder.
    pub fn cli_at(&self, socket: &Path) -> Command {
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("DOCKER_CONFIG", self.dir().join("docker-config"))
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
            .dir()
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
        let root = self.dir().join("busybox-root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        let applets = Command::new(BUSYBOX).arg("--list").output().unwrap();
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
        assert!(
            import.wait().unwrap().success(),
            "docker import of busybox failed"
        );
    }
}

/// Whether the static busybox the image is made of is there.
fn busybox() -> bool {
    prerequisite(
        Path::new(BUSYBOX).exists(),
        "/bin/busybox missing (apt-get install busybox-static)",
    )
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
        // dockerd first; then its namespace and its directory (fields, in order).
        self.child = None;
    }
}
