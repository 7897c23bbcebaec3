//! Making a named volume available on this node, for the adapter and the volume plugin
//! alike: create it in the cluster if nobody has (owner = this node), mount it read-write
//! if this node owns it, ask the [`VolumePlacement`] if another node does.
//!
//! The control service decides existence and ownership; the agent never concludes on its
//! own that a volume does not exist.

use std::path::PathBuf;
use std::sync::Arc;

use proto::control::{Lease, Volume};
use tonic::Code;

use super::control::{ControlError, VolumeControl};
use super::placement::{Patience, VolumePlacement};
use crate::locks::VolumeLocks;
use crate::storage::{Access, Backend, CreateOptions, Storage, StorageError, VolumeName};

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
    control: Arc<dyn VolumeControl>,
    storage: Arc<Backend>,
    placement: Arc<dyn VolumePlacement>,
    /// The agent's per-volume locks: a run holds its volume's `run` lock, so two creates of
    /// the same new volume do not race each other into the backend, while a run of another
    /// volume goes on beside a move of this one.
    locks: VolumeLocks,
}

impl Volumes {
    /// Volumes of `node`, recorded in the control service through `control`, stored in
    /// `storage`, brought from other nodes by `placement`, serialised per volume with the
    /// agent's `locks`.
    pub fn new(
        node: String,
        control: Arc<dyn VolumeControl>,
        storage: Arc<Backend>,
        placement: Arc<dyn VolumePlacement>,
        locks: VolumeLocks,
    ) -> Self {
        Self {
            node,
            control,
            storage,
            placement,
            locks,
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

    /// The control service.
    pub fn control(&self) -> &dyn VolumeControl {
        self.control.as_ref()
    }

    /// The cluster's record of `volume`, or `None` if the cluster has no such volume.
    pub async fn lookup(&self, volume: &VolumeName) -> Result<Option<Volume>, VolumeError> {
        match self.control.get_volume(volume.as_str()).await {
            Ok(v) => Ok(Some(v)),
            Err(ControlError::Status(s)) if s.code() == Code::NotFound => Ok(None),
            Err(e) => Err(control_error(volume, "look up", e)),
        }
    }

    /// Makes sure the cluster knows `volume`, creating it owned by this node (and its local
    /// storage) if it does not exist. Returns the cluster's record.
    pub async fn ensure_exists(&self, volume: &VolumeName) -> Result<Volume, VolumeError> {
        if let Some(v) = self.lookup(volume).await? {
            return Ok(v);
        }
        let created = self
            .control
            .create_volume(volume.as_str(), &self.node)
            .await;
        match created {
            Ok(v) => {
                tracing::info!(volume.name = %volume, node.name = %self.node, "created volume");
                Ok(v)
            }
            // Created by someone else in the meantime: theirs is the record.
            Err(ControlError::Status(s)) if s.code() == Code::AlreadyExists => self
                .lookup(volume)
                .await?
                .ok_or_else(|| refused(volume, "create", s)),
            Err(e) => Err(control_error(volume, "create", e)),
        }
    }

    /// Makes `volume` available read-write on this node and returns its mount path:
    /// creates it if the cluster has none, mounts it if this node owns it, asks the
    /// placement layer to bring it here (waiting for its holders as `patience` says) if
    /// another node owns it.
    pub async fn ensure_here(
        &self,
        volume: &VolumeName,
        patience: Patience,
    ) -> Result<PathBuf, VolumeError> {
        let _one_at_a_time = self.locks.run(volume.as_str()).await;
        let record = self.ensure_exists(volume).await?;
        match record.owner.as_deref() {
            Some(owner) if owner == self.node => {}
            Some(owner) => {
                let holders = self.leases_of(volume).await?;
                self.placement
                    .bring_here(volume, owner, &holders, patience)
                    .await?;
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

    /// Makes sure the cluster knows `volume` (as [`Volumes::ensure_exists`]) and, if another
    /// node owns it and no move is under way, starts moving it here without waiting: the
    /// volume plugin's `Create`, which Swarm calls on a task's new node seconds before it
    /// stops the old task.
    pub async fn expect_here(&self, volume: &VolumeName) -> Result<(), VolumeError> {
        let record = self.ensure_exists(volume).await?;
        self.warm_up_if_elsewhere(volume, &record);
        Ok(())
    }

    /// A container that uses `volume` was created on this node (Swarm prepares a task's
    /// container seconds before it stops the old task): if another node owns the volume
    /// and no move is under way, starts moving it here without waiting; whether it did.
    /// Unlike [`Volumes::expect_here`] it never creates the volume.
    pub async fn user_created_here(&self, volume: &VolumeName) -> Result<bool, VolumeError> {
        Ok(match self.lookup(volume).await? {
            Some(record) => self.warm_up_if_elsewhere(volume, &record),
            None => false,
        })
    }

    fn warm_up_if_elsewhere(&self, volume: &VolumeName, record: &Volume) -> bool {
        let elsewhere = record.owner.as_deref().is_some_and(|o| o != self.node);
        let warm_up = elsewhere && record.moving.is_none();
        if warm_up {
            self.placement.warm_up(volume);
        }
        warm_up
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
        let leases = self
            .control
            .list_leases()
            .await
            .map_err(|e| control_error(volume, "list the leases of", e))?;
        Ok(leases
            .into_iter()
            .filter(|l| l.volume == volume.as_str())
            .collect())
    }
}

/// A failed control call about `volume` as a [`VolumeError`]: no member reachable, or
/// the service's refusal.
pub fn control_error(volume: &VolumeName, action: &'static str, e: ControlError) -> VolumeError {
    match e {
        ControlError::Unreachable(e) => VolumeError::Control {
            volume: volume.clone(),
            action: "reach the control service for",
            message: e.to_string(),
            code: Code::Unavailable,
        },
        ControlError::Status(s) => refused(volume, action, s),
    }
}

/// A control service refusal as a [`VolumeError`].
fn refused(volume: &VolumeName, action: &'static str, s: tonic::Status) -> VolumeError {
    VolumeError::Control {
        volume: volume.clone(),
        action,
        message: s.message().to_owned(),
        code: s.code(),
    }
}

/// A node's Docker side in a tempdir for unit tests: [`Volumes`] over a
/// [`FakeControl`](super::control::fake::FakeControl), a recording [`FakePlacement`] and a
/// real directory backend. Mounts are bind mounts, so tests that mount need root
/// ([`can_mount`]); whatever is mounted is unmounted on drop.
#[cfg(test)]
pub mod testing {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use proto::control::Lease;

    use super::{VolumeError, Volumes};
    use crate::flocker::control::fake::FakeControl;
    use crate::flocker::placement::{Patience, PlacementFuture, VolumePlacement};
    use crate::locks::VolumeLocks;
    use crate::storage::{Backend, DirStorage, Store, VolumeName};

    /// This node's name.
    pub const NODE: &str = "n1";

    /// Placement that records what it was asked and succeeds, or refuses as told.
    #[derive(Default)]
    pub struct FakePlacement {
        /// `(volume, owner, holders' container ids)` of every call.
        pub asked: Mutex<Vec<(String, String, Vec<String>)>>,
        /// Refuse as a volume in use on its owner.
        pub refuse: Mutex<bool>,
        /// The volumes asked to move here ahead of their mount.
        pub warmed: Mutex<Vec<String>>,
    }

    impl VolumePlacement for FakePlacement {
        fn bring_here<'a>(
            &'a self,
            volume: &'a VolumeName,
            owner: &'a str,
            holders: &'a [Lease],
            _patience: Patience,
        ) -> PlacementFuture<'a> {
            let ids: Vec<String> = holders.iter().map(|l| l.container_id.clone()).collect();
            let ask = (volume.to_string(), owner.to_owned(), ids.clone());
            self.asked.lock().unwrap().push(ask);
            let refuse = *self.refuse.lock().unwrap();
            Box::pin(async move {
                if refuse {
                    return Err(VolumeError::Elsewhere {
                        volume: volume.clone(),
                        owner: owner.to_owned(),
                        node: NODE.to_owned(),
                        holders: ids,
                    });
                }
                Ok(())
            })
        }

        fn warm_up(&self, volume: &VolumeName) {
            self.warmed.lock().unwrap().push(volume.to_string());
        }
    }

    /// Node [`NODE`]'s volumes in a tempdir.
    pub struct Host {
        /// The control service.
        pub control: Arc<FakeControl>,
        /// The placement layer.
        pub placement: Arc<FakePlacement>,
        /// What is tested.
        pub volumes: Arc<Volumes>,
        /// Where volumes are mounted.
        pub volume_root: PathBuf,
        dir: tempfile::TempDir,
    }

    impl Host {
        /// An empty cluster and an empty backend.
        pub fn new() -> Self {
            let dir = tempfile::tempdir().expect("a tempdir");
            let volume_root = dir.path().join("mnt");
            let storage = DirStorage::new(dir.path().join("data"), &volume_root);
            let cluster = Arc::new(FakeControl::new());
            let placement = Arc::new(FakePlacement::default());
            let volumes = Arc::new(Volumes::new(
                NODE.to_owned(),
                cluster.clone(),
                Arc::new(Backend::from_store(
                    Store::Dir(storage),
                    VolumeLocks::default(),
                )),
                placement.clone(),
                VolumeLocks::default(),
            ));
            Host {
                control: cluster,
                placement,
                volumes,
                volume_root,
                dir,
            }
        }

        /// The tempdir.
        pub fn dir(&self) -> &Path {
            self.dir.path()
        }
    }

    impl Default for Host {
        fn default() -> Self {
            Host::new()
        }
    }

    impl Drop for Host {
        fn drop(&mut self) {
            let Ok(entries) = std::fs::read_dir(&self.volume_root) else {
                return;
            };
            for entry in entries.flatten() {
                let _ = std::process::Command::new("umount")
                    .arg(entry.path())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }

    /// `name` as a volume name.
    pub fn name(name: &str) -> VolumeName {
        VolumeName::new(name).expect("a valid name")
    }

    /// Whether this process may bind-mount; a test that needs to and may not is skipped
    /// with a reason, or fails under CI.
    pub fn can_mount() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "bind mounts need root, and CI must run every test"
        );
        eprintln!("skipped: bind mounts need root");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Host, NODE, can_mount, name};
    use super::*;
    use crate::flocker::control::fake::{lease, volume};

    #[tokio::test]
    async fn a_new_volume_is_created_in_the_cluster_owned_here_and_mounted() {
        if !can_mount() {
            return;
        }
        let host = Host::new();
        let path = host
            .volumes
            .ensure_here(&name("demo"), Patience::Brief)
            .await
            .unwrap();
        assert_eq!(path, host.volume_root.join("demo"));
        assert!(
            host.control
                .calls()
                .contains(&format!("create_volume demo {NODE}"))
        );
        let record = host.control.state().volumes["demo"].clone();
        assert_eq!(record.owner.as_deref(), Some(NODE));
        let here = host.volumes.storage().volumes().await.unwrap();
        assert_eq!(here, [name("demo")]);
        assert!(host.placement.asked.lock().unwrap().is_empty());
    }

    /// The plugin's Create (Swarm, on a task's new node): a volume owned elsewhere starts
    /// moving here; a new one, one owned here or one already moving does not.
    #[tokio::test]
    async fn expecting_a_volume_here_warms_up_only_one_owned_elsewhere_and_not_moving() {
        let host = Host::new();
        {
            let mut cluster = host.control.state();
            cluster
                .volumes
                .insert("there".into(), volume("there", Some("n2")));
            cluster
                .volumes
                .insert("mine".into(), volume("mine", Some(NODE)));
            let mut moving = volume("moving", Some("n2"));
            moving.moving = Some(proto::control::VolumeMove {
                to: NODE.into(),
                phase: proto::control::MovePhase::Copying.into(),
            });
            cluster.volumes.insert("moving".into(), moving);
        }
        for v in ["there", "mine", "moving", "new"] {
            host.volumes.expect_here(&name(v)).await.unwrap();
        }
        assert_eq!(*host.placement.warmed.lock().unwrap(), ["there"]);
        assert_eq!(
            host.control.state().volumes["new"].owner.as_deref(),
            Some(NODE),
            "a new volume is created owned here"
        );
    }

    #[tokio::test]
    async fn a_volume_owned_elsewhere_is_brought_here_with_its_holders_there() {
        if !can_mount() {
            return;
        }
        let host = Host::new();
        {
            let mut cluster = host.control.state();
            cluster
                .volumes
                .insert("demo".into(), volume("demo", Some("n2")));
            cluster.leases.push(lease("demo", "n2", "c1"));
            cluster.leases.push(lease("other", "n2", "c2"));
        }
        let path = host
            .volumes
            .ensure_here(&name("demo"), Patience::Brief)
            .await
            .unwrap();
        assert_eq!(path, host.volume_root.join("demo"));
        let asked = host.placement.asked.lock().unwrap().clone();
        assert_eq!(asked, [("demo".into(), "n2".into(), vec!["c1".to_owned()])]);
        assert!(!host.control.calls().iter().any(|c| c.starts_with("create")));
    }

    #[tokio::test]
    async fn a_refused_move_is_the_answer_and_nothing_is_made_here() {
        let host = Host::new();
        {
            let mut cluster = host.control.state();
            cluster
                .volumes
                .insert("demo".into(), volume("demo", Some("n2")));
            cluster.leases.push(lease("demo", "n2", "0123456789abcdef"));
        }
        *host.placement.refuse.lock().unwrap() = true;
        let error = host
            .volumes
            .ensure_here(&name("demo"), Patience::Brief)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, VolumeError::Elsewhere { .. }), "{message}");
        assert!(
            message.contains("in use there by container 0123456789ab "),
            "{message}"
        );
        assert!(
            message.contains("flockerctl volume move demo --to n1"),
            "{message}"
        );
        assert!(host.volumes.storage().volumes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_volume_without_an_owner_is_refused_and_not_created_again() {
        let host = Host::new();
        let orphan = volume("demo", None);
        host.control.state().volumes.insert("demo".into(), orphan);
        let error = host
            .volumes
            .ensure_here(&name("demo"), Patience::Brief)
            .await
            .unwrap_err();
        assert!(matches!(error, VolumeError::NoOwner { .. }), "{error}");
        assert!(!host.control.calls().iter().any(|c| c.starts_with("create")));
        assert!(host.volumes.storage().volumes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_control_service_never_means_no_such_volume() {
        let host = Host::new();
        host.control.state().unreachable = true;
        let error = host
            .volumes
            .ensure_here(&name("demo"), Patience::Brief)
            .await
            .unwrap_err();
        match &error {
            VolumeError::Control { action, code, .. } => {
                assert_eq!(
                    (*action, *code),
                    ("reach the control service for", Code::Unavailable)
                );
            }
            other => panic!("{other}"),
        }
        assert_eq!(host.control.calls(), ["get_volume demo"]);
        assert!(host.volumes.storage().volumes().await.unwrap().is_empty());
        assert!(host.dir().exists());
    }
}
