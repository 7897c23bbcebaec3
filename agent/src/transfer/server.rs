//! The Agent gRPC service on `--listen` with mutual TLS: bound, then served until
//! shutdown (the daemon, [`crate::daemon`], runs it beside the other parts).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::AgentService;
use super::fence::Fence;
use super::push::PushContext;
use super::stop::Stopper;
use crate::cluster::Control;
use crate::config::AgentConfig;
use crate::docker::Docker;
use crate::locks::VolumeLocks;
use crate::storage::{Backend, StorageSpec};
use tokio::net::TcpListener;

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

/// Why the Agent API could not be bound or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {cause} (pick a free --listen address)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (in the message, so not a `source`).
        cause: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("agent gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// Binds the Agent API's `--listen` address.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(listen)
        .await
        .map_err(|cause| ServeError::Bind {
            addr: listen,
            cause,
        })
}

/// Serves the Agent API on `listener` with mutual TLS, one transfer per volume at a time
/// under `locks`, fencing through `control`, until `shutdown` completes, then stops accepting and lets the calls in
/// progress finish.
pub async fn serve(
    config: AgentConfig,
    transfer: TransferConfig,
    storage: Arc<Backend>,
    locks: VolumeLocks,
    control: Control,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let service = AgentService::new(
        PushContext {
            storage,
            tls: config.tls.clone(),
            rate_limit: transfer.rate_limit,
        },
        Fence {
            node: config.node.clone(),
            control,
        },
        Stopper {
            docker: Arc::new(Docker::new(&transfer.docker)),
            volume_root: transfer.volume_root.clone(),
        },
        locks,
    );
    tracing::info!(node.name = %config.node, listen = %transfer.listen, "agent API serving");
    tonic::transport::Server::builder()
        .trace_fn(proto::trace::server_span)
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::STREAM_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .tls_config(config.tls.server_config())?
        .add_service(super::auth::authorized(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}
