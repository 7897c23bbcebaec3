//! `flocker-agent`: one per host. Parses flags into an [`agent::AgentConfig`] (invalid
//! configuration exits 64), opens its storage and runs the agent (membership, the Agent API,
//! the volume reconciler) until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::transfer::TransferConfig;
use clap::Parser;
use proto::tls::TlsDir;

/// Exit code for invalid configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// The per-host Flocker agent.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// This host's node name (the name in its node certificate).
    #[arg(long)]
    node: String,
    /// Control members, comma-separated HOST:PORT.
    #[arg(long, value_delimiter = ',', required = true)]
    control: Vec<String>,
    /// TLS directory: ca.crt, tls.crt, tls.key (a `node` certificate).
    #[arg(long, default_value = "/etc/flocker/node")]
    tls_dir: PathBuf,
    /// Address announced for this agent [default: NODE:4524].
    #[arg(long)]
    advertise: Option<String>,
    /// Storage backend, announced and opened: zfs:POOL[/PATH] or dir:/ABSOLUTE/PATH.
    #[arg(long, default_value = "dir:/var/lib/flocker")]
    storage: String,
    /// Where volumes are mounted (`<volume-root>/<name>`).
    #[arg(long, default_value = "/flocker")]
    volume_root: PathBuf,
    /// Address the Agent API listens on.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], agent::config::DEFAULT_AGENT_PORT)))]
    listen: SocketAddr,
    /// Bytes per second a push may send at most (slows moves down for tests).
    #[arg(long)]
    send_limit: Option<u64>,
    /// Milliseconds between heartbeats.
    #[arg(long, default_value_t = 2000)]
    heartbeat_ms: u64,
}

fn validate(args: Args) -> Result<(agent::AgentConfig, TransferConfig), Vec<String>> {
    let mut errors = Vec::new();
    let spec = args
        .storage
        .parse::<agent::storage::StorageSpec>()
        .map_err(|e| errors.push(format!("--storage: {e}")));
    if !args.volume_root.is_absolute() {
        errors.push("--volume-root must be an absolute path".to_owned());
    }
    if args.send_limit == Some(0) {
        errors.push("--send-limit must be at least 1 byte per second".to_owned());
    }
    if args.node.is_empty()
        || !args
            .node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        errors.push(format!(
            "--node {:?}: use letters, digits, '_', '.', '-'",
            args.node
        ));
    }
    for c in &args.control {
        if !c.contains(':') {
            errors.push(format!("--control {c:?}: expected HOST:PORT"));
        }
    }
    if args.heartbeat_ms < 50 {
        errors.push("--heartbeat-ms must be at least 50".to_owned());
    }
    let tls = TlsDir::load(&args.tls_dir).map_err(|e| errors.push(format!("--tls-dir: {e}")));
    match (tls, spec) {
        (Ok(tls), Ok(storage)) if errors.is_empty() => Ok((
            agent::AgentConfig {
                address: args.advertise.unwrap_or_else(|| {
                    format!("{}:{}", args.node, agent::config::DEFAULT_AGENT_PORT)
                }),
                node: args.node,
                controls: args.control,
                tls,
                storage: args.storage,
                heartbeat: Duration::from_millis(args.heartbeat_ms),
            },
            TransferConfig {
                storage,
                volume_root: args.volume_root,
                listen: args.listen,
                rate_limit: args.send_limit,
            },
        )),
        _ => Err(errors),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (config, transfer) = match validate(Args::parse()) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("flocker-agent: {e}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match agent::transfer::serve(config, transfer, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            ExitCode::FAILURE
        }
    }
}
