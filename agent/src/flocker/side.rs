//! The agent's Docker side, running: the Docker API proxy (`proxy::launch`) with the
//! built-in `flocker` adapter registered (and the caller's [`Extensions`], e.g. `weave`),
//! the volume plugin socket, and the lease watcher.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use foundation::shutdown::Supervisor;
use proxy::adapter::Adapter;
use proxy::adapter::builtin::Builtins;
use proxy::launch::{InvalidOptions, Options};
use proxy::listen::{ListenAddr, parse_docker};

use super::adapter::FlockerAdapter;
use super::arrivals::ArrivalWatcher;
use super::control::VolumeControl;
use super::leases::LeaseWatcher;
use super::placement::ControlMove;
use super::volumes::Volumes;
use crate::cluster::Cluster;
use crate::config::AgentConfig;
use crate::daemon::SHUTDOWN_GRACE;
use crate::docker::{Docker, DockerApi};
use crate::locks::VolumeLocks;
use crate::plugin::{Plugin, driver::Driver, registration, state::StateFile};
use crate::storage::{Backend, StorageSpec};
use crate::swarm::SwarmAdapter;

/// The proxy's listeners when none are given.
pub const DEFAULT_LISTEN: [&str; 2] = ["unix:///run/flocker/docker.sock", "tcp://127.0.0.1:2375"];

/// The adapters.yml used when `--adapters` is not given: `flocker` as a pre-hook on create.
/// Volume creation and mounting can take a while on a busy pool, hence the long timeout.
pub const DEFAULT_ADAPTERS: &str = "\
version: 1
endpoints:
  \"POST /*/containers/create\":
    pre: [flocker]
  \"POST /*/services/create\":
    pre: [swarm]
  \"POST /*/services/*/update\":
    pre: [swarm]
adapters:
  flocker: { url: \"builtin:flocker\", timeout: 100s }
  swarm: { url: \"builtin:swarm\", timeout: 5s }
";

/// What the caller adds to the proxy: more built-in adapters (e.g. `weave`) and the
/// adapters.yml to use when `--adapters` is not given.
pub struct Extensions {
    /// `(name, adapter)` pairs registered beside `flocker`.
    pub builtins: Vec<(&'static str, Arc<dyn Adapter>)>,
    /// The default adapters.yml; must name only registered adapters.
    pub default_adapters: &'static str,
}

impl Default for Extensions {
    /// Nothing added; [`DEFAULT_ADAPTERS`].
    fn default() -> Self {
        Extensions {
            builtins: Vec::new(),
            default_adapters: DEFAULT_ADAPTERS,
        }
    }
}

/// The plugin's reference-count file in the state directory.
pub const PLUGIN_STATE_FILE: &str = "plugin-mounts.json";

/// Settings of the Docker side, from the agent's flags.
#[derive(Debug, Clone)]
pub struct DockerSideConfig {
    /// dockerd's socket, `unix:///path`.
    pub docker: String,
    /// Where the proxy listens.
    pub listen: Vec<String>,
    /// adapters.yml, or `None` for [`DEFAULT_ADAPTERS`].
    pub adapters: Option<PathBuf>,
    /// The storage backend.
    pub storage: StorageSpec,
    /// Where volumes are mounted: `<volume-root>/<name>`.
    pub volume_root: PathBuf,
    /// Where the plugin socket goes, or `None` for no plugin.
    pub plugin_dir: Option<PathBuf>,
    /// Local state: the default adapters.yml and the plugin's counts.
    pub state_dir: PathBuf,
}

/// Why the Docker side could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The proxy's options or adapters.yml are invalid (exit 64).
    #[error("{0}")]
    Invalid(#[from] InvalidOptions),
    /// The plugin state file is unreadable.
    #[error(transparent)]
    State(#[from] crate::plugin::state::StateError),
    /// A socket or file could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being made.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl DockerSideConfig {
    /// Every problem with these settings, checked without side effects.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = parse_docker(&self.docker) {
            problems.push(format!("--docker: {e}"));
        }
        if self.listen.is_empty() {
            problems.push("--listen-docker: give at least one".to_owned());
        }
        for text in &self.listen {
            if let Err(e) = ListenAddr::parse(text) {
                problems.push(format!("--listen-docker: {e}"));
            }
        }
        if let Some(path) = &self.adapters
            && !path.is_file()
        {
            problems.push(format!("--adapters {}: no such file", path.display()));
        }
        for (flag, path) in [
            ("--volume-root", Some(&self.volume_root)),
            ("--plugin-dir", self.plugin_dir.as_ref()),
            ("--state-dir", Some(&self.state_dir)),
        ] {
            if let Some(path) = path.filter(|p| !p.is_absolute()) {
                problems.push(format!("{flag} {}: use an absolute path", path.display()));
            }
        }
        problems
    }
}

/// dockerd's socket path from `--docker` (`unix:///path`); empty if it is not one, which
/// [`DockerSideConfig::problems`] reports.
pub fn docker_socket(docker: &str) -> PathBuf {
    parse_docker(docker).unwrap_or_default()
}

/// The Docker side with every socket bound, ready to run.
pub struct DockerSide {
    proxy: proxy::launch::Bound,
    plugin: Option<Plugin>,
    watcher: LeaseWatcher,
    arrivals: ArrivalWatcher,
    /// dockerd, with which the plugin's driver is kept registered.
    docker: Arc<dyn DockerApi>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// Validates the proxy's configuration and binds the proxy and the plugin over `storage`
/// (the daemon's one backend) and its per-volume `locks`, reaching the control service
/// through the agent's `cluster` session. `extensions` adds built-in adapters and replaces the default
/// adapters.yml.
pub async fn start(
    agent: &AgentConfig,
    config: DockerSideConfig,
    storage: Arc<Backend>,
    locks: VolumeLocks,
    cluster: &Cluster,
    extensions: Extensions,
) -> Result<DockerSide, StartError> {
    let control: Arc<dyn VolumeControl> = Arc::new(cluster.control().clone());
    let volumes = Arc::new(Volumes::new(
        agent.node.clone(),
        control.clone(),
        storage,
        Arc::new(ControlMove {
            node: agent.node.clone(),
            control,
        }),
        locks,
    ));
    let mut builtins = Builtins::standard();
    builtins.register("flocker", Arc::new(FlockerAdapter::new(volumes.clone())));
    builtins.register("swarm", Arc::new(SwarmAdapter::new()));
    for (name, adapter) in extensions.builtins {
        builtins.register(name, adapter);
    }
    let adapters = match config.adapters {
        Some(path) => path,
        None => {
            std::fs::create_dir_all(&config.state_dir).map_err(io("make --state-dir"))?;
            let path = config.state_dir.join("adapters.yml");
            std::fs::write(&path, extensions.default_adapters)
                .map_err(io("write the default adapters.yml"))?;
            path
        }
    };
    let options = Options {
        config: adapters,
        listen: config.listen,
        docker: config.docker.clone(),
        tls_cert: None,
        tls_key: None,
        tls_ca: None,
        insecure: false,
        max_hook_body: proxy::limits::DEFAULT_MAX_HOOK_BODY_BYTES,
    };
    let proxy = options
        .validate(builtins)?
        .bind()
        .await
        .map_err(io("bind the Docker proxy"))?;
    let plugin = match &config.plugin_dir {
        Some(dir) => {
            let state = StateFile::open(config.state_dir.join(PLUGIN_STATE_FILE))?;
            let driver = Driver::new(volumes.clone(), state);
            Some(Plugin::bind(dir, driver).map_err(io("bind the volume plugin"))?)
        }
        None => None,
    };
    let docker: Arc<dyn DockerApi> = Arc::new(Docker::new(docker_socket(&config.docker)));
    let arrivals = ArrivalWatcher::new(docker.clone(), volumes.clone(), config.volume_root.clone());
    let watcher = LeaseWatcher::new(docker.clone(), volumes, config.volume_root);
    Ok(DockerSide {
        proxy,
        plugin,
        watcher,
        arrivals,
        docker,
    })
}

impl DockerSide {
    /// The proxy's bound addresses.
    pub fn proxy_addrs(&self) -> Vec<ListenAddr> {
        self.proxy.local_addrs()
    }

    /// Serves until `shutdown` completes, then drains the proxy's and the plugin's calls in
    /// progress; the plugin socket is removed on the way out.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let supervisor = Supervisor::<Infallible>::new();
        supervisor.spawn("lease watcher", self.watcher.run());
        supervisor.spawn("arrival watcher", self.arrivals.run());
        if let Some(plugin) = self.plugin {
            supervisor.spawn(
                "volume driver registration",
                registration::keep_registered(self.docker),
            );
            let stop = supervisor.token().cancelled_owned();
            supervisor.spawn_fallible(async move {
                plugin.run(stop).await;
                Ok(())
            });
        }
        for addr in self.proxy.local_addrs() {
            tracing::info!(%addr, "docker proxy listening");
        }
        let stop = supervisor.token().cancelled_owned();
        let proxy = self.proxy;
        supervisor.spawn_fallible(async move {
            proxy.run(stop).await;
            Ok(())
        });
        let _ = supervisor.run(shutdown, SHUTDOWN_GRACE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_adapters_hook_flocker_on_create() {
        let mut builtins = Builtins::standard();
        builtins.register("flocker", Arc::new(proxy::adapter::debug::DebugAdapter));
        builtins.register("swarm", Arc::new(proxy::adapter::debug::DebugAdapter));
        let client = proxy::adapter::http::adapter_client();
        let config =
            proxy::config::Config::parse(DEFAULT_ADAPTERS, "default", &builtins, &client).unwrap();
        let hooks = config.hooks_for("POST", "/v1.41/containers/create");
        assert_eq!(hooks.pre.len(), 1);
        assert!(config.hooks_for("POST", "/containers/x/start").is_empty());
        assert_eq!(
            config.hooks_for("POST", "/v1.41/services/create").pre.len(),
            1
        );
        assert_eq!(
            config
                .hooks_for("POST", "/v1.41/services/web/update")
                .pre
                .len(),
            1
        );
    }
}
