//! [`LifecycleFollower`]: containers' lives reach the control service's allocations.
//!
//! Docker's `die` (also sent for `docker stop` and `docker kill`, before their own event)
//! marks the container's addresses stopped, so another container may claim them: that is how
//! an address moves to the container's next incarnation on another host. `destroy` frees
//! them. Events come from [`crate::docker::Docker::events`], which reconnects across daemon
//! restarts. Both calls are idempotent and harmless for containers without addresses.
//!
//! A container Docker restarts by itself dies and starts again at once; a `die` whose
//! container runs again when it is handled is skipped, and the re-attach of
//! [`super::RestartWatcher`] marks its addresses running again in any case.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::allocator::AddressAllocator;
use super::control_allocator::ControlAllocator;
use crate::docker::{Action, Docker, Event, EventFilter};

/// Follows `die` and `destroy` events while it lives; dropping it stops the follower.
pub struct LifecycleFollower {
    task: JoinHandle<()>,
}

impl LifecycleFollower {
    /// Starts following `docker`'s events from now on, reporting to the control service
    /// through `allocator`. Needs a tokio runtime.
    pub fn spawn(docker: Docker, allocator: Arc<ControlAllocator>) -> Self {
        let mut events = docker.events(EventFilter::actions([Action::Die, Action::Destroy]));
        let span = tracing::info_span!("allocation_lifecycle");
        let task = tokio::spawn(
            async move {
                while let Some(event) = events.next().await {
                    handle(&docker, &allocator, &event).await;
                }
            }
            .instrument(span),
        );
        LifecycleFollower { task }
    }
}

async fn handle(docker: &Docker, allocator: &ControlAllocator, event: &Event) {
    let result = match event.action {
        Action::Die => {
            let running = docker
                .inspect_container(&event.id)
                .await
                .is_ok_and(|c| c.state.running);
            if running {
                tracing::debug!(container.id = %event.id, "died and already restarted");
                return;
            }
            allocator.stopped(&event.id).await.map(|_| ())
        }
        Action::Destroy => allocator.release(&event.id).await,
        _ => return,
    };
    if let Err(error) = result {
        tracing::warn!(container.id = %event.id, container.name = %event.name,
            event.action = event.action.as_str(), "cannot tell the control service: {error}");
    }
}

impl Drop for LifecycleFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}
