//! One weave host with a real `flocker-agent` process, made small: a private dockerd in its
//! own network namespace ([`TestDocker::start`]), a veth underlay in that namespace, and
//! `flocker-agent --underlay` run inside it (`nsenter --net`), so that the agent's bridge,
//! VXLAN device and gRPC port stay in the test's namespace. The control member listens on
//! the machine's loopback; a small forwarder (a listener made inside the namespace, served
//! from the test process) makes the same `127.0.0.1:PORT` reach it from inside. The agent's
//! Docker proxy is a unix socket in the test's directory. Dropping it kills the agent, the
//! forwarder, dockerd and the namespace, also on panic.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::bins::static_wait_for_net;
use crate::cluster::{Cluster, Role, flockerctl};
use crate::docker::TestDocker;
use crate::netns::TestNetns;
use crate::{Proc, binary, poll_until};

/// The underlay interface in the host's namespace (one end of a veth pair).
pub const UNDERLAY: &str = "under0";

/// dockerd + `flocker-agent --underlay` in one namespace; see the module doc.
pub struct AgentHost {
    // Field order is drop order: the agent, the forwarder, then dockerd and its namespace.
    agent: Option<Proc>,
    _forwarder: Runtime,
    /// The private dockerd (its namespace is the host's).
    pub docker: TestDocker,
    /// The node name the agent registers.
    pub node: String,
    controls: String,
    tls: PathBuf,
    wait_for_net: PathBuf,
}

impl AgentHost {
    /// dockerd in a fresh namespace with the underlay and the forwarder to member 1 of `c`,
    /// and the agent started as `node`; `None` where the test must be skipped.
    pub fn start(test: &str, c: &Cluster, node: &str) -> Option<AgentHost> {
        let wait_for_net = static_wait_for_net();
        let docker = TestDocker::start(test)?;
        let ns = docker.netns();
        ns.ip(&[
            "link", "add", UNDERLAY, "type", "veth", "peer", "name", "under1",
        ]);
        ns.ip(&["link", "set", UNDERLAY, "up"]);
        ns.ip(&["link", "set", "under1", "up"]);
        let forwarder = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        forward(&forwarder, ns, c.addr(1));
        let mut host = AgentHost {
            agent: None,
            _forwarder: forwarder,
            docker,
            node: node.to_owned(),
            controls: c.addr(1),
            tls: c.pki.issue(Role::Node, node),
            wait_for_net,
        };
        host.start_agent(c);
        Some(host)
    }

    /// The agent's Docker proxy socket.
    pub fn proxy(&self) -> PathBuf {
        self.docker.dir().join("agent-proxy.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.docker.dir().join("agent.log")
    }

    /// What the agent logged so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// (Re)starts the agent; returns once its proxy answers and its node is up.
    pub fn start_agent(&mut self, c: &Cluster) {
        self.agent = None;
        let dir = self.docker.dir().to_owned();
        // A socket left by a killed agent must not count as the new one's.
        let _ = std::fs::remove_file(self.proxy());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.docker.netns().path().display()))
            .arg("--")
            .arg(binary("flocker-agent"))
            .args(["--node", &self.node, "--control", &self.controls])
            .arg("--tls-dir")
            .arg(&self.tls)
            .args([
                "--advertise",
                "127.0.0.1:4524",
                "--listen",
                "127.0.0.1:4524",
            ])
            .arg(format!("--storage=dir:{}", dir.join("store").display()))
            .arg(format!("--volume-root={}", dir.join("vols").display()))
            .arg(format!(
                "--docker=unix://{}",
                self.docker.socket().display()
            ))
            .arg(format!("--listen-docker=unix://{}", self.proxy().display()))
            .arg(format!("--state-dir={}", dir.join("agent-state").display()))
            .arg("--no-plugin")
            .args(["--heartbeat", "300ms", "--underlay", UNDERLAY])
            .arg("--wait-for-net")
            .arg(&self.wait_for_net)
            // proxy::chain at debug: one line per hook call with its duration.
            .env("RUST_LOG", "info,agent=debug,proxy::chain=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log);
        // nsenter execs the agent: the child's PID is the agent's, so a kill reaches it.
        self.agent = Some(Proc::new(cmd.spawn().expect("flocker-agent starts")));
        let proxy = self.proxy();
        let up = poll_until(Duration::from_secs(60), || {
            UnixStream::connect(&proxy).is_ok()
        });
        assert!(
            up,
            "the agent's proxy never answered; its log:\n{}",
            self.log()
        );
        let registered = poll_until(Duration::from_secs(30), || {
            let out = flockerctl(c, &["node", "ls"]);
            String::from_utf8_lossy(&out.stdout).contains(&self.node)
        });
        assert!(
            registered,
            "node {} never registered:\n{}",
            self.node,
            self.log()
        );
    }

    /// The `weave` post-hook calls the agent's proxy logged, as (request path, duration in
    /// ms): for a start with `WEAVE_CIDR`, inspect, allocate and attach.
    pub fn weave_post_hooks(&self) -> Vec<(String, f64)> {
        self.log()
            .lines()
            .filter(|l| l.contains("hook.adapter=weave hook.type=\"post-hook\""))
            .filter(|l| l.contains("hook call finished") && l.contains("hook.outcome=ok"))
            .filter_map(|l| {
                let path = l.split("http.path=\"").nth(1)?.split('"').next()?;
                let ms = l.rsplit("hook.duration_ms=").next()?;
                Some((path.to_owned(), ms.split_whitespace().next()?.parse().ok()?))
            })
            .collect()
    }

    /// SIGKILLs the agent (no cleanup of its own runs).
    pub fn kill_agent(&mut self) {
        self.agent = None;
    }

    /// `docker ARGS` through the agent's proxy.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker
            .cli_at(&self.proxy())
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// `docker ARGS` straight to dockerd, past the agent.
    pub fn docker_direct(&self, args: &[&str]) -> Output {
        self.docker.cli(args)
    }
}

/// Serve `addr` (`127.0.0.1:PORT`) inside `ns` by forwarding each connection to the same
/// address in the test's own namespace. The listener is made on a thread inside `ns` (a
/// socket stays in the namespace it was made in) and served from `runtime`.
fn forward(runtime: &Runtime, ns: &TestNetns, addr: String) {
    let bind = addr.clone();
    let listener = ns
        .run_in(move || std::net::TcpListener::bind(bind))
        .expect("bind the forwarder inside the host's namespace");
    listener.set_nonblocking(true).unwrap();
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        while let Ok((mut inside, _)) = listener.accept().await {
            let addr = addr.clone();
            tokio::spawn(async move {
                if let Ok(mut outside) = tokio::net::TcpStream::connect(&addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                }
            });
        }
    });
}
