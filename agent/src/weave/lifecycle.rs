//! An allocation's state follows its container's real state, whatever order the start
//! reply, the post-hook, the restart watcher and Docker's events arrive in.
//!
//! Docker is the truth: its events say *that* something changed, an inspect says *what*
//! the container is now ([`Seen`]), and one pure decision, [`settle`], says what the
//! container's allocations must become. Three rules make every order come out right:
//!
//! 1. **A write that says "running" is checked after it lands.** [`super::Attacher::ensure`]
//!    allocates (the control service marks the addresses running) and then inspects the
//!    container again; if it no longer runs with the PID it had, [`settle`] undoes the
//!    write (`ContainerStopped`, or `ReleaseIp` when it is gone). A late claim, e.g. the
//!    restart watcher's, whose container exited and was removed meanwhile, is undone by
//!    its own check.
//! 2. **Every exit is reported after it happened.** [`LifecycleFollower`] handles `die`
//!    (inspect, then [`settle`]: a `--rm` container may already be gone, so its addresses
//!    are released at once) and `destroy` (release).
//! 3. **Drift is repaired periodically.** [`super::reconcile`] runs at start and every
//!    [`super::reconcile::RECONCILE_PERIOD`]: events lost while dockerd restarted, or calls
//!    the control service refused while it had no leader, are made good within seconds.
//!
//! Why 1 and 2 suffice: the control service applies writes in one order. If a "running"
//! write lands after the write of an exit, its check inspects after the exit happened (the
//! exit's event preceded that write) and sees it; if it lands before, the exit's write
//! comes later and wins. Either way the last word matches Docker. All writes are keyed by
//! container id and idempotent.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::allocator::{AddressAllocator, AllocError};
use super::control_allocator::ControlAllocator;
use crate::docker::{Action, DockerApi, DockerError, Event, EventFilter};

/// What an inspect says about a container, as far as its addresses care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It runs, with this PID.
    Running(u32),
    /// It exists and does not run.
    Stopped,
    /// dockerd has no such container (removed, or never created here).
    Gone,
}

impl Seen {
    /// Inspects `id`; an error other than "no such container" is returned as it is.
    pub async fn inspect(docker: &dyn DockerApi, id: &str) -> Result<Seen, DockerError> {
        match docker.inspect_container(id).await {
            Ok(info) if info.state.running && info.state.pid != 0 => {
                Ok(Seen::Running(info.state.pid))
            }
            Ok(_) => Ok(Seen::Stopped),
            Err(DockerError::NotFound { .. }) => Ok(Seen::Gone),
            Err(e) => Err(e),
        }
    }
}

/// What a container's allocations must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Leave them as they are.
    Keep,
    /// Mark them stopped: others may claim the addresses.
    MarkStopped,
    /// Free them.
    Release,
}

/// The decision: a gone container's addresses are freed, a stopped container's are marked
/// stopped (when some are still marked running), a running container's are kept.
pub fn settle(seen: Seen, marked_running: bool) -> Settle {
    match seen {
        Seen::Gone => Settle::Release,
        Seen::Stopped if marked_running => Settle::MarkStopped,
        Seen::Stopped | Seen::Running(_) => Settle::Keep,
    }
}

/// Carries out `decision` for container `id` through `allocator`; returns it.
pub async fn apply<A: AddressAllocator>(
    allocator: &A,
    id: &str,
    decision: Settle,
) -> Result<Settle, AllocError> {
    match decision {
        Settle::Keep => {}
        Settle::MarkStopped => {
            allocator.stopped(id).await?;
        }
        Settle::Release => allocator.release(id).await?,
    }
    Ok(decision)
}

/// Follows `die` and `destroy` events while it lives; dropping it stops the follower.
pub struct LifecycleFollower {
    task: JoinHandle<()>,
}

impl LifecycleFollower {
    /// Starts following `docker`'s events from now on, reporting to the control service
    /// through `allocator`. Needs a tokio runtime.
    pub fn spawn(docker: Arc<dyn DockerApi>, allocator: Arc<ControlAllocator>) -> Self {
        let mut events = docker.events(EventFilter::actions([Action::Die, Action::Destroy]));
        let span = tracing::info_span!("allocation_lifecycle");
        let task = tokio::spawn(
            async move {
                while let Some(event) = events.next().await {
                    handle(docker.as_ref(), allocator.as_ref(), &event).await;
                }
            }
            .instrument(span),
        );
        LifecycleFollower { task }
    }
}

async fn handle<A: AddressAllocator>(docker: &dyn DockerApi, allocator: &A, event: &Event) {
    let seen = match event.action {
        // A container Docker restarted by itself runs again: Running, kept.
        Action::Die => Seen::inspect(docker, &event.id).await,
        Action::Destroy => Ok(Seen::Gone),
        _ => return,
    };
    let result = match seen {
        // A die always means "not running" for whatever was marked: mark it stopped.
        Ok(seen) => apply(allocator, &event.id, settle(seen, true))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(done) => tracing::debug!(container.id = %event.id,
            event.action = event.action.as_str(), ?done, "allocations settled"),
        Err(error) => tracing::warn!(container.id = %event.id, container.name = %event.name,
            event.action = event.action.as_str(),
            "cannot tell the control service (the periodic reconcile retries): {error}"),
    }
}

impl Drop for LifecycleFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_decides_what_the_allocations_become() {
        for marked in [true, false] {
            assert_eq!(settle(Seen::Gone, marked), Settle::Release);
            assert_eq!(settle(Seen::Running(42), marked), Settle::Keep);
        }
        assert_eq!(settle(Seen::Stopped, true), Settle::MarkStopped);
        assert_eq!(settle(Seen::Stopped, false), Settle::Keep);
    }
}
