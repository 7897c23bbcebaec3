//! `flockerctl volume ls|create|inspect|move|rm` (`move` lives in [`super::move_cmd`]).

use std::collections::BTreeMap;

use clap::Subcommand;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::output::{self, human, opt};
use super::{Ctx, Format, call_failed};

/// Bytes used by volume name, as their owners' agents reported them just now.
type Usage = BTreeMap<String, u64>;

/// Volume verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// List volumes.
    Ls,
    /// Create a volume.
    Create {
        /// Volume name: a-z, 0-9, '_', '.', '-', up to 63 characters.
        name: String,
        /// Size limit, e.g. 10G, 512M or bytes.
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        /// The node that owns it first.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show one volume.
    Inspect {
        /// Volume name.
        name: String,
    },
    /// Move a volume to another node (copy while in use, then a short handoff).
    Move {
        /// Volume name.
        name: String,
        /// Destination node.
        #[arg(long)]
        to: String,
        /// Stop the containers holding the volume (SIGTERM, SIGKILL after 10 s) instead of
        /// waiting for them; they are not restarted on the target.
        #[arg(long)]
        stop: bool,
    },
    /// Delete a volume no container holds.
    Rm {
        /// Volume name.
        name: String,
    },
}

/// Parses `10G`, `512M`, `4K` or a plain number of bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 10G, 512M or 1048576"))?;
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use K, M, G or T")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// What the owners' agents say the volumes use; empty (every volume `-`) if the member
/// cannot tell, so a listing never fails for want of usage.
async fn usage(channel: Channel) -> Usage {
    match OperatorApiClient::new(channel)
        .volume_usage(pb::Empty {})
        .await
    {
        Ok(list) => list
            .into_inner()
            .volumes
            .into_iter()
            .map(|u| (u.volume, u.used_bytes))
            .collect(),
        Err(_) => Usage::new(),
    }
}

fn to_json(v: &pb::Volume, usage: &Usage) -> Value {
    json!({
        "name": v.name, "id": v.id, "size_limit": v.size_limit, "owner": v.owner,
        "epoch": v.epoch, "state": output::volume_state(v), "created_ms": v.created_ms, "metadata": v.metadata,
        "used_bytes": usage.get(&v.name),
        "replicas": v.replicas.iter().map(|r| json!({"node": r.node, "snapshot": r.snapshot})).collect::<Vec<_>>(),
    })
}

/// One volume in detail, for people (`volume inspect` without `-o json`).
fn describe(v: &pb::Volume, usage: &Usage) {
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(v.created_ms);
    let owner = match &v.owner {
        Some(owner) => format!("{owner} (epoch {})", v.epoch),
        None => "- (none yet: `flockerctl volume move NAME --to NODE` gives it one)".to_owned(),
    };
    output::fields(&[
        ("Name", v.name.clone()),
        ("ID", v.id.to_string()),
        ("Owner", owner),
        ("State", output::volume_state(v)),
        ("Used", opt(usage.get(&v.name).copied().map(human))),
        ("Size limit", opt(v.size_limit.map(human))),
        (
            "Created",
            humantime::format_rfc3339_seconds(created).to_string(),
        ),
    ]);
    println!("Replicas:");
    if v.replicas.is_empty() {
        println!("  (none)");
    } else {
        let rows: Vec<Vec<String>> = v
            .replicas
            .iter()
            .map(|r| vec![format!("  {}", r.node), r.snapshot.clone()])
            .collect();
        output::table(&["  NODE", "SNAPSHOT"], &rows);
    }
    if !v.metadata.is_empty() {
        println!("Metadata:");
        for (key, value) in &v.metadata {
            println!("  {key}={value}");
        }
    }
}

fn print(vols: &[pb::Volume], usage: &Usage, format: Format) {
    match format {
        Format::Json => output::json(&Value::Array(
            vols.iter().map(|v| to_json(v, usage)).collect(),
        )),
        Format::Table => {
            let rows: Vec<Vec<String>> = vols
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        v.id.to_string(),
                        opt(v.owner.clone()),
                        v.epoch.to_string(),
                        output::volume_state(v),
                        opt(usage.get(&v.name).copied().map(human)),
                        opt(v.size_limit.map(human)),
                        v.replicas
                            .iter()
                            .map(|r| r.node.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            output::table(
                &[
                    "NAME",
                    "ID",
                    "OWNER",
                    "EPOCH",
                    "STATE",
                    "USED",
                    "SIZE LIMIT",
                    "REPLICAS",
                ],
                &rows,
            );
        }
    }
}

/// Runs a volume verb.
pub async fn run(verb: Verb, ctx: &Ctx) -> anyhow::Result<()> {
    if let Verb::Move { name, to, stop } = verb {
        return super::move_cmd::run(ctx, name, to, stop).await;
    }
    let channel: Channel = ctx.client().await?;
    let mut c = NodeApiClient::new(channel.clone());
    match verb {
        Verb::Ls => {
            let vols = c
                .list_volumes(pb::Empty {})
                .await
                .map_err(call_failed)?
                .into_inner()
                .volumes;
            let usage = usage(channel).await;
            print(&vols, &usage, ctx.format);
        }
        Verb::Create { name, size, owner } => {
            let req = pb::CreateVolumeRequest {
                name,
                size_limit: size,
                owner,
                metadata: Default::default(),
            };
            let v = c
                .create_volume(req)
                .await
                .map_err(call_failed)?
                .into_inner();
            print(&[v], &Usage::new(), ctx.format);
        }
        Verb::Inspect { name } => {
            let v = c
                .get_volume(pb::VolumeName { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            let usage = usage(channel).await;
            match ctx.format {
                Format::Json => output::json(&to_json(&v, &usage)),
                Format::Table => describe(&v, &usage),
            }
        }
        Verb::Move { .. } => unreachable!("handled above"),
        Verb::Rm { name } => {
            let v = c
                .delete_volume(pb::VolumeName { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            match ctx.format {
                Format::Json => output::json(&to_json(&v, &Usage::new())),
                Format::Table => println!("deleted volume {}", v.name),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("10G"), Ok(10 << 30));
        assert_eq!(super::parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(super::parse_size("100"), Ok(100));
        assert!(super::parse_size("ten").is_err());
        assert!(super::parse_size("1X").is_err());
    }
}
