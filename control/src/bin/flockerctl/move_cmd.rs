//! `flockerctl volume move NAME --to NODE [--stop]`: starts a move and follows it, with a
//! live progress line on a terminal or one JSON object per event with `--output json`.

use std::io::{IsTerminal, Write};

use proto::control as pb;
use serde_json::json;
use tokio_stream::StreamExt;

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

/// Runs the move and prints its progress; fails if the move fails.
pub async fn run(ctx: &Ctx, name: String, to: String, stop: bool) -> anyhow::Result<()> {
    let mut c = ctx.client().await?;
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
