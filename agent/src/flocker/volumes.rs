//! Making a named volume available on this node, for the adapter and the volume plugin
//! alike: create it in the cluster if nobody has (owner = this node), mount it read-write
//! if this node owns it, ask the [`VolumePlacement`] if another node does.
//!
//! The control service decides existence and ownership; the agent never concludes on its
//! own that a volume does not exist.

use std::path::PathBuf;
use std::sync::Arc;

use proto::control::{CreateVolumeRequest, Empty, Lease, Volume};
use proto::tls::TlsDir;
use tonic::Code;

use super::placement::VolumePlacement;
use crate::storage::{
    Access, Backend, CreateOptions, Storage, StorageError, VolumeLocks, VolumeName,
};
use proto::connect::connect_any;

/// Why a volume could not be made available here.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Another node owns the volume and it was not moved here.
    #[error(
        "volume '{volume}' lives on {owner}{}; moving it here needs `flockerctl volume move {volume} --to {node}`",
        in_use(holders)
    )]
    Elsewhere {
        /// The volume.
        volume: VolumeName,
        /// Its owner node.
        owner: String,
        /// This node.
        node: String,
        /// Containers holding it on the owner.
        holders: Vec<String>,
    },
    /// The volume exists in the cluster but no node owns it.
    #[error(
        "volume '{volume}' has no owner node yet; give it one with `flockerctl volume move {volume} --to {node}`"
    )]
    NoOwner {
        /// The volume.
        volume: VolumeName,
        /// This node.
        node: String,
    },
    /// The control service refused or failed a call.
    #[error("control service: {action} volume '{volume}' failed: {message}")]
    Control {
        /// The volume.
        volume: VolumeName,
        /// What was being done.
        action: &'static str,
        /// The control service's answer.
        message: String,
        /// Its gRPC code.
        code: Code,
    },
    /// Local storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn in_use(holders: &[String]) -> String {
    if holders.is_empty() {
        String::new()
    } else {
        let short: Vec<String> = holders
            .iter()
            .map(|h| h.chars().take(12).collect())
            .collect();
        format!(
            " and is in use there by container {} (stop it there first)",
            short.join(", ")
        )
    }
}

/// What the agent needs to reach the cluster and its local storage.
pub struct Volumes {
    node: String,
    controls: Vec<String>,
    tls: TlsDir,
    storage: Arc<Backend>,
    placement: Arc<dyn VolumePlacement>,
    /// One operation at a time per volume: two creates of the same new volume must not
    /// race each other into the backend, while a run of another volume goes on beside a
    /// move of this one.
    busy: VolumeLocks,
}

impl Volumes {
    /// Volumes of `node`, reached through `controls` with `tls`, stored in `storage`.
    pub fn new(
        node: String,
        controls: Vec<String>,
        tls: TlsDir,
        storage: Arc<Backend>,
        placement: Arc<dyn VolumePlacement>,
    ) -> Self {
        Self {
            node,
            controls,
            tls,
            storage,
            placement,
            busy: VolumeLocks::default(),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The local storage.
    pub fn storage(&self) -> &Backend {
        &self.storage
    }

    /// A connected control client, for calls about no volume in particular.
    pub async fn client(
        &self,
    ) -> Result<
        proto::control::node_api_client::NodeApiClient<tonic::transport::Channel>,
        proto::connect::Unreachable,
    > {
        connect_any(&self.controls, &self.tls).await
    }

    /// A connected control client, for calls about `volume`.
    pub async fn control(
        &self,
        volume: &VolumeName,
    ) -> Result<
        proto::control::node_api_client::NodeApiClient<tonic::transport::Channel>,
        VolumeError,
    > {
        self.client().await.map_err(|e| VolumeError::Control {
            volume: volume.clone(),
            action: "reach the control service for",
            message: e.to_string(),
            code: Code::Unavailable,
        })
    }

    /// The cluster's record of `volume`, or `None` if the cluster has no such volume.
    pub async fn lookup(&self, volume: &VolumeName) -> Result<Option<Volume>, VolumeError> {
        let mut control = self.control(volume).await?;
        match control
            .get_volume(proto::control::VolumeName {
                name: volume.to_string(),
            })
            .await
        {
            Ok(v) => Ok(Some(v.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(control_error(volume, "look up", s)),
        }
    }

    /// Makes sure the cluster knows `volume`, creating it owned by this node (and its local
    /// storage) if it does not exist. Returns the cluster's record.
    pub async fn ensure_exists(&self, volume: &VolumeName) -> Result<Volume, VolumeError> {
        if let Some(v) = self.lookup(volume).await? {
            return Ok(v);
        }
        let mut control = self.control(volume).await?;
        let created = control
            .create_volume(CreateVolumeRequest {
                name: volume.to_string(),
                owner: Some(self.node.clone()),
                ..Default::default()
            })
            .await;
        match created {
            Ok(v) => {
                tracing::info!(volume.name = %volume, node.name = %self.node, "created volume");
                Ok(v.into_inner())
            }
            // Created by someone else in the meantime: theirs is the record.
            Err(s) if s.code() == Code::AlreadyExists => self
                .lookup(volume)
                .await?
                .ok_or_else(|| control_error(volume, "create", s)),
            Err(s) => Err(control_error(volume, "create", s)),
        }
    }

    /// Makes `volume` available read-write on this node and returns its mount path:
    /// creates it if the cluster has none, mounts it if this node owns it, asks the
    /// placement layer to bring it here if another node owns it.
    pub async fn ensure_here(&self, volume: &VolumeName) -> Result<PathBuf, VolumeError> {
        let _one_at_a_time = self.busy.lock(volume.as_str()).await;
        let record = self.ensure_exists(volume).await?;
        match record.owner.as_deref() {
            Some(owner) if owner == self.node => {}
            Some(owner) => {
                let holders = self.leases_of(volume).await?;
                self.placement.bring_here(volume, owner, &holders).await?;
            }
            None => {
                return Err(VolumeError::NoOwner {
                    volume: volume.clone(),
                    node: self.node.clone(),
                });
            }
        }
        self.mount_local(volume).await
    }

    /// Creates the local copy if this host has none, then mounts it read-write.
    async fn mount_local(&self, volume: &VolumeName) -> Result<PathBuf, VolumeError> {
        crate::storage::create_if_absent(self.storage.as_ref(), volume, &CreateOptions::default())
            .await?;
        let path = self.storage.mount(volume, Access::ReadWrite).await?;
        tracing::debug!(volume.name = %volume, volume.path = %path.display(), "volume mounted here");
        Ok(path)
    }

    /// The leases held on `volume`, anywhere.
    pub async fn leases_of(&self, volume: &VolumeName) -> Result<Vec<Lease>, VolumeError> {
        let mut control = self.control(volume).await?;
        let leases = control
            .list_leases(Empty {})
            .await
            .map_err(|s| control_error(volume, "list the leases of", s))?
            .into_inner()
            .leases;
        Ok(leases
            .into_iter()
            .filter(|l| l.volume == volume.as_str())
            .collect())
    }
}

/// A control service refusal as a [`VolumeError`].
pub fn control_error(volume: &VolumeName, action: &'static str, s: tonic::Status) -> VolumeError {
    VolumeError::Control {
        volume: volume.clone(),
        action,
        message: s.message().to_owned(),
        code: s.code(),
    }
}
