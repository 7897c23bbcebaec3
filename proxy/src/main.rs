//! `powerstrip`: the standalone Docker API proxy.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use foundation::logging::{self, LogFormat};
use foundation::shutdown::StopSignals;
use proxy::adapter::builtin::Builtins;
use proxy::launch::Options;
use proxy::limits::DEFAULT_MAX_HOOK_BODY_BYTES;

/// A Docker API proxy that runs adapters as pre- and post-hooks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// adapters.yml: endpoints and the adapters hooked onto them.
    #[arg(long, default_value = "/etc/powerstrip/adapters.yml")]
    config: PathBuf,
    /// Where to listen: unix:///path or tcp://host:port (repeatable).
    #[arg(long, default_values = ["unix:///run/powerstrip/docker.sock", "tcp://127.0.0.1:2375"])]
    listen: Vec<String>,
    /// Docker's socket (never taken from DOCKER_HOST, which should point at this proxy).
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    docker: String,
    /// Server certificate (PEM) for TCP listeners.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for TCP listeners.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Allow plain TCP on non-loopback addresses (anyone who connects is root on this host).
    #[arg(long)]
    insecure: bool,
    /// Log lines as `text` (colour only on a terminal) or `json`; `RUST_LOG` filters.
    #[arg(long, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this endpoint (e.g. `http://127.0.0.1:4317`); when
    /// unset, `OTEL_EXPORTER_OTLP_ENDPOINT` decides, and without it traces are off.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Largest request body, in bytes, that pre-hooks may inspect (larger ones get a 413).
    #[arg(long, default_value_t = DEFAULT_MAX_HOOK_BODY_BYTES)]
    max_hook_body: usize,
    /// Serve Prometheus metrics (`GET /metrics`, plain HTTP) on this address; off if unset.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

/// One thread serves every connection (tokio's `current_thread` runtime). Measured on two
/// cores shared with dockerd and the clients (docs/proxy.md, Performance), a multi-thread
/// runtime spent up to 40% more CPU per request than this (the most at low concurrency), in
/// the wake-ups between its workers (futex, work stealing), for no throughput: dockerd
/// saturates long before one proxy thread does. Blocking work still goes to tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Before any socket is bound: a SIGTERM from then on is a clean shutdown.
    let signals = StopSignals::install();
    let args = Args::parse();
    let telemetry = match logging::init(&logging::Settings {
        format: args.log_format,
        default_filter: "info",
        service: "powerstrip",
        otlp_endpoint: args.otlp_endpoint.as_deref(),
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("powerstrip: cannot start:\n--otlp-endpoint: {e}");
            return ExitCode::from(foundation::exit::CONFIG);
        }
    };
    let options = Options {
        config: args.config,
        listen: args.listen,
        docker: args.docker,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_ca: args.tls_ca,
        insecure: args.insecure,
        max_hook_body: args.max_hook_body,
    };
    let validated = match options.validate(Builtins::standard()) {
        Ok(validated) => validated,
        Err(invalid) => {
            eprintln!("powerstrip: cannot start:\n{invalid}");
            return ExitCode::from(foundation::exit::CONFIG);
        }
    };
    let bound = match validated.bind().await {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("powerstrip: {error}");
            return ExitCode::FAILURE;
        }
    };
    for addr in bound.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    if let Some(addr) = args.metrics_listen {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("powerstrip: cannot listen for metrics on {addr}: {error}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
        let render = std::sync::Arc::new(|| proxy::metrics::METRICS.render());
        // Ends with the process.
        tokio::spawn(foundation::metrics::serve(
            listener,
            render,
            std::future::pending(),
        ));
    }
    bound
        .run(async {
            let signal = signals.received().await;
            tracing::info!(?signal, "shutting down");
        })
        .await;
    telemetry.shutdown().await;
    ExitCode::SUCCESS
}
