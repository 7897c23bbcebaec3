//! The directory backend, for hosts without ZFS: a volume is a directory, a snapshot is a
//! full copy of it under a hidden directory, a stream is [`stream`]'s format carrying a
//! snapshot in full or only the entries that changed since a base snapshot.
//!
//! Layout under the backend's root:
//!
//! ```text
//! <root>/<name>/                            the live data (bind-mounted at <volume-root>/<name>)
//! <root>/.flocker/<name>/meta.json          quota and snapshot list; its presence means "exists"
//! <root>/.flocker/<name>/snapshots/<snap>/  one copy per snapshot
//! <root>/.flocker/<name>/incoming/          a receive in progress (removed on failure)
//! <root>/.staging/                          the staging slot: the same layout for copies
//!                                           received in full beside a volume, renamed into
//!                                           place by `commit_staged`
//! <root>/.set-aside/<name>:<label>/         a copy set aside (`set_aside`): `data/` and
//!                                           `flocker/` (its snapshots), kept for the operator
//! ```
//!
//! Limits: the quota is recorded, not enforced; hard links are copied as separate files;
//! callers serialise operations on one volume (the agent does).

pub mod stream;
pub mod transfer;
pub mod tree;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use super::process::run;
use super::{
    Access, ByteStream, Capabilities, CreateOptions, Result, Slot, Snapshot, SnapshotName, Storage,
    StorageError, VolumeName,
};

/// Volumes as plain directories under one root.
#[derive(Debug, Clone)]
pub struct DirStorage {
    root: PathBuf,
    volume_root: PathBuf,
}

/// What `meta.json` records about a volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VolumeMeta {
    /// The size limit given at creation (recorded only).
    pub quota: Option<u64>,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotMeta>,
}

/// One snapshot in [`VolumeMeta`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Its name.
    pub name: String,
    /// When the copy started, nanoseconds since the epoch.
    pub taken_ns: u64,
    /// Its GUID, made when it was taken and carried by streams; 0 in metadata written before
    /// GUIDs existed (see [`SnapshotMeta::guid`]).
    #[serde(default)]
    pub guid: u64,
}

impl SnapshotMeta {
    /// A new snapshot `name` taken at `taken_ns`, with a random GUID.
    pub fn new(name: &SnapshotName, taken_ns: u64) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(name.as_str().as_bytes());
        hasher.write_u64(taken_ns);
        Self {
            name: name.to_string(),
            taken_ns,
            guid: hasher.finish().max(1),
        }
    }

    /// Its GUID: the recorded one, or for metadata from before GUIDs one derived from the
    /// name and the time taken (the same on every host that received it).
    pub fn guid(&self) -> u64 {
        if self.guid != 0 {
            return self.guid;
        }
        // FNV-1a: stable across hosts and builds, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.name.bytes().chain(self.taken_ns.to_be_bytes()) {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        h.max(1)
    }
}

impl VolumeMeta {
    /// The snapshot called `name`, if recorded.
    pub fn snapshot(&self, name: &SnapshotName) -> Option<&SnapshotMeta> {
        self.snapshots.iter().find(|s| s.name == name.as_str())
    }
}

/// Where one volume's parts live.
#[derive(Debug, Clone)]
pub struct VolumePaths {
    /// The live data.
    pub live: PathBuf,
    /// The hidden directory with the metadata and snapshots.
    pub hidden: PathBuf,
}

impl VolumePaths {
    /// `meta.json`.
    pub fn meta(&self) -> PathBuf {
        self.hidden.join("meta.json")
    }
    /// The copy that is snapshot `name`.
    pub fn snapshot(&self, name: &str) -> PathBuf {
        self.hidden.join("snapshots").join(name)
    }
    /// Where a receive is staged.
    pub fn incoming(&self) -> PathBuf {
        self.hidden.join("incoming")
    }
}

/// Runs blocking file work off the async threads, naming `volume` and `action` on failure.
async fn blocking<T: Send + 'static>(
    volume: &VolumeName,
    action: &str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| StorageError::io(volume, action, e))
}

/// Writes `meta` through a temporary file, fsync and rename.
fn save_meta(path: &Path, meta: &VolumeMeta) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let file = std::fs::File::create(&tmp)?;
    serde_json::to_writer_pretty(&file, meta)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Whether `path` is a mount point, from `/proc/self/mounts` (which escapes spaces as `\040`).
fn is_mounted(path: &Path) -> bool {
    let escaped = path
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|mounts| {
        mounts
            .lines()
            .any(|line| line.split(' ').nth(1) == Some(escaped.as_str()))
    })
}

impl DirStorage {
    /// Keeps volumes under `root` and mounts them under `volume_root`.
    pub fn new(root: impl Into<PathBuf>, volume_root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            volume_root: volume_root.into(),
        }
    }

    /// The staging slot: the same backend one level down, never mounted.
    fn staging(&self) -> DirStorage {
        DirStorage::new(self.root.join(".staging"), self.volume_root.clone())
    }

    /// The backend that holds `slot`.
    fn slot(&self, slot: Slot) -> DirStorage {
        match slot {
            Slot::Volume => self.clone(),
            Slot::Staging => self.staging(),
        }
    }

    /// Where `volume`'s parts live.
    pub fn paths(&self, volume: &VolumeName) -> VolumePaths {
        VolumePaths {
            live: self.root.join(volume.as_str()),
            hidden: self.root.join(".flocker").join(volume.as_str()),
        }
    }

    /// The volume's metadata, or [`StorageError::NoSuchVolume`].
    pub fn load(&self, volume: &VolumeName) -> Result<VolumeMeta> {
        match std::fs::read(self.paths(volume).meta()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StorageError::io(volume, "read meta.json", e.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NoSuchVolume {
                volume: volume.to_string(),
            }),
            Err(e) => Err(StorageError::io(volume, "read meta.json", e)),
        }
    }

    /// Saves the volume's metadata.
    pub fn save(&self, volume: &VolumeName, meta: &VolumeMeta) -> Result<()> {
        save_meta(&self.paths(volume).meta(), meta)
            .map_err(|e| StorageError::io(volume, "write meta.json", e))
    }

    /// The recorded snapshot `name`, or [`StorageError::NoSuchSnapshot`].
    fn require_snapshot(
        meta: &VolumeMeta,
        volume: &VolumeName,
        name: &SnapshotName,
    ) -> Result<SnapshotMeta> {
        meta.snapshot(name)
            .cloned()
            .ok_or_else(|| StorageError::NoSuchSnapshot {
                volume: volume.to_string(),
                snapshot: name.to_string(),
            })
    }

    /// `mount args...` on behalf of `volume`.
    async fn mount_cmd(&self, volume: &VolumeName, args: &[&Path]) -> Result<()> {
        run(Some(volume.as_str()), "mount", args).await.map(drop)
    }
}

impl Storage for DirStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            enforces_quota: false,
            resumable_receive: false,
        }
    }

    fn mount_path(&self, volume: &VolumeName) -> PathBuf {
        self.volume_root.join(volume.as_str())
    }

    async fn create(&self, volume: &VolumeName, options: &CreateOptions) -> Result<()> {
        if self.load(volume).is_ok() {
            return Err(StorageError::VolumeExists {
                volume: volume.to_string(),
            });
        }
        let paths = self.paths(volume);
        let meta = VolumeMeta {
            quota: options.quota,
            snapshots: Vec::new(),
        };
        blocking(volume, "create the volume", move || {
            std::fs::create_dir_all(paths.hidden.join("snapshots"))?;
            std::fs::create_dir_all(&paths.live)?;
            save_meta(&paths.meta(), &meta)
        })
        .await
    }

    async fn clone_snapshot(
        &self,
        volume: &VolumeName,
        snapshot: &SnapshotName,
        clone: &VolumeName,
    ) -> Result<()> {
        let meta = self.load(volume)?;
        Self::require_snapshot(&meta, volume, snapshot)?;
        if self.load(clone).is_ok() {
            return Err(StorageError::VolumeExists {
                volume: clone.to_string(),
            });
        }
        let from = self.paths(volume).snapshot(snapshot.as_str());
        let paths = self.paths(clone);
        let fresh = VolumeMeta {
            quota: meta.quota,
            snapshots: Vec::new(),
        };
        // The copy is made beside the live path and renamed into place; meta.json, written
        // last, is what makes it a volume.
        blocking(clone, "copy the snapshot into the clone", move || {
            let partial = paths.hidden.join("cloning");
            std::fs::create_dir_all(paths.hidden.join("snapshots"))?;
            tree::delete(&partial)?;
            tree::delete(&paths.live)?;
            tree::copy_tree(&from, &partial)?;
            std::fs::rename(&partial, &paths.live)?;
            save_meta(&paths.meta(), &fresh)
        })
        .await
    }

    async fn set_aside(&self, volume: &VolumeName, label: &str) -> Result<String> {
        self.load(volume)?;
        self.unmount(volume).await?;
        let paths = self.paths(volume);
        let to = super::set_aside_labels(label)
            .map(|label| {
                self.root
                    .join(".set-aside")
                    .join(format!("{volume}:{label}"))
            })
            .find(|to| !to.exists())
            .expect("the labels never run out");
        let dest = to.clone();
        blocking(volume, "set the copy aside", move || {
            std::fs::create_dir_all(&dest)?;
            std::fs::rename(&paths.live, dest.join("data"))?;
            std::fs::rename(&paths.hidden, dest.join("flocker"))
        })
        .await?;
        Ok(to.display().to_string())
    }

    async fn destroy(&self, volume: &VolumeName) -> Result<()> {
        self.load(volume)?;
        self.unmount(volume).await?;
        let paths = self.paths(volume);
        blocking(volume, "remove the volume", move || {
            std::fs::remove_file(paths.meta())?;
            std::fs::remove_dir_all(&paths.hidden)?;
            std::fs::remove_dir_all(&paths.live)
        })
        .await
    }

    async fn volumes(&self) -> Result<Vec<VolumeName>> {
        let hidden = self.root.join(".flocker");
        let mut names: Vec<VolumeName> = match std::fs::read_dir(&hidden) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("meta.json").exists())
                .filter_map(|e| VolumeName::new(&e.file_name().to_string_lossy()).ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(StorageError::Unavailable {
                    command: format!("read {}", hidden.display()),
                    stderr: e.to_string(),
                });
            }
        };
        names.sort();
        Ok(names)
    }

    async fn mount(&self, volume: &VolumeName, access: Access) -> Result<PathBuf> {
        self.load(volume)?;
        let path = self.mount_path(volume);
        std::fs::create_dir_all(&path)
            .map_err(|e| StorageError::io(volume, "make the mount point", e))?;
        if !is_mounted(&path) {
            let live = self.paths(volume).live;
            self.mount_cmd(volume, &[Path::new("--bind"), &live, &path])
                .await?;
        }
        let options = match access {
            Access::ReadWrite => "remount,bind,rw",
            Access::ReadOnly => "remount,bind,ro",
        };
        self.mount_cmd(volume, &[Path::new("-o"), Path::new(options), &path])
            .await?;
        Ok(path)
    }

    async fn unmount(&self, volume: &VolumeName) -> Result<()> {
        self.load(volume)?;
        let path = self.mount_path(volume);
        if is_mounted(&path) {
            run(Some(volume.as_str()), "umount", &[&path]).await?;
        }
        let _ = std::fs::remove_dir(&path);
        Ok(())
    }

    async fn snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        let mut meta = self.load(volume)?;
        if meta.snapshot(snapshot).is_some() {
            return Err(StorageError::BadStream {
                volume: volume.to_string(),
                reason: format!("snapshot {snapshot} already exists"),
            });
        }
        let paths = self.paths(volume);
        let taken_ns = stream::to_ns(std::time::SystemTime::now());
        let (live, target) = (paths.live.clone(), paths.snapshot(snapshot.as_str()));
        let partial = paths
            .hidden
            .join("snapshots")
            .join(format!(".taking-{snapshot}"));
        blocking(volume, "copy the snapshot", move || {
            tree::delete(&partial)?;
            tree::copy_tree(&live, &partial)?;
            std::fs::rename(&partial, &target)
        })
        .await?;
        meta.snapshots.push(SnapshotMeta::new(snapshot, taken_ns));
        self.save(volume, &meta)
    }

    async fn snapshots(&self, volume: &VolumeName) -> Result<Vec<Snapshot>> {
        let meta = self.load(volume)?;
        Ok(meta
            .snapshots
            .iter()
            .filter_map(|s| {
                Some(Snapshot {
                    name: SnapshotName::new(&s.name).ok()?,
                    guid: s.guid(),
                })
            })
            .collect())
    }

    async fn destroy_snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        let mut meta = self.load(volume)?;
        Self::require_snapshot(&meta, volume, snapshot)?;
        meta.snapshots.retain(|s| s.name != snapshot.as_str());
        self.save(volume, &meta)?;
        let copy = self.paths(volume).snapshot(snapshot.as_str());
        blocking(volume, "remove the snapshot", move || tree::delete(&copy)).await
    }

    async fn send(
        &self,
        volume: &VolumeName,
        from: Option<&SnapshotName>,
        to: &SnapshotName,
    ) -> Result<ByteStream> {
        let meta = self.load(volume)?;
        let to_meta = Self::require_snapshot(&meta, volume, to)?;
        let from_meta = from
            .map(|f| Self::require_snapshot(&meta, volume, f))
            .transpose()?;
        transfer::send(volume, &self.paths(volume), from_meta, to_meta).await
    }

    async fn receive<R>(&self, volume: &VolumeName, slot: Slot, stream: R) -> Result<()>
    where
        R: AsyncRead + Send + Unpin,
    {
        transfer::receive(&self.slot(slot), volume, stream).await
    }

    async fn staged_snapshots(&self, volume: &VolumeName) -> Result<Vec<Snapshot>> {
        match self.staging().snapshots(volume).await {
            Err(StorageError::NoSuchVolume { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    async fn commit_staged(&self, volume: &VolumeName) -> Result<()> {
        let staged = self.staging();
        staged.load(volume)?;
        if self.load(volume).is_ok() {
            self.destroy(volume).await?;
        }
        let (from, to) = (staged.paths(volume), self.paths(volume));
        blocking(volume, "swap the staged copy in", move || {
            std::fs::create_dir_all(to.hidden.parent().expect("under the root"))?;
            std::fs::rename(&from.live, &to.live)?;
            std::fs::rename(&from.hidden, &to.hidden)
        })
        .await
    }

    async fn discard_staged(&self, volume: &VolumeName) -> Result<()> {
        let paths = self.staging().paths(volume);
        blocking(volume, "remove the staged copy", move || {
            tree::delete(&paths.hidden)?;
            tree::delete(&paths.live)
        })
        .await
    }

    async fn used(&self, volume: &VolumeName) -> Result<u64> {
        self.load(volume)?;
        let paths = self.paths(volume);
        blocking(volume, "measure the volume", move || {
            Ok(tree::disk_usage(&paths.live)? + tree::disk_usage(&paths.hidden)?)
        })
        .await
    }
}
