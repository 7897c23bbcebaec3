//! [`Attacher`]: from a container id to its `ethwe` with the addresses it asked for. Used
//! by the adapter's post-hook on start and by the restart watcher.
//!
//! It inspects the container (its `WEAVE_CIDR` and its init's PID), asks the allocator for
//! each requested address, inspects it again (the allocation marked the addresses running:
//! if the container exited meanwhile, that write is undone at once, see [`super::lifecycle`]
//! rule 1), and attaches through [`Network`]. Attaches run one at a time:
//! the post-hook of `docker start` and the `start` event of the same container both ask,
//! and attach is idempotent, so the second one only finds everything in place.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::allocator::{AddressAllocator, AllocError};
use super::cidr::{self, CidrError};
use super::lifecycle::{self, Seen};
use super::rewrite;
use crate::docker::{DockerApi, DockerError};
use crate::network::{Attachment, NetError, Netns, Network};

/// Why a container could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Docker could not tell us about the container.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The container's `WEAVE_CIDR` is malformed (it was created without the adapter).
    #[error("container {container}: {source}")]
    Cidr {
        /// The container.
        container: String,
        /// What is wrong.
        source: CidrError,
    },
    /// The container shares another network namespace (`host`, `container:...`).
    #[error("container {container} has --network {mode}: WEAVE_CIDR needs a namespace of its own")]
    SharedNetns {
        /// The container.
        container: String,
        /// Its network mode.
        mode: String,
    },
    /// The container is not running, so it has no network namespace to attach.
    #[error("container {container} is not running")]
    NotRunning {
        /// The container.
        container: String,
    },
    /// No address for it.
    #[error("container {container}: {source}")]
    Alloc {
        /// The container.
        container: String,
        /// Why.
        source: AllocError,
    },
    /// The kernel refused a step of the attach.
    #[error("container {container}: attaching ethwe failed: {source}")]
    Net {
        /// The container.
        container: String,
        /// Why.
        source: NetError,
    },
}

/// What [`Attacher::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The container has no `WEAVE_CIDR`: nothing to do.
    NotRequested,
    /// `ethwe` is up with these addresses.
    Attached(Attachment),
    /// The container exited while being attached. `wait-for-net` lets the command run as
    /// soon as `ethwe` is up with its addresses; a short command can finish before the
    /// last step (the gratuitous ARP) and take its namespace with it. Also when it exited
    /// (or ran anew) while its addresses were being allocated: that allocation was undone.
    ExitedDuringAttach,
}

/// Attaches containers that ask for `WEAVE_CIDR` addresses.
pub struct Attacher<N, A> {
    docker: Arc<dyn DockerApi>,
    network: N,
    allocator: A,
    one_at_a_time: Mutex<()>,
}

impl<N: Network, A: AddressAllocator> Attacher<N, A> {
    /// Attaches through `network`, with addresses from `allocator`.
    pub fn new(docker: Arc<dyn DockerApi>, network: N, allocator: A) -> Self {
        Attacher {
            docker,
            network,
            allocator,
            one_at_a_time: Mutex::new(()),
        }
    }

    /// Docker.
    pub fn docker(&self) -> &dyn DockerApi {
        self.docker.as_ref()
    }

    /// The network attaches go through.
    pub fn network(&self) -> &N {
        &self.network
    }

    /// The allocator.
    pub fn allocator(&self) -> &A {
        &self.allocator
    }

    /// Gives the running container `id_or_name` its `ethwe` with every `WEAVE_CIDR`
    /// address.
    pub async fn ensure(&self, id_or_name: &str) -> Result<Outcome, AttachError> {
        let started = std::time::Instant::now();
        let info = self.docker.inspect_container(id_or_name).await?;
        let Some(requests) = cidr::from_env(&info.config.env) else {
            return Ok(Outcome::NotRequested);
        };
        let name = info.name.trim_start_matches('/').to_owned();
        let requests = requests.map_err(|source| AttachError::Cidr {
            container: name.clone(),
            source,
        })?;
        if rewrite::shares_netns(&info.host_config.network_mode) {
            return Err(AttachError::SharedNetns {
                container: name,
                mode: info.host_config.network_mode,
            });
        }
        if !info.state.running || info.state.pid == 0 {
            return Err(AttachError::NotRunning { container: name });
        }
        let mut cidrs = Vec::with_capacity(requests.len());
        for request in &requests {
            let cidr = self
                .allocator
                .allocate(&info.id, &name, request)
                .await
                .map_err(|source| AttachError::Alloc {
                    container: name.clone(),
                    source,
                })?;
            cidrs.push(cidr);
        }
        if !self.still_runs(&info.id, info.state.pid).await? {
            return Ok(Outcome::ExitedDuringAttach);
        }
        let _turn = self.one_at_a_time.lock().await;
        match self.network.attach(&info.id, info.state.pid, &cidrs).await {
            Ok(attachment) => {
                tracing::info!(container.id = %info.id, container.name = %name,
                    container.pid = info.state.pid, addresses = ?cidrs, "attached ethwe");
                crate::metrics::METRICS.attached(started.elapsed());
                Ok(Outcome::Attached(attachment))
            }
            Err(source) if self.exited(&info.id, info.state.pid).await => {
                tracing::debug!(container.id = %info.id, "exited during attach: {source}");
                Ok(Outcome::ExitedDuringAttach)
            }
            Err(source) => Err(AttachError::Net {
                container: name,
                source,
            }),
        }
    }

    /// After its addresses were marked running: whether container `id` still runs as `pid`.
    /// If not, the mark is undone as Docker's state says (a container that runs anew keeps
    /// it: its own start attaches it).
    async fn still_runs(&self, id: &str, pid: u32) -> Result<bool, AttachError> {
        let seen = Seen::inspect(self.docker.as_ref(), id).await?;
        if seen == Seen::Running(pid) {
            return Ok(true);
        }
        let done = lifecycle::apply(&self.allocator, id, lifecycle::settle(seen, true))
            .await
            .map_err(|source| AttachError::Alloc {
                container: id.to_owned(),
                source,
            })?;
        tracing::debug!(container.id = %id, ?seen, ?done, "exited while being allocated");
        Ok(false)
    }

    /// Whether the container's process `pid` is gone (it stopped, or it runs anew). The
    /// kernel knows first: Docker may still report the container running for a moment.
    async fn exited(&self, id: &str, pid: u32) -> bool {
        if !Netns::Pid(pid).path().exists() {
            return true;
        }
        match self.docker.inspect_container(id).await {
            Ok(now) => !now.state.running || now.state.pid != pid,
            Err(DockerError::NotFound { .. }) => true,
            Err(_) => false,
        }
    }
}
