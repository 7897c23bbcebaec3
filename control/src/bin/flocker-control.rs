//! `flocker-control`: one member of the Raft-replicated control service.
//!
//! Reads its settings (flags, `FLOCKER_CONTROL_*` variables, `/etc/flocker/control.yml`)
//! and validates them (every bad value reported at once, exit 64; `--print-config` prints
//! them and exits), then runs [`control::daemon::run`] until SIGTERM or SIGINT.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use control::daemon::{self, Config};
use foundation::config::{self, FileArgs, Layered, Layers};
use foundation::logging::{self, LogFormat};
use foundation::shutdown::StopSignals;
use proto::tls::TlsDir;

const NAME: &str = "flocker-control";

/// Where a member's settings come from besides its flags.
const LAYERS: Layers = Layers {
    default_file: "/etc/flocker/control.yml",
    env_prefix: "FLOCKER_CONTROL",
};

/// One control member. Start three with each other as `--peer` to bootstrap a cluster;
/// restart a member with the same `--id` and `--data-dir` to rejoin. Every flag may also be
/// set as `FLOCKER_CONTROL_<FLAG>` or in /etc/flocker/control.yml (`tls_dir: ...`); a flag
/// beats the variable, which beats the file.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The settings file and --print-config.
    #[command(flatten)]
    file: FileArgs,
    /// This member's id (a positive integer, unique in the cluster).
    #[arg(long)]
    id: u64,
    /// Directory for the Raft log and snapshots (`raft.redb`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on for gRPC (Raft and Control share it).
    #[arg(long, default_value = "0.0.0.0:4523")]
    listen: String,
    /// Address the other members and clients dial [default: --listen].
    #[arg(long)]
    advertise: Option<String>,
    /// Another founding member, as ID=HOST:PORT; repeat for each.
    #[arg(long = "peer", value_name = "ID=ADDR", value_delimiter = ',')]
    peers: Vec<String>,
    /// Log lines as `text` (colour only on a terminal) or `json`; `RUST_LOG` filters.
    #[arg(long, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this endpoint (e.g. `http://127.0.0.1:4317`); when
    /// unset, `OTEL_EXPORTER_OTLP_ENDPOINT` decides, and without it traces are off.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// TLS directory: ca.crt, tls.crt, tls.key (a `control` certificate).
    #[arg(long, default_value = proto::tls::CONTROL_DIR)]
    tls_dir: PathBuf,
    /// Do not bootstrap; wait to be added with `flockerctl cluster add-member`.
    #[arg(long)]
    join: bool,
    /// Snapshot and compact the log every this many entries.
    #[arg(long, default_value_t = 5000)]
    snapshot_threshold: u64,
    /// Most writes the leader puts in one Raft entry (group commit); 1: each write its own
    /// entry and fsync.
    #[arg(long, default_value_t = control::batch::MAX_BATCH)]
    max_batch: usize,
    /// Mark a node down after this long without a heartbeat (e.g. 10s, 1500ms).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "10s"
    )]
    node_timeout: Duration,
    /// Give up on a call (write commit, linearizable read) after this long.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "5s"
    )]
    call_timeout: Duration,
    /// How long a move's handoff waits for the containers holding the volume to let go
    /// (stop, or with `volume move --stop` be stopped) before the move fails.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "60s"
    )]
    lease_wait: Duration,
    /// Serve Prometheus metrics (plain HTTP, `GET /metrics`) on this HOST:PORT; off when
    /// unset. Bind it to loopback or a private network.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the live status page (plain HTTP, read-only, no authentication of its own) on
    /// this HOST:PORT, a loopback address only; off when unset.
    #[arg(long, value_name = "HOST:PORT")]
    status_listen: Option<SocketAddr>,
}

/// The shortest `--node-timeout`, `--call-timeout` and `--lease-wait` accepted.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

fn validate(args: Args) -> Result<Config, Vec<String>> {
    let mut errors = Vec::new();
    if args.id == 0 {
        errors.push("--id must be a positive integer".to_owned());
    }
    let listen: Option<SocketAddr> = match args.listen.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(format!(
                "--listen {:?}: expected HOST:PORT with an IP address, e.g. 0.0.0.0:{}",
                args.listen,
                daemon::DEFAULT_PORT
            ));
            None
        }
    };
    let advertise = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.listen.clone());
    if listen.is_some_and(|l| l.ip().is_unspecified()) && args.advertise.is_none() {
        errors.push("--advertise is needed when --listen is a wildcard address: give the address other members dial".to_owned());
    }
    let mut peers = BTreeMap::new();
    for p in &args.peers {
        match p
            .split_once('=')
            .map(|(id, addr)| (id.parse::<u64>(), addr))
        {
            Some((Ok(id), addr)) if id > 0 && addr.contains(':') => {
                if id == args.id {
                    errors.push(format!("--peer {p}: that is this member's own id"));
                } else if peers.insert(id, addr.to_owned()).is_some() {
                    errors.push(format!("--peer {p}: id {id} given twice"));
                }
            }
            _ => errors.push(format!(
                "--peer {p:?}: expected ID=HOST:PORT, e.g. 2=10.0.0.2:4523"
            )),
        }
    }
    if args.max_batch == 0 {
        errors.push("--max-batch must be at least 1".to_owned());
    }
    if args.snapshot_threshold == 0 {
        errors.push("--snapshot-threshold must be at least 1".to_owned());
    }
    for (flag, value) in [
        ("--node-timeout", args.node_timeout),
        ("--call-timeout", args.call_timeout),
        ("--lease-wait", args.lease_wait),
    ] {
        if value < MIN_TIMEOUT {
            errors.push(format!(
                "{flag} must be at least {}",
                humantime::format_duration(MIN_TIMEOUT)
            ));
        }
    }
    let status_listen = match args.status_listen {
        Some(addr) => match control::status::loopback_only("--status-listen", addr) {
            Ok(addr) => Some(addr),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        },
        None => None,
    };
    let tls = match TlsDir::load(&args.tls_dir) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(format!("--tls-dir: {e}"));
            None
        }
    };
    match (listen, tls, errors.is_empty()) {
        (Some(listen), Some(tls), true) => Ok(Config {
            id: args.id,
            data_dir: args.data_dir,
            listen,
            advertise,
            peers,
            tls,
            join: args.join,
            snapshot_threshold: args.snapshot_threshold,
            max_batch: args.max_batch,
            node_timeout: args.node_timeout,
            call_timeout: args.call_timeout,
            moves: control::migration::MoveConfig {
                lease_wait: args.lease_wait,
                ..Default::default()
            },
            metrics_listen: args.metrics_listen,
            status_listen,
        }),
        _ => Err(errors),
    }
}

async fn shutdown_signal(signals: StopSignals) {
    let signal = signals.received().await;
    tracing::info!(?signal, "shutting down");
    foundation::notify::stopping();
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Before any socket is bound: a SIGTERM from then on is a clean shutdown.
    let signals = StopSignals::install();
    let loaded = config::load::<Args>(std::env::args_os(), |k| std::env::var_os(k), &LAYERS);
    let Layered { args, report } = match loaded {
        Ok(layered) => layered,
        Err(e) => return config::exit_code(NAME, e),
    };
    if report.print_config {
        print!("{}", report.to_yaml());
        return ExitCode::SUCCESS;
    }
    let telemetry = match logging::init(&logging::Settings {
        format: args.log_format,
        default_filter: "info,openraft=warn",
        service: NAME,
        otlp_endpoint: args.otlp_endpoint.as_deref(),
    }) {
        Ok(t) => t,
        Err(e) => {
            config::report(NAME, &[format!("--otlp-endpoint: {e}")]);
            return ExitCode::from(foundation::exit::CONFIG);
        }
    };
    let config = match validate(args) {
        Ok(c) => c,
        Err(errors) => {
            config::report(NAME, &report.attribute(errors));
            return ExitCode::from(foundation::exit::CONFIG);
        }
    };
    let code = match daemon::run(config, shutdown_signal(signals)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "control member stopped");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
