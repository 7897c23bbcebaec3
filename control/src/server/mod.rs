//! The gRPC server of one member: the `Raft` and `Control` services on one port, mutual TLS.
//!
//! - [`auth`]: who may call what: the authorization tables of both services, applied to
//!   every call by [`proto::authz::Authorize`] (deny by default).
//! - [`ownership`]: a node changes only objects held on its own node.
//! - [`raft_service`]: openraft's RPCs, forwarded proposals, metrics (control certs only).
//! - [`control_service`]: the Control API.
//! - [`move_volume`]: `MoveVolume`, recording a move and streaming its progress.
//! - [`usage`]: `VolumeUsage`, the bytes volumes use, asked of their owners' agents.
//! - [`cluster_status`]: `cluster status`, probing every member.
//! - [`status`]: execution errors to gRPC statuses, in one place.

pub mod auth;
pub mod cluster_status;
pub mod control_service;
pub mod move_volume;
pub mod ownership;
pub mod raft_service;
pub mod status;
pub mod usage;

use std::future::Future;

use proto::tls::TlsDir;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, ServerTlsConfig};

use crate::member::Member;

/// Serves both services on `listener` until `shutdown` completes; `agent_tls` (the member's
/// control certificate) is for asking agents what their volumes use.
pub async fn serve(
    member: Member,
    listener: TcpListener,
    tls: ServerTlsConfig,
    agent_tls: TlsDir,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let raft = raft_service::RaftService::server(member.clone());
    let control = control_service::ControlService::server(member, agent_tls);
    // Small RPCs must not wait for delayed ACKs: Nagle off on every accepted socket (the
    // builder's own tcp_nodelay applies only to listeners it binds itself).
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok::<_, std::io::Error>(conn)
    });
    Server::builder()
        .tls_config(tls)?
        .add_service(raft)
        .add_service(control)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
