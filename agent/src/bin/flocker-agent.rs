//! `flocker-agent`: one per host. Parses and validates its flags (every problem reported at
//! once, exit 64), then runs [`agent::daemon::Daemon`] until SIGTERM or SIGINT: membership;
//! the Agent API (snapshot transfer, fenced mounts) with the volume reconciler; the Docker
//! side (proxy, volume plugin, lease watcher); and with `--underlay` the network side
//! (overlay, `weave` adapter, address and peer followers).

use std::process::ExitCode;

use agent::daemon::{Args, Daemon, DaemonError, validate};
use agent::flocker::side::StartError;
use clap::Parser;
use foundation::exit;
use foundation::logging;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    logging::init(args.log_format, "info");
    let settings = match validate(args) {
        Ok(s) => s,
        Err(problems) => return config_error(&problems),
    };
    let daemon = match Daemon::start(settings).await {
        Ok(d) => d,
        Err(DaemonError::Docker(StartError::Invalid(e))) => return config_error(&e.problems),
        Err(e) => {
            tracing::error!(error = %e, "agent cannot start");
            return ExitCode::FAILURE;
        }
    };
    let stop = async {
        let signal = foundation::shutdown::signal_received().await;
        tracing::info!(?signal, "shutting down");
    };
    match daemon.run(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            ExitCode::FAILURE
        }
    }
}

fn config_error(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("flocker-agent: {p}");
    }
    ExitCode::from(exit::CONFIG)
}
