//! What every storage backend must do, written once and run against each backend on real
//! storage: `tests/zfs.rs` (two zfs-fuse pools) and `tests/dir.rs` (two directory roots).

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use agent::storage::{
    Access, ByteStream, CreateOptions, Slot, Snapshot, SnapshotName, Storage, StorageError,
    VolumeName,
};
use testkit::{random, unique};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

pub const MIB: usize = 1024 * 1024;

pub fn volume() -> VolumeName {
    VolumeName::new(&unique("v")).unwrap()
}

pub fn snap(name: &str) -> SnapshotName {
    SnapshotName::new(name).unwrap()
}

pub async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .await
        .expect("the stream completes");
    bytes
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn assert_read_only(dir: &Path) {
    let err = std::fs::write(dir.join("intruder"), b"x").expect_err("a replica refuses writes");
    assert_eq!(err.raw_os_error(), Some(30), "EROFS expected, got {err}");
}

/// Full send and receive, then an increment that carries only what changed, into a
/// read-only replica; then the replica is promoted and the volumes destroyed.
pub async fn full_then_incremental<S: Storage>(src: &S, dst: &S) {
    let v = volume();
    src.create(&v, &CreateOptions::default()).await.unwrap();
    let live = src.mount(&v, Access::ReadWrite).await.unwrap();
    assert_eq!(live, src.mount_path(&v));
    let big = random(4 * MIB);
    write(&live.join("big"), &big);
    write(&live.join("file"), b"fish");
    write(&live.join("dir/gone"), b"doomed");
    src.snapshot(&v, &snap("s1")).await.unwrap();

    let full = collect(src.send(&v, None, &snap("s1")).await.unwrap()).await;
    assert!(
        full.len() > 4 * MIB,
        "a full stream of {} bytes",
        full.len()
    );
    dst.receive(&v, Slot::Staging, &full[..]).await.unwrap();
    assert!(
        !dst.volumes().await.unwrap().contains(&v),
        "staged, not swapped in"
    );
    dst.commit_staged(&v).await.unwrap();
    assert_eq!(names(dst.snapshots(&v).await.unwrap()), vec![snap("s1")]);
    assert_eq!(
        dst.snapshots(&v).await.unwrap()[0].guid,
        src.snapshots(&v).await.unwrap()[0].guid,
        "a received snapshot keeps its GUID"
    );
    let replica = dst.mount(&v, Access::ReadOnly).await.unwrap();
    assert_eq!(std::fs::read(replica.join("file")).unwrap(), b"fish");
    assert!(std::fs::read(replica.join("big")).unwrap() == big);
    assert!(replica.join("dir/gone").exists());
    assert_read_only(&replica);

    write(&live.join("file"), b"chips and fish");
    let new = random(64 * 1024);
    write(&live.join("new"), &new);
    std::fs::remove_file(live.join("dir/gone")).unwrap();
    src.snapshot(&v, &snap("s2")).await.unwrap();
    let increment = collect(src.send(&v, Some(&snap("s1")), &snap("s2")).await.unwrap()).await;
    assert!(
        increment.len() * 10 < full.len(),
        "the increment ({} bytes) should be far smaller than the full stream ({} bytes)",
        increment.len(),
        full.len()
    );
    eprintln!(
        "full stream {} bytes, increment {} bytes",
        full.len(),
        increment.len()
    );
    dst.receive(&v, Slot::Volume, &increment[..]).await.unwrap();
    assert_eq!(
        names(dst.snapshots(&v).await.unwrap()),
        vec![snap("s1"), snap("s2")]
    );
    assert_eq!(
        std::fs::read(replica.join("file")).unwrap(),
        b"chips and fish"
    );
    assert!(std::fs::read(replica.join("new")).unwrap() == new);
    assert!(std::fs::read(replica.join("big")).unwrap() == big);
    assert!(!replica.join("dir/gone").exists());
    assert_read_only(&replica);

    // The replica becomes the owner: the same path turns writable.
    assert_eq!(dst.mount(&v, Access::ReadWrite).await.unwrap(), replica);
    write(&replica.join("mine"), b"now");
    assert!(dst.used(&v).await.unwrap() >= 4 * MIB as u64);
    assert!(src.used(&v).await.unwrap() >= 4 * MIB as u64);

    dst.destroy_snapshot(&v, &snap("s1")).await.unwrap();
    assert_eq!(names(dst.snapshots(&v).await.unwrap()), vec![snap("s2")]);
    for storage in [src, dst] {
        assert!(storage.volumes().await.unwrap().contains(&v));
        storage.destroy(&v).await.unwrap();
        assert!(!storage.volumes().await.unwrap().contains(&v));
        assert!(!storage.mount_path(&v).join("file").exists());
    }
}

/// A reader that yields `data`, then fails: a sender or connection dying mid-stream.
struct FailsAfter<'a>(&'a [u8]);

impl AsyncRead for FailsAfter<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.0.is_empty() {
            return Poll::Ready(Err(std::io::Error::other("connection reset")));
        }
        let n = self.0.len().min(buf.remaining());
        buf.put_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Poll::Ready(Ok(()))
    }
}

/// Truncated and failing streams are refused and leave the receiver as it was.
pub async fn broken_streams_change_nothing<S: Storage>(src: &S, dst: &S) {
    let v = volume();
    src.create(&v, &CreateOptions::default()).await.unwrap();
    let live = src.mount(&v, Access::ReadWrite).await.unwrap();
    let first = random(MIB);
    write(&live.join("a"), &first);
    src.snapshot(&v, &snap("s1")).await.unwrap();
    let full = collect(src.send(&v, None, &snap("s1")).await.unwrap()).await;

    assert!(
        dst.receive(&v, Slot::Staging, &full[..full.len() / 2])
            .await
            .is_err()
    );
    assert!(
        !dst.volumes().await.unwrap().contains(&v),
        "half a volume was kept"
    );
    assert!(dst.staged_snapshots(&v).await.unwrap().is_empty());
    dst.discard_staged(&v).await.unwrap();
    dst.receive(&v, Slot::Staging, &full[..]).await.unwrap();
    dst.commit_staged(&v).await.unwrap();

    write(&live.join("b"), &random(256 * 1024));
    src.snapshot(&v, &snap("s2")).await.unwrap();
    let inc = collect(src.send(&v, Some(&snap("s1")), &snap("s2")).await.unwrap()).await;
    assert!(
        dst.receive(&v, Slot::Volume, &inc[..inc.len() / 2])
            .await
            .is_err()
    );
    let err = dst
        .receive(&v, Slot::Volume, FailsAfter(&inc[..inc.len() / 2]))
        .await;
    assert!(
        matches!(err, Err(StorageError::BadStream { ref volume, .. }) if volume == v.as_str()),
        "{err:?}"
    );
    assert_eq!(names(dst.snapshots(&v).await.unwrap()), vec![snap("s1")]);
    let replica = dst.mount(&v, Access::ReadOnly).await.unwrap();
    assert!(std::fs::read(replica.join("a")).unwrap() == first);
    assert!(!replica.join("b").exists());

    dst.receive(&v, Slot::Volume, &inc[..]).await.unwrap();
    assert!(replica.join("b").exists());
    src.destroy(&v).await.unwrap();
    dst.destroy(&v).await.unwrap();
}

/// A stale copy with no snapshot in common with the sender (the volume's third host) is
/// replaced by a full stream staged beside it: a cut stream leaves the stale copy as it was,
/// a complete one swaps in with the sender's data and snapshots.
pub async fn a_stale_copy_is_replaced_only_when_the_new_one_is_complete<S: Storage>(
    src: &S,
    dst: &S,
) {
    let v = volume();
    for (storage, data) in [(src, b"new".as_slice()), (dst, b"stale".as_slice())] {
        storage.create(&v, &CreateOptions::default()).await.unwrap();
        let live = storage.mount(&v, Access::ReadWrite).await.unwrap();
        write(&live.join("file"), data);
    }
    src.snapshot(&v, &snap("m2-final")).await.unwrap();
    dst.snapshot(&v, &snap("m1-final")).await.unwrap();
    dst.mount(&v, Access::ReadOnly).await.unwrap();
    let full = collect(src.send(&v, None, &snap("m2-final")).await.unwrap()).await;

    let cut = dst
        .receive(&v, Slot::Staging, FailsAfter(&full[..full.len() / 2]))
        .await;
    assert!(cut.is_err());
    dst.discard_staged(&v).await.unwrap();
    assert_eq!(
        names(dst.snapshots(&v).await.unwrap()),
        vec![snap("m1-final")]
    );
    let path = dst.mount_path(&v);
    assert_eq!(std::fs::read(path.join("file")).unwrap(), b"stale");

    dst.receive(&v, Slot::Staging, &full[..]).await.unwrap();
    assert_eq!(
        std::fs::read(path.join("file")).unwrap(),
        b"stale",
        "not swapped yet"
    );
    dst.commit_staged(&v).await.unwrap();
    assert_eq!(
        names(dst.snapshots(&v).await.unwrap()),
        vec![snap("m2-final")]
    );
    let replica = dst.mount(&v, Access::ReadOnly).await.unwrap();
    assert_eq!(std::fs::read(replica.join("file")).unwrap(), b"new");
    assert!(dst.staged_snapshots(&v).await.unwrap().is_empty());
    src.destroy(&v).await.unwrap();
    dst.destroy(&v).await.unwrap();
}

/// A former owner's copy set aside keeps its data and snapshots under the returned name, is
/// no longer a volume (not listed, not mounted), and a full stream then makes a fresh copy
/// of the volume beside it.
pub async fn a_diverged_copy_is_set_aside_and_kept<S: Storage>(src: &S, dst: &S) {
    let v = volume();
    src.create(&v, &CreateOptions::default()).await.unwrap();
    let live = src.mount(&v, Access::ReadWrite).await.unwrap();
    write(&live.join("file"), b"promoted data");
    src.snapshot(&v, &snap("rep-1")).await.unwrap();
    dst.create(&v, &CreateOptions::default()).await.unwrap();
    let old = dst.mount(&v, Access::ReadWrite).await.unwrap();
    write(&old.join("file"), b"written after the last replica");
    dst.snapshot(&v, &snap("rep-0")).await.unwrap();

    let kept = dst.set_aside(&v, "diverged-e1").await.unwrap();
    assert!(kept.contains(&format!("{v}:diverged-e1")), "{kept}");
    assert!(
        !dst.volumes().await.unwrap().contains(&v),
        "no longer a volume"
    );
    assert!(!old.join("file").exists(), "no longer mounted");
    assert!(
        dst.set_aside(&v, "diverged-e1").await.is_err(),
        "nothing left to set aside"
    );

    let full = collect(src.send(&v, None, &snap("rep-1")).await.unwrap()).await;
    dst.receive(&v, Slot::Staging, &full[..]).await.unwrap();
    dst.commit_staged(&v).await.unwrap();
    let replica = dst.mount(&v, Access::ReadOnly).await.unwrap();
    assert_eq!(
        std::fs::read(replica.join("file")).unwrap(),
        b"promoted data"
    );
    assert_eq!(names(dst.snapshots(&v).await.unwrap()), vec![snap("rep-1")]);

    // Set aside again under the same label (a retry after a lost record): the first copy
    // set aside is never replaced.
    let again = dst.set_aside(&v, "diverged-e1").await.unwrap();
    assert!(again.ends_with(&format!("{v}:diverged-e1.2")), "{again}");
    assert!(!dst.volumes().await.unwrap().contains(&v));
    src.destroy(&v).await.unwrap();
}

/// The names of `snapshots`, in order.
fn names(snapshots: Vec<Snapshot>) -> Vec<SnapshotName> {
    snapshots.into_iter().map(|s| s.name).collect()
}

/// Errors name the volume and say what is missing.
pub async fn errors_name_the_volume<S: Storage>(storage: &S) {
    let v = volume();
    let err = storage.mount(&v, Access::ReadWrite).await.unwrap_err();
    assert!(matches!(err, StorageError::NoSuchVolume { ref volume } if volume == v.as_str()));
    assert!(err.to_string().contains(v.as_str()), "{err}");
    storage.create(&v, &CreateOptions::default()).await.unwrap();
    let err = storage
        .create(&v, &CreateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::VolumeExists { .. }), "{err}");
    let err = match storage.send(&v, None, &snap("nope")).await {
        Err(err) => err,
        Ok(_) => panic!("a stream of a missing snapshot"),
    };
    assert!(matches!(err, StorageError::NoSuchSnapshot { .. }), "{err}");
    assert!(err.to_string().contains("nope") && err.to_string().contains(v.as_str()));
    storage.destroy(&v).await.unwrap();
}

/// Bad names never become a `VolumeName`, so no backend call can be made with one; what
/// the backend holds (`listing`) is unchanged.
pub async fn bad_names_are_refused<S: Storage>(storage: &S, listing: impl Fn() -> String) {
    let before = (storage.volumes().await.unwrap(), listing());
    let long = "a".repeat(64);
    for bad in [
        "../etc",
        "/flocker/../etc",
        "",
        long.as_str(),
        "Upper",
        "a/b",
        ".hidden",
    ] {
        let err = StorageError::from(VolumeName::new(bad).unwrap_err());
        assert!(matches!(err, StorageError::InvalidName { .. }), "{bad:?}");
        assert!(err.to_string().contains("invalid volume name"), "{err}");
        assert!(SnapshotName::new(bad).is_err(), "{bad:?}");
    }
    assert_eq!((storage.volumes().await.unwrap(), listing()), before);
}

/// A clone of a snapshot is a volume of its own: it holds the snapshot's contents (not what
/// was written after it), has no snapshots, mounts read-write without touching the origin,
/// can be snapshotted and sent in full to another host (a move) and destroyed. A clone over
/// an existing volume, or of a missing snapshot, is refused. `keeps_origin_busy`: the backend
/// refuses to destroy the origin snapshot while the clone exists (ZFS); the directory backend
/// copies, so the snapshot may go.
pub async fn a_clone_holds_its_snapshot_and_is_a_volume_of_its_own<S: Storage>(
    src: &S,
    dst: &S,
    keeps_origin_busy: bool,
) {
    let v = volume();
    src.create(&v, &CreateOptions::default()).await.unwrap();
    let live = src.mount(&v, Access::ReadWrite).await.unwrap();
    let big = random(MIB);
    write(&live.join("big"), &big);
    write(&live.join("dir/note"), b"before");
    src.snapshot(&v, &snap("u-before")).await.unwrap();
    write(&live.join("dir/note"), b"after");
    write(&live.join("later"), b"x");

    let c = volume();
    src.clone_snapshot(&v, &snap("u-before"), &c).await.unwrap();
    assert!(src.volumes().await.unwrap().contains(&c));
    assert!(src.snapshots(&c).await.unwrap().is_empty());
    let cl = src.mount(&c, Access::ReadWrite).await.unwrap();
    assert_eq!(std::fs::read(cl.join("big")).unwrap(), big);
    assert_eq!(std::fs::read(cl.join("dir/note")).unwrap(), b"before");
    assert!(!cl.join("later").exists(), "written after the snapshot");
    write(&cl.join("dir/note"), b"changed in the clone");
    assert_eq!(std::fs::read(live.join("dir/note")).unwrap(), b"after");

    // Refused: the name is taken, the snapshot is missing.
    let err = src
        .clone_snapshot(&v, &snap("u-before"), &c)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::VolumeExists { .. }), "{err}");
    let other = volume();
    let err = src
        .clone_snapshot(&v, &snap("nope"), &other)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NoSuchSnapshot { .. }), "{err}");
    assert!(!src.volumes().await.unwrap().contains(&other));

    // The origin snapshot while the clone exists.
    let destroyed = src.destroy_snapshot(&v, &snap("u-before")).await;
    assert_eq!(destroyed.is_err(), keeps_origin_busy, "{destroyed:?}");
    if let Err(err) = destroyed {
        assert!(err.to_string().contains("dependent clones"), "{err}");
        assert!(names(src.snapshots(&v).await.unwrap()).contains(&snap("u-before")));
    }

    // Moved: a full stream of the clone's own snapshot.
    src.snapshot(&c, &snap("m1-r1")).await.unwrap();
    let stream = src.send(&c, None, &snap("m1-r1")).await.unwrap();
    dst.receive(&c, Slot::Staging, stream).await.unwrap();
    dst.commit_staged(&c).await.unwrap();
    let there = dst.mount(&c, Access::ReadOnly).await.unwrap();
    assert_eq!(std::fs::read(there.join("big")).unwrap(), big);
    assert_eq!(
        std::fs::read(there.join("dir/note")).unwrap(),
        b"changed in the clone"
    );
    dst.destroy(&c).await.unwrap();

    // Deleted: the clone first, then the origin snapshot may go.
    src.destroy(&c).await.unwrap();
    assert!(!src.volumes().await.unwrap().contains(&c));
    if keeps_origin_busy {
        src.destroy_snapshot(&v, &snap("u-before")).await.unwrap();
    }
    src.destroy(&v).await.unwrap();
}
