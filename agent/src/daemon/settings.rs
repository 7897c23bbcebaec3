//! The agent's settings and their validation: every problem is reported at once, before
//! anything starts. Each flag may also come from `FLOCKER_AGENT_<FLAG>` or from
//! `/etc/flocker/agent.yml` (`--config`), keyed by the flag's name in snake_case
//! (`foundation::config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use foundation::config::{FileArgs, Layered, Layers, LoadError};
use foundation::logging::LogFormat;
use proto::tls::TlsDir;

use crate::config::{AgentConfig, DEFAULT_AGENT_PORT};
use crate::flocker::side::{DEFAULT_LISTEN, DockerSideConfig, docker_socket};
use crate::storage::StorageSpec;
use crate::transfer::TransferConfig;
use crate::weave::side::{DEFAULT_WAIT_FOR_NET, NetworkSideConfig};

/// Where the agent's settings come from besides its flags.
pub const LAYERS: Layers = Layers {
    default_file: "/etc/flocker/agent.yml",
    env_prefix: "FLOCKER_AGENT",
};

/// The agent's settings from `argv` (program name first), the environment (`lookup`) and its
/// settings file.
pub fn load(
    argv: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Layered<Args>, LoadError> {
    foundation::config::load(argv, lookup, &LAYERS)
}

/// The per-host Flocker agent. Every flag may also be set as `FLOCKER_AGENT_<FLAG>` or in
/// /etc/flocker/agent.yml (`tls_dir: ...`); a flag beats the variable, which beats the file.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(version)]
pub struct Args {
    /// The settings file and --print-config.
    #[command(flatten)]
    pub file: FileArgs,
    /// This host's node name (the name in its node certificate).
    #[arg(long)]
    pub node: String,
    /// Control members, comma-separated HOST:PORT.
    #[arg(long, value_delimiter = ',', required = true)]
    pub control: Vec<String>,
    /// Log lines as `text` (colour only on a terminal) or `json`; `RUST_LOG` filters.
    #[arg(long, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this endpoint (e.g. `http://127.0.0.1:4317`); when
    /// unset, `OTEL_EXPORTER_OTLP_ENDPOINT` decides, and without it traces are off.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// TLS directory: ca.crt, tls.crt, tls.key (a `node` certificate).
    #[arg(long, default_value = proto::tls::NODE_DIR)]
    pub tls_dir: PathBuf,
    /// Address announced for this agent [default: NODE:4524].
    #[arg(long)]
    pub advertise: Option<String>,
    /// Storage backend, announced and used: zfs:POOL[/PATH] or dir:PATH.
    #[arg(long, default_value = "dir:/var/lib/flocker")]
    pub storage: String,
    /// dockerd's socket, which the agent's Docker proxy forwards to.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    pub docker: String,
    /// Where the agent's Docker proxy listens: unix:///path or tcp://host:port (repeatable)
    /// [default: unix:///run/flocker/docker.sock and tcp://127.0.0.1:2375].
    #[arg(long = "listen-docker", value_delimiter = ',')]
    pub listen_docker: Vec<String>,
    /// adapters.yml for the Docker proxy [default: `flocker` as a pre-hook on containers/create].
    #[arg(long)]
    pub adapters: Option<PathBuf>,
    /// Where volumes are mounted, as `<volume-root>/<name>`.
    #[arg(long, default_value = "/flocker")]
    pub volume_root: PathBuf,
    /// Directory for the volume plugin's socket (flocker.sock).
    #[arg(long, default_value = "/run/docker/plugins")]
    pub plugin_dir: PathBuf,
    /// Run without the volume plugin.
    #[arg(long)]
    pub no_plugin: bool,
    /// Local state: the plugin's mount counts and the default adapters.yml.
    #[arg(long, default_value = "/var/lib/flocker/agent")]
    pub state_dir: PathBuf,
    /// Address the Agent API (snapshot streams, orders from the control service) listens on.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_AGENT_PORT)))]
    pub listen: SocketAddr,
    /// Bytes per second a push may send at most (slows moves down for tests).
    #[arg(long)]
    pub send_limit: Option<u64>,
    /// Time between heartbeats (e.g. 2s, 500ms).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "2s"
    )]
    pub heartbeat: Duration,
    /// Make the volumes owned here read-only once the control service has not answered a
    /// heartbeat for this long (self-fencing); keep it below the members' --node-timeout, after
    /// which another node may be given them.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "6s"
    )]
    pub fence_after: Duration,
    /// The interface that carries the overlay's VXLAN traffic; turns the network side
    /// (WEAVE_CIDR addresses) on [default: off].
    #[arg(long)]
    pub underlay: Option<String>,
    /// The static wait-for-net on this host, bind-mounted into containers (with --underlay).
    #[arg(long, default_value = DEFAULT_WAIT_FOR_NET)]
    pub wait_for_net: PathBuf,
    /// Serve Prometheus metrics (plain HTTP, `GET /metrics`) on this HOST:PORT; off when
    /// unset. Bind it to loopback or a private network.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The shortest `--heartbeat` accepted.
const MIN_HEARTBEAT: Duration = Duration::from_millis(50);

/// Everything the agent runs, validated.
#[derive(Debug)]
pub struct Settings {
    /// Identity, control members, heartbeat.
    pub agent: AgentConfig,
    /// The Docker proxy, the volume plugin and the volumes.
    pub docker: DockerSideConfig,
    /// The overlay and WEAVE_CIDR addresses (`--underlay`), if on.
    pub network: Option<NetworkSideConfig>,
    /// The Agent API and its storage.
    pub transfer: TransferConfig,
    /// Where to serve Prometheus metrics ([`crate::metrics`]), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
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

/// The settings `args` describe, or every problem with them (nothing is started or opened
/// here except reading the TLS directory).
pub fn validate(args: Args) -> Result<Settings, Vec<String>> {
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
    if args.fence_after < args.heartbeat * 2 {
        errors.push(format!(
            "--fence-after ({}) must be at least two --heartbeat intervals ({}), or one late answer fences the agent",
            humantime::format_duration(args.fence_after),
            humantime::format_duration(args.heartbeat * 2)
        ));
    }
    let tls = TlsDir::load(&args.tls_dir).map_err(|e| errors.push(format!("--tls-dir: {e}")));
    match (tls, side) {
        (Ok(tls), Some(side)) if errors.is_empty() => Ok(Settings {
            agent: AgentConfig {
                address: args
                    .advertise
                    .unwrap_or_else(|| format!("{}:{}", args.node, DEFAULT_AGENT_PORT)),
                node: args.node,
                controls: args.control,
                tls,
                storage: args.storage,
                heartbeat: args.heartbeat,
                fence_after: args.fence_after,
            },
            transfer: TransferConfig {
                storage: side.storage.clone(),
                volume_root: side.volume_root.clone(),
                listen: args.listen,
                rate_limit: args.send_limit,
                docker: docker_socket(&side.docker),
            },
            docker: side,
            network,
            metrics_listen: args.metrics_listen,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `extra` after `--node node1 --control 10.0.0.1:4523`, unless it gives those itself.
    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["flocker-agent"];
        for (flag, value) in [("--node", "node1"), ("--control", "10.0.0.1:4523")] {
            if !extra.contains(&flag) {
                argv.extend([flag, value]);
            }
        }
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("the flags parse")
    }

    fn problems(extra: &[&str]) -> Vec<String> {
        validate(args(extra)).expect_err("the settings are refused")
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems(&[
            "--node",
            "bad name",
            "--control",
            "nohost",
            "--storage",
            "btrfs:/x",
            "--send-limit",
            "0",
            "--heartbeat",
            "10ms",
            "--volume-root",
            "relative",
            "--tls-dir",
            "/nonexistent/tls",
        ]);
        for want in [
            "--node",
            "--control",
            "--storage",
            "--send-limit",
            "--heartbeat",
            "--volume-root",
            "--tls-dir",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "{want} not reported in {found:#?}"
            );
        }
    }

    #[test]
    fn the_network_side_is_checked_only_when_asked_for() {
        let without = problems(&["--tls-dir", "/nonexistent/tls"]);
        assert!(
            !without.iter().any(|p| p.contains("--underlay")),
            "{without:?}"
        );
        let with = problems(&[
            "--tls-dir",
            "/nonexistent/tls",
            "--underlay",
            "eth0/x",
            "--wait-for-net",
            "rel",
        ]);
        assert!(with.iter().any(|p| p.starts_with("--underlay")), "{with:?}");
        assert!(
            with.iter().any(|p| p.starts_with("--wait-for-net")),
            "{with:?}"
        );
    }

    #[test]
    fn durations_are_human() {
        assert_eq!(
            args(&["--heartbeat", "500ms"]).heartbeat,
            Duration::from_millis(500)
        );
        assert!(
            Args::try_parse_from([
                "flocker-agent",
                "--node",
                "n",
                "--control",
                "a:1",
                "--heartbeat",
                "5"
            ])
            .is_err(),
            "a bare number has no unit"
        );
    }

    /// The shipped /etc/flocker/agent.yml with every `#key:` line turned on.
    fn template_uncommented() -> String {
        include_str!("../../../deploy/config/agent.yml")
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn keys(yaml: &str) -> std::collections::BTreeSet<String> {
        yaml.lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
            .collect()
    }

    #[test]
    fn the_shipped_settings_file_names_every_setting_and_each_value_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yml");
        std::fs::write(&path, template_uncommented()).unwrap();
        let layered = load(
            ["flocker-agent", "--config", path.to_str().unwrap()],
            |_| None,
        )
        .expect("the template loads");
        assert_eq!(
            keys(&template_uncommented()),
            keys(&layered.report.to_yaml())
        );
    }

    #[test]
    fn printed_settings_read_back_to_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yml");
        std::fs::write(&path, "node: host-a\nheartbeat: 500ms\nno_plugin: true\n").unwrap();
        let first = load(
            [
                "flocker-agent",
                "--config",
                path.to_str().unwrap(),
                "--control",
                "10.0.0.1:4523,10.0.0.2:4523",
                "--listen-docker",
                "unix:///run/a.sock",
            ],
            |k| (k == "FLOCKER_AGENT_STORAGE").then(|| "zfs:tank/flocker".into()),
        )
        .unwrap();
        let printed = dir.path().join("printed.yml");
        std::fs::write(&printed, first.report.to_yaml()).unwrap();
        let second = load(
            ["flocker-agent", "--config", printed.to_str().unwrap()],
            |_| None,
        )
        .unwrap();
        let without_file = |a: &Args| Args {
            file: FileArgs {
                config: None,
                print_config: false,
            },
            ..a.clone()
        };
        assert_eq!(without_file(&first.args), without_file(&second.args));
        assert_eq!(second.args.heartbeat, Duration::from_millis(500));
        assert_eq!(second.args.storage, "zfs:tank/flocker");
        assert_eq!(second.args.control.len(), 2);
    }

    #[test]
    fn a_bad_value_from_the_file_is_reported_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yml");
        std::fs::write(
            &path,
            "node: host-a\ncontrol: [nohost]\ntls_dir: /nonexistent/tls\nstorage: btrfs:/x\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let layered = load(["flocker-agent", "--config", file], |_| None).unwrap();
        let problems = layered
            .report
            .attribute(validate(layered.args).expect_err("refused"));
        for want in [
            "control \"nohost\": expected HOST:PORT",
            "tls_dir: ",
            "storage: ",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("{file}: {want}"))),
                "{want} not in {problems:#?}"
            );
        }
        let unknown = load(["flocker-agent", "--config", file, "--nod", "x"], |_| None);
        assert!(
            matches!(unknown, Err(LoadError::Usage(_))),
            "a typo in a flag is clap's"
        );
    }
}
