//! The cluster made small: a CA in a temp dir ([`Pki`]), control members as separate
//! `flocker-control` processes on free loopback ports, killed on drop, also on panic
//! ([`Cluster`]), clients with any certificate, and `flockerctl` against them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use control::ca;
pub use control::ca::Role;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use proto::tls::TlsDir;
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::{Proc, binary, eventually, free_port};

/// A cluster CA in a temp dir.
pub struct Pki {
    /// The CA (`ca/`) and every TLS directory issued (`<role>-<name>/`).
    pub dir: TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A fresh CA.
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = TempDir::new().unwrap();
        ca::init(&dir.path().join("ca")).unwrap();
        Self { dir }
    }

    /// Issues a certificate (once) and returns its TLS directory, `<role>-<name>` in
    /// [`Pki::dir`].
    pub fn issue(&self, role: Role, name: &str) -> PathBuf {
        let out = self.dir.path().join(format!("{role}-{name}"));
        if !out.exists() {
            ca::issue(&self.dir.path().join("ca"), role, name, &[], &out).unwrap();
        }
        out
    }

    /// The TLS material of `role` `name`, issued if need be.
    pub fn tls(&self, role: Role, name: &str) -> TlsDir {
        TlsDir::load(&self.issue(role, name)).unwrap()
    }
}

/// Control members as processes.
pub struct Cluster {
    /// The cluster's CA.
    pub pki: Pki,
    /// The members' data directories and logs.
    pub dir: TempDir,
    /// Member `id`'s port is `ports[id - 1]`.
    pub ports: Vec<u16>,
    /// Member `id`'s process is `procs[id - 1]` (`None`: not running).
    pub procs: Vec<Option<Proc>>,
    /// The flags every member is started with.
    pub extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` founding members (ids 1..=n) with `extra` flags each.
    pub fn start(n: usize, extra: &[&str]) -> Self {
        let mut c = Self::prepare(n, extra);
        for id in 1..=n as u64 {
            c.spawn(id);
        }
        c
    }

    /// `n` founding members (ids 1..=n) with `extra` flags each, none started yet (a test
    /// may prepare their data directories, [`Cluster::data_dir`], first).
    pub fn prepare(n: usize, extra: &[&str]) -> Self {
        Cluster {
            pki: Pki::new(),
            dir: TempDir::new().unwrap(),
            ports: (0..n).map(|_| free_port()).collect(),
            procs: (0..n).map(|_| None).collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Member `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("data-{id}"))
    }

    /// Member `id`'s address.
    pub fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[id as usize - 1])
    }

    /// Member `id`'s log file (all its runs).
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}.log"))
    }

    /// Starts member `id` (again) with its data dir.
    pub fn spawn(&mut self, id: u64) {
        let tls = self.pki.issue(Role::Control, &format!("m{id}"));
        let mut cmd = Command::new(binary("flocker-control"));
        cmd.arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--listen")
            .arg(self.addr(id))
            .arg("--tls-dir")
            .arg(&tls)
            .args(&self.extra);
        for peer in 1..=self.ports.len() as u64 {
            if peer != id {
                cmd.arg("--peer").arg(format!("{peer}={}", self.addr(peer)));
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().expect("spawn flocker-control");
        self.procs[id as usize - 1] = Some(Proc::new(child));
    }

    /// Starts a new, empty member (the next id) with `--join` and adds it through `via`'s
    /// `AddMember`; its id and the status the call returned.
    pub async fn add_member(&mut self, via: u64) -> (u64, pb::ClusterStatus) {
        self.ports.push(free_port());
        self.procs.push(None);
        let id = self.ports.len() as u64;
        if !self.extra.iter().any(|f| f == "--join") {
            self.extra.push("--join".into());
        }
        self.spawn(id);
        let status = self
            .operator(via)
            .await
            .add_member(pb::AddMemberRequest {
                id,
                address: self.addr(id),
            })
            .await
            .unwrap_or_else(|e| panic!("add member {id}: {e}"))
            .into_inner();
        (id, status)
    }

    /// SIGKILLs member `id`.
    pub fn kill(&mut self, id: u64) {
        self.procs[id as usize - 1] = None;
    }

    /// A `NodeApi` client of member `id` with a user certificate.
    pub async fn client(&self, id: u64) -> NodeApiClient<Channel> {
        let tls = self.pki.tls(Role::User, "admin");
        self.client_with(id, &tls).await
    }

    /// An `OperatorApi` client of member `id` with a user certificate.
    pub async fn operator(&self, id: u64) -> OperatorApiClient<Channel> {
        let tls = self.pki.tls(Role::User, "admin");
        self.connect(id, &tls).await
    }

    /// A `NodeApi` client of member `id` with the given certificate, once the member
    /// accepts connections.
    pub async fn client_with(&self, id: u64, tls: &TlsDir) -> NodeApiClient<Channel> {
        self.connect(id, tls).await
    }

    /// A client of member `id` with the given certificate, once the member accepts
    /// connections.
    pub async fn connect<C: From<Channel>>(&self, id: u64, tls: &TlsDir) -> C {
        let addr = self.addr(id);
        eventually(
            Duration::from_secs(20),
            "member to accept connections",
            || async { proto::connect::connect(&addr, tls).await.ok() },
        )
        .await
    }

    /// Registers node `name` at `address` through member 1, with the node's own
    /// certificate; returns that node's client (traced, as an agent's is).
    pub async fn register_node(&self, name: &str, address: &str) -> proto::connect::NodeClient {
        let mut client: proto::connect::NodeClient =
            self.connect(1, &self.pki.tls(Role::Node, name)).await;
        client
            .register_node(pb::RegisterNodeRequest {
                address: address.into(),
                ..register(name)
            })
            .await
            .unwrap();
        client
    }

    /// Cluster status as seen by member `id`, once a leader is known.
    pub async fn status_with_leader(&self, id: u64) -> pb::ClusterStatus {
        let mut c = self.operator(id).await;
        eventually(Duration::from_secs(20), "a leader", || {
            let mut c = c.clone();
            async move {
                let s = c.status(pb::Empty {}).await.ok()?.into_inner();
                let leader = s.leader?;
                s.members
                    .iter()
                    .any(|m| m.id == leader && m.up && m.state() == pb::MemberState::Leader)
                    .then_some(s)
            }
        })
        .await;
        c.status(pb::Empty {}).await.unwrap().into_inner()
    }

    /// The current leader's id.
    pub async fn leader(&self, via: u64) -> u64 {
        self.status_with_leader(via).await.leader.unwrap()
    }

    /// Waits until every listed member has applied at least `index`.
    pub async fn wait_applied(&self, via: u64, members: &[u64], index: u64) -> pb::ClusterStatus {
        let c = self.operator(via).await;
        eventually(Duration::from_secs(30), "members to apply the log", || {
            let mut c = c.clone();
            async move {
                let s = c.status(pb::Empty {}).await.ok()?.into_inner();
                members
                    .iter()
                    .all(|id| {
                        s.members
                            .iter()
                            .any(|m| m.id == *id && m.last_applied.unwrap_or(0) >= index)
                    })
                    .then_some(s)
            }
        })
        .await
    }
}

/// A register-node request for `name` at `name:4524` with a directory backend.
pub fn register(name: &str) -> pb::RegisterNodeRequest {
    pb::RegisterNodeRequest {
        name: name.into(),
        address: format!("{name}:4524"),
        storage: "dir:/srv".into(),
    }
}

/// A volume-create request with just a name.
pub fn volume(name: &str) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        name: name.into(),
        ..Default::default()
    }
}

/// Reads a member's log file.
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs the real `flockerctl` against member 1 with an admin certificate.
pub fn flockerctl(c: &Cluster, args: &[&str]) -> std::process::Output {
    Command::new(binary("flockerctl"))
        .args(["--control", &c.addr(1), "--tls-dir"])
        .arg(c.pki.issue(Role::User, "admin"))
        .args(args)
        .output()
        .expect("flockerctl runs")
}

/// `flockerctl ip ls` as (address, container name, node, state) rows.
pub fn ip_ls(c: &Cluster) -> Vec<(String, String, String, String)> {
    let out = flockerctl(c, &["--output", "json", "ip", "ls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |a: &serde_json::Value, k: &str| a[k].as_str().unwrap().to_owned();
    v["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let state = if a["running"].as_bool().unwrap() {
                "running"
            } else {
                "stopped"
            };
            (
                s(a, "address"),
                s(a, "container_name"),
                s(a, "node"),
                state.to_owned(),
            )
        })
        .collect()
}

/// An `ip_ls` row.
pub fn row(address: &str, name: &str, node: &str, state: &str) -> (String, String, String, String) {
    (address.into(), name.into(), node.into(), state.into())
}
