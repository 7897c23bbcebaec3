//! openraft 0.9 glue: the type configuration, the redb-backed log and snapshot store, the
//! in-memory state machine and the gRPC network between members.
//!
//! - [`log_store`]: [`LogStore`], the Raft log and vote in redb, group-committed (fsync per
//!   transaction) by a writer thread.
//! - [`state_machine`]: [`StateMachineStore`], the [`State`](crate::state::State) in memory,
//!   snapshots persisted in redb, change events for watchers.
//! - [`network`]: [`Network`], one lazily connected TLS channel per peer.
//! - [`db`]: opening the redb file and its tables.

pub mod db;
// openraft's StorageError is large, and the storage traits fix it as the error type.
#[allow(clippy::result_large_err)]
pub mod log_store;
pub mod network;
#[allow(clippy::result_large_err)]
pub mod state_machine;

use std::io::Cursor;

use openraft::BasicNode;

use crate::state::{Command, CommandError, Response};

pub use log_store::LogStore;
pub use network::Network;
pub use state_machine::{ChangeEvent, StateMachineStore};

/// What applying a command gives: the change, or why the state machine refused it.
pub type Applied = Result<Response, CommandError>;

openraft::declare_raft_types!(
    /// openraft type configuration of the control service.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft handle of one member.
pub type Raft = openraft::Raft<TypeConfig>;

/// Shorthand for openraft's storage error.
pub type StorageError = openraft::StorageError<u64>;
