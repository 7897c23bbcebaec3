//! Peer sync: the overlay's VXLAN peers follow the cluster's node list.
//!
//! [`run`] keeps the flood list equal to the underlay addresses of the other registered
//! nodes that are up. It subscribes to the control service's change stream, lists the nodes
//! (so no change between the two is missed), then applies each node change as it arrives,
//! calling [`Network::set_peers`] only when the wanted set differs from the last one set. A
//! broken stream or a failed call is retried, with backoff, from a fresh list.
//!
//! A node's underlay address is the host part of the address it registered (`ip:port`, or
//! `name:port`, resolved once per change).

use foundation::retry::Backoff;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use proto::control::node_api_client::NodeApiClient;
use proto::control::watch_event::Object;
use proto::control::{Empty, Node, WatchRequest};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::Network;

/// Keeps `network`'s VXLAN peers equal to the other up nodes (every node but `self_node`),
/// until the future is dropped. Run it next to the membership loops, e.g.
/// `tokio::spawn(peer_sync::run(client, config.node.clone(), network))`.
pub async fn run<N: Network>(client: NodeApiClient<Channel>, self_node: String, network: N) {
    let mut applied: Option<BTreeSet<IpAddr>> = None;
    let mut backoff = Backoff::reconnect();
    loop {
        let started = std::time::Instant::now();
        if let Err(error) = session(client.clone(), &self_node, &network, &mut applied).await {
            tracing::warn!(node.name = %self_node, "peer sync: {error}; retrying");
        }
        backoff.wait_after(started.elapsed()).await;
    }
}

/// One subscription: list, then follow; returns why it stopped.
async fn session<N: Network>(
    mut client: NodeApiClient<Channel>,
    self_node: &str,
    network: &N,
    applied: &mut Option<BTreeSet<IpAddr>>,
) -> Result<(), String> {
    let mut stream = client
        .watch(WatchRequest {})
        .await
        .map_err(|s| format!("watch refused: {}", s.message()))?
        .into_inner();
    let listed = client
        .list_nodes(Empty {})
        .await
        .map_err(|s| format!("cannot list nodes: {}", s.message()))?
        .into_inner()
        .nodes;
    let mut nodes: BTreeMap<String, Node> =
        listed.into_iter().map(|n| (n.name.clone(), n)).collect();
    apply(&nodes, self_node, network, applied).await?;
    while let Some(event) = stream.next().await {
        let event = event.map_err(|s| format!("change stream broke: {}", s.message()))?;
        if let Some(Object::Node(node)) = event.object {
            if event.deleted {
                nodes.remove(&node.name);
            } else {
                nodes.insert(node.name.clone(), node);
            }
            apply(&nodes, self_node, network, applied).await?;
        }
    }
    Err("change stream ended".to_owned())
}

async fn apply<N: Network>(
    nodes: &BTreeMap<String, Node>,
    self_node: &str,
    network: &N,
    applied: &mut Option<BTreeSet<IpAddr>>,
) -> Result<(), String> {
    let wanted = wanted_peers(nodes.values(), self_node).await;
    if applied.as_ref() == Some(&wanted) {
        return Ok(());
    }
    let list: Vec<IpAddr> = wanted.iter().copied().collect();
    network
        .set_peers(&list)
        .await
        .map_err(|e| format!("cannot set peers {list:?}: {e}"))?;
    tracing::info!(peers = ?list, "overlay peers set");
    *applied = Some(wanted);
    Ok(())
}

/// The underlay addresses of the up nodes other than `self_node`. A node whose address
/// does not resolve is left out (and logged).
pub async fn wanted_peers<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    self_node: &str,
) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for n in nodes.filter(|n| n.up && n.name != self_node) {
        match underlay_ip(&n.address).await {
            Some(ip) => {
                out.insert(ip);
            }
            None => tracing::warn!(node.name = %n.name, node.address = %n.address,
                "cannot tell the node's underlay address; it is not an overlay peer"),
        }
    }
    out
}

/// The IP of `host:port`, `ip:port` or a bare IP.
async fn underlay_ip(address: &str) -> Option<IpAddr> {
    if let Ok(sa) = address.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Some(ip);
    }
    let mut found = tokio::net::lookup_host(address).await.ok()?;
    found.next().map(|sa| sa.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, address: &str, up: bool) -> Node {
        Node {
            name: name.into(),
            address: address.into(),
            storage: String::new(),
            last_heartbeat_ms: 0,
            up,
        }
    }

    #[tokio::test]
    async fn peers_are_the_other_up_nodes() {
        let nodes = [
            node("n1", "10.0.0.1:4524", true),
            node("n2", "10.0.0.2:4524", true),
            node("n3", "10.0.0.3:4524", false),
            node("n4", "[fd00::4]:4524", true),
            node("n5", "not an address", true),
        ];
        let got = wanted_peers(nodes.iter(), "n1").await;
        let want: BTreeSet<IpAddr> = ["10.0.0.2", "fd00::4"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }
}
