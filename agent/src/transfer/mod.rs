//! The agent's gRPC service (`proto/agent.proto`): what the control leader asks of an agent
//! during a volume move, and the agent-to-agent stream that carries snapshots.
//!
//! - [`error`]: [`TransferError`] and its one mapping to gRPC statuses.
//! - [`auth`]: who may call what (control certificates give orders; node certificates may
//!   only stream a snapshot into [`receive`]).
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
pub mod push;
pub mod receive;
pub mod reconcile;
pub mod server;
pub mod service;
pub mod stop;

pub use error::TransferError;
pub use server::{ServeError, TransferConfig, bind, serve};
pub use service::AgentService;

/// The size of one data chunk on the agent-to-agent stream: the sender fills each chunk
/// (a pipe hands out at most its buffer per read) so the per-message costs of gRPC, HTTP/2
/// and the wake-ups on both sides are paid once per MiB.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks the sender reads ahead of the stream, so that `zfs send` keeps running while the
/// network side catches up (and the other way round).
pub const CHUNKS_AHEAD: usize = 8;
/// The HTTP/2 receive window of each agent stream and of its connection. The defaults
/// (1 MiB on the server side) let the sender run only one chunk ahead of the receiver's
/// reads, so every stall of `zfs receive` stalled `zfs send` too; 16 MiB decouples them.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// The largest HTTP/2 frame an agent accepts: a 1 MiB chunk crosses in two frames instead
/// of sixty-five 16 KiB ones.
pub const MAX_FRAME: u32 = (1 << 20) + 1024;
