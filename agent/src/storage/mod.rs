//! Storage backends for portable volumes, behind one trait.
//!
//! - [`name`]: the typed validators [`VolumeName`] and [`SnapshotName`]; every call takes
//!   these, so a bad name is refused before any side effect.
//! - [`error`]: [`StorageError`], naming the volume and the command that failed.
//! - [`process`]: running external commands (`zfs`, `mount`) and turning a child's stdout
//!   into a [`ByteStream`] that fails if the command fails.
//! - [`zfs`]: [`ZfsStorage`], a dataset per volume through the `zfs` CLI, with feature
//!   detection so it works with kernel OpenZFS and with zfs-fuse (pool version 23).
//! - [`dir`]: [`DirStorage`], the same with plain directories for hosts without ZFS.
//! - [`backend`]: [`Backend`], either of the two chosen at run time from a [`StorageSpec`]
//!   (`zfs:POOL` or `dir:PATH`, the agent's `--storage` flag).

pub mod backend;
pub mod dir;
pub mod error;
pub mod name;
pub mod process;
pub mod zfs;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::AsyncRead;

pub use backend::{Backend, StorageSpec, Store};
pub use dir::DirStorage;
pub use error::{Result, StorageError};
pub use name::{NameError, SnapshotName, VolumeName};

pub use zfs::{ZfsFeatures, ZfsStorage};

/// A stream of bytes produced by [`Storage::send`] and consumed by [`Storage::receive`];
/// boxed so it can be handed to a network transfer as it is.
pub type ByteStream = Pin<Box<dyn AsyncRead + Send>>;

/// How a volume is mounted: read-write by its owner, read-only on a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner's mount.
    ReadWrite,
    /// A replica's mount: readable, every write refused.
    ReadOnly,
}

/// One snapshot of a volume: its name and its GUID, which identifies the same snapshot on
/// every host that received it (ZFS keeps its own across `send`/`receive`; the directory
/// backend makes one and carries it in its stream). Two snapshots with the same name and
/// different GUIDs are different snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its name.
    pub name: SnapshotName,
    /// Its GUID.
    pub guid: u64,
}

/// Where [`Storage::receive`] puts a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The volume itself (an increment onto a replica).
    Volume,
    /// A staging copy beside it, made by a full stream and then extended by increments, that
    /// [`Storage::commit_staged`] swaps in once complete; the volume is untouched until then.
    Staging,
}

/// Options for [`Storage::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The most bytes the volume may hold, if limited.
    pub quota: Option<u64>,
}

/// What a backend can do beyond the common contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether [`CreateOptions::quota`] is enforced on writes (ZFS: yes; directories: no,
    /// the limit is only recorded).
    pub enforces_quota: bool,
    /// Whether an interrupted receive can be resumed (ZFS resume tokens; not in zfs-fuse).
    pub resumable_receive: bool,
}

/// A storage backend: volumes with snapshots that can be streamed to another host.
///
/// Snapshots are listed oldest first. `send` with `from = None` makes a full stream; with a
/// base snapshot it carries only what changed since then, and the receiver must hold that
/// base. A volume created by `receive` is a replica: it is not mounted until [`Storage::mount`]
/// is called, normally with [`Access::ReadOnly`]. A receiver's live data is expected to be
/// unchanged since its newest snapshot (replicas are read-only): ZFS discards such changes
/// (`zfs receive -F`), the directory backend applies only the stream's changes over them.
pub trait Storage: Send + Sync {
    /// What this backend can do beyond the common contract.
    fn capabilities(&self) -> Capabilities;

    /// Where [`Storage::mount`] puts `volume`: `<volume-root>/<name>`.
    fn mount_path(&self, volume: &VolumeName) -> PathBuf;

    /// Makes an empty, unmounted volume.
    fn create(
        &self,
        volume: &VolumeName,
        options: &CreateOptions,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes a volume with all its snapshots (unmounting it first).
    fn destroy(&self, volume: &VolumeName) -> impl Future<Output = Result<()>> + Send;

    /// The volumes on this host, sorted by name.
    fn volumes(&self) -> impl Future<Output = Result<Vec<VolumeName>>> + Send;

    /// Mounts `volume` at [`Storage::mount_path`] (or changes the access of an existing
    /// mount) and returns that path.
    fn mount(
        &self,
        volume: &VolumeName,
        access: Access,
    ) -> impl Future<Output = Result<PathBuf>> + Send;

    /// Unmounts `volume`; unmounting a volume that is not mounted is not an error.
    fn unmount(&self, volume: &VolumeName) -> impl Future<Output = Result<()>> + Send;

    /// Takes a snapshot of the volume's current contents.
    fn snapshot(
        &self,
        volume: &VolumeName,
        snapshot: &SnapshotName,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The volume's snapshots, oldest first.
    fn snapshots(&self, volume: &VolumeName) -> impl Future<Output = Result<Vec<Snapshot>>> + Send;

    /// Destroys one snapshot.
    fn destroy_snapshot(
        &self,
        volume: &VolumeName,
        snapshot: &SnapshotName,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A stream of snapshot `to`, in full or as the increment since `from`. The stream
    /// ends with an error if producing it fails part way.
    fn send(
        &self,
        volume: &VolumeName,
        from: Option<&SnapshotName>,
        to: &SnapshotName,
    ) -> impl Future<Output = Result<ByteStream>> + Send;

    /// Applies a stream made by [`Storage::send`] of the same backend kind to `slot`. A
    /// truncated or failed stream leaves the slot as it was. A full stream needs a slot that
    /// does not exist yet (the staging slot: see [`Storage::discard_staged`]).
    fn receive<R>(
        &self,
        volume: &VolumeName,
        slot: Slot,
        stream: R,
    ) -> impl Future<Output = Result<()>> + Send
    where
        R: AsyncRead + Send + Unpin;

    /// The staging copy's snapshots, oldest first (empty when there is none).
    fn staged_snapshots(
        &self,
        volume: &VolumeName,
    ) -> impl Future<Output = Result<Vec<Snapshot>>> + Send;

    /// Replaces the volume (if any: unmounted and destroyed with its snapshots) with the
    /// staging copy. The result is unmounted.
    fn commit_staged(&self, volume: &VolumeName) -> impl Future<Output = Result<()>> + Send;

    /// Removes the staging copy, if there is one.
    fn discard_staged(&self, volume: &VolumeName) -> impl Future<Output = Result<()>> + Send;

    /// Bytes the volume uses on this host (data and snapshots).
    fn used(&self, volume: &VolumeName) -> impl Future<Output = Result<u64>> + Send;

    /// Makes `clone`, a new unmounted volume with no snapshots whose contents are snapshot
    /// `snapshot` of `volume`: a ZFS clone (which keeps that snapshot busy: it cannot be
    /// destroyed while the clone exists), or a copy on the directory backend.
    fn clone_snapshot(
        &self,
        volume: &VolumeName,
        snapshot: &SnapshotName,
        clone: &VolumeName,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Moves the volume (unmounted first), with its snapshots, out of the way under a name
    /// no volume can take, `<name>:<label>` (`<name>:<label>.2`, `.3`... if that is taken:
    /// nothing set aside is ever replaced), and returns where it is: kept for the operator,
    /// never mounted or listed as a volume again. For a former owner's copy that may hold
    /// writes no other copy has (`label` like `diverged-e3`).
    fn set_aside(
        &self,
        volume: &VolumeName,
        label: &str,
    ) -> impl Future<Output = Result<String>> + Send;
}

/// The names a copy set aside under `label` may take, in order: `label`, then `label.2`,
/// `label.3`, ... (the first one free is used).
pub fn set_aside_labels(label: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(label.to_owned()).chain((2u32..).map(move |n| format!("{label}.{n}")))
}

/// Creates `volume` unless it already exists. Two parts of the agent may create the same new
/// volume at once (the Docker side on first use, the reconciler when it sees the volume in
/// the watch stream): whichever loses the race finds the volume there and is content.
pub async fn create_if_absent<S: Storage>(
    storage: &S,
    volume: &VolumeName,
    options: &CreateOptions,
) -> Result<()> {
    if storage.volumes().await?.contains(volume) {
        return Ok(());
    }
    match storage.create(volume, options).await {
        Ok(()) => Ok(()),
        Err(error) => {
            if storage.volumes().await?.contains(volume) {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}
