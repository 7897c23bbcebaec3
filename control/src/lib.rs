//! The control service: the Raft-replicated cluster state (nodes, the `/flocker` volume
//! namespace, leases, migrations, IP allocations), its gRPC API and the cluster CA.
//!
//! - [`state`]: the state as plain data and `apply`, the pure function that changes it.
//!
//! Binaries: `flocker-control` (one member) and `flockerctl` (the operator's CLI).
#![forbid(unsafe_code)]

pub mod raft;
pub mod state;
