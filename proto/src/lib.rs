//! Wire definitions shared by the control service, the agents and `flockerctl`.
//!
//! - [`raft`]: the Raft-internal service between control members (`proto/raft.proto`).
//! - [`control`]: the control API, by caller: the `NodeApi` service for agents and the
//!   `OperatorApi` service for `flockerctl` (`proto/control.proto`).
//! - [`agent`]: the Agent API each agent serves: pushes, receives, mounts (`proto/agent.proto`).
//! - [`identity`]: the `flocker://ROLE/NAME` identity (and [`identity::Role`]) in a peer's
//!   certificate.
//! - [`authz`]: deny-by-default authorization of every call from a per-service table of
//!   rules, and the list of every RPC in the `.proto` files.
//! - [`connect`]: a control-API client for one member, or the first of several that answers.
//! - [`trace`]: W3C trace context in gRPC metadata: the client interceptor and the
//!   servers' per-call span.
//! - [`tls`]: loading a TLS directory (`ca.crt`, `tls.crt`, `tls.key`) into tonic configs, so
//!   every gRPC endpoint of the system speaks mutual TLS the same way.
//!
//! The `.proto` files are compiled by `build.rs` with protox, so no system `protoc` is needed.
#![forbid(unsafe_code)]

pub mod authz;
pub mod connect;
pub mod identity;
pub mod tls;
pub mod trace;

/// The Raft-internal service (generated from `proto/raft.proto`).
#[allow(missing_docs, clippy::all)]
pub mod raft {
    tonic::include_proto!("flocker.raft");
}

/// The control API: the `NodeApi` and `OperatorApi` services (generated from `proto/control.proto`).
#[allow(missing_docs, clippy::all)]
pub mod control {
    tonic::include_proto!("flocker.control");
}

/// The Agent API (generated from `proto/agent.proto`).
#[allow(missing_docs, clippy::all)]
pub mod agent {
    tonic::include_proto!("flocker.agent");
}
