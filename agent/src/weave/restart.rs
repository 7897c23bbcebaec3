//! [`RestartWatcher`]: containers that Docker starts by itself get their `ethwe` back.
//!
//! A restart policy (`--restart always`), `docker restart`, or a daemon restart starts a
//! container without a `POST /containers/{id}/start` passing through the proxy, and every
//! start gives the container a fresh network namespace without `ethwe`. Its entrypoint,
//! `wait-for-net`, waits for the interface again. The watcher follows Docker's `start`
//! events (across daemon restarts, see [`crate::docker::events`]) and attaches every
//! started container that has `WEAVE_CIDR`. Attach is idempotent, so a start that the
//! adapter's post-hook already handled costs one more check and a gratuitous ARP.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::allocator::AddressAllocator;
use super::attacher::{AttachError, Attacher};
use crate::docker::{Action, DockerError, EventFilter};
use crate::network::Network;

/// Follows `start` events while it lives; dropping it stops the watcher.
pub struct RestartWatcher {
    task: JoinHandle<()>,
}

impl RestartWatcher {
    /// Starts following Docker's `start` events from now on. Needs a tokio runtime.
    pub fn spawn<N, A>(attacher: Arc<Attacher<N, A>>) -> Self
    where
        N: Network + 'static,
        A: AddressAllocator + 'static,
    {
        let mut events = attacher
            .docker()
            .events(EventFilter::actions([Action::Start]));
        let span = tracing::info_span!("restart_watcher");
        let task = tokio::spawn(
            async move {
                while let Some(event) = events.next().await {
                    match attacher.ensure(&event.id).await {
                        Ok(_) => {}
                        // Gone or stopped again before we got to it: nothing to attach.
                        Err(AttachError::NotRunning { .. })
                        | Err(AttachError::Docker(DockerError::NotFound { .. })) => {
                            tracing::debug!(container.id = %event.id, "exited before attach")
                        }
                        Err(error) => tracing::warn!(container.id = %event.id,
                            container.name = %event.name, "re-attach failed: {error}"),
                    }
                }
            }
            .instrument(span),
        );
        RestartWatcher { task }
    }
}

impl Drop for RestartWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
