//! Volumes moved here ahead of their container's start: a container created on this node
//! whose flocker volume another node owns starts the volume's move here at once, so the
//! copy rounds run while the volume's old user still runs, and the container's start
//! (the plugin's `Mount`) waits only for the final increment.
//!
//! This is how a Swarm reschedule becomes two-phase. Swarm prepares a task's container on
//! its new node (volume, image, `create`) as soon as it assigns the task, while it stops
//! the old task on the old node (measured: the old task's `Unmount` 11 s later with the
//! default stop grace), and starts the new container only after. The volume plugin's
//! `Create` is not the signal: dockerd asks the driver's `Get` first and calls `Create`
//! only for a volume the driver does not know, and every node knows every flocker volume.
//! A `docker create` straight at dockerd of a container with a flocker volume counts as
//! the same intent; through the agent's proxy the flocker pre-hook has already brought the
//! volume here, so its `create` finds nothing to do.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;

use super::leases::flocker_volumes;
use super::volumes::Volumes;
use crate::docker::{Action, DockerApi, DockerError, Event, EventFilter, Update};

/// Follows dockerd's `create` events and moves the flocker volumes of each new container
/// here ahead of its start.
pub struct ArrivalWatcher {
    docker: Arc<dyn DockerApi>,
    volumes: Arc<Volumes>,
    volume_root: PathBuf,
}

impl ArrivalWatcher {
    /// A watcher of `docker` whose flocker binds point under `volume_root`.
    pub fn new(docker: Arc<dyn DockerApi>, volumes: Arc<Volumes>, volume_root: PathBuf) -> Self {
        Self {
            docker,
            volumes,
            volume_root,
        }
    }

    /// Runs until dropped. A `create` missed while dockerd was unreachable is not made up
    /// for: the container's start then moves the volume (copy and handoff at once).
    pub async fn run(self) {
        let mut updates = self.docker.updates(EventFilter::actions([Action::Create]));
        while let Some(update) = updates.next().await {
            if let Update::Event(event) = update {
                self.created(&event).await;
            }
        }
    }

    async fn created(&self, event: &Event) {
        let container = match self.docker.inspect_container(&event.id).await {
            Ok(container) => container,
            Err(DockerError::NotFound { .. }) => return,
            Err(e) => {
                tracing::warn!(container.id = %event.id, error = %e,
                    "cannot inspect a new container; its volumes move when it starts");
                return;
            }
        };
        for volume in flocker_volumes(&container.mounts, &self.volume_root) {
            match self.volumes.user_created_here(&volume).await {
                Ok(true) => {
                    crate::metrics::METRICS.warmed_up();
                    tracing::info!(volume.name = %volume, container.id = %event.id,
                        container.name = %event.name,
                        "a container using the volume was created here; moving it here ahead of its start");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(volume.name = %volume, container.id = %event.id,
                    error = %e, "cannot move the volume here ahead of its start; its start will"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::MountPoint;
    use crate::docker::fake::{FakeDocker, bind, running};
    use crate::flocker::volumes::testing::{Host, NODE};
    use proto::control::Volume;

    fn volume(owner: &str) -> Volume {
        Volume {
            name: "pg".into(),
            owner: Some(owner.into()),
            epoch: 1,
            ..Default::default()
        }
    }

    fn flocker_mount(name: &str) -> MountPoint {
        MountPoint {
            kind: "volume".into(),
            name: name.into(),
            source: format!("/mnt/{name}"),
            destination: "/data".into(),
            driver: "flocker".into(),
        }
    }

    /// A watcher over `host` and a fake dockerd, running.
    async fn watching(host: &Host) -> Arc<FakeDocker> {
        let docker = Arc::new(FakeDocker::new());
        let watcher = ArrivalWatcher::new(
            docker.clone(),
            host.volumes.clone(),
            PathBuf::from("/var/lib/flocker"),
        );
        tokio::spawn(watcher.run());
        // The watcher subscribes before the test emits.
        tokio::task::yield_now().await;
        docker
    }

    async fn warmed_after(host: &Host, docker: &FakeDocker, id: &str) -> Vec<String> {
        docker.emit(Action::Create, id);
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if !host.placement.warmed.lock().unwrap().is_empty() {
                break;
            }
        }
        host.placement.warmed.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_container_created_here_moves_its_volume_owned_elsewhere_here() {
        let host = Host::new();
        host.control
            .state()
            .volumes
            .insert("pg".into(), volume("n2"));
        let docker = watching(&host).await;
        let mut task = running("db.1.x", 0, &[]);
        task.mounts = vec![flocker_mount("pg")];
        docker.add(task);
        assert_eq!(warmed_after(&host, &docker, "db.1.x").await, ["pg"]);
    }

    #[tokio::test]
    async fn a_bind_under_the_volume_root_counts_as_a_flocker_volume() {
        let host = Host::new();
        host.control
            .state()
            .volumes
            .insert("pg".into(), volume("n2"));
        let docker = watching(&host).await;
        let mut c = running("c1", 0, &[]);
        c.mounts = vec![bind("/var/lib/flocker/pg")];
        docker.add(c);
        assert_eq!(warmed_after(&host, &docker, "c1").await, ["pg"]);
    }

    #[tokio::test]
    async fn volumes_owned_here_unknown_or_not_flocker_are_left_alone() {
        let host = Host::new();
        host.control
            .state()
            .volumes
            .insert("pg".into(), volume(NODE));
        let docker = watching(&host).await;
        let mut c = running("c1", 0, &[]);
        let mut local = flocker_mount("other");
        local.driver = "local".into();
        c.mounts = vec![flocker_mount("pg"), flocker_mount("unknown"), local];
        docker.add(c);
        assert!(warmed_after(&host, &docker, "c1").await.is_empty());
        assert!(
            !host.control.state().volumes.contains_key("unknown"),
            "a create event never creates a volume"
        );
        // A container already gone by the time its create is handled: nothing to do.
        assert!(warmed_after(&host, &docker, "gone").await.is_empty());
    }
}
