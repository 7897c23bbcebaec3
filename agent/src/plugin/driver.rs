//! The VolumeDriver calls, one method each, on top of [`Volumes`]: idempotent, with mount
//! reference counts by Docker's mount ID kept in a [`StateFile`].

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::state::StateFile;
use crate::flocker::cluster::ControlError;
use crate::flocker::volumes::{VolumeError, Volumes, cluster_error};
use crate::storage::{Storage, VolumeName};

/// A call failed; the message goes to Docker in `Err`.
pub type CallResult = Result<Value, String>;

/// The request body of every call that names a volume.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeRequest {
    /// The volume.
    pub name: String,
    /// The mount ID (Mount and Unmount).
    #[serde(default, rename = "ID")]
    pub id: String,
}

/// The `flocker` volume driver.
pub struct Driver {
    volumes: Arc<Volumes>,
    state: Mutex<StateFile>,
}

fn name(request: &VolumeRequest) -> Result<VolumeName, String> {
    VolumeName::new(&request.name).map_err(|e| e.to_string())
}

fn say(e: VolumeError) -> String {
    e.to_string()
}

impl Driver {
    /// A driver over `volumes` keeping its counts in `state`.
    pub fn new(volumes: Arc<Volumes>, state: StateFile) -> Self {
        Self {
            volumes,
            state: Mutex::new(state),
        }
    }

    /// `/Plugin.Activate`.
    pub fn activate() -> Value {
        json!({"Implements": ["VolumeDriver"]})
    }

    /// `/VolumeDriver.Capabilities`: the namespace is cluster-wide.
    pub fn capabilities() -> Value {
        json!({"Capabilities": {"Scope": "global"}})
    }

    /// `/VolumeDriver.Create`: the volume exists in the cluster afterwards (owned by this node
    /// if it is new); creating an existing volume is fine.
    pub async fn create(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        self.volumes.ensure_exists(&volume).await.map_err(say)?;
        Ok(json!({}))
    }

    /// `/VolumeDriver.Remove`: refused while a container here mounts it; removes it from
    /// the cluster and this host. Removing a volume that does not exist is fine.
    pub async fn remove(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        let held = self.state.lock().await.count(volume.as_str());
        if held > 0 {
            return Err(format!(
                "volume '{volume}' is mounted by {held} container(s) on this host: stop them first"
            ));
        }
        match self.volumes.cluster().delete_volume(volume.as_str()).await {
            Ok(()) => {}
            Err(ControlError::Status(s)) if s.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(say(cluster_error(&volume, "delete", e))),
        }
        let storage = self.volumes.storage();
        if storage
            .volumes()
            .await
            .map_err(|e| e.to_string())?
            .contains(&volume)
        {
            storage.destroy(&volume).await.map_err(|e| e.to_string())?;
        }
        Ok(json!({}))
    }

    /// `/VolumeDriver.Mount`: brings the volume here (create, mount, or placement) and counts
    /// the mount ID.
    pub async fn mount(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        let path = self.volumes.ensure_here(&volume).await.map_err(say)?;
        self.state
            .lock()
            .await
            .add(volume.as_str(), &request.id)
            .map_err(|e| e.to_string())?;
        Ok(json!({"Mountpoint": path}))
    }

    /// `/VolumeDriver.Unmount`: forgets the mount ID (an unknown one is fine). The owner
    /// keeps the volume mounted at its mount path; the lease goes with the container.
    pub async fn unmount(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        self.state
            .lock()
            .await
            .remove(volume.as_str(), &request.id)
            .map_err(|e| e.to_string())?;
        Ok(json!({}))
    }

    /// `/VolumeDriver.Path`: the mount path while this node owns the volume, else none.
    pub async fn path(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        let record = self.volumes.lookup(&volume).await.map_err(say)?;
        Ok(match record {
            Some(v) if v.owner.as_deref() == Some(self.volumes.node()) => {
                json!({"Mountpoint": self.volumes.storage().mount_path(&volume)})
            }
            _ => json!({}),
        })
    }

    /// `/VolumeDriver.Get`: the cluster's record, with owner and local mounts as status.
    /// No such volume is an answer with neither `Volume` nor `Err`, as Docker expects (it
    /// then creates the volume on `run --mount ...,volume-driver=flocker`).
    pub async fn get(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        let Some(record) = self.volumes.lookup(&volume).await.map_err(say)? else {
            return Ok(json!({}));
        };
        let mounts = self.state.lock().await.count(volume.as_str());
        Ok(json!({"Volume": self.describe(&record, Some(mounts))}))
    }

    /// `/VolumeDriver.List`: every volume in the cluster.
    pub async fn list(&self) -> CallResult {
        let volumes = match self.volumes.cluster().list_volumes().await {
            Ok(volumes) => volumes,
            Err(ControlError::Status(s)) => {
                return Err(format!(
                    "control service: list volumes failed: {}",
                    s.message()
                ));
            }
            Err(e @ ControlError::Unreachable(_)) => return Err(e.to_string()),
        };
        let list: Vec<Value> = volumes.iter().map(|v| self.describe(v, None)).collect();
        Ok(json!({"Volumes": list}))
    }

    fn describe(&self, v: &proto::control::Volume, mounts: Option<usize>) -> Value {
        let here = v.owner.as_deref() == Some(self.volumes.node());
        let mountpoint = match VolumeName::new(&v.name) {
            Ok(name) if here => self
                .volumes
                .storage()
                .mount_path(&name)
                .to_string_lossy()
                .into_owned(),
            _ => String::new(),
        };
        let mut out = json!({"Name": v.name, "Mountpoint": mountpoint});
        if let Some(mounts) = mounts {
            out["CreatedAt"] = json!(super::time::rfc3339(v.created_ms));
            out["Status"] = json!({
                "owner": v.owner.clone().unwrap_or_default(),
                "epoch": v.epoch,
                "mounts here": mounts,
            });
        }
        out
    }
}
