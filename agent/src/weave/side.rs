//! The agent's network side, running: the overlay on this host, addresses from the control
//! service, the `weave` adapter for the agent's Docker proxy, and the tasks that follow the
//! containers (re-attach on Docker's own starts, die/destroy to the control service) and the
//! cluster (VXLAN peers from the node list), and the [`super::reconcile`] of what changed
//! while the agent was down, at start and every [`super::reconcile::RECONCILE_PERIOD`]
//! after (what drifted while it ran: a lost event, a refused report).
//!
//! [`start`] builds it; the caller registers [`NetworkSide::adapter`] as `builtin:weave` in
//! the proxy and uses [`DEFAULT_ADAPTERS`] when no adapters.yml is given. The background tasks
//! live as long as the [`NetworkSide`]: dropping it stops them.

use std::path::PathBuf;
use std::sync::Arc;

use proxy::adapter::Adapter;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::reconcile::RECONCILE_PERIOD;
use super::{
    Attacher, ControlAllocator, LifecycleFollower, RestartWatcher, WeaveAdapter, reconcile,
};
use crate::cluster::Cluster;
use crate::config::AgentConfig;
use crate::docker::{Docker, DockerApi};
use crate::network::{NetError, NetlinkNetwork, Network, OverlayConfig, peer_sync};
use crate::swarm::SwarmAdapter;
use crate::swarm::network::TaskNetwork;

/// Where the static `wait-for-net` is installed on a host by default.
pub const DEFAULT_WAIT_FOR_NET: &str = "/usr/lib/flocker/wait-for-net";

/// The name the adapter is registered under in the proxy's built-ins.
pub const ADAPTER_NAME: &str = "weave";

/// The adapters.yml used when `--adapters` is not given and the network side is on:
/// `flocker` then `weave` before create, `weave` after start and restart (which hold the
/// response until `ethwe` is up).
pub const DEFAULT_ADAPTERS: &str = "\
version: 1
endpoints:
  \"POST /*/containers/create\":
    pre: [weave, flocker]
  \"POST /*/containers/*/start\":
    post: [weave]
  \"POST /*/containers/*/restart\":
    post: [weave]
  \"POST /*/services/create\":
    pre: [swarm]
  \"POST /*/services/*/update\":
    pre: [swarm]
adapters:
  flocker: { url: \"builtin:flocker\", timeout: 100s }
  weave: { url: \"builtin:weave\", timeout: 30s }
  swarm: { url: \"builtin:swarm\", timeout: 5s }
";

/// Settings of the network side, from the agent's flags.
#[derive(Debug, Clone)]
pub struct NetworkSideConfig {
    /// The interface that carries VXLAN (`--underlay`).
    pub underlay: String,
    /// The static `wait-for-net` on this host, bind-mounted into containers.
    pub wait_for_net: PathBuf,
}

impl NetworkSideConfig {
    /// Every problem with these settings, checked without side effects.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.underlay.is_empty() || self.underlay.len() > 15 || self.underlay.contains('/') {
            problems.push(format!(
                "--underlay {:?}: not an interface name",
                self.underlay
            ));
        }
        if !self.wait_for_net.is_absolute() {
            problems.push(format!(
                "--wait-for-net {}: use an absolute path",
                self.wait_for_net.display()
            ));
        } else if !self.wait_for_net.is_file() {
            problems.push(format!(
                "--wait-for-net {}: no such file (build it statically, see docs/network.md)",
                self.wait_for_net.display()
            ));
        }
        problems
    }
}

/// Why the network side could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkSideError {
    /// Netlink could not be opened or the overlay could not be built.
    #[error("overlay on {underlay}: {source}")]
    Overlay {
        /// The underlay interface.
        underlay: String,
        /// The error.
        source: NetError,
    },
}

/// The network side, running; dropping it stops its tasks.
pub struct NetworkSide {
    adapter: Arc<dyn Adapter>,
    swarm_adapter: Arc<dyn Adapter>,
    _restarts: RestartWatcher,
    _lifecycle: LifecycleFollower,
    peer_sync: JoinHandle<()>,
    reconcile: JoinHandle<()>,
}

impl NetworkSide {
    /// The `weave` adapter, to register as [`ADAPTER_NAME`] in the proxy's built-ins.
    pub fn adapter(&self) -> Arc<dyn Adapter> {
        self.adapter.clone()
    }

    /// The `swarm` adapter with this side's `wait-for-net` (it replaces the Docker side's
    /// own, which leaves task commands as they are).
    pub fn swarm_adapter(&self) -> Arc<dyn Adapter> {
        self.swarm_adapter.clone()
    }
}

impl Drop for NetworkSide {
    fn drop(&mut self) {
        self.peer_sync.abort();
        self.reconcile.abort();
    }
}

/// Builds the overlay and starts the tasks, which reach the control service through the
/// agent's `cluster` session. `docker` is dockerd's socket (the one the proxy forwards to).
/// Needs a tokio runtime.
pub async fn start(
    agent: &AgentConfig,
    config: NetworkSideConfig,
    docker: PathBuf,
    cluster: &Cluster,
) -> Result<NetworkSide, NetworkSideError> {
    let overlay_error = |source| NetworkSideError::Overlay {
        underlay: config.underlay.clone(),
        source,
    };
    let network =
        NetlinkNetwork::new(OverlayConfig::new(config.underlay.clone())).map_err(overlay_error)?;
    let overlay = network.ensure_overlay().await.map_err(overlay_error)?;
    tracing::info!(underlay = %config.underlay, mtu = overlay.mtu, "overlay ready");
    // Allocations fail over to another member when the one reached is down.
    let allocator = ControlAllocator::new(cluster.control().clone(), agent.node.clone());
    let docker: Arc<dyn DockerApi> = Arc::new(Docker::new(docker));
    let attacher = Arc::new(Attacher::new(
        docker.clone(),
        network.clone(),
        allocator.clone(),
    ));
    let swarm_adapter = Arc::new(SwarmAdapter::with_network(TaskNetwork::new(
        docker.clone(),
        config.wait_for_net.clone(),
    )));
    let adapter = Arc::new(WeaveAdapter::new(attacher.clone(), config.wait_for_net));
    // The followers first, so that what happens during the reconcile is not missed.
    let restarts = RestartWatcher::spawn(attacher.clone());
    let lifecycle = LifecycleFollower::spawn(docker, Arc::new(allocator));
    Ok(NetworkSide {
        adapter,
        swarm_adapter,
        _restarts: restarts,
        _lifecycle: lifecycle,
        peer_sync: tokio::spawn(peer_sync::run(cluster.view(), agent.node.clone(), network)),
        reconcile: tokio::spawn(
            reconcile_forever(attacher).instrument(tracing::info_span!("reconcile")),
        ),
    })
}

/// Reconciles at once, then every [`RECONCILE_PERIOD`]. The first pass is always logged
/// (tests and operators look for it); later ones only when they changed or failed anything.
async fn reconcile_forever(attacher: Arc<Attacher<NetlinkNetwork, ControlAllocator>>) {
    let mut ticks = tokio::time::interval(RECONCILE_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        ticks.tick().await;
        match reconcile::reconcile(&attacher).await {
            Ok(report) if first || report.did_something() => tracing::info!(
                attached = report.attached,
                detached = report.detached,
                stopped = report.stopped,
                released = report.released,
                failed = report.failed,
                "reconciled with dockerd, the kernel and the control service"
            ),
            Ok(_) => tracing::debug!("reconciled: nothing to do"),
            Err(error) => tracing::warn!(
                "reconcile failed: {error}; trying again in {RECONCILE_PERIOD:?} (until then \
                containers restarted while the agent was down stay without ethwe)"
            ),
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy::adapter::builtin::Builtins;

    #[test]
    fn the_default_adapters_hook_flocker_and_weave() {
        let mut builtins = Builtins::standard();
        for name in ["flocker", ADAPTER_NAME, "swarm"] {
            builtins.register(name, Arc::new(proxy::adapter::debug::DebugAdapter));
        }
        let client = proxy::adapter::http::adapter_client();
        let config =
            proxy::config::Config::parse(DEFAULT_ADAPTERS, "default", &builtins, &client).unwrap();
        assert_eq!(
            config
                .hooks_for("POST", "/v1.41/containers/create")
                .pre
                .len(),
            2
        );
        for action in ["start", "restart"] {
            let hooks = config.hooks_for("POST", &format!("/v1.41/containers/x/{action}"));
            assert_eq!(hooks.post.len(), 1, "{action}");
        }
    }

    #[test]
    fn problems_name_the_flags() {
        let config = NetworkSideConfig {
            underlay: String::new(),
            wait_for_net: "/nonexistent/wait-for-net".into(),
        };
        let problems = config.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("--underlay"), "{problems:?}");
        assert!(problems[1].contains("no such file"), "{problems:?}");
    }
}
