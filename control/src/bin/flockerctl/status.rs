//! `flockerctl status [--web [--listen 127.0.0.1:PORT]]`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use control::status::{self, Source};
use proto::tls::TlsDir;
use tonic::transport::Channel;

use super::{Ctx, cluster};

/// Where `status --web` listens by default.
const DEFAULT_LISTEN: &str = "127.0.0.1:9521";

/// `status` flags.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Serve the live status page in a browser (read-only) instead of printing the
    /// members; runs until Ctrl-C.
    #[arg(long)]
    web: bool,
    /// Where the page listens: a loopback HOST:PORT only (the page has no authentication of
    /// its own).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_LISTEN, requires = "web")]
    listen: SocketAddr,
}

/// Runs `status`.
pub async fn run(args: StatusArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if !args.web {
        return cluster::run(cluster::Verb::Status, ctx).await;
    }
    let listen = status::loopback_only("--listen", args.listen)?;
    // Reach the control service once first, so that a wrong --control fails at once.
    let _: Channel = ctx.client().await?;
    let tls = TlsDir::load(&ctx.tls_dir)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    println!("status page: {url} (Ctrl-C to stop)");
    let source = Source {
        members: ctx.control.clone(),
        tls,
    };
    let stop = foundation::shutdown::StopSignals::install();
    status::serve(listener, source, async move {
        stop.received().await;
    })
    .await;
    Ok(())
}
