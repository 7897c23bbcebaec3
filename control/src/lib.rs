//! The control service: the Raft-replicated cluster state (nodes, the `/flocker` volume
//! namespace, leases, migrations, IP allocations), its gRPC API and the cluster CA.
//!
//! - [`state`]: the state as plain data and `apply`, the pure function that changes it.
//! - [`raft`]: openraft glue: redb log/snapshot store, in-memory state machine, gRPC network.
//! - [`proposal`]: what runs on the leader (writes, linearizable reads, membership changes).
//! - [`member`]: one member; runs proposals locally or forwards them to the leader.
//! - [`batch`]: group commit: the leader's concurrent writes become one Raft entry.
//! - [`server`]: the `Raft`, `NodeApi` and `OperatorApi` gRPC services, authorisation, error mapping.
//! - [`convert`]: protobuf <-> domain conversions.
//! - [`migration`]: the leader's orchestrator of volume moves (copy rounds, handoff, commit).
//! - [`liveness`]: the leader marks nodes down after missed heartbeats.
//! - [`soft`]: the leader's soft state, never logged: heartbeats seen, bytes sent by moves.
//! - [`metrics`]: the member's Prometheus metrics on `--metrics-listen`.
//! - [`status`]: the live status page (`--status-listen`, `flockerctl status --web`).
//! - [`daemon`]: running one member from a validated [`daemon::Config`].
//! - [`ca`]: the cluster CA and certificate issuing.
//!
//! Binaries: `flocker-control` (one member) and `flockerctl` (the operator's CLI).
#![forbid(unsafe_code)]

pub mod batch;
pub mod ca;
pub mod convert;
pub mod daemon;
pub mod liveness;
pub mod member;
pub mod metrics;
pub mod migration;
pub mod proposal;
pub mod raft;
pub mod server;
pub mod soft;
pub mod state;
pub mod status;
