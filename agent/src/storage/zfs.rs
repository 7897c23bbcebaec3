//! The ZFS backend: a dataset `<parent>/<volume>` per volume, shelling out to the `zfs` CLI.
//!
//! Datasets are created with `mountpoint=none` (so a received replica is never mounted
//! behind our back) and mounted by setting `mountpoint=<volume-root>/<name>`; read-only
//! replicas get `readonly=on`. Size limits are `quota`. Streams are plain `zfs send`
//! (`-i` for increments), which every ZFS since pool version 1 can receive; the features of
//! the installed ZFS are detected ([`features`]) and used only where they exist.

pub mod features;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncRead;

pub use features::ZfsFeatures;

use super::process::{pipe_into, run, spawn_stream};
use super::{
    Access, ByteStream, Capabilities, CreateOptions, Result, Slot, Snapshot, SnapshotName, Storage,
    StorageError, VolumeName,
};

/// Volumes as ZFS datasets under one parent dataset.
#[derive(Debug, Clone)]
pub struct ZfsStorage {
    parent: String,
    volume_root: PathBuf,
    features: ZfsFeatures,
}

impl ZfsStorage {
    /// Uses the dataset `parent` (a pool, or `pool/path`) for volumes, mounting them under
    /// `volume_root`. A missing `parent` below an existing pool is created, unmounted.
    pub async fn open(parent: &str, volume_root: impl Into<PathBuf>) -> Result<Self> {
        let pool = parent.split('/').next().unwrap_or(parent);
        let features = ZfsFeatures::detect(pool).await?;
        if !dataset_exists(None, parent).await? {
            run(
                None,
                "zfs",
                &["create", "-p", "-o", "mountpoint=none", parent],
            )
            .await?;
        }
        tracing::debug!(zfs.parent = parent, ?features, "zfs storage opened");
        Ok(Self {
            parent: parent.to_owned(),
            volume_root: volume_root.into(),
            features,
        })
    }

    /// What the installed ZFS supports.
    pub fn features(&self) -> &ZfsFeatures {
        &self.features
    }

    /// The dataset that holds `volume`.
    pub fn dataset(&self, volume: &VolumeName) -> String {
        format!("{}/{}", self.parent, volume)
    }

    /// The dataset of `volume`'s `slot`: the staging copy is a sibling whose name (with a
    /// `:`) no volume name can take.
    pub fn slot_dataset(&self, volume: &VolumeName, slot: Slot) -> String {
        match slot {
            Slot::Volume => self.dataset(volume),
            Slot::Staging => format!("{}/{}:staging", self.parent, volume),
        }
    }

    /// `zfs args...` on behalf of `volume`.
    async fn zfs(&self, volume: &VolumeName, args: &[&str]) -> Result<String> {
        run(Some(volume.as_str()), "zfs", args).await
    }

    /// One property's value (`zfs get -Hp`).
    async fn get(&self, volume: &VolumeName, property: &str) -> Result<String> {
        let dataset = self.dataset(volume);
        let value = self
            .zfs(volume, &["get", "-Hp", "-o", "value", property, &dataset])
            .await?;
        Ok(value.trim().to_owned())
    }

    /// Fails with [`StorageError::NoSuchVolume`] unless `volume` exists.
    async fn require(&self, volume: &VolumeName) -> Result<()> {
        if dataset_exists(Some(volume.as_str()), &self.dataset(volume)).await? {
            Ok(())
        } else {
            Err(StorageError::NoSuchVolume {
                volume: volume.to_string(),
            })
        }
    }

    /// The snapshots of `dataset` (which must exist), oldest first.
    async fn snapshots_of(&self, volume: &VolumeName, dataset: &str) -> Result<Vec<Snapshot>> {
        // zfs-fuse's `zfs list` has no -p: `zfs get -p` gives exact numbers.
        let args = [
            "get",
            "-rHp",
            "-o",
            "name,property,value",
            "createtxg,guid",
            dataset,
        ];
        let out = self.zfs(volume, &args).await?;
        parse_snapshots(dataset, &out)
    }

    /// Fails with [`StorageError::NoSuchSnapshot`] unless `volume@snapshot` exists.
    async fn require_snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        if self
            .snapshots(volume)
            .await?
            .iter()
            .any(|s| &s.name == snapshot)
        {
            Ok(())
        } else {
            Err(StorageError::NoSuchSnapshot {
                volume: volume.to_string(),
                snapshot: snapshot.to_string(),
            })
        }
    }
}

impl ZfsStorage {
    /// Unmounts and mounts `volume` again so that readers see what was just received:
    /// zfs-fuse leaves the kernel's cached "no such file" answers in place across a
    /// receive. A replica in use cannot be unmounted; it is left as it is, with a warning.
    async fn remount(&self, volume: &VolumeName) -> Result<()> {
        let dataset = self.dataset(volume);
        if let Err(e) = self.zfs(volume, &["unmount", &dataset]).await {
            tracing::warn!(volume.name = %volume, error = %e, "replica busy, not remounted");
            return Ok(());
        }
        // zfs-fuse reports the mount point busy for a moment after an unmount.
        let deadline = tokio::time::Instant::now() + REMOUNT_PATIENCE;
        loop {
            match self.zfs(volume, &["mount", &dataset]).await {
                Ok(_) => return Ok(()),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long a remount after a receive may wait for the mount point to be free.
const REMOUNT_PATIENCE: Duration = Duration::from_secs(10);

/// Whether `dataset` exists; other failures of `zfs list` are errors.
async fn dataset_exists(volume: Option<&str>, dataset: &str) -> Result<bool> {
    match run(volume, "zfs", &["list", "-H", "-o", "name", dataset]).await {
        Ok(_) => Ok(true),
        Err(StorageError::Command { stderr, .. } | StorageError::Unavailable { stderr, .. })
            if stderr.contains("does not exist") =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Parses `zfs get -rHp -o name,property,value createtxg,guid DATASET` into the dataset's
/// snapshots, oldest (lowest creation txg) first.
fn parse_snapshots(dataset: &str, out: &str) -> Result<Vec<Snapshot>> {
    let prefix = format!("{dataset}@");
    let mut found: std::collections::BTreeMap<String, (Option<u64>, Option<u64>)> =
        Default::default();
    for line in out.lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(property), Some(value)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(snapshot) = name.strip_prefix(&prefix) else {
            continue;
        };
        let entry = found.entry(snapshot.to_owned()).or_default();
        let value = value.trim().parse().ok();
        match property {
            "createtxg" => entry.0 = value,
            "guid" => entry.1 = value,
            _ => {}
        }
    }
    let mut snapshots = Vec::new();
    for (name, (txg, guid)) in found {
        let (Some(txg), Some(guid), Ok(name)) = (txg, guid, SnapshotName::new(&name)) else {
            continue;
        };
        snapshots.push((txg, Snapshot { name, guid }));
    }
    snapshots.sort_by_key(|(txg, _)| *txg);
    Ok(snapshots.into_iter().map(|(_, s)| s).collect())
}

/// Removes the empty directory ZFS may leave where a dataset was mounted.
fn remove_empty_dir(path: &Path) {
    let _ = std::fs::remove_dir(path);
}

impl Storage for ZfsStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            enforces_quota: true,
            resumable_receive: self.features.resumable_receive,
        }
    }

    fn mount_path(&self, volume: &VolumeName) -> PathBuf {
        self.volume_root.join(volume.as_str())
    }

    async fn create(&self, volume: &VolumeName, options: &CreateOptions) -> Result<()> {
        let dataset = self.dataset(volume);
        if dataset_exists(Some(volume.as_str()), &dataset).await? {
            return Err(StorageError::VolumeExists {
                volume: volume.to_string(),
            });
        }
        let quota = options.quota.map(|q| format!("quota={q}"));
        let mut args = vec!["create", "-o", "mountpoint=none"];
        if let Some(quota) = &quota {
            args.extend(["-o", quota]);
        }
        args.push(&dataset);
        self.zfs(volume, &args).await?;
        Ok(())
    }

    async fn clone_snapshot(
        &self,
        volume: &VolumeName,
        snapshot: &SnapshotName,
        clone: &VolumeName,
    ) -> Result<()> {
        self.require_snapshot(volume, snapshot).await?;
        let dataset = self.dataset(clone);
        if dataset_exists(Some(clone.as_str()), &dataset).await? {
            return Err(StorageError::VolumeExists {
                volume: clone.to_string(),
            });
        }
        let origin = format!("{}@{}", self.dataset(volume), snapshot);
        self.zfs(
            clone,
            &["clone", "-o", "mountpoint=none", &origin, &dataset],
        )
        .await?;
        Ok(())
    }

    async fn set_aside(&self, volume: &VolumeName, label: &str) -> Result<String> {
        self.require(volume).await?;
        self.unmount(volume).await?;
        let mut to = String::new();
        for label in super::set_aside_labels(label) {
            to = format!("{}/{}:{}", self.parent, volume, label);
            if !dataset_exists(Some(volume.as_str()), &to).await? {
                break;
            }
        }
        self.zfs(volume, &["rename", &self.dataset(volume), &to])
            .await?;
        remove_empty_dir(&self.mount_path(volume));
        Ok(to)
    }

    async fn destroy(&self, volume: &VolumeName) -> Result<()> {
        self.require(volume).await?;
        self.unmount(volume).await?;
        self.zfs(volume, &["destroy", "-r", &self.dataset(volume)])
            .await?;
        remove_empty_dir(&self.mount_path(volume));
        Ok(())
    }

    async fn volumes(&self) -> Result<Vec<VolumeName>> {
        let out = run(
            None,
            "zfs",
            &["list", "-H", "-o", "name", "-r", "-d", "1", &self.parent],
        )
        .await?;
        let prefix = format!("{}/", self.parent);
        let mut names: Vec<VolumeName> = out
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|name| VolumeName::new(name).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn mount(&self, volume: &VolumeName, access: Access) -> Result<PathBuf> {
        self.require(volume).await?;
        let dataset = self.dataset(volume);
        let readonly = match access {
            Access::ReadWrite => "readonly=off",
            Access::ReadOnly => "readonly=on",
        };
        self.zfs(volume, &["set", readonly, &dataset]).await?;
        let path = self.mount_path(volume);
        std::fs::create_dir_all(&self.volume_root)
            .map_err(|e| StorageError::io(volume, "make the volume root", e))?;
        let wanted = path.to_string_lossy().into_owned();
        if self.get(volume, "mountpoint").await? != wanted {
            let mountpoint = format!("mountpoint={wanted}");
            self.zfs(volume, &["set", &mountpoint, &dataset]).await?;
        }
        if self.get(volume, "mounted").await? != "yes" {
            // Setting the mountpoint mounts the dataset as a side effect, and another part
            // of the agent may be mounting it at the same moment: mounted is what counts.
            if let Err(error) = self.zfs(volume, &["mount", &dataset]).await
                && self.get(volume, "mounted").await? != "yes"
            {
                return Err(error);
            }
        }
        Ok(path)
    }

    async fn unmount(&self, volume: &VolumeName) -> Result<()> {
        self.require(volume).await?;
        if self.get(volume, "mountpoint").await? != "none" {
            self.zfs(volume, &["set", "mountpoint=none", &self.dataset(volume)])
                .await?;
            remove_empty_dir(&self.mount_path(volume));
        }
        Ok(())
    }

    async fn snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        self.require(volume).await?;
        let name = format!("{}@{}", self.dataset(volume), snapshot);
        self.zfs(volume, &["snapshot", &name]).await?;
        Ok(())
    }

    async fn snapshots(&self, volume: &VolumeName) -> Result<Vec<Snapshot>> {
        self.require(volume).await?;
        self.snapshots_of(volume, &self.dataset(volume)).await
    }

    async fn destroy_snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        self.require_snapshot(volume, snapshot).await?;
        let name = format!("{}@{}", self.dataset(volume), snapshot);
        self.zfs(volume, &["destroy", &name]).await?;
        Ok(())
    }

    async fn send(
        &self,
        volume: &VolumeName,
        from: Option<&SnapshotName>,
        to: &SnapshotName,
    ) -> Result<ByteStream> {
        self.require_snapshot(volume, to).await?;
        let dataset = self.dataset(volume);
        let mut args = vec!["send".to_owned()];
        if let Some(from) = from {
            self.require_snapshot(volume, from).await?;
            args.extend(["-i".to_owned(), format!("{dataset}@{from}")]);
        }
        args.push(format!("{dataset}@{to}"));
        spawn_stream(volume.as_str(), "zfs", &args)
    }

    async fn receive<R>(&self, volume: &VolumeName, slot: Slot, stream: R) -> Result<()>
    where
        R: AsyncRead + Send + Unpin,
    {
        let dataset = self.slot_dataset(volume, slot);
        let existed = dataset_exists(Some(volume.as_str()), &dataset).await?;
        // zfs-fuse may show a received, read-only replica as `readonly off (temporary)`:
        // remember the local setting and put it back afterwards.
        let readonly = if existed {
            let args = [
                "get", "-H", "-s", "local", "-o", "value", "readonly", &dataset,
            ];
            self.zfs(volume, &args).await?.trim().to_owned()
        } else {
            String::new()
        };
        let mut args = vec!["receive", "-F"];
        if self.features.receive_no_mount {
            args.push("-u");
        }
        args.push(&dataset);
        let mounted =
            existed && slot == Slot::Volume && self.get(volume, "mounted").await? == "yes";
        pipe_into(volume.as_str(), "zfs", &args, stream).await?;
        if mounted {
            self.remount(volume).await?;
        }
        if readonly == "on" {
            self.zfs(volume, &["set", "readonly=on", &dataset]).await?;
        }
        Ok(())
    }

    async fn staged_snapshots(&self, volume: &VolumeName) -> Result<Vec<Snapshot>> {
        let staging = self.slot_dataset(volume, Slot::Staging);
        if !dataset_exists(Some(volume.as_str()), &staging).await? {
            return Ok(Vec::new());
        }
        self.snapshots_of(volume, &staging).await
    }

    async fn commit_staged(&self, volume: &VolumeName) -> Result<()> {
        let staging = self.slot_dataset(volume, Slot::Staging);
        if !dataset_exists(Some(volume.as_str()), &staging).await? {
            return Err(StorageError::BadStream {
                volume: volume.to_string(),
                reason: "no staged copy to swap in".into(),
            });
        }
        if dataset_exists(Some(volume.as_str()), &self.dataset(volume)).await? {
            self.destroy(volume).await?;
        }
        // A received dataset inherits `mountpoint` from the parent (none); set it anyway so a
        // received `mountpoint` never mounts it behind our back.
        self.zfs(volume, &["set", "mountpoint=none", &staging])
            .await?;
        self.zfs(volume, &["rename", &staging, &self.dataset(volume)])
            .await?;
        Ok(())
    }

    async fn discard_staged(&self, volume: &VolumeName) -> Result<()> {
        let staging = self.slot_dataset(volume, Slot::Staging);
        if dataset_exists(Some(volume.as_str()), &staging).await? {
            self.zfs(volume, &["destroy", "-r", &staging]).await?;
        }
        Ok(())
    }

    async fn used(&self, volume: &VolumeName) -> Result<u64> {
        self.require(volume).await?;
        let used = self.get(volume, "used").await?;
        used.parse().map_err(|_| StorageError::Command {
            volume: volume.to_string(),
            command: format!("zfs get -Hp -o value used {}", self.dataset(volume)),
            stderr: format!("unexpected value {used:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_parsed_oldest_first_with_their_guids() {
        let out = "tank/v\tcreatetxg\t6\ntank/v\tguid\t1\n\
                   tank/v@b\tcreatetxg\t17\ntank/v@b\tguid\t10184696436510017868\n\
                   tank/v@a\tcreatetxg\t12\ntank/v@a\tguid\t9323107729396691477\n\
                   tank/v2@c\tcreatetxg\t3\ntank/v2@c\tguid\t5\n";
        let got = parse_snapshots("tank/v", out).unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(got[0].guid, 9323107729396691477);
        assert_eq!(got[1].guid, 10184696436510017868);
    }
}
