//! `flockerctl ip ls|add-pool|reclaim`.

use clap::Subcommand;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use serde_json::json;
use tonic::transport::Channel;

use super::output;
use super::{Ctx, Format, call_failed};

/// IP verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// List pools and allocations.
    Ls,
    /// Add an IP pool, e.g. 10.255.0.0/16.
    AddPool {
        /// a.b.c.d/len
        cidr: String,
    },
    /// Free every address held on a dead node (refused while the node is up).
    Reclaim {
        /// The node's name.
        node: String,
    },
}

/// Runs an IP verb.
pub async fn run(verb: Verb, ctx: &Ctx) -> anyhow::Result<()> {
    let channel: Channel = ctx.client().await?;
    if let Verb::AddPool { cidr } = verb {
        let p = OperatorApiClient::new(channel)
            .add_pool(pb::AddPoolRequest { cidr })
            .await
            .map_err(call_failed)?
            .into_inner();
        println!("pool {} added ({} addresses)", p.cidr, p.size);
        return Ok(());
    }
    if let Verb::Reclaim { node } = verb {
        let freed = OperatorApiClient::new(channel)
            .reclaim_node(pb::ReclaimRequest { node: node.clone() })
            .await
            .map_err(call_failed)?
            .into_inner()
            .allocations;
        println!("freed {} address(es) of node {node}", freed.len());
        for a in freed {
            println!("  {} ({})", a.address, a.container_name);
        }
        return Ok(());
    }
    let list = NodeApiClient::new(channel)
        .list_ips(pb::Empty {})
        .await
        .map_err(call_failed)?
        .into_inner();
    match ctx.format {
        Format::Json => output::json(&json!({
            "pools": list.pools.iter().map(|p| json!({"cidr": p.cidr, "allocated": p.allocated, "size": p.size})).collect::<Vec<_>>(),
            "allocations": list.allocations.iter().map(|a| json!({
                "address": a.address, "pool": a.pool, "container_id": a.container_id,
                "container_name": a.container_name, "node": a.node, "running": a.running,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let pools: Vec<Vec<String>> = list
                .pools
                .iter()
                .map(|p| vec![p.cidr.clone(), p.allocated.to_string(), p.size.to_string()])
                .collect();
            output::table(&["POOL", "ALLOCATED", "SIZE"], &pools);
            println!();
            let rows: Vec<Vec<String>> = list
                .allocations
                .iter()
                .map(|a| {
                    vec![
                        a.address.clone(),
                        a.container_name.clone(),
                        a.container_id.chars().take(12).collect(),
                        a.node.clone(),
                        if a.running { "running" } else { "stopped" }.into(),
                    ]
                })
                .collect();
            output::table(&["ADDRESS", "CONTAINER", "ID", "NODE", "STATE"], &rows);
        }
    }
    Ok(())
}
