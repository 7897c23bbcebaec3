//! Docker as the agent sees it: [`DockerApi`], exactly the operations the agent uses, with
//! its own small typed answers.
//!
//! - [`model`]: the typed subsets of Docker's answers the agent reads ([`ContainerInfo`],
//!   [`ImageInfo`], [`ContainerSummary`]).
//! - [`events`]: container events ([`Event`]) and the streams that carry them:
//!   [`DockerApi::events`], and [`DockerApi::updates`], the same events with an
//!   [`Update::Connected`] at every (re)connection, for consumers that reconcile with
//!   Docker's state then.
//! - [`client`]: [`Docker`], the real implementation on bollard over dockerd's unix socket,
//!   speaking [`API_VERSION`]; its events survive a daemon restart (it reconnects with
//!   `since=` the last event seen).
//! - `fake` (unit tests only): an in-memory Docker with scripted events that records the
//!   calls made, for the decisions built on top of this trait.
//!
//! Errors are [`DockerError`]: a 404 becomes [`DockerError::NotFound`] naming the container
//! or image, anything else Docker refuses keeps Docker's own message.

pub mod client;
pub mod events;
#[cfg(test)]
pub mod fake;
pub mod model;

use std::path::Path;
use std::time::Duration;

pub use client::Docker;
pub use events::{Action, Event, EventFilter, EventStream, Update, UpdateStream};
pub use model::{
    ContainerConfig, ContainerInfo, ContainerState, ContainerSummary, HostConfig, ImageConfig,
    ImageInfo, Mount, MountPoint,
};

/// The Engine API version the client speaks (Docker 20.10; newer daemons accept it).
pub const API_VERSION: &str = "v1.41";

/// The Docker operations the agent uses. Shared as `Arc<dyn DockerApi>`: [`Docker`] for a
/// real daemon, an in-memory fake in unit tests.
#[async_trait::async_trait]
pub trait DockerApi: Send + Sync {
    /// The daemon's socket, for messages.
    fn socket(&self) -> &Path;

    /// `docker inspect`: [`DockerError::NotFound`] if Docker has no such container.
    async fn inspect_container(&self, id_or_name: &str) -> Result<ContainerInfo, DockerError>;

    /// `docker image inspect`: [`DockerError::NotFound`] if Docker has no such image.
    async fn inspect_image(&self, name: &str) -> Result<ImageInfo, DockerError>;

    /// The running containers (`docker ps`).
    async fn running_containers(&self) -> Result<Vec<ContainerSummary>, DockerError>;

    /// Sends `signal` (e.g. `KILL`) to the container's init.
    async fn kill(&self, id_or_name: &str, signal: &str) -> Result<(), DockerError>;

    /// Docker sends the container's stop signal (SIGTERM unless its image says otherwise),
    /// waits up to `grace` and then kills it; returns when it has stopped. A container that
    /// was not running is fine.
    async fn stop(&self, id_or_name: &str, grace: Duration) -> Result<(), DockerError>;

    /// `docker pause` (`true`: every process of the container frozen in its cgroup, so it
    /// can neither write nor answer) or `docker unpause` (`false`).
    async fn pause(&self, id_or_name: &str, paused: bool) -> Result<(), DockerError>;

    /// Makes dockerd look up the volume driver `driver` (it lists that driver's volumes),
    /// which registers a legacy plugin socket found in its plugin directory: until then
    /// dockerd does not list the driver (`docker info`), and Swarm, which schedules by that
    /// list, finds the node "missing plugin".
    async fn look_up_volume_driver(&self, driver: &str) -> Result<(), DockerError>;

    /// Container events matching `filter` from now on, with an [`Update::Connected`] ahead
    /// of the events of every connection to the daemon. Needs a tokio runtime.
    fn updates(&self, filter: EventFilter) -> UpdateStream;

    /// As [`DockerApi::updates`], without the [`Update::Connected`]s. Needs a tokio runtime.
    fn events(&self, filter: EventFilter) -> EventStream {
        EventStream::new(self.updates(filter))
    }
}

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
