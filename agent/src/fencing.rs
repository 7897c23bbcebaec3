//! Self-fencing: an owner cut off from the control service stops taking writes before the
//! cluster may give its volumes to another node.
//!
//! The control service declares a node down once it has not heard from it for its
//! `--node-timeout` (10 s by default), and only a down owner's replica may be promoted
//! (by `flockerctl volume promote`, or by the volume's `--promote-after` policy after that).
//! An agent whose heartbeats have gone unanswered for `--fence-after` (6 s by default, below
//! the node timeout) makes every volume it owns read-only and freezes the containers of its
//! host that hold them (`docker pause`), so that no write is acknowledged on the old owner
//! after a promotion. Freezing is what stops a writer for sure: kernel ZFS and the directory
//! backend's bind mount make new writes fail at once, but zfs-fuse applies `readonly=on` to
//! a mounted dataset only in part (appending to an existing file goes on), and a container's
//! own bind of the volume keeps the flags it was made with. While fenced, [`Backend`]
//! refuses every read-write mount. Once a heartbeat is answered again the agent asks the
//! control service which volumes it still owns, makes those writable and thaws their
//! containers; a volume promoted elsewhere meanwhile stays read-only (the old owner's copy is
//! a diverged replica from then on: docs/volumes.md, "When the owner dies") and the
//! containers that held it are killed without being thawed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::control::Empty;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::cluster::{ClusterView, Control};
use crate::docker::DockerApi;
use crate::flocker::leases::flocker_volumes;
use crate::storage::{Access, Backend, Storage, VolumeName};

/// The default `--fence-after`: three missed heartbeats at the default 2 s, well below the
/// control service's default 10 s `--node-timeout`.
pub const DEFAULT_FENCE_AFTER: Duration = Duration::from_secs(6);

/// Whether this agent is fenced, and when the control service last answered it. Shared by
/// the heartbeat loop (which reports answers), the storage (which refuses read-write mounts
/// while fenced) and [`Fencer::run`] (which fences and lifts the fence).
#[derive(Clone, Debug)]
pub struct SelfFence(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    after: Duration,
    last_answer: Mutex<Instant>,
    fenced: AtomicBool,
    answered: Notify,
}

impl SelfFence {
    /// A fence that closes after `after` without an answer (counted from now).
    pub fn new(after: Duration) -> Self {
        Self(Arc::new(Inner {
            after,
            last_answer: Mutex::new(Instant::now()),
            fenced: AtomicBool::new(false),
            answered: Notify::new(),
        }))
    }

    /// The control service answered this agent (a registration or a heartbeat).
    pub fn answered(&self) {
        *self.last_answer() = Instant::now();
        self.0.answered.notify_one();
    }

    /// Whether the volumes owned here are read-only because the control service is silent.
    pub fn is_fenced(&self) -> bool {
        self.0.fenced.load(Ordering::SeqCst)
    }

    /// How long a silence closes the fence.
    pub fn after(&self) -> Duration {
        self.0.after
    }

    fn last_answer(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.0.last_answer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once no answer has come for [`SelfFence::after`].
    async fn silence(&self) {
        loop {
            let deadline = *self.last_answer() + self.0.after;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Returns at the next answer that came after the fence closed.
    async fn next_answer(&self, since: Instant) {
        loop {
            let notified = self.0.answered.notified();
            if *self.last_answer() > since {
                return;
            }
            notified.await;
        }
    }
}

/// What the fence acts on: this node's volumes in the storage, and the containers of this
/// host that hold them.
pub struct Fencer {
    /// The fence the heartbeat loop keeps open.
    pub fence: SelfFence,
    /// This node.
    pub node: String,
    /// The storage (it refuses read-write mounts while the fence is closed).
    pub storage: Arc<Backend>,
    /// The cluster as last watched: which volumes this node owns.
    pub view: watch::Receiver<ClusterView>,
    /// The control service, asked which volumes are still ours when it answers again.
    pub control: Control,
    /// This host's containers holding volumes, to freeze, thaw or kill.
    pub holders: Holders,
}

impl Fencer {
    /// Closes the fence after each silence and lifts it at the next answer, until dropped.
    pub async fn run(self) {
        // The silence is counted from now, not from when the agent began to start up.
        self.fence.answered();
        loop {
            self.fence.silence().await;
            let closed = Instant::now();
            let frozen = self.close().await;
            loop {
                self.fence.next_answer(closed).await;
                match self.lift(&frozen).await {
                    Ok(()) => break,
                    Err(status) => {
                        tracing::warn!(error = %status.message(), "still fenced: cannot list the volumes owned here")
                    }
                }
            }
        }
    }

    /// Makes the volumes owned here read-only and freezes the containers holding them;
    /// returns the containers frozen, with the volumes each holds.
    async fn close(&self) -> Vec<(String, Vec<VolumeName>)> {
        self.fence.0.fenced.store(true, Ordering::SeqCst);
        crate::metrics::METRICS.fenced(true);
        // An agent that has not listed the cluster yet (restarted while the control service
        // is unreachable) cannot tell which copies here it owns: it fences all of them.
        let listed = self.view.borrow().listing > 0;
        let owned = if listed {
            owned_here(&self.view.borrow(), &self.node)
        } else {
            self.storage.volumes().await.unwrap_or_default()
        };
        tracing::warn!(
            node.name = %self.node,
            volumes = owned.len(),
            "fenced: the control service has not answered for {:?}; the volumes owned here are read-only and the containers holding them frozen until it does (another node may be given them)",
            self.fence.after()
        );
        let here = self.storage.volumes().await.unwrap_or_default();
        for name in owned.iter().filter(|n| here.contains(n)) {
            match self.storage.mount(name, Access::ReadOnly).await {
                Ok(_) => tracing::warn!(volume.name = %name, "fenced: read-only"),
                Err(e) => {
                    tracing::error!(volume.name = %name, error = %e, "fenced, but cannot make the volume read-only")
                }
            }
        }
        let mut frozen = Vec::new();
        for (id, volumes) in self.holders.of(&owned).await {
            match self.holders.docker.pause(&id, true).await {
                Ok(()) => {
                    tracing::warn!(container.id = %id, "fenced: container frozen (docker pause)");
                    frozen.push((id, volumes));
                }
                Err(e) => {
                    tracing::error!(container.id = %id, error = %e, "fenced, but cannot freeze the container")
                }
            }
        }
        frozen
    }

    /// Lifts the fence: the volumes the control service says this node owns, and has, are
    /// mounted read-write again and their frozen containers thawed; a container holding a
    /// volume given to another node meanwhile is killed, still frozen (its copy is stale).
    async fn lift(&self, frozen: &[(String, Vec<VolumeName>)]) -> Result<(), tonic::Status> {
        let volumes = self
            .control
            .call(Empty {}, |mut c, e| async move { c.list_volumes(e).await })
            .await?
            .volumes;
        let ours: Vec<VolumeName> = volumes
            .iter()
            .filter(|v| v.owner.as_deref() == Some(self.node.as_str()))
            .filter_map(|v| VolumeName::new(&v.name).ok())
            .collect();
        self.fence.0.fenced.store(false, Ordering::SeqCst);
        crate::metrics::METRICS.fenced(false);
        let here = self.storage.volumes().await.unwrap_or_default();
        for name in ours.iter().filter(|n| here.contains(n)) {
            if let Err(e) = self.storage.mount(name, Access::ReadWrite).await {
                tracing::error!(volume.name = %name, error = %e, "cannot make the volume writable again");
            }
        }
        for (id, held) in frozen {
            let lost: Vec<&VolumeName> = held.iter().filter(|v| !ours.contains(v)).collect();
            if lost.is_empty() {
                if let Err(e) = self.holders.docker.pause(id, false).await {
                    tracing::error!(container.id = %id, error = %e, "cannot thaw the container");
                }
                continue;
            }
            // Killed while still frozen: a stop would thaw it for its stop signal, and it
            // would write into the stale copy until the grace ran out. A frozen process
            // handles the pending SIGKILL before it runs another instruction.
            tracing::warn!(container.id = %id, volumes = ?lost, "its volume was given to another node while this one was fenced: killing the container, still frozen (the copy here is stale: set aside when the volume next comes here)");
            if let Err(e) = self.holders.docker.kill(id, "KILL").await {
                tracing::error!(container.id = %id, error = %e, "cannot kill the container");
            }
        }
        tracing::info!(node.name = %self.node, volumes = ours.len(), thawed_or_stopped = frozen.len(), "fence lifted: the control service answers; the volumes still owned here are writable again");
        Ok(())
    }
}

/// This host's containers that hold volumes: found through its dockerd by their binds.
#[derive(Clone)]
pub struct Holders {
    /// This host's dockerd.
    pub docker: Arc<dyn DockerApi>,
    /// Where volumes are mounted (`--volume-root`), to recognise their binds.
    pub volume_root: PathBuf,
}

impl Holders {
    /// The running containers that hold any of `volumes`, with the ones each holds (none
    /// when Docker cannot say: logged).
    pub async fn of(&self, volumes: &[VolumeName]) -> Vec<(String, Vec<VolumeName>)> {
        let running = match self.docker.running_containers().await {
            Ok(running) => running,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the containers holding volumes");
                return Vec::new();
            }
        };
        running
            .into_iter()
            .filter_map(|c| {
                let held: Vec<VolumeName> = flocker_volumes(&c.mounts, &self.volume_root)
                    .into_iter()
                    .filter(|v| volumes.contains(v))
                    .collect();
                (!held.is_empty()).then_some((c.id, held))
            })
            .collect()
    }

    /// Kills (SIGKILL) the containers that hold `volume`, which `owner` owns now: one a
    /// restart policy started on a returning old owner, or one that held it when it was
    /// promoted elsewhere. What they wrote since is in the copy here, set aside before the
    /// volume's data next comes here.
    pub async fn kill_stale(&self, volume: &VolumeName, owner: &str) {
        for (id, _) in self.of(std::slice::from_ref(volume)).await {
            tracing::warn!(volume.name = %volume, container.id = %id, owner, "a container here holds a volume another node owns: killing it (its copy here is stale)");
            if let Err(e) = self.docker.kill(&id, "KILL").await {
                tracing::error!(container.id = %id, error = %e, "cannot kill the container");
            }
        }
    }
}

/// The volumes the view says this node owns.
fn owned_here(view: &ClusterView, node: &str) -> Vec<VolumeName> {
    view.volumes
        .values()
        .filter(|v| v.owner.as_deref() == Some(node))
        .filter_map(|v| VolumeName::new(&v.name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_after_a_silence_and_waits_for_a_newer_answer() {
        let fence = SelfFence::new(Duration::from_secs(6));
        fence.answered();
        let started = Instant::now();
        fence.silence().await;
        assert_eq!(started.elapsed(), Duration::from_secs(6));

        // An answer before the fence closed does not open it.
        let closed = Instant::now();
        let waiting = tokio::spawn({
            let fence = fence.clone();
            async move { fence.next_answer(closed).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        fence.answered();
        waiting.await.unwrap();

        // Answers every 2 s keep it open.
        let watching = tokio::spawn({
            let fence = fence.clone();
            async move { fence.silence().await }
        });
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            fence.answered();
        }
        assert!(!watching.is_finished());
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(watching.is_finished());
    }
}
