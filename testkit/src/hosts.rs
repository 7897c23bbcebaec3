//! Agent hosts for move tests: each a real `flocker-agent` process with its own zfs-fuse
//! pool (`TestPool`, unique names), volume root and node certificate, on a free loopback
//! port, optionally in front of a dockerd of the test's ([`Host::docker_socket`]). Dropping
//! a host kills its agent, destroys its pool and removes its volume root, also on panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cluster::{Cluster, Role};
use crate::pool::TestPool;
use crate::{Proc, Scratch, binary, free_port, sh};

/// One agent host. Fields drop in order: the agent, then its pool, then the shared bind of
/// its volume root, then the volume root.
pub struct Host {
    /// The agent (`None`: not running).
    pub agent: Option<Proc>,
    /// Its pool.
    pub pool: TestPool,
    shared: Option<SharedMount>,
    /// Its volume root.
    pub root: Scratch,
    /// dockerd's socket for the agent's Docker side (`None`: a socket nothing listens on).
    pub docker_socket: Option<PathBuf>,
    /// Its node name.
    pub name: String,
    /// The agent's gRPC port on loopback.
    pub port: u16,
    /// The agent's log (all its runs).
    pub log: PathBuf,
    /// `--send-limit` (bytes per second), if any.
    pub send_limit: Option<u64>,
    /// Environment variables the agent gets besides `RUST_LOG` (e.g. `NOTIFY_SOCKET`).
    pub env: Vec<(String, std::ffi::OsString)>,
    /// The control addresses the agent dials instead of the members' own (e.g. a
    /// [`crate::relay::Relay`] the test can cut).
    pub controls: Option<Vec<String>>,
}

impl Host {
    /// A host named `name` with a fresh pool, or `None` where ZFS cannot run (skip).
    pub fn new(name: &str, send_limit: Option<u64>) -> Option<Host> {
        Self::with_pool(name, send_limit, TestPool::create()?)
    }

    /// A host over a given pool.
    pub fn with_pool(name: &str, send_limit: Option<u64>, pool: TestPool) -> Option<Host> {
        let root = Scratch::new("mvroot");
        Some(Host {
            agent: None,
            log: root.path().with_extension("agent.log"),
            pool,
            shared: None,
            root,
            docker_socket: None,
            name: name.to_owned(),
            port: free_port(),
            send_limit,
            env: Vec::new(),
            controls: None,
        })
    }

    /// Starts (or restarts) the agent against the cluster's members.
    pub fn start(&mut self, c: &Cluster) {
        let tls = c.pki.issue(Role::Node, &self.name);
        let controls: Vec<String> = self
            .controls
            .clone()
            .unwrap_or_else(|| (1..=c.ports.len() as u64).map(|id| c.addr(id)).collect());
        let addr = format!("127.0.0.1:{}", self.port);
        let mut cmd = Command::new(binary("flocker-agent"));
        cmd.args(["--node", &self.name, "--control", &controls.join(",")])
            .arg("--tls-dir")
            .arg(&tls)
            .args(["--advertise", &addr, "--listen", &addr])
            .arg(format!("--storage=zfs:{}", self.pool.name()))
            .arg("--volume-root")
            .arg(self.root.path())
            .args(["--heartbeat", "300ms"])
            // This host's own socket paths, so that several agents on one machine do not
            // claim the defaults; without a dockerd, one that nothing listens on.
            .arg(format!(
                "--listen-docker=unix://{}",
                self.proxy_socket().display()
            ))
            .arg(format!(
                "--docker=unix://{}",
                self.docker_socket
                    .clone()
                    .unwrap_or_else(|| self.root.path().join("no-dockerd.sock"))
                    .display()
            ))
            .arg(format!(
                "--state-dir={}/agent-state",
                self.root.path().display()
            ))
            .arg("--no-plugin")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(limit) = self.send_limit {
            cmd.arg(format!("--send-limit={limit}"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        self.agent = Some(Proc::new(cmd.spawn().expect("spawn flocker-agent")));
    }

    /// The agent's Docker proxy (the `flocker` adapter in front of dockerd).
    pub fn proxy_socket(&self) -> PathBuf {
        self.root.path().join("docker-proxy.sock")
    }

    /// Makes the volume root a shared mount (bound onto itself), so that a dockerd started
    /// afterwards in its own mount namespace (`unshare -m --propagation slave`) sees the
    /// volumes zfs-fuse mounts there later. Call before starting that dockerd.
    pub fn share_volume_root(&mut self) {
        let root = self.root.path().to_str().unwrap().to_owned();
        sh("mount", &["--bind", &root, &root]);
        let shared = SharedMount(self.root.path().to_owned());
        sh("mount", &["--make-shared", &root]);
        self.shared = Some(shared);
    }

    /// SIGKILLs the agent.
    pub fn kill(&mut self) {
        self.agent = None;
    }

    /// Where the volume is mounted on this host.
    pub fn path(&self, volume: &str) -> PathBuf {
        self.root.path().join(volume)
    }

    /// Whether `volume` is mounted here (`None`: not mounted), and whether it refuses writes
    /// (zfs-fuse does not show `readonly=on` in the mount options, so this tries a write).
    pub fn mounted(&self, volume: &str) -> Option<bool> {
        let path = self.path(volume);
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mounted = mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1).map(Path::new) == Some(path.as_path()));
        if !mounted {
            return None;
        }
        let probe = path.join(".write-probe");
        let writable = std::fs::write(&probe, b"").is_ok();
        let _ = std::fs::remove_file(&probe);
        Some(!writable)
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A bind mount unmounted (lazily) on drop.
struct SharedMount(PathBuf);

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
