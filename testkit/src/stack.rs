//! One host's whole stack for the Docker-side tests, each part real and stopped on drop
//! (also on panic): a `flocker-control` member with a fresh CA, a private dockerd whose
//! `/run/docker/plugins` is a per-test directory ([`TestDocker::start_with_plugins`]), and
//! a `flocker-agent` process with its proxy in front of that dockerd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use proto::control::node_api_client::NodeApiClient;
use proto::tls::TlsDir;
use tonic::transport::Channel;

use crate::cluster::{Cluster, Role, flockerctl};
use crate::docker::TestDocker;
use crate::{Proc, Scratch, binary, free_port, wait_until};

/// What the stack's checks call the test.
const TEST: &str = "the agent's Docker-side tests";

/// Whether this machine can run the stack; under CI a missing part panics.
pub fn available() -> bool {
    TestDocker::available_on_host(TEST)
}

/// Control member, dockerd and agent for node `n1` (plus a second node's certificate).
pub struct Stack {
    // Field order is drop order: the agent first, then dockerd, then control, then files,
    // then the turn of the next test.
    /// The agent (`None`: stopped).
    pub agent: Option<Proc>,
    dockerd: TestDocker,
    control: Cluster,
    /// The control member's address.
    pub control_addr: String,
    /// The agent's node name.
    pub node: String,
    /// Where the agent keeps its files (and the test its own).
    pub dir: Scratch,
    _turn: MutexGuard<'static, ()>,
}

/// One stack at a time in this process: dockerds starting together in one network
/// namespace race each other for `docker0` and iptables.
static TURN: Mutex<()> = Mutex::new(());

impl Stack {
    /// Starts everything with `--storage storage` (`None`: a directory backend in the
    /// scratch dir). Check [`available`] first.
    pub fn start(storage: Option<String>) -> Stack {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Scratch::new("fdock");
        let control = Cluster::start(1, &[]);
        for (role, name) in [
            (Role::User, "admin"),
            (Role::Node, "n1"),
            (Role::Node, "n2"),
        ] {
            control.pki.issue(role, name);
        }
        let dockerd = TestDocker::start_with_plugins(TEST, &dir.path().join("plugins"))
            .expect("the stack's prerequisites hold (stack::available)");
        let mut stack = Stack {
            agent: None,
            dockerd,
            control_addr: control.addr(1),
            control,
            node: "n1".into(),
            dir,
            _turn: turn,
        };
        stack.start_agent(storage);
        stack
    }

    /// The test's scratch directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's `--volume-root`.
    pub fn volume_root(&self) -> PathBuf {
        self.root().join("vols")
    }

    /// The agent's `--plugin-dir`, dockerd's `/run/docker/plugins`.
    pub fn plugin_dir(&self) -> PathBuf {
        self.root().join("plugins")
    }

    /// The agent's Docker proxy.
    pub fn proxy_socket(&self) -> PathBuf {
        self.root().join("proxy.sock")
    }

    /// Where the agent records the plugin's mounts.
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
        let addr = format!("127.0.0.1:{}", free_port());
        let agent = Command::new(binary("flocker-agent"))
            .args([
                "--node",
                "n1",
                "--control",
                &self.control_addr,
                "--storage",
                &storage,
            ])
            .arg("--tls-dir")
            .arg(self.control.pki.issue(Role::Node, "n1"))
            .arg("--docker")
            .arg(format!("unix://{}", self.dockerd.socket().display()))
            .arg("--listen-docker")
            .arg(format!("unix://{}", self.proxy_socket().display()))
            .arg("--volume-root")
            .arg(self.volume_root())
            .arg("--plugin-dir")
            .arg(self.plugin_dir())
            .arg("--state-dir")
            .arg(root.join("state"))
            .args(["--advertise", &addr, "--listen", &addr])
            .args(["--heartbeat", "500ms"])
            .env("RUST_LOG", "info,agent=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("flocker-agent starts");
        self.agent = Some(Proc::graceful(agent, Duration::from_secs(10)));
        let (proxy, plugin) = (self.proxy_socket(), self.plugin_dir().join("flocker.sock"));
        wait_until(
            Duration::from_secs(60),
            "the agent's proxy and plugin sockets",
            || proxy.exists() && plugin.exists(),
        );
        wait_until(Duration::from_secs(60), "node n1 to register", || {
            let out = self.ctl(&["node", "ls"]);
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("n1")
        });
    }

    /// Stops the agent (SIGTERM).
    pub fn stop_agent(&mut self) {
        self.agent = None;
    }

    /// `docker ARGS` through the agent's proxy.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.dockerd
            .cli_at(&self.proxy_socket())
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// Stops dockerd (SIGTERM) and starts it again with the same sockets and data.
    pub fn restart_dockerd(&mut self) {
        self.dockerd.restart();
    }

    /// `docker ARGS` straight to dockerd, bypassing the agent.
    pub fn docker_direct(&self, args: &[&str]) -> Output {
        self.dockerd.cli(args)
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

    /// The last 40 lines the agent logged.
    pub fn agent_log(&self) -> String {
        let log = std::fs::read_to_string(self.root().join("agent.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `flockerctl ARGS` with the admin certificate.
    pub fn ctl(&self, args: &[&str]) -> Output {
        flockerctl(&self.control, args)
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

    /// A `NodeApi` client with the certificate in the CA's directory `name` (`user-admin`,
    /// `node-n1`, `node-n2`: see [`crate::Pki::issue`]).
    pub async fn client_as(&self, name: &str) -> NodeApiClient<Channel> {
        let tls = TlsDir::load(&self.control.pki.dir.path().join(name)).unwrap();
        proto::connect::connect_any(std::slice::from_ref(&self.control_addr), &tls)
            .await
            .expect("control reachable")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The agent before dockerd (which removes its containers and stops on its own drop).
        self.agent = None;
    }
}
