//! A small Docker Engine API client: just what the agent needs, over dockerd's unix socket.
//!
//! - [`client`]: [`Docker`], `inspect_container`, `inspect_image`, `running_containers`,
//!   `kill`, `stop`, and the typed subsets of their answers ([`ContainerInfo`], [`ImageInfo`],
//!   [`ContainerSummary`]).
//! - [`events`]: [`Docker::events`], a stream of container events that survives a daemon
//!   restart (it reconnects with `since=` the last event seen); [`Docker::updates`], the
//!   same events with an [`Update::Connected`] at every (re)connection, for consumers that
//!   reconcile with Docker's state then.
//!
//! Errors map Docker's answers to [`DockerError`]: a 404 becomes [`DockerError::NotFound`]
//! naming the container or image, anything else non-2xx keeps Docker's own message.

pub mod client;
pub mod events;

pub use client::{ContainerInfo, ContainerSummary, Docker, ImageInfo, MountPoint};
pub use events::{Action, Event, EventFilter, EventStream, Update, UpdateStream};

/// The Engine API version the client speaks (Docker 20.10; newer daemons accept it).
pub const API_VERSION: &str = "v1.41";

/// What can go wrong talking to Docker.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The daemon's socket could not be reached or the connection broke.
    #[error("cannot reach Docker at unix://{socket}: {reason}; is dockerd running?")]
    Unreachable {
        /// The socket dialled.
        socket: String,
        /// What failed.
        reason: String,
    },
    /// Docker does not know the container or image.
    #[error("no such {kind}: {name}")]
    NotFound {
        /// `container` or `image`.
        kind: &'static str,
        /// The id or name asked for.
        name: String,
    },
    /// Docker answered with another error status.
    #[error("Docker answered {status} to {what}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The request, e.g. `inspect container web`.
        what: String,
        /// Docker's `message`, or the start of its body.
        message: String,
    },
    /// Docker's answer was not the JSON expected.
    #[error("Docker's answer to {what} is not what was expected: {reason}")]
    BadAnswer {
        /// The request.
        what: String,
        /// What was wrong.
        reason: String,
    },
}
