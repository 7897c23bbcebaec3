//! Choosing a backend at run time: the agent's `--storage zfs:POOL | dir:PATH` flag parsed
//! into a [`StorageSpec`] and opened as a [`Backend`], which is a [`Storage`] itself.

use std::path::PathBuf;
use std::str::FromStr;

use tokio::io::AsyncRead;
use tracing::Instrument;

use crate::fencing::SelfFence;
use crate::locks::{VolumeGuard, VolumeLocks};

use super::{
    Access, ByteStream, Capabilities, CreateOptions, DirStorage, Result, Slot, Snapshot,
    SnapshotName, Storage, StorageError, VolumeName, ZfsStorage,
};

/// Which backend to use and where, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSpec {
    /// `zfs:POOL` or `zfs:POOL/PATH`: datasets under that parent dataset.
    Zfs(String),
    /// `dir:PATH`: directories under that absolute path.
    Dir(PathBuf),
}

impl FromStr for StorageSpec {
    type Err = StorageError;

    fn from_str(spec: &str) -> Result<Self> {
        let invalid = |reason: &'static str| StorageError::InvalidSpec {
            spec: spec.to_owned(),
            reason,
        };
        match spec.split_once(':') {
            Some(("zfs", parent)) => {
                let ok = !parent.is_empty()
                    && parent.split('/').all(|part| {
                        !part.is_empty()
                            && part
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
                    });
                if ok {
                    Ok(Self::Zfs(parent.to_owned()))
                } else {
                    Err(invalid("expected zfs:POOL or zfs:POOL/PATH"))
                }
            }
            Some(("dir", path)) if path.starts_with('/') => Ok(Self::Dir(path.into())),
            Some(("dir", _)) => Err(invalid("dir: needs an absolute path")),
            _ => Err(invalid("expected zfs:POOL or dir:PATH")),
        }
    }
}

/// One of the backends, chosen at run time.
#[derive(Debug, Clone)]
pub enum Store {
    /// The ZFS backend.
    Zfs(ZfsStorage),
    /// The directory backend.
    Dir(DirStorage),
}

/// The agent's storage: the backend chosen at run time, with each change to a volume's
/// dataset or mount taken under the agent's [`VolumeLocks::dataset`] lock.
#[derive(Debug, Clone)]
pub struct Backend {
    store: Store,
    locks: VolumeLocks,
    /// While it is closed, read-write mounts are refused ([`crate::fencing`]).
    fence: Option<SelfFence>,
}

impl Backend {
    /// Opens the backend `spec` names, mounting volumes under `volume_root`, serialising
    /// changes to one volume with `locks`.
    pub async fn open(
        spec: &StorageSpec,
        volume_root: impl Into<PathBuf>,
        locks: VolumeLocks,
    ) -> Result<Self> {
        let store = match spec {
            StorageSpec::Zfs(parent) => Store::Zfs(ZfsStorage::open(parent, volume_root).await?),
            StorageSpec::Dir(root) => Store::Dir(DirStorage::new(root, volume_root)),
        };
        Ok(Self {
            store,
            locks,
            fence: None,
        })
    }

    /// A backend over `store`, serialising changes to one volume with `locks`.
    pub fn from_store(store: Store, locks: VolumeLocks) -> Self {
        Self {
            store,
            locks,
            fence: None,
        }
    }

    /// This backend, refusing read-write mounts while `fence` is closed.
    pub fn with_fence(self, fence: SelfFence) -> Self {
        Self {
            fence: Some(fence),
            ..self
        }
    }

    /// Which backend this is.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Holds `volume`'s dataset lock (level 3 of [`VolumeLocks`]) until the guard drops.
    async fn exclusive(&self, volume: &VolumeName) -> VolumeGuard {
        self.locks.dataset(volume.as_str()).await
    }
}

/// Calls the same method on whichever backend this is.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.store {
            Store::Zfs($s) => $call,
            Store::Dir($s) => $call,
        }
    };
}

impl Storage for Backend {
    fn capabilities(&self) -> Capabilities {
        delegate!(self, s => s.capabilities())
    }

    fn mount_path(&self, volume: &VolumeName) -> PathBuf {
        delegate!(self, s => s.mount_path(volume))
    }

    async fn create(&self, volume: &VolumeName, options: &CreateOptions) -> Result<()> {
        let _one_at_a_time = self.exclusive(volume).await;
        delegate!(self, s => s.create(volume, options).await)
    }

    async fn destroy(&self, volume: &VolumeName) -> Result<()> {
        let _one_at_a_time = self.exclusive(volume).await;
        delegate!(self, s => s.destroy(volume).await)
    }

    async fn volumes(&self) -> Result<Vec<VolumeName>> {
        delegate!(self, s => s.volumes().await)
    }

    async fn mount(&self, volume: &VolumeName, access: Access) -> Result<PathBuf> {
        let span = tracing::info_span!("storage.mount", volume.name = %volume, access = ?access);
        async {
            let _one_at_a_time = self.exclusive(volume).await;
            // Checked under the volume's lock: the fence closes by mounting read-only under
            // the same lock, so no read-write mount slips in after it.
            if access == Access::ReadWrite && self.fence.as_ref().is_some_and(SelfFence::is_fenced)
            {
                return Err(StorageError::Fenced {
                    volume: volume.to_string(),
                });
            }
            delegate!(self, s => s.mount(volume, access).await)
        }
        .instrument(span)
        .await
    }

    async fn unmount(&self, volume: &VolumeName) -> Result<()> {
        let span = tracing::info_span!("storage.unmount", volume.name = %volume);
        async {
            let _one_at_a_time = self.exclusive(volume).await;
            delegate!(self, s => s.unmount(volume).await)
        }
        .instrument(span)
        .await
    }

    async fn snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        let span =
            tracing::info_span!("storage.snapshot", volume.name = %volume, snapshot = %snapshot);
        async { delegate!(self, s => s.snapshot(volume, snapshot).await) }
            .instrument(span)
            .await
    }

    async fn snapshots(&self, volume: &VolumeName) -> Result<Vec<Snapshot>> {
        delegate!(self, s => s.snapshots(volume).await)
    }

    async fn destroy_snapshot(&self, volume: &VolumeName, snapshot: &SnapshotName) -> Result<()> {
        delegate!(self, s => s.destroy_snapshot(volume, snapshot).await)
    }

    async fn send(
        &self,
        volume: &VolumeName,
        from: Option<&SnapshotName>,
        to: &SnapshotName,
    ) -> Result<ByteStream> {
        delegate!(self, s => s.send(volume, from, to).await)
    }

    async fn receive<R>(&self, volume: &VolumeName, slot: Slot, stream: R) -> Result<()>
    where
        R: AsyncRead + Send + Unpin,
    {
        // `zfs recv` (or the directory backend's unpacking) of one part, to its end.
        let span = tracing::info_span!("storage.receive", volume.name = %volume, slot = ?slot);
        async {
            let _one_at_a_time = self.exclusive(volume).await;
            delegate!(self, s => s.receive(volume, slot, stream).await)
        }
        .instrument(span)
        .await
    }

    async fn staged_snapshots(&self, volume: &VolumeName) -> Result<Vec<Snapshot>> {
        delegate!(self, s => s.staged_snapshots(volume).await)
    }

    async fn commit_staged(&self, volume: &VolumeName) -> Result<()> {
        let _one_at_a_time = self.exclusive(volume).await;
        delegate!(self, s => s.commit_staged(volume).await)
    }

    async fn discard_staged(&self, volume: &VolumeName) -> Result<()> {
        let _one_at_a_time = self.exclusive(volume).await;
        delegate!(self, s => s.discard_staged(volume).await)
    }

    async fn used(&self, volume: &VolumeName) -> Result<u64> {
        delegate!(self, s => s.used(volume).await)
    }

    async fn clone_snapshot(
        &self,
        volume: &VolumeName,
        snapshot: &SnapshotName,
        clone: &VolumeName,
    ) -> Result<()> {
        let span = tracing::info_span!("storage.clone", volume.name = %volume, snapshot = %snapshot, clone = %clone);
        async {
            let _one_at_a_time = self.exclusive(clone).await;
            delegate!(self, s => s.clone_snapshot(volume, snapshot, clone).await)
        }
        .instrument(span)
        .await
    }

    async fn set_aside(&self, volume: &VolumeName, label: &str) -> Result<String> {
        let _one_at_a_time = self.exclusive(volume).await;
        delegate!(self, s => s.set_aside(volume, label).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "zfs:lab1/flocker".parse::<StorageSpec>().unwrap(),
            StorageSpec::Zfs("lab1/flocker".into())
        );
        assert_eq!(
            "dir:/var/lib/flocker".parse::<StorageSpec>().unwrap(),
            StorageSpec::Dir("/var/lib/flocker".into())
        );
        for bad in [
            "", "zfs:", "zfs:a//b", "zfs:/a", "zfs:a b", "dir:rel", "btrfs:/x", "tank",
        ] {
            let err = bad.parse::<StorageSpec>().unwrap_err();
            assert!(matches!(err, StorageError::InvalidSpec { .. }), "{bad:?}");
        }
    }
}
