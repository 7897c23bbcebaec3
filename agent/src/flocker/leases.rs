//! Leases from the container lifecycle: a container that runs with a flocker volume holds a
//! lease on it (`AcquireLease(volume, node, container)`), released when it dies. The
//! watcher follows Docker's event stream, reconnects with `since=` after a daemon restart,
//! and reconciles with the running containers at every (re)connection.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::control::{Empty, Lease};
use serde_json::Value;

use super::docker::Docker;
use super::volumes::{VolumeError, Volumes};
use crate::storage::VolumeName;

/// Pause before reconnecting to dockerd.
pub const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// `filters={"type":["container"],"event":["start","die"]}`, percent-encoded.
const EVENT_FILTER: &str =
    "%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%2C%22die%22%5D%7D";

/// Follows dockerd and keeps this node's leases in step with its running containers.
pub struct LeaseWatcher {
    docker: Docker,
    volumes: Arc<Volumes>,
    volume_root: PathBuf,
}

impl LeaseWatcher {
    /// A watcher of `docker` whose flocker binds point under `volume_root`.
    pub fn new(docker: Docker, volumes: Arc<Volumes>, volume_root: PathBuf) -> Self {
        Self {
            docker,
            volumes,
            volume_root,
        }
    }

    /// Runs until dropped: subscribe, reconcile, follow; after a failure, again.
    pub async fn run(self) {
        let mut since: Option<String> = None;
        loop {
            if let Err(e) = self.follow(&mut since).await {
                tracing::warn!(docker.socket = %self.docker.socket().display(), error = %e, "docker events interrupted; reconnecting");
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    async fn follow(&self, since: &mut Option<String>) -> Result<(), String> {
        let mut path = format!("/events?filters={EVENT_FILTER}");
        if let Some(since) = since.as_ref() {
            path.push_str(&format!("&since={since}"));
        }
        let mut events = self
            .docker
            .get_lines(&path)
            .await
            .map_err(|e| e.to_string())?;
        self.reconcile().await.map_err(|e| e.to_string())?;
        while let Some(event) = events.next().await? {
            if let Some(time) = event.get("time").and_then(Value::as_i64) {
                *since = Some(time.to_string());
            }
            let id = event.get("id").and_then(Value::as_str).unwrap_or_default();
            let action = event
                .get("Action")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let result = match action {
                "start" => self.started(id).await,
                "die" => self.died(id).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(container.id = %id, container.event = action, error = %e, "lease not updated");
            }
        }
        Ok(())
    }

    /// The flocker volumes a container uses, from its inspect document.
    fn volumes_of(&self, inspect: &Value) -> Vec<VolumeName> {
        let mut names = BTreeSet::new();
        let mounts = inspect.get("Mounts").and_then(Value::as_array);
        for mount in mounts.into_iter().flatten() {
            let text = |k: &str| mount.get(k).and_then(Value::as_str).unwrap_or_default();
            let name = match text("Type") {
                "bind" => PathBuf::from(text("Source"))
                    .strip_prefix(&self.volume_root)
                    .ok()
                    .and_then(|rest| rest.iter().next().map(|c| c.to_string_lossy().into_owned())),
                "volume" if text("Driver") == "flocker" => Some(text("Name").to_owned()),
                _ => None,
            };
            if let Some(Ok(name)) = name.map(|n| VolumeName::new(&n)) {
                names.insert(name);
            }
        }
        names.into_iter().collect()
    }

    async fn started(&self, id: &str) -> Result<(), String> {
        let inspect = self
            .docker
            .get_json(&format!("/containers/{id}/json"))
            .await
            .map_err(|e| e.to_string())?;
        for volume in self.volumes_of(&inspect) {
            self.acquire(&volume, id).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn acquire(&self, volume: &VolumeName, id: &str) -> Result<(), VolumeError> {
        let mut control = self.volumes.control(volume).await?;
        control
            .acquire_lease(Lease {
                volume: volume.to_string(),
                node: self.volumes.node().to_owned(),
                container_id: id.to_owned(),
            })
            .await
            .map_err(|s| super::volumes::control_error(volume, "lease", s))?;
        tracing::info!(volume.name = %volume, container.id = %id, "lease acquired");
        Ok(())
    }

    /// This node's leases.
    async fn my_leases(&self) -> Result<Vec<Lease>, String> {
        let mut control = self.volumes.client().await.map_err(|e| e.to_string())?;
        let leases = control
            .list_leases(Empty {})
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner()
            .leases;
        Ok(leases
            .into_iter()
            .filter(|l| l.node == self.volumes.node())
            .collect())
    }

    async fn release(&self, lease: Lease) -> Result<(), String> {
        let mut control = self.volumes.client().await.map_err(|e| e.to_string())?;
        let (volume, id) = (lease.volume.clone(), lease.container_id.clone());
        match control.release_lease(lease).await {
            Ok(_) => {
                tracing::info!(volume.name = %volume, container.id = %id, "lease released");
                Ok(())
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(format!("release lease on {volume}: {}", s.message())),
        }
    }

    async fn died(&self, id: &str) -> Result<(), String> {
        for lease in self.my_leases().await? {
            if lease.container_id == id {
                self.release(lease).await?;
            }
        }
        Ok(())
    }

    /// Acquires the leases of every running container and releases the leases of this
    /// node whose container no longer runs.
    pub async fn reconcile(&self) -> Result<(), String> {
        let running = self
            .docker
            .get_json("/containers/json")
            .await
            .map_err(|e| e.to_string())?;
        let mut ids = BTreeSet::new();
        for container in running.as_array().into_iter().flatten() {
            if let Some(id) = container.get("Id").and_then(Value::as_str) {
                ids.insert(id.to_owned());
                if let Err(e) = self.started(id).await {
                    tracing::warn!(container.id = %id, error = %e, "lease not acquired");
                }
            }
        }
        for lease in self.my_leases().await? {
            if !ids.contains(&lease.container_id) {
                self.release(lease).await?;
            }
        }
        Ok(())
    }
}
