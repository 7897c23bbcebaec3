//! The agent's gRPC service (`proto/agent.proto`): what the control leader asks of an agent
//! during a volume move, and the agent-to-agent stream that carries snapshots.
//!
//! - [`error`]: [`TransferError`] and its one mapping to gRPC statuses.
//! - [`auth`]: who may call what (control certificates give orders; node certificates may
//!   only stream a snapshot into [`receive`]).
//! - [`locks`]: one transfer at a time per volume on each agent.
//! - [`push`]: snapshot a volume (unmounting it first for the final push) and stream it to
//!   another agent, reporting progress.
//! - [`receive`]: apply an incoming stream; a dropped sender leaves nothing half-applied.
//! - [`fence`]: a read-write mount only for the owner at the current epoch, asked of the
//!   control service.
//! - [`stop`]: stop the containers holding a volume through Docker (a move asked with
//!   `--stop`).
//! - [`service`]: the `Agent` service itself, built over a [`crate::storage::Backend`].
//! - [`reconcile`]: follow the control service's volumes: create a new volume this node owns,
//!   mount owned volumes read-write and replicas read-only.
//! - [`server`]: serving the service with mutual TLS beside the membership loops.

pub mod auth;
pub mod error;
pub mod fence;
pub mod locks;
pub mod push;
pub mod receive;
pub mod reconcile;
pub mod server;
pub mod service;
pub mod stop;

pub use error::TransferError;
pub use server::{TransferConfig, serve};
pub use service::AgentService;

/// The size of one data chunk on the agent-to-agent stream.
pub const CHUNK_BYTES: usize = 1 << 20;
