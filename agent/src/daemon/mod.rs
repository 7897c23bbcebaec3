//! The agent's composition root. From validated [`Settings`] it opens the one storage
//! backend every part shares, starts the network side (with `--underlay`), binds the Docker
//! side (proxy, volume plugin) and the Agent API, then runs them with the membership loops
//! and the volume reconciler under one [`Supervisor`]: until SIGTERM/SIGINT or the first
//! fatal error, then every task is cancelled, listeners stop accepting, connections drain
//! for up to [`SHUTDOWN_GRACE`], and the rest is abandoned.
//!
//! - [`settings`]: the command line and its validation (every problem at once).

pub mod settings;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use foundation::shutdown::Supervisor;
pub use settings::{Args, Settings, validate};
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::config::AgentConfig;
use crate::docker::Docker;
use crate::fencing;
use crate::flocker::side::{self as docker_side, DockerSide, Extensions, StartError};
use crate::locks::VolumeLocks;
use crate::membership::{self, AgentError};
use crate::storage::{Backend, StorageError};
use crate::transfer::{self, ServeError, TransferConfig};
use crate::weave::side::{self as network_side, NetworkSide, NetworkSideError};

/// How long stopping tasks may take to drain before they are abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the agent could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The storage backend could not be opened.
    #[error("cannot open storage: {0}")]
    Storage(#[from] StorageError),
    /// The network side could not start.
    #[error(transparent)]
    Network(#[from] NetworkSideError),
    /// The Docker side could not start (its configuration is checked here too).
    #[error(transparent)]
    Docker(#[from] StartError),
    /// The Agent API could not be bound or failed.
    #[error(transparent)]
    Transfer(#[from] ServeError),
    /// `--metrics-listen` could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The control service refused this agent for good (its identity).
    #[error(transparent)]
    Membership(#[from] AgentError),
}

/// The agent, started: every socket bound, ready to [`Daemon::run`].
pub struct Daemon {
    agent: AgentConfig,
    transfer: TransferConfig,
    storage: Arc<Backend>,
    /// The per-volume locks every part shares.
    locks: VolumeLocks,
    /// The one session with the control service every part shares.
    cluster: Cluster,
    /// Dropped after the run: its tasks stop with it.
    network: Option<NetworkSide>,
    docker: DockerSide,
    listener: TcpListener,
    /// `--metrics-listen`, bound.
    metrics: Option<TcpListener>,
}

impl Daemon {
    /// Opens storage, starts the network side if asked for, binds the Docker side and the
    /// Agent API.
    pub async fn start(settings: Settings) -> Result<Self, DaemonError> {
        let Settings {
            agent,
            docker,
            network,
            transfer,
            metrics_listen,
        } = settings;
        let locks = VolumeLocks::default();
        let cluster = Cluster::of(&agent);
        let storage = Arc::new(
            Backend::open(&transfer.storage, &transfer.volume_root, locks.clone())
                .await?
                .with_fence(cluster.fence().clone()),
        );
        let network = match network {
            Some(config) => {
                Some(network_side::start(&agent, config, transfer.docker.clone(), &cluster).await?)
            }
            None => {
                tracing::info!("network side off (no --underlay): WEAVE_CIDR is not served");
                None
            }
        };
        let extensions = match &network {
            Some(network) => Extensions {
                builtins: vec![
                    (network_side::ADAPTER_NAME, network.adapter()),
                    ("swarm", network.swarm_adapter()),
                ],
                default_adapters: network_side::DEFAULT_ADAPTERS,
            },
            None => Extensions::default(),
        };
        let docker = docker_side::start(
            &agent,
            docker,
            storage.clone(),
            locks.clone(),
            &cluster,
            extensions,
        )
        .await?;
        let listener = transfer::bind(transfer.listen).await?;
        let metrics = match metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Metrics { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            agent,
            transfer,
            storage,
            locks,
            cluster,
            network,
            docker,
            listener,
            metrics,
        })
    }

    /// Runs every part until `stop` completes or one fails for good.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let supervisor = Supervisor::<DaemonError>::new();
        let token = supervisor.token();
        // One client of this host's dockerd for both: they look for the same containers.
        let holders = fencing::Holders {
            docker: Arc::new(Docker::new(&self.transfer.docker)),
            volume_root: self.transfer.volume_root.clone(),
        };
        let fencer = fencing::Fencer {
            fence: self.cluster.fence().clone(),
            node: self.agent.node.clone(),
            storage: self.storage.clone(),
            view: self.cluster.view(),
            control: self.cluster.control().clone(),
            holders: holders.clone(),
        };
        supervisor.spawn_fallible({
            let drained = token.clone().cancelled_owned();
            async move {
                self.docker.run(drained).await;
                Ok(())
            }
        });
        supervisor.spawn_fallible({
            let service = transfer::serve(
                self.agent.clone(),
                self.transfer,
                self.storage.clone(),
                self.locks,
                self.cluster.control().clone(),
                self.listener,
                token.clone().cancelled_owned(),
            );
            async move { service.await.map_err(DaemonError::from) }
        });
        supervisor.spawn("self-fencing", fencer.run());
        supervisor.spawn(
            "volume reconciler",
            transfer::reconcile::run(
                self.agent.clone(),
                self.storage,
                self.cluster.view(),
                holders,
            ),
        );
        supervisor.spawn_fallible({
            let stopped = token.clone().cancelled_owned();
            async move {
                membership::run(self.agent, self.cluster, stopped)
                    .await
                    .map_err(DaemonError::from)
            }
        });
        if let Some(listener) = self.metrics {
            tracing::info!(listen = ?listener.local_addr().ok(), "serving Prometheus metrics on /metrics");
            supervisor.spawn(
                "metrics",
                foundation::metrics::serve(
                    listener,
                    Arc::new(|| crate::metrics::METRICS.render()),
                    token.clone().cancelled_owned(),
                ),
            );
        }
        let result = supervisor.run(stop, SHUTDOWN_GRACE).await;
        drop(self.network);
        result
    }
}
