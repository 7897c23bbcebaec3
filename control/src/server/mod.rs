//! The gRPC server of one member: the `Raft`, `NodeApi` and `OperatorApi` services on one port,
//! mutual TLS.
//!
//! - [`auth`]: who may call what: the authorization tables of the three services, applied to
//!   every call by [`proto::authz::Authorize`], one interceptor per service (deny by default).
//! - [`ownership`]: a node changes only objects held on its own node.
//! - [`raft_service`]: openraft's RPCs, forwarded proposals, metrics (control certs only).
//! - [`node_service`]: the `NodeApi` service: what agents call (node certificates, confined to
//!   their own node), and operators too.
//! - [`operator_service`]: the `OperatorApi` service: what only `flockerctl` calls.
//! - [`move_volume`]: `MoveVolume`, recording a move and streaming its progress.
//! - [`usage`]: `VolumeUsage`, the bytes volumes use, asked of their owners' agents.
//! - [`cluster_status`]: `cluster status`, probing every member.
//! - [`status`]: execution errors to gRPC statuses, in one place.

pub mod auth;
pub mod backup;
pub mod cluster_status;
pub mod move_volume;
pub mod node_service;
pub mod operator_service;
pub mod ownership;
pub mod raft_service;
pub mod snapshots;
pub mod status;
pub mod usage;

use std::future::Future;

use proto::tls::TlsDir;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, ServerTlsConfig};

use crate::member::Member;

/// Serves the three services on `listener` until `shutdown` completes; `agent_tls` (the member's
/// control certificate) is for asking agents what their volumes use.
pub async fn serve(
    member: Member,
    listener: TcpListener,
    tls: ServerTlsConfig,
    agent_tls: TlsDir,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let raft = raft_service::RaftService::server(member.clone());
    let node = node_service::NodeService::server(member.clone());
    let operator = operator_service::OperatorService::server(member, agent_tls);
    // Small RPCs must not wait for delayed ACKs: Nagle off on every accepted socket (the
    // builder's own tcp_nodelay applies only to listeners it binds itself).
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok::<_, std::io::Error>(conn)
    });
    Server::builder()
        .trace_fn(proto::trace::server_span)
        .tls_config(tls)?
        .add_service(raft)
        .add_service(node)
        .add_service(operator)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
