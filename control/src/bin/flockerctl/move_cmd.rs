//! `flockerctl volume move NAME --to NODE [--stop]`: starts a move and follows it, with a
//! live progress line on a terminal or one JSON object per event with `--output json`.

use std::io::{IsTerminal, Write};

use proto::control as pb;
use proto::control::control_client::ControlClient;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::output::human;
use super::{Ctx, Format, call_failed};

fn line(p: &pb::MoveProgress) -> String {
    format!(
        "move {} {} -> {}: {:<8} {:>10} sent, {:>10}/s, {} round(s)",
        p.volume,
        p.from,
        p.to,
        p.phase,
        human(p.bytes_sent),
        human(p.bytes_per_second),
        p.rounds
    )
}

/// Runs the move and prints its progress; fails if the move fails. A volume that has no
/// owner yet (made by `volume create` without `--owner`) holds no data anywhere: it is
/// given to the node at once, which is what the agents' "no owner node yet" error tells
/// the user to do with this command.
pub async fn run(ctx: &Ctx, name: String, to: String, stop: bool) -> anyhow::Result<()> {
    let mut c = ctx.client().await?;
    let volume = c
        .get_volume(pb::VolumeName { name: name.clone() })
        .await
        .map_err(call_failed)?
        .into_inner();
    if volume.owner.is_none() {
        return give(ctx, &mut c, name, to).await;
    }
    let req = pb::MoveVolumeRequest {
        name,
        to,
        stop_containers: stop,
    };
    let mut stream = c.move_volume(req).await.map_err(call_failed)?.into_inner();
    let live = ctx.format == Format::Table && std::io::stdout().is_terminal();
    let mut last = None;
    while let Some(p) = stream.next().await {
        let p = p.map_err(call_failed)?;
        match ctx.format {
            Format::Json => println!(
                "{}",
                json!({
                    "migration": p.migration, "volume": p.volume, "from": p.from, "to": p.to,
                    "phase": p.phase, "bytes_sent": p.bytes_sent,
                    "bytes_per_second": p.bytes_per_second, "rounds": p.rounds, "error": p.error,
                })
            ),
            Format::Table if live => {
                print!("\r\x1b[2K{}", line(&p));
                let _ = std::io::stdout().flush();
            }
            Format::Table => println!("{}", line(&p)),
        }
        last = Some(p);
    }
    if live {
        println!();
    }
    match last {
        Some(p) if p.phase == "done" => Ok(()),
        Some(p) if p.phase == "failed" => Err(anyhow::anyhow!(
            "move of volume {} failed: {}",
            p.volume,
            p.error.unwrap_or_default()
        )),
        _ => Err(anyhow::anyhow!(
            "the progress stream ended before the move finished: see `flockerctl volume ls`"
        )),
    }
}

/// Makes `to` the owner of volume `name`, which has none.
async fn give(
    ctx: &Ctx,
    c: &mut ControlClient<Channel>,
    name: String,
    to: String,
) -> anyhow::Result<()> {
    let v = c
        .set_volume_owner(pb::SetOwnerRequest { name, owner: to })
        .await
        .map_err(call_failed)?
        .into_inner();
    let to = v.owner.unwrap_or_default();
    match ctx.format {
        Format::Json => println!(
            "{}",
            json!({
                "migration": null, "volume": v.name, "from": null, "to": to, "phase": "done",
                "bytes_sent": 0, "bytes_per_second": 0, "rounds": 0, "error": null,
            })
        ),
        Format::Table => println!(
            "volume {} had no owner: {to} owns it now (epoch {})",
            v.name, v.epoch
        ),
    }
    Ok(())
}
