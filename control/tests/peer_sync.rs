//! Overlay peers follow the cluster's node list: a real control member process, a "host"
//! that is a real network namespace with the overlay built in it, and
//! `agent::network::peer_sync::run` keeping its VXLAN flood list equal to the other up
//! nodes, as `bridge fdb show` in that namespace sees it. Needs root (skipped with a reason
//! otherwise, a failure under `CI=true`).
//!
//! The namespace helper is a few lines here: the agent's `tests/common` needs the proxy
//! and nix, which this crate's tests do not depend on.

mod common;

use std::process::Command;
use std::time::Duration;

use agent::network::{NetlinkNetwork, Netns, Network, OverlayConfig, peer_sync};
use common::{Cluster, eventually};
use control::ca::Role;
use proto::control as pb;

/// A named network namespace, deleted on drop (also on panic).
struct HostNs {
    name: String,
}

impl HostNs {
    fn new() -> Self {
        let name = format!("psy{}", std::process::id() % 1_000_000);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = HostNs { name };
        ns.run("ip", &["netns", "add", &ns.name.clone()]);
        ns
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        self.run("ip", &all)
    }

    /// The VXLAN flood list as the kernel shows it.
    fn fdb(&self) -> String {
        self.run(
            "bridge",
            &["-n", &self.name, "fdb", "show", "dev", "vxlan-weave"],
        )
    }
}

impl Drop for HostNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn prerequisites(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(false);
    let tools = ["ip", "bridge"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let reason = format!("{test} needs root and the `ip` and `bridge` commands");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (CI=true: a missing prerequisite is a failure)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

async fn register(c: &Cluster, name: &str, address: &str) {
    let mut client = c.client_with(1, &c.pki.tls(Role::Node, name)).await;
    client
        .register_node(pb::RegisterNodeRequest {
            name: name.into(),
            address: address.into(),
            storage: "dir:/srv".into(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_peers_follow_the_up_nodes() {
    if !prerequisites("vxlan_peers_follow_the_up_nodes") {
        return;
    }
    let host = HostNs::new();
    host.ip(&[
        "link", "add", "under0", "type", "veth", "peer", "name", "under1",
    ]);
    host.ip(&["link", "set", "under0", "up"]);
    host.ip(&["link", "set", "under1", "up"]);
    let ns = Netns::Path(format!("/run/netns/{}", host.name).into());
    let network = NetlinkNetwork::new_in(&ns, OverlayConfig::new("under0"))
        .await
        .unwrap();
    network.ensure_overlay().await.unwrap();

    let c = Cluster::start(1, &["--node-timeout", "1s"]);
    c.leader(1).await;
    register(&c, "n1", "10.77.0.1:4524").await;
    let client = c.client_with(1, &c.pki.tls(Role::Node, "n1")).await;
    let sync = tokio::spawn(peer_sync::run(client, "n1".into(), network.clone()));

    // A second node registering becomes a peer; the host itself never does.
    register(&c, "n2", "10.77.0.2:4524").await;
    eventually(Duration::from_secs(10), "n2 to become a peer", || async {
        host.fdb().contains("dst 10.77.0.2 ").then_some(())
    })
    .await;
    let fdb = host.fdb();
    assert!(!fdb.contains("10.77.0.1"), "{fdb}");

    // n2 sends no heartbeat: once the leader marks it down, it is no longer a peer.
    eventually(Duration::from_secs(20), "n2 to leave the peers", || async {
        (!host.fdb().contains("10.77.0.2")).then_some(())
    })
    .await;
    // Registering again (an agent restart) brings it back.
    register(&c, "n2", "10.77.0.2:4524").await;
    eventually(Duration::from_secs(10), "n2 to be a peer again", || async {
        host.fdb().contains("dst 10.77.0.2 ").then_some(())
    })
    .await;
    sync.abort();
}
