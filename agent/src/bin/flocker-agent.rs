//! `flocker-agent`: one per host. Parses flags into an [`agent::AgentConfig`] (invalid
//! configuration exits 64) and runs the agent until SIGTERM or SIGINT: membership; the Agent
//! API (snapshot transfer, fenced mounts) with the volume reconciler; the Docker side (proxy,
//! volume plugin, lease watcher); and with `--underlay` the network side (overlay, `weave`
//! adapter, address and peer followers).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::flocker::side::{DEFAULT_LISTEN, DockerSideConfig, Extensions, StartError, start};
use agent::storage::StorageSpec;
use agent::transfer::TransferConfig;
use agent::weave::side::{self as network, DEFAULT_WAIT_FOR_NET, NetworkSide, NetworkSideConfig};
use clap::Parser;
use foundation::logging::{self, LogFormat};
use proto::tls::TlsDir;

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
    /// Log lines as `text` (colour only on a terminal) or `json`; `RUST_LOG` filters.
    #[arg(long, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// TLS directory: ca.crt, tls.crt, tls.key (a `node` certificate).
    #[arg(long, default_value = "/etc/flocker/node")]
    tls_dir: PathBuf,
    /// Address announced for this agent [default: NODE:4524].
    #[arg(long)]
    advertise: Option<String>,
    /// Storage backend, announced and used: zfs:POOL[/PATH] or dir:PATH.
    #[arg(long, default_value = "dir:/var/lib/flocker")]
    storage: String,
    /// dockerd's socket, which the agent's Docker proxy forwards to.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    docker: String,
    /// Where the agent's Docker proxy listens: unix:///path or tcp://host:port (repeatable)
    /// [default: unix:///run/flocker/docker.sock and tcp://127.0.0.1:2375].
    #[arg(long = "listen-docker")]
    listen_docker: Vec<String>,
    /// adapters.yml for the Docker proxy [default: `flocker` as a pre-hook on containers/create].
    #[arg(long)]
    adapters: Option<PathBuf>,
    /// Where volumes are mounted, as `<volume-root>/<name>`.
    #[arg(long, default_value = "/flocker")]
    volume_root: PathBuf,
    /// Directory for the volume plugin's socket (flocker.sock).
    #[arg(long, default_value = "/run/docker/plugins")]
    plugin_dir: PathBuf,
    /// Run without the volume plugin.
    #[arg(long)]
    no_plugin: bool,
    /// Local state: the plugin's mount counts and the default adapters.yml.
    #[arg(long, default_value = "/var/lib/flocker/agent")]
    state_dir: PathBuf,
    /// Address the Agent API (snapshot streams, orders from the control service) listens on.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], agent::config::DEFAULT_AGENT_PORT)))]
    listen: SocketAddr,
    /// Bytes per second a push may send at most (slows moves down for tests).
    #[arg(long)]
    send_limit: Option<u64>,
    /// Time between heartbeats (e.g. 2s, 500ms).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "2s"
    )]
    heartbeat: Duration,
    /// The interface that carries the overlay's VXLAN traffic; turns the network side
    /// (WEAVE_CIDR addresses) on [default: off].
    #[arg(long)]
    underlay: Option<String>,
    /// The static wait-for-net on this host, bind-mounted into containers (with --underlay).
    #[arg(long, default_value = DEFAULT_WAIT_FOR_NET)]
    wait_for_net: PathBuf,
}

/// The shortest `--heartbeat` accepted.
const MIN_HEARTBEAT: Duration = Duration::from_millis(50);

/// Everything the agent runs, validated.
struct Validated {
    agent: agent::AgentConfig,
    docker: DockerSideConfig,
    network: Option<NetworkSideConfig>,
    transfer: TransferConfig,
}

/// The Docker side's settings from the flags; their problems are added to `errors`.
fn docker_side(args: &Args, errors: &mut Vec<String>) -> Option<DockerSideConfig> {
    let storage = args
        .storage
        .parse::<StorageSpec>()
        .map_err(|e| errors.push(format!("--storage: {e}")))
        .ok();
    let listen = if args.listen_docker.is_empty() {
        DEFAULT_LISTEN.iter().map(|s| s.to_string()).collect()
    } else {
        args.listen_docker.clone()
    };
    let config = DockerSideConfig {
        docker: args.docker.clone(),
        listen,
        adapters: args.adapters.clone(),
        // A bad --storage is already reported; check the other flags all the same.
        storage: storage.clone().unwrap_or(StorageSpec::Dir("/".into())),
        volume_root: args.volume_root.clone(),
        plugin_dir: (!args.no_plugin).then(|| args.plugin_dir.clone()),
        state_dir: args.state_dir.clone(),
    };
    errors.extend(config.problems());
    storage.map(|_| config)
}

fn validate(args: Args) -> Result<Validated, Vec<String>> {
    let mut errors = Vec::new();
    let side = docker_side(&args, &mut errors);
    let network = args.underlay.clone().map(|underlay| NetworkSideConfig {
        underlay,
        wait_for_net: args.wait_for_net.clone(),
    });
    errors.extend(network.iter().flat_map(NetworkSideConfig::problems));
    if args.send_limit == Some(0) {
        errors.push("--send-limit must be at least 1 byte per second".to_owned());
    }
    if let Err(e) = foundation::names::NodeName::new(&args.node) {
        errors.push(format!("--node: {e}"));
    }
    for c in &args.control {
        if !c.contains(':') {
            errors.push(format!("--control {c:?}: expected HOST:PORT"));
        }
    }
    if args.heartbeat < MIN_HEARTBEAT {
        errors.push(format!(
            "--heartbeat must be at least {}",
            humantime::format_duration(MIN_HEARTBEAT)
        ));
    }
    let tls = TlsDir::load(&args.tls_dir).map_err(|e| errors.push(format!("--tls-dir: {e}")));
    match (tls, side) {
        (Ok(tls), Some(side)) if errors.is_empty() => Ok(Validated {
            agent: agent::AgentConfig {
                address: args.advertise.unwrap_or_else(|| {
                    format!("{}:{}", args.node, agent::config::DEFAULT_AGENT_PORT)
                }),
                node: args.node,
                controls: args.control,
                tls,
                storage: args.storage,
                heartbeat: args.heartbeat,
            },
            transfer: TransferConfig {
                storage: side.storage.clone(),
                volume_root: side.volume_root.clone(),
                listen: args.listen,
                rate_limit: args.send_limit,
                docker: agent::flocker::side::docker_socket(&side.docker),
            },
            docker: side,
            network,
        }),
        _ => Err(errors),
    }
}

/// The network side when `--underlay` is given; otherwise says once that it is off.
async fn start_network(
    config: &agent::AgentConfig,
    side: &DockerSideConfig,
    network: Option<NetworkSideConfig>,
) -> Result<Option<NetworkSide>, network::NetworkSideError> {
    let Some(network) = network else {
        tracing::info!("network side off (no --underlay): WEAVE_CIDR is not served");
        return Ok(None);
    };
    // Validated above: dockerd's socket is unix:///path.
    let socket = agent::flocker::side::docker_socket(&side.docker);
    network::start(config, network, socket).await.map(Some)
}

/// The proxy's extra built-ins and default adapters.yml: `weave` when the network side is on.
fn extensions(network: Option<&NetworkSide>) -> Extensions {
    match network {
        Some(network) => Extensions {
            builtins: vec![(network::ADAPTER_NAME, network.adapter())],
            default_adapters: network::DEFAULT_ADAPTERS,
        },
        None => Extensions::default(),
    }
}

async fn shutdown_signal() {
    let signal = foundation::shutdown::signal_received().await;
    tracing::info!(?signal, "shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    logging::init(args.log_format, "info");
    let Validated {
        agent: config,
        docker: side,
        network,
        transfer,
    } = match validate(args) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("flocker-agent: {e}");
            }
            return ExitCode::from(foundation::exit::CONFIG);
        }
    };
    // Kept until main returns: dropping it stops its tasks.
    let network = match start_network(&config, &side, network).await {
        Ok(network) => network,
        Err(e) => {
            tracing::error!(error = %e, "agent cannot start");
            return ExitCode::FAILURE;
        }
    };
    let docker = match start(&config, side, extensions(network.as_ref())).await {
        Ok(docker) => docker,
        Err(StartError::Invalid(e)) => {
            for problem in &e.problems {
                eprintln!("flocker-agent: {problem}");
            }
            return ExitCode::from(foundation::exit::CONFIG);
        }
        Err(e) => {
            tracing::error!(error = %e, "agent cannot start");
            return ExitCode::FAILURE;
        }
    };
    // The proxy owns the shutdown signal and drains its connections; membership and the
    // Agent API stop with it.
    tokio::select! {
        result = agent::transfer::serve(config, transfer, std::future::pending()) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "agent stopped");
                ExitCode::FAILURE
            }
        },
        () = docker.run(shutdown_signal()) => ExitCode::SUCCESS,
    }
}
