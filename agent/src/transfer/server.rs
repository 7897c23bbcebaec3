//! Running an agent with storage: the membership loops, the Agent gRPC service on
//! `--listen` with mutual TLS, and the volume reconciler, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::fence::Fence;
use super::push::PushContext;
use super::stop::Stopper;
use super::{AgentService, reconcile};
use crate::config::AgentConfig;
use crate::docker::Docker;
use crate::membership::AgentError;
use crate::storage::{Backend, StorageError, StorageSpec};

/// The storage side of an agent's configuration.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// Which backend (`--storage zfs:POOL | dir:PATH`).
    pub storage: StorageSpec,
    /// Where volumes are mounted (`--volume-root`).
    pub volume_root: PathBuf,
    /// Where the Agent API listens (`--listen`).
    pub listen: SocketAddr,
    /// Bytes per second a push may send at most (`--send-limit`, for tests).
    pub rate_limit: Option<u64>,
    /// dockerd's socket (`--docker`), for stopping containers when a move asks to.
    pub docker: PathBuf,
}

/// Why an agent with storage stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The backend could not be opened.
    #[error("cannot open storage: {0}")]
    Storage(#[from] StorageError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source} (pick a free --listen address)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("agent gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
    /// Membership failed for good.
    #[error(transparent)]
    Membership(#[from] AgentError),
}

/// Opens storage, binds `--listen`, then runs everything until `shutdown` completes.
pub async fn serve(
    config: AgentConfig,
    transfer: TransferConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let storage = Arc::new(Backend::open(&transfer.storage, &transfer.volume_root).await?);
    let listener = tokio::net::TcpListener::bind(transfer.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: transfer.listen,
            source,
        })?;
    let service = AgentService::new(
        PushContext {
            storage: storage.clone(),
            tls: config.tls.clone(),
            rate_limit: transfer.rate_limit,
        },
        Fence {
            node: config.node.clone(),
            controls: config.controls.clone(),
            tls: config.tls.clone(),
        },
        Stopper {
            docker: Docker::new(&transfer.docker),
            volume_root: transfer.volume_root.clone(),
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::STREAM_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .tls_config(config.tls.server_config())?
        .add_service(super::auth::authorized(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stop_rx.await;
            },
        );
    let server = tokio::spawn(server);
    let reconciler = tokio::spawn(reconcile::run(config.clone(), storage));
    tracing::info!(node.name = %config.node, listen = %transfer.listen, "agent API serving");
    let result = crate::membership::run(config, shutdown).await;
    reconciler.abort();
    let _ = stop_tx.send(());
    match server.await {
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => tracing::warn!(error = %e, "agent server task ended abnormally"),
        Ok(Ok(())) => {}
    }
    Ok(result?)
}
