//! `flockerctl events [--all]`: the cluster's changes as they happen, one line each (or one
//! JSON object per line), from the `Watch` stream. The state is listed first so that each
//! change can be told from what it changed ([`control::status::changes`]); when the stream
//! is lost the command says so on stderr, reconnects to any member and lists again.

use clap::Args;
use control::status::changes::{self, Change};
use control::status::view::View;
use foundation::retry::Backoff;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use tonic::transport::Channel;

use super::{Ctx, Format, call_failed};

/// `events` flags.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Also print routine changes: heartbeats, a move's progress, replicas refreshed.
    #[arg(long)]
    all: bool,
}

/// Prints changes until interrupted.
pub async fn run(args: EventsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    // The first connection's failure is the command's (a wrong --control or certificate).
    let mut client: NodeApiClient<Channel> = ctx.client().await?;
    let mut backoff = Backoff::reconnect();
    let mut watched = false;
    loop {
        let problem = match follow(&mut client, &args, ctx.format, &mut watched).await {
            Err(status) if !watched => return Err(call_failed(status)),
            Err(status) => status.message().to_owned(),
            Ok(()) => "the watch stream ended".to_owned(),
        };
        eprintln!("flockerctl: events: {problem}; reconnecting (changes meanwhile are not shown)");
        loop {
            tokio::time::sleep(backoff.next_pause()).await;
            match ctx.client().await {
                Ok(c) => {
                    client = c;
                    break;
                }
                Err(e) => eprintln!("flockerctl: events: {e:#}"),
            }
        }
        backoff.reset();
    }
}

/// Watches, lists, then prints each change until the stream fails or ends; `watched` is set
/// once it has watched (the header is printed the first time only).
async fn follow(
    client: &mut NodeApiClient<Channel>,
    args: &EventsArgs,
    format: Format,
    watched: &mut bool,
) -> Result<(), tonic::Status> {
    // Watch first, then list: every change after the listing is in the stream.
    let mut stream = client.watch(pb::WatchRequest {}).await?.into_inner();
    let mut view: View = control::status::list(client).await?;
    eprintln!(
        "flockerctl: events: watching {} nodes, {} volumes, {} addresses (Ctrl-C to stop)",
        view.nodes.len(),
        view.volumes.len(),
        view.allocations.len()
    );
    if format == Format::Table && !*watched {
        println!(
            "{:<24}  {:>7}  {:<7}  {:<20}  WHAT",
            "TIME", "INDEX", "KIND", "NAME"
        );
    }
    *watched = true;
    while let Some(event) = stream.message().await? {
        if let Some(change) = changes::describe(&view, &event)
            && (args.all || !change.routine)
        {
            print(&change, format);
        }
        view.apply(event);
    }
    Ok(())
}

fn print(change: &Change, format: Format) {
    let now = control::server::node_service::now_ms();
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(change).expect("a change serialises");
            value["time_ms"] = now.into();
            println!("{value}");
        }
        Format::Table => println!(
            "{:<24}  {:>7}  {:<7}  {:<20}  {}",
            rfc3339(now),
            change.index,
            change.kind,
            change.name,
            change.what
        ),
    }
}

/// `ms` since the Unix epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}
