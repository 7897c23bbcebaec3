//! The VolumeDriver calls, one method each, on top of [`Volumes`]: idempotent, with mount
//! reference counts by Docker's mount ID kept in a [`StateFile`].

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::state::StateFile;
use crate::flocker::control::ControlError;
use crate::flocker::placement::Patience;
use crate::flocker::volumes::{VolumeError, Volumes, control_error};
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
    /// if it is new); creating an existing volume is fine. One owned elsewhere starts moving
    /// here at once (Swarm creates a task's volume on its new node before it stops the old
    /// task): the copy runs while the old task writes, and `Mount` waits for the handoff.
    pub async fn create(&self, request: VolumeRequest) -> CallResult {
        let volume = name(&request)?;
        self.volumes.expect_here(&volume).await.map_err(say)?;
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
        match self.volumes.control().delete_volume(volume.as_str()).await {
            Ok(()) => {}
            Err(ControlError::Status(s)) if s.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(say(control_error(&volume, "delete", e))),
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
        let path = self
            .volumes
            .ensure_here(&volume, Patience::Handoff)
            .await
            .map_err(say)?;
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
        let volumes = match self.volumes.control().list_volumes().await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flocker::control::fake::volume;
    use crate::flocker::volumes::testing::{Host, NODE, can_mount, name};
    use crate::storage::CreateOptions;

    fn driver(host: &Host) -> Driver {
        let state = StateFile::open(host.dir().join("state/mounts.json")).unwrap();
        Driver::new(host.volumes.clone(), state)
    }

    fn request(name: &str, id: &str) -> VolumeRequest {
        VolumeRequest {
            name: name.into(),
            id: id.into(),
        }
    }

    fn owned(host: &Host, name: &str, owner: &str) {
        let record = volume(name, Some(owner));
        host.control.state().volumes.insert(name.into(), record);
    }

    #[tokio::test]
    async fn a_volume_mounted_by_a_container_here_cannot_be_removed() {
        let host = Host::new();
        owned(&host, "demo", NODE);
        // The count survived an agent restart: it is in the state file.
        let mut state = StateFile::open(host.dir().join("state/mounts.json")).unwrap();
        state.add("demo", "m1").unwrap();
        drop(state);
        let driver = driver(&host);
        let refused = driver.remove(request("demo", "")).await.unwrap_err();
        assert!(refused.contains("mounted by 1 container(s)"), "{refused}");
        assert!(host.control.state().volumes.contains_key("demo"));
        assert!(!host.control.calls().iter().any(|c| c.starts_with("delete")));
    }

    #[tokio::test]
    async fn remove_deletes_the_volume_everywhere_and_an_unknown_one_is_fine() {
        let host = Host::new();
        owned(&host, "demo", NODE);
        let storage = host.volumes.storage();
        storage
            .create(&name("demo"), &CreateOptions::default())
            .await
            .unwrap();
        let driver = driver(&host);
        assert_eq!(driver.remove(request("demo", "")).await, Ok(json!({})));
        assert!(!host.control.state().volumes.contains_key("demo"));
        assert!(storage.volumes().await.unwrap().is_empty());
        assert_eq!(driver.remove(request("demo", "")).await, Ok(json!({})));
        let bad = driver.remove(request("../etc", "")).await;
        assert!(bad.is_err(), "{bad:?}");
    }

    #[tokio::test]
    async fn path_is_the_mountpoint_only_while_this_node_owns_the_volume() {
        let host = Host::new();
        owned(&host, "here", NODE);
        owned(&host, "there", "n2");
        let driver = driver(&host);
        let here = driver.path(request("here", "")).await.unwrap();
        let mountpoint = host.volume_root.join("here");
        assert_eq!(here, json!({"Mountpoint": mountpoint}));
        assert_eq!(driver.path(request("there", "")).await, Ok(json!({})));
        assert_eq!(driver.path(request("nowhere", "")).await, Ok(json!({})));
    }

    #[tokio::test]
    async fn get_answers_an_unknown_volume_with_nothing_but_an_outage_with_an_error() {
        let host = Host::new();
        owned(&host, "there", "n2");
        let driver = driver(&host);
        // Neither Volume nor Err: Docker then creates the volume.
        assert_eq!(driver.get(request("nowhere", "")).await, Ok(json!({})));
        let there = driver.get(request("there", "")).await.unwrap();
        assert_eq!(there["Volume"]["Name"], "there");
        assert_eq!(there["Volume"]["Mountpoint"], "");
        assert_eq!(there["Volume"]["Status"]["owner"], "n2");
        assert_eq!(there["Volume"]["Status"]["mounts here"], 0);
        // An outage must not read as "no such volume", or Docker would create it again.
        host.control.state().unreachable = true;
        let error = driver.get(request("there", "")).await.unwrap_err();
        assert!(error.contains("reach the control service"), "{error}");
    }

    #[tokio::test]
    async fn list_names_every_volume_with_a_mountpoint_only_for_those_here() {
        let host = Host::new();
        owned(&host, "here", NODE);
        owned(&host, "there", "n2");
        let list = driver(&host).list().await.unwrap();
        let mountpoint = host.volume_root.join("here");
        assert_eq!(
            list,
            json!({"Volumes": [
                {"Name": "here", "Mountpoint": mountpoint},
                {"Name": "there", "Mountpoint": ""},
            ]})
        );
    }

    #[tokio::test]
    async fn mounts_are_counted_by_id_and_the_last_unmount_frees_the_volume() {
        if !can_mount() {
            return;
        }
        let host = Host::new();
        let driver = driver(&host);
        assert_eq!(driver.create(request("demo", "")).await, Ok(json!({})));
        let mountpoint = host.volume_root.join("demo");
        for id in ["m1", "m2", "m1"] {
            let mounted = driver.mount(request("demo", id)).await.unwrap();
            assert_eq!(mounted, json!({"Mountpoint": mountpoint}));
        }
        let got = driver.get(request("demo", "")).await.unwrap();
        assert_eq!(got["Volume"]["Status"]["mounts here"], 2);
        driver.unmount(request("demo", "m1")).await.unwrap();
        driver.unmount(request("demo", "unknown")).await.unwrap();
        assert!(driver.remove(request("demo", "")).await.is_err());
        driver.unmount(request("demo", "m2")).await.unwrap();
        // The counts were persisted: a restarted agent sees none left.
        let reopened = StateFile::open(host.dir().join("state/mounts.json")).unwrap();
        assert_eq!(reopened.count("demo"), 0);
        assert_eq!(driver.remove(request("demo", "")).await, Ok(json!({})));
        assert!(!host.control.state().volumes.contains_key("demo"));
    }
}
