//! `flocker-agent`: one per host. Reads its settings (flags, `FLOCKER_AGENT_*` variables,
//! `/etc/flocker/agent.yml`) and validates them (every problem reported at once, exit 64;
//! `--print-config` prints them and exits), then runs [`agent::daemon::Daemon`] until SIGTERM or SIGINT: membership;
//! the Agent API (snapshot transfer, fenced mounts) with the volume reconciler; the Docker
//! side (proxy, volume plugin, lease watcher); and with `--underlay` the network side
//! (overlay, `weave` adapter, address and peer followers).

use std::process::ExitCode;

use agent::daemon::{Daemon, DaemonError, settings, validate};
use agent::flocker::side::StartError;
use foundation::config::{self, Layered};
use foundation::shutdown::StopSignals;
use foundation::{exit, logging, notify};

const NAME: &str = "flocker-agent";

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Before any socket is bound: a SIGTERM from then on is a clean shutdown.
    let signals = StopSignals::install();
    let Layered { args, report } =
        match settings::load(std::env::args_os(), |k| std::env::var_os(k)) {
            Ok(layered) => layered,
            Err(e) => return config::exit_code(NAME, e),
        };
    if report.print_config {
        print!("{}", report.to_yaml());
        return ExitCode::SUCCESS;
    }
    let telemetry = match logging::init(&logging::Settings {
        format: args.log_format,
        default_filter: "info",
        service: NAME,
        otlp_endpoint: args.otlp_endpoint.as_deref(),
    }) {
        Ok(t) => t,
        Err(e) => return config_error(&[format!("--otlp-endpoint: {e}")]),
    };
    let settings = match validate(args) {
        Ok(s) => s,
        Err(problems) => return config_error(&report.attribute(problems)),
    };
    let daemon = match Daemon::start(settings).await {
        Ok(d) => d,
        Err(DaemonError::Docker(StartError::Invalid(e))) => return config_error(&e.problems),
        Err(e) => {
            tracing::error!(error = %e, "agent cannot start");
            return ExitCode::FAILURE;
        }
    };
    // Every socket is bound: systemd (Type=notify) may start what comes after the agent.
    notify::ready();
    let stop = async {
        let signal = signals.received().await;
        tracing::info!(?signal, "shutting down");
        notify::stopping();
    };
    let code = match daemon.run(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}

fn config_error(problems: &[String]) -> ExitCode {
    config::report(NAME, problems);
    ExitCode::from(exit::CONFIG)
}
