//! `flockerctl volume move NAME --to NODE [--stop]`: starts a move and follows it, with a
//! live progress bar on a terminal, one line per event when the output is not a terminal,
//! or one JSON object per event with `--output json`.

use std::io::IsTerminal;
use std::time::Duration;

use control::convert::phase_word;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
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
        phase_word(p.phase()),
        human(p.bytes_sent),
        human(p.bytes_per_second),
        p.rounds
    )
}

/// Runs the move and prints its progress; fails if the move fails.
pub async fn run(ctx: &Ctx, name: String, to: String, stop: bool) -> anyhow::Result<()> {
    let mut c: NodeApiClient<Channel> = ctx.client().await?;
    let req = pb::MoveVolumeRequest {
        name,
        to,
        stop_containers: stop,
    };
    let mut stream = c.move_volume(req).await.map_err(call_failed)?.into_inner();
    let live = ctx.format == Format::Table && std::io::stdout().is_terminal();
    let bar = live.then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("the template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut last = None;
    while let Some(p) = stream.next().await {
        let p = p.map_err(call_failed)?;
        match ctx.format {
            Format::Json => println!(
                "{}",
                json!({
                    "migration": p.migration, "volume": p.volume, "from": p.from, "to": p.to,
                    "phase": phase_word(p.phase()), "bytes_sent": p.bytes_sent,
                    "bytes_per_second": p.bytes_per_second, "rounds": p.rounds, "error": p.error,
                })
            ),
            Format::Table => match &bar {
                Some(bar) => bar.set_message(line(&p)),
                None => println!("{}", line(&p)),
            },
        }
        last = Some(p);
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    match last {
        Some(p) if p.phase() == pb::MovePhase::Done => Ok(()),
        Some(p) if p.phase() == pb::MovePhase::Failed => Err(anyhow::anyhow!(
            "move of volume {} failed: {}",
            p.volume,
            p.error.unwrap_or_default()
        )),
        _ => Err(anyhow::anyhow!(
            "the progress stream ended before the move finished: see `flockerctl volume ls`"
        )),
    }
}
