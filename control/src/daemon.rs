//! Running one member: open the store, start openraft, bootstrap a new cluster when this is
//! the lowest-numbered member of a fresh one, serve gRPC, watch agents, stop cleanly.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use foundation::shutdown::Supervisor;
use openraft::{BasicNode, SnapshotPolicy};
use proto::tls::TlsDir;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::member::Member;
use crate::raft::network::Peers;
use crate::raft::{LogStore, Raft, StateMachineStore, db};

/// Default gRPC port of a control member.
pub const DEFAULT_PORT: u16 = 4523;

/// How long calls and streams may run on after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Raft heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Raft election timeout range.
pub const ELECTION_TIMEOUT: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_millis(1000));

/// Everything one member needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Member id (> 0).
    pub id: u64,
    /// Where `raft.redb` lives.
    pub data_dir: PathBuf,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Address other members and clients dial; stored in the membership.
    pub advertise: String,
    /// The other founding members, by id.
    pub peers: BTreeMap<u64, String>,
    /// `ca.crt`, `tls.crt`, `tls.key` of this member (a control certificate).
    pub tls: TlsDir,
    /// Do not bootstrap: wait to be added with `flockerctl cluster add-member`.
    pub join: bool,
    /// Build a snapshot (and compact the log) every this many entries.
    pub snapshot_threshold: u64,
    /// Most writes in one Raft entry ([`crate::batch`]); 1 turns group commit off.
    pub max_batch: usize,
    /// Mark a node down after this long without a heartbeat.
    pub node_timeout: Duration,
    /// Deadline for one client call.
    pub call_timeout: Duration,
    /// How moves are paced (the handoff's lease wait, the stop grace period, rounds).
    pub moves: crate::migration::MoveConfig,
    /// Where to serve Prometheus metrics (`crate::metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to serve the status page (`crate::status`), if anywhere: a loopback address.
    pub status_listen: Option<SocketAddr>,
}

/// Starting failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// redb.
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        /// Data dir.
        dir: PathBuf,
        /// Why.
        #[source]
        source: redb::Error,
    },
    /// openraft.
    #[error("raft: {0}")]
    Raft(String),
    /// Bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving.
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Raft stopped on a fatal error while serving.
    #[error(
        "raft stopped: {0}; this member cannot go on (free disk space or fix the data directory, then start it again: it catches up from the others)"
    )]
    Stopped(String),
}

fn raft_config(c: &Config) -> openraft::Config {
    openraft::Config {
        cluster_name: "flocker".into(),
        heartbeat_interval: HEARTBEAT.as_millis() as u64,
        election_timeout_min: ELECTION_TIMEOUT.0.as_millis() as u64,
        election_timeout_max: ELECTION_TIMEOUT.1.as_millis() as u64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(c.snapshot_threshold),
        max_in_snapshot_log_to_keep: c.snapshot_threshold.min(1000),
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
}

/// Binds, starts Raft and serves until `shutdown` completes; then shuts Raft down.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let store_err = |source| StartError::Store {
        dir: config.data_dir.clone(),
        source,
    };
    let database = db::open(&config.data_dir).map_err(store_err)?;
    let fresh = !db::has_state(&database).map_err(store_err)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;

    let raft_config = Arc::new(
        raft_config(&config)
            .validate()
            .map_err(|e| StartError::Raft(e.to_string()))?,
    );
    let peers = Peers::new(config.tls.client_config());
    let sm =
        StateMachineStore::open(database.clone()).map_err(|e| StartError::Raft(e.to_string()))?;
    let raft = Raft::new(
        config.id,
        raft_config,
        peers.clone(),
        LogStore::new(database),
        sm.clone(),
    )
    .await
    .map_err(|e| StartError::Raft(e.to_string()))?;
    let metrics = crate::metrics::Metrics::new();
    let batcher = crate::batch::Batcher::start(crate::batch::Proposer {
        id: config.id,
        raft: raft.clone(),
        formats: peers.formats.clone(),
        metrics: metrics.clone(),
        max_batch: config.max_batch,
    });
    let member = Member {
        id: config.id,
        raft: raft.clone(),
        sm,
        peers,
        call_timeout: config.call_timeout,
        metrics: metrics.clone(),
        batcher,
        soft: Default::default(),
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?,
        ),
        None => None,
    };

    let status_listener = match config.status_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?,
        ),
        None => None,
    };

    if fresh && !config.join {
        bootstrap(&config, &raft).await?;
    }
    // One shutdown design (foundation::shutdown::Supervisor): on a signal every task is
    // cancelled; the server stops accepting and lets calls finish, but not forever: watch
    // streams never end on their own, so after the grace they are abandoned.
    let supervisor = Supervisor::<StartError>::new();
    let token = supervisor.token();
    supervisor.spawn(
        "liveness",
        crate::liveness::watch_nodes(member.clone(), config.node_timeout)
            .instrument(tracing::info_span!("control.liveness", raft.id = config.id)),
    );
    supervisor.spawn(
        "migrations",
        crate::migration::run(member.clone(), config.tls.clone(), config.moves.clone()).instrument(
            tracing::info_span!("control.migrations", raft.id = config.id),
        ),
    );
    tracing::info!(raft.id = config.id, listen = %config.listen, fresh, "control member serving");
    let metrics_member = member.clone();
    let server = crate::server::serve(
        member,
        listener,
        config.tls.server_config(),
        config.tls.clone(),
        token.cancelled_owned(),
    );
    supervisor.spawn_fallible(async move { server.await.map_err(StartError::from) });
    supervisor.spawn("readiness", joined(raft.clone(), config.id));
    supervisor.spawn_fallible(raft_stopped(
        raft.clone(),
        supervisor.token().cancelled_owned(),
    ));
    supervisor.spawn(
        "leader changes",
        metrics.clone().follow_leader(raft.clone()),
    );
    if let Some(listener) = metrics_listener {
        tracing::info!(listen = ?config.metrics_listen, "serving Prometheus metrics on /metrics");
        supervisor.spawn(
            "metrics",
            foundation::metrics::serve(
                listener,
                Arc::new(move || metrics.render(&metrics_member)),
                supervisor.token().cancelled_owned(),
            ),
        );
    }
    if let Some(listener) = status_listener {
        tracing::info!(listen = ?config.status_listen, "serving the status page");
        // The page reads this member through its own gRPC endpoint, as any client does.
        let source = crate::status::Source {
            members: vec![config.advertise.clone()],
            tls: config.tls.clone(),
        };
        supervisor.spawn(
            "status page",
            crate::status::serve(listener, source, supervisor.token().cancelled_owned()),
        );
    }
    let served = supervisor.run(shutdown, SHUTDOWN_GRACE).await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    served
}

/// Fails when Raft stops on its own (a fatal storage error such as a full disk: openraft
/// then stops the member for good), so that the member exits with the cause and its service
/// manager restarts it, instead of serving every call an error; ends when the daemon shuts
/// down.
async fn raft_stopped(raft: Raft, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let mut metrics = raft.metrics();
    tokio::select! {
        () = shutdown => Ok(()),
        stopped = metrics.wait_for(|m| m.running_state.is_err()) => {
            let cause = match stopped {
                Ok(m) => m.running_state.as_ref().err().map(ToString::to_string),
                Err(_) => None,
            };
            Err(StartError::Stopped(cause.unwrap_or_else(|| "stopped".into())))
        }
    }
}

/// Waits until this member is in the cluster's membership and knows its leader, then tells
/// systemd it is ready (`foundation::notify`): for a founding member, once a majority of the
/// founders runs; for a `--join` member, once `flockerctl cluster add-member` added it.
async fn joined(raft: Raft, id: u64) {
    let mut metrics = raft.metrics();
    let joined = metrics
        .wait_for(|m| {
            m.current_leader.is_some()
                && m.membership_config
                    .membership()
                    .nodes()
                    .any(|(node, _)| *node == id)
        })
        .await;
    if joined.is_ok() {
        tracing::info!(raft.id = id, "member joined the cluster; ready");
        foundation::notify::ready();
    }
}

async fn bootstrap(config: &Config, raft: &Raft) -> Result<(), StartError> {
    let mut members: BTreeMap<u64, BasicNode> = config
        .peers
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    members.insert(
        config.id,
        BasicNode {
            addr: config.advertise.clone(),
        },
    );
    let ids: BTreeSet<u64> = members.keys().copied().collect();
    if ids.first() != Some(&config.id) {
        tracing::info!(
            raft.id = config.id,
            "fresh member; member {:?} bootstraps the cluster",
            ids.first()
        );
        return Ok(());
    }
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(raft.id = config.id, raft.members = ?ids, "cluster bootstrapped");
            Ok(())
        }
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(()),
        Err(e) => Err(StartError::Raft(e.to_string())),
    }
}
