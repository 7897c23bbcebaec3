//! The control service: the Raft-replicated cluster state (nodes, the `/flocker` volume
//! namespace, leases, migrations, IP allocations), its gRPC API and the cluster CA.
//!
//! Binaries: `flocker-control` (one member) and `flockerctl` (the operator's CLI).
