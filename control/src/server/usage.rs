//! `VolumeUsage`: the bytes each volume uses, asked of its owner's agent (`Inventory`) at
//! the time of the call, with this member's control certificate. Nothing goes through Raft:
//! usage changes with every write and only the owner knows it, so recording it would be a
//! stream of writes that are stale when read. Owners that are down or do not answer within
//! [`USAGE_TIMEOUT`] are listed as unreachable, and their volumes have no usage.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::control as pb;
use proto::tls::TlsDir;

use crate::member::Member;
use crate::migration::agents::AgentLink;
use crate::state::Node;

/// How long one owner's agent may take to answer (connecting included).
pub const USAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks every owner at once and gathers what they answered.
pub async fn volume_usage(member: &Member, tls: &TlsDir) -> pb::VolumeUsageList {
    // Display only: this member's applied state is good enough to know who owns what.
    let owners: Vec<(String, Option<Node>, Vec<String>)> = member.sm.read(|s| {
        let mut by_owner: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for v in s.volumes.values() {
            if let Some(owner) = &v.owner {
                by_owner.entry(owner).or_default().push(v.name.clone());
            }
        }
        by_owner
            .into_iter()
            .map(|(o, vols)| (o.to_owned(), s.nodes.get(o).cloned(), vols))
            .collect()
    });
    let asks = owners.into_iter().map(|(name, node, volumes)| async move {
        let answer = match node.filter(|n| n.up) {
            Some(node) => ask(&node, tls, &volumes).await,
            None => None,
        };
        (name, answer)
    });
    let mut list = pb::VolumeUsageList::default();
    for (node, answer) in futures_util::future::join_all(asks).await {
        match answer {
            Some(usage) => list.volumes.extend(usage),
            None => list.unreachable.push(node),
        }
    }
    list
}

/// The usage of `volumes` on `node`, or `None` if its agent did not answer in time.
async fn ask(node: &Node, tls: &TlsDir, volumes: &[String]) -> Option<Vec<pb::VolumeUsage>> {
    let inventory = async { AgentLink::connect(node, tls).await?.inventory().await };
    let inventory = match tokio::time::timeout(USAGE_TIMEOUT, inventory).await {
        Ok(Ok(inventory)) => inventory,
        Ok(Err(e)) => {
            tracing::debug!(node.name = %node.name, error = %e, "no volume usage from the agent");
            return None;
        }
        Err(_) => {
            tracing::debug!(node.name = %node.name, "the agent did not report volume usage in time");
            return None;
        }
    };
    Some(
        inventory
            .into_iter()
            .filter(|v| volumes.contains(&v.volume))
            .map(|v| pb::VolumeUsage {
                volume: v.volume,
                node: node.name.clone(),
                used_bytes: v.used_bytes,
            })
            .collect(),
    )
}
