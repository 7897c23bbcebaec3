//! Overlay peers follow the cluster's node list: a real control member process, a "host"
//! that is a real network namespace with the overlay built in it, and
//! `agent::network::peer_sync::run`, following the agent's cluster view, keeping its VXLAN flood list equal to the other up
//! nodes, as `bridge fdb show` in that namespace sees it. Needs root (skipped with a reason
//! otherwise, a failure under `CI=true`).

use std::time::Duration;

use agent::cluster::Control;
use agent::network::{NetlinkNetwork, Netns, Network, OverlayConfig, peer_sync};
use testkit::netns::{TestNetns, prerequisites};
use testkit::{Cluster, eventually};

/// The VXLAN flood list in `host` as the kernel shows it.
fn flood_list(host: &TestNetns) -> String {
    testkit::sh(
        "bridge",
        &["-n", &host.name, "fdb", "show", "dev", "vxlan-weave"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_peers_follow_the_up_nodes() {
    if !prerequisites("vxlan_peers_follow_the_up_nodes") {
        return;
    }
    let host = TestNetns::new("psy");
    host.ip(&[
        "link", "add", "under0", "type", "veth", "peer", "name", "under1",
    ]);
    host.ip(&["link", "set", "under0", "up"]);
    host.ip(&["link", "set", "under1", "up"]);
    let ns = Netns::Path(host.path());
    let network = NetlinkNetwork::new_in(&ns, OverlayConfig::new("under0"))
        .await
        .unwrap();
    network.ensure_overlay().await.unwrap();

    let c = Cluster::start(1, &["--node-timeout", "1s"]);
    c.leader(1).await;
    let client = c.register_node("n1", "10.77.0.1:4524").await;
    // The agent's session: its one watch stream keeps the view peer sync follows.
    let cluster = agent::cluster::Cluster::new(
        "n1",
        Control::with_client(client),
        agent::fencing::DEFAULT_FENCE_AFTER,
    );
    let following = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.follow().await }
    });
    let sync = tokio::spawn(peer_sync::run(cluster.view(), "n1".into(), network.clone()));

    // A second node registering becomes a peer; the host itself never does.
    c.register_node("n2", "10.77.0.2:4524").await;
    eventually(Duration::from_secs(10), "n2 to become a peer", || async {
        flood_list(&host).contains("dst 10.77.0.2 ").then_some(())
    })
    .await;
    let fdb = flood_list(&host);
    assert!(!fdb.contains("10.77.0.1"), "{fdb}");

    // n2 sends no heartbeat: once the leader marks it down, it is no longer a peer.
    eventually(Duration::from_secs(20), "n2 to leave the peers", || async {
        (!flood_list(&host).contains("10.77.0.2")).then_some(())
    })
    .await;
    // Registering again (an agent restart) brings it back.
    c.register_node("n2", "10.77.0.2:4524").await;
    eventually(Duration::from_secs(10), "n2 to be a peer again", || async {
        flood_list(&host).contains("dst 10.77.0.2 ").then_some(())
    })
    .await;
    sync.abort();
    following.abort();
}
