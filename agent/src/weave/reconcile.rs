//! [`reconcile`]: on agent start, bring the kernel and the control service in line with
//! the containers dockerd really runs.
//!
//! While the agent is down, Docker goes on: a restart policy or a `docker restart` sent to
//! dockerd directly starts containers anew without `ethwe` (their `wait-for-net` waits),
//! containers die and are removed without the control service hearing of it. The
//! follower tasks only see events from their start on, so once, when the network side
//! starts, the agent:
//!
//! 1. removes the host ends on the bridge whose container is gone or now runs with another
//!    PID (a stale pair; the kernel removes a pair by itself when the namespace goes, so this
//!    is for namespaces something else kept alive);
//! 2. attaches every running container that has `WEAVE_CIDR` ([`Attacher::ensure`]: the
//!    same addresses from the control service, idempotent; an `ethwe` with other addresses
//!    ends with exactly the allocated ones; the allocations are marked running again);
//! 3. for every allocation of this node whose container is not running: `ReleaseIp` when
//!    dockerd no longer has the container, `ContainerStopped` when it exists but stopped,
//!    so another container may take the address.
//!
//! Each step is idempotent; a failure of one container's step is logged with what failed
//! and the others go on.

use std::collections::{BTreeMap, HashMap};

use super::allocator::{AddressAllocator, AllocError};
use super::attacher::{AttachError, Attacher, Outcome};
use super::cidr;
use super::control_allocator::ControlAllocator;
use crate::docker::{Docker, DockerError};
use crate::network::{NetError, Network};

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Running containers with `WEAVE_CIDR` whose `ethwe` is now in place.
    pub attached: usize,
    /// Stale host ends removed from the bridge.
    pub detached: usize,
    /// Containers reported stopped to the control service.
    pub stopped: usize,
    /// Containers gone from dockerd whose addresses were released.
    pub released: usize,
    /// Steps that failed (each one logged).
    pub failed: usize,
}

/// Why a reconcile could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// dockerd could not list its containers.
    #[error("cannot list dockerd's running containers: {0}")]
    Docker(#[from] DockerError),
    /// The kernel could not list the bridge's ports.
    #[error("cannot list what is attached to the overlay: {0}")]
    Net(#[from] NetError),
    /// The control service could not list this node's allocations.
    #[error("cannot read this node's allocations: {0}")]
    Alloc(#[from] AllocError),
}

/// A running container as the reconcile needs it.
struct Running {
    pid: u32,
    wants_weave: bool,
}

/// Runs the three steps of the module doc once.
pub async fn reconcile<N: Network>(
    attacher: &Attacher<N, ControlAllocator>,
) -> Result<Report, ReconcileError> {
    let mut report = Report::default();
    let running = running(attacher.docker()).await?;
    detach_stale(attacher.network(), &running, &mut report).await?;
    attach_running(attacher, &running, &mut report).await;
    settle_allocations(attacher, &running, &mut report).await?;
    Ok(report)
}

/// dockerd's running containers by id.
async fn running(docker: &Docker) -> Result<HashMap<String, Running>, DockerError> {
    let mut out = HashMap::new();
    for summary in docker.running_containers().await? {
        match docker.inspect_container(&summary.id).await {
            Ok(info) if info.state.running => {
                let running = Running {
                    pid: info.state.pid,
                    wants_weave: cidr::from_env(&info.config.env).is_some(),
                };
                out.insert(info.id, running);
            }
            Ok(_) | Err(DockerError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn detach_stale<N: Network>(
    network: &N,
    running: &HashMap<String, Running>,
    report: &mut Report,
) -> Result<(), NetError> {
    for attachment in network.list_attached().await? {
        if running
            .get(&attachment.container)
            .is_some_and(|r| r.pid == attachment.pid)
        {
            continue;
        }
        match network.detach_one(&attachment).await {
            Ok(removed) => {
                report.detached += usize::from(removed);
                tracing::info!(container.id = %attachment.container, iface = %attachment.host_iface,
                    "removed a stale pair: its container is gone or runs anew");
            }
            Err(error) => {
                report.failed += 1;
                tracing::warn!(container.id = %attachment.container, iface = %attachment.host_iface,
                    "cannot remove a stale pair: {error}");
            }
        }
    }
    Ok(())
}

async fn attach_running<N: Network>(
    attacher: &Attacher<N, ControlAllocator>,
    running: &HashMap<String, Running>,
    report: &mut Report,
) {
    for (id, _) in running.iter().filter(|(_, r)| r.wants_weave) {
        match attacher.ensure(id).await {
            Ok(Outcome::Attached(_)) => report.attached += 1,
            Ok(_)
            | Err(AttachError::NotRunning { .. })
            | Err(AttachError::Docker(DockerError::NotFound { .. })) => {
                tracing::debug!(container.id = %id, "stopped before it could be attached")
            }
            Err(error) => {
                report.failed += 1;
                tracing::warn!(container.id = %id, "cannot attach a running container: {error}");
            }
        }
    }
}

async fn settle_allocations<N: Network>(
    attacher: &Attacher<N, ControlAllocator>,
    running: &HashMap<String, Running>,
    report: &mut Report,
) -> Result<(), AllocError> {
    let allocator = attacher.allocator();
    // Container id -> whether the control service has any of its addresses as running.
    let mut held: BTreeMap<String, bool> = BTreeMap::new();
    for a in allocator.allocations_here().await? {
        *held.entry(a.container_id).or_default() |= a.running;
    }
    for (id, marked_running) in held.into_iter().filter(|(id, _)| !running.contains_key(id)) {
        let result = match attacher.docker().inspect_container(&id).await {
            Err(DockerError::NotFound { .. }) => {
                let released = allocator.release(&id).await;
                report.released += usize::from(released.is_ok());
                released.map_err(|e| e.to_string())
            }
            // Started since the listing: the restart watcher attaches it.
            Ok(info) if info.state.running => Ok(()),
            Ok(_) if marked_running => {
                let stopped = allocator.stopped(&id).await;
                report.stopped += usize::from(stopped.is_ok());
                stopped.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            report.failed += 1;
            tracing::warn!(container.id = %id, "cannot settle the container's addresses: {error}");
        }
    }
    Ok(())
}
