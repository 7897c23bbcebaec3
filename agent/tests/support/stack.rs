//! One host's whole stack for the Docker-side tests, each part real and stopped on drop
//! (also on panic): a `flocker-control` member with a fresh CA, a private dockerd whose
//! `/run/docker/plugins` is a per-test directory (a private mount namespace), and a
//! `flocker-agent` process with its proxy in front of that dockerd.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use proto::control::control_client::ControlClient;
use proto::tls::TlsDir;
use tonic::transport::Channel;

use super::plugin_docker::start_dockerd;
use super::scratch::Scratch;
use super::{have, is_root, prerequisite, wait_until};

/// A child process killed and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..200 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768-60999): a port picked there can be taken
    // again as the source port of some outgoing connection before the server binds it.
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 600) as u16 * 20;
    loop {
        let port = 20_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The control crate's binaries (the agent crate cannot depend on control). Built by the
/// same `cargo test --workspace --no-run` that the README's test command runs first, so
/// there it is a no-op; a narrower run (`cargo test -p agent`) builds what is missing. A
/// plain `cargo build -p control` would unify features differently and rebuild half the
/// dependency tree.
pub fn control_bin(name: &str) -> PathBuf {
    let target = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let mut build = Command::new(cargo);
    // The variables cargo sets for this test would change the build's fingerprints and
    // rebuild shared dependencies each time: start the nested build without them.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key == "RUST_LOG" {
            build.env_remove(key);
        }
    }
    let status = build
        .args(["test", "--workspace", "--no-run", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target.parent().unwrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo test --workspace --no-run failed");
    target.join(name)
}

/// `flocker-agent`: this crate's own build in the agent's tests; the workspace build when
/// another crate's tests include these helpers.
fn agent_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_flocker-agent") {
        Some(path) => PathBuf::from(path),
        None => control_bin("flocker-agent"),
    }
}

/// Whether this machine can run the stack; under CI a missing part panics.
pub fn available() -> bool {
    prerequisite(is_root(), "dockerd and mounts need root")
        && prerequisite(
            have("dockerd"),
            "dockerd is not installed (apt-get install docker.io)",
        )
        && prerequisite(have("docker"), "the docker CLI is not installed")
        && prerequisite(have("unshare"), "unshare is missing (util-linux)")
        && prerequisite(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox missing (apt-get install busybox-static)",
        )
}

/// Control member, dockerd and agent for node `n1` (plus a second node's certificate).
pub struct Stack {
    // Field order is drop order: the agent first, then dockerd, then control, then files,
    // then the turn of the next test.
    pub agent: Option<Proc>,
    dockerd: Option<Proc>,
    _control: Proc,
    pub control_addr: String,
    pub node: String,
    pub flockerctl: PathBuf,
    pub dir: Scratch,
    _turn: MutexGuard<'static, ()>,
}

/// One stack at a time in this process: dockerds starting together in one network
/// namespace race each other for `docker0` and iptables.
static TURN: Mutex<()> = Mutex::new(());

impl Stack {
    /// Starts everything with `--storage storage` (`None`: a directory backend in the
    /// scratch dir).
    pub fn start(storage: Option<String>) -> Stack {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = Scratch::new("fdock");
        let root = dir.path().to_owned();
        let flockerctl = control_bin("flockerctl");
        let ca = root.join("ca");
        super::sh(
            flockerctl.to_str().unwrap(),
            &["ca", "init", "--dir", ca.to_str().unwrap()],
        );
        for (role, name) in [
            ("control", "m1"),
            ("user", "admin"),
            ("node", "n1"),
            ("node", "n2"),
        ] {
            super::sh(
                flockerctl.to_str().unwrap(),
                &[
                    "ca",
                    "issue",
                    "--dir",
                    ca.to_str().unwrap(),
                    "--role",
                    role,
                    "--name",
                    name,
                ],
            );
        }
        let control_addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(root.join("control.log")).unwrap();
        let control = Proc(
            Command::new(control_bin("flocker-control"))
                .args(["--id", "1", "--listen", &control_addr, "--data-dir"])
                .arg(root.join("control-data"))
                .arg("--tls-dir")
                .arg(ca.join("control-m1"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("flocker-control starts"),
        );
        let dockerd = Some(start_dockerd(&root));
        let mut stack = Stack {
            agent: None,
            dockerd,
            _control: control,
            control_addr,
            node: "n1".into(),
            flockerctl,
            dir,
            _turn: turn,
        };
        stack.start_agent(storage);
        stack
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn volume_root(&self) -> PathBuf {
        self.root().join("vols")
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.root().join("plugins")
    }

    pub fn proxy_socket(&self) -> PathBuf {
        self.root().join("proxy.sock")
    }

    pub fn state_file(&self) -> PathBuf {
        self.root().join("state/plugin-mounts.json")
    }

    /// (Re)starts the agent and waits for its proxy, its plugin and its registration.
    pub fn start_agent(&mut self, storage: Option<String>) {
        self.agent = None;
        let root = self.root().to_owned();
        let storage = storage.unwrap_or_else(|| format!("dir:{}", root.join("store").display()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("agent.log"))
            .unwrap();
        let agent = Command::new(agent_bin())
            .args([
                "--node",
                "n1",
                "--control",
                &self.control_addr,
                "--storage",
                &storage,
            ])
            .arg("--tls-dir")
            .arg(root.join("ca/node-n1"))
            .arg("--docker")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .arg("--listen-docker")
            .arg(format!("unix://{}", self.proxy_socket().display()))
            .arg("--volume-root")
            .arg(self.volume_root())
            .arg("--plugin-dir")
            .arg(self.plugin_dir())
            .arg("--state-dir")
            .arg(root.join("state"))
            .args(["--advertise", "127.0.0.1:4524", "--heartbeat", "500ms"])
            .env("RUST_LOG", "info,agent=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("flocker-agent starts");
        self.agent = Some(Proc(agent));
        let (proxy, plugin) = (self.proxy_socket(), self.plugin_dir().join("flocker.sock"));
        wait_until(
            Duration::from_secs(60),
            "the agent's proxy and plugin sockets",
            || proxy.exists() && plugin.exists(),
        );
        wait_until(Duration::from_secs(60), "node n1 to register", || {
            self.ctl(&["node", "ls"]).status.success()
                && String::from_utf8_lossy(&self.ctl(&["node", "ls"]).stdout).contains("n1")
        });
    }

    /// Stops the agent (SIGTERM).
    pub fn stop_agent(&mut self) {
        self.agent = None;
    }

    /// `docker ARGS` through the agent's proxy.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.proxy_socket().display()),
            )
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// Stops dockerd (SIGTERM) and starts it again with the same sockets and data.
    pub fn restart_dockerd(&mut self) {
        self.dockerd = None;
        self.dockerd = Some(start_dockerd(self.dir.path()));
    }

    /// `docker ARGS` straight to dockerd, bypassing the agent.
    pub fn docker_direct(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.root().join("docker.sock").display()),
            )
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// `docker ARGS` through the proxy; panics with stderr and the agent's log on failure.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.agent_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn agent_log(&self) -> String {
        let log = std::fs::read_to_string(self.root().join("agent.log")).unwrap_or_default();
        log.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `flockerctl ARGS` with the admin certificate.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.flockerctl)
            .args(["--control", &self.control_addr, "--tls-dir"])
            .arg(self.root().join("ca/user-admin"))
            .args(args)
            .output()
            .expect("flockerctl runs")
    }

    /// `flockerctl --output json ARGS`, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let out = self.ctl(&full);
        assert!(
            out.status.success(),
            "flockerctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// A control client with node `name`'s certificate.
    pub async fn client_as(&self, name: &str) -> ControlClient<Channel> {
        let tls = TlsDir::load(&self.root().join(format!("ca/{name}"))).unwrap();
        proto::connect::connect_any(std::slice::from_ref(&self.control_addr), &tls)
            .await
            .expect("control reachable")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.agent = None;
        let host = format!("unix://{}", self.root().join("docker.sock").display());
        if let Ok(out) = Command::new("docker")
            .env("DOCKER_HOST", &host)
            .args(["ps", "-aq"])
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .env("DOCKER_HOST", &host)
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        self.dockerd = None;
    }
}
