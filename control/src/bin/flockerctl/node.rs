//! `flockerctl node ls`.

use clap::Subcommand;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use serde_json::json;
use tonic::transport::Channel;

use super::output;
use super::{Ctx, Format, call_failed};

/// Node verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// List nodes and whether their agents are up.
    Ls,
}

/// Runs a node verb.
pub async fn run(verb: Verb, ctx: &Ctx) -> anyhow::Result<()> {
    let Verb::Ls = verb;
    let nodes = ctx
        .client::<NodeApiClient<Channel>>()
        .await?
        .list_nodes(pb::Empty {})
        .await
        .map_err(call_failed)?
        .into_inner()
        .nodes;
    match ctx.format {
        Format::Json => output::json(&json!(
            nodes
                .iter()
                .map(|n| json!({
                    "name": n.name, "address": n.address, "storage": n.storage,
                    "up": n.up, "last_heartbeat_ms": n.last_heartbeat_ms,
                }))
                .collect::<Vec<_>>()
        )),
        Format::Table => {
            let now = control::server::node_service::now_ms();
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        if n.up { "up" } else { "down" }.into(),
                        n.address.clone(),
                        n.storage.clone(),
                        format!(
                            "{:.1}s ago",
                            now.saturating_sub(n.last_heartbeat_ms) as f64 / 1000.0
                        ),
                    ]
                })
                .collect();
            output::table(
                &["NAME", "STATE", "ADDRESS", "STORAGE", "LAST HEARTBEAT"],
                &rows,
            );
        }
    }
    Ok(())
}
