//! Sending and receiving directory-backend streams (format in [`super::stream`]).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::stream::{self, Frame};
use super::tree::{self, Change, Kind, Meta};
use super::{DirStorage, SnapshotMeta, VolumeMeta, VolumePaths, blocking};
use crate::storage::process::Checked;
use crate::storage::{ByteStream, Result, SnapshotName, StorageError, VolumeName};

/// Bytes buffered between the task that writes a stream and its reader.
const PIPE_BUFFER: usize = 256 * 1024;

/// The stream of snapshot `to`, in full or as the changes since `from`. The list of changes
/// is made before this returns; the bytes are produced as the stream is read.
pub async fn send(
    volume: &VolumeName,
    paths: &VolumePaths,
    from: Option<SnapshotMeta>,
    to: SnapshotMeta,
) -> Result<ByteStream> {
    let base = from.as_ref().map(|f| paths.snapshot(&f.name));
    let base_taken = from.as_ref().map(|f| stream::from_ns(f.taken_ns));
    let to_dir = paths.snapshot(&to.name);
    let dir = to_dir.clone();
    let changes = blocking(volume, "compare snapshots", move || {
        tree::diff(base.as_deref(), base_taken, &dir)
    })
    .await?;
    let header = Frame::Header {
        from: from.map(|f| f.name),
        to: to.name.clone(),
        taken_ns: to.taken_ns,
        guid: to.guid(),
    };
    let (reader, mut writer) = tokio::io::duplex(PIPE_BUFFER);
    let (tx, rx) = oneshot::channel();
    let what = format!("volume {volume}: sending snapshot {}", to.name);
    tokio::spawn(async move {
        let outcome = write_stream(&mut writer, &header, &changes, &to_dir).await;
        let _ = tx.send(outcome.map_err(|e| format!("{what} failed: {e}")));
    });
    Ok(Box::pin(Checked::new(reader, rx)))
}

/// Writes the whole stream: magic, header, one frame per change (file bytes after their
/// frame), end marker.
async fn write_stream<W: AsyncWrite + Unpin>(
    out: &mut W,
    header: &Frame,
    changes: &[Change],
    to_dir: &Path,
) -> std::io::Result<()> {
    out.write_all(stream::MAGIC).await?;
    stream::write_frame(out, header).await?;
    for change in changes {
        match change {
            Change::Delete(rel) => {
                let path = rel.as_os_str().as_encoded_bytes().to_vec();
                stream::write_frame(out, &Frame::Delete { path }).await?;
            }
            Change::Write(rel, meta) => write_entry(out, to_dir, rel, meta).await?,
        }
    }
    stream::write_frame(out, &Frame::End).await?;
    out.shutdown().await
}

/// One entry frame, followed by the file's bytes for a file.
async fn write_entry<W: AsyncWrite + Unpin>(
    out: &mut W,
    to_dir: &Path,
    rel: &Path,
    meta: &Meta,
) -> std::io::Result<()> {
    let path = to_dir.join(rel);
    let target = match meta.kind {
        Kind::Symlink => Some(tokio::fs::read_link(&path).await?),
        _ => None,
    };
    stream::write_frame(out, &stream::entry(rel, meta, target)).await?;
    if meta.kind == Kind::File {
        let file = tokio::fs::File::open(&path).await?;
        let sent = tokio::io::copy(&mut file.take(meta.size), out).await?;
        if sent != meta.size {
            return Err(std::io::Error::other(format!(
                "{} changed size while being sent",
                rel.display()
            )));
        }
    }
    Ok(())
}

/// Receives a stream into `volume`: staged in `incoming/`, renamed into place as the new
/// snapshot once complete, then the same changes are applied to the live directory.
pub async fn receive<R>(storage: &DirStorage, volume: &VolumeName, mut input: R) -> Result<()>
where
    R: AsyncRead + Send + Unpin,
{
    let bad = |reason: String| StorageError::BadStream {
        volume: volume.to_string(),
        reason,
    };
    stream::read_magic(&mut input).await.map_err(bad)?;
    let Frame::Header {
        from,
        to,
        taken_ns,
        guid,
    } = stream::read_frame(&mut input).await.map_err(bad)?
    else {
        return Err(bad("the stream does not start with a header".into()));
    };
    let to = SnapshotName::new(&to)?;
    let from = from.map(|f| SnapshotName::new(&f)).transpose()?;
    let existing = match storage.load(volume) {
        Ok(meta) => Some(meta),
        Err(StorageError::NoSuchVolume { .. }) => None,
        Err(e) => return Err(e),
    };
    check_fits(volume, from.as_ref(), &to, existing.as_ref())?;

    let paths = storage.paths(volume);
    let (staging, base) = (
        paths.incoming(),
        from.as_ref().map(|f| paths.snapshot(f.as_str())),
    );
    let stage = staging.clone();
    blocking(volume, "prepare the staging copy", move || {
        tree::delete(&stage)?;
        std::fs::create_dir_all(stage.parent().expect("under hidden"))?;
        match base {
            Some(base) => tree::copy_tree(&base, &stage),
            None => std::fs::create_dir(&stage),
        }
    })
    .await?;
    let changes = match apply_frames(&mut input, &staging).await {
        Ok(changes) => changes,
        Err(reason) => {
            // A failed first receive leaves nothing; a failed increment leaves the volume.
            let leftover = match existing {
                None => paths.hidden.clone(),
                Some(_) => staging.clone(),
            };
            let _ = blocking(volume, "remove the staging copy", move || {
                tree::delete(&leftover)
            })
            .await;
            return Err(bad(reason));
        }
    };
    let snapshot_dir = paths.snapshot(to.as_str());
    let live = paths.live.clone();
    let is_new = existing.is_none();
    blocking(volume, "put the received snapshot in place", move || {
        std::fs::create_dir_all(snapshot_dir.parent().expect("under snapshots/"))?;
        std::fs::rename(&staging, &snapshot_dir)?;
        if is_new {
            std::fs::create_dir_all(live.parent().expect("under the root"))?;
            tree::copy_tree(&snapshot_dir, &live)
        } else {
            tree::apply_local(&snapshot_dir, &live, &changes)
        }
    })
    .await?;
    let mut meta = existing.unwrap_or_default();
    meta.snapshots.push(SnapshotMeta {
        name: to.to_string(),
        taken_ns,
        guid,
    });
    storage.save(volume, &meta)
}

/// Whether a stream from `from` to `to` can be applied to what this host holds.
fn check_fits(
    volume: &VolumeName,
    from: Option<&SnapshotName>,
    to: &SnapshotName,
    existing: Option<&VolumeMeta>,
) -> Result<()> {
    let bad = |reason: String| StorageError::BadStream {
        volume: volume.to_string(),
        reason,
    };
    match (from, existing) {
        (None, Some(_)) => Err(bad(
            "a full stream needs a volume that does not exist here".into()
        )),
        (Some(from), None) => Err(bad(format!(
            "an increment from {from} needs the volume here, and it does not exist"
        ))),
        (Some(from), Some(meta)) if meta.snapshot(from).is_none() => {
            Err(StorageError::NoSuchSnapshot {
                volume: volume.to_string(),
                snapshot: from.to_string(),
            })
        }
        (_, Some(meta)) if meta.snapshot(to).is_some() => {
            Err(bad(format!("snapshot {to} is already here")))
        }
        _ => Ok(()),
    }
}

/// Applies frames up to the end marker to `root`; returns the changes made, in order.
async fn apply_frames<R: AsyncRead + Unpin>(
    input: &mut R,
    root: &Path,
) -> std::result::Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    let mut written: Vec<(PathBuf, Meta)> = Vec::new();
    loop {
        let frame = stream::read_frame(input).await?;
        match &frame {
            Frame::End => break,
            Frame::Header { .. } => return Err("a second header inside the stream".into()),
            Frame::Delete { path } => {
                let rel = safe(stream::path_of(path))?;
                tree::delete(&root.join(&rel))
                    .map_err(|e| format!("delete {}: {e}", rel.display()))?;
                changes.push(Change::Delete(rel));
            }
            Frame::Entry { target, .. } => {
                let (rel, meta) = stream::meta_of(&frame).ok_or("an entry of unknown kind")?;
                let rel = safe(rel)?;
                let target = target.as_deref().map(stream::path_of);
                write_received(input, root, &rel, &meta, target)
                    .await
                    .map_err(|e| format!("write {}: {e}", rel.display()))?;
                written.push((rel.clone(), meta.clone()));
                changes.push(Change::Write(rel, meta));
            }
        }
    }
    tree::finish_dirs(root, &written).map_err(|e| format!("set directory times: {e}"))?;
    Ok(changes)
}

/// `rel` if it stays inside the volume, else the reason it is refused.
fn safe(rel: PathBuf) -> std::result::Result<PathBuf, String> {
    if tree::is_safe_relative(&rel) {
        Ok(rel)
    } else {
        Err(format!("the path {:?} leaves the volume", rel.display()))
    }
}

/// Makes one received entry under `root`, reading a file's bytes from `input`.
async fn write_received<R: AsyncRead + Unpin>(
    input: &mut R,
    root: &Path,
    rel: &Path,
    meta: &Meta,
    target: Option<PathBuf>,
) -> std::io::Result<()> {
    let path = root.join(rel);
    match meta.kind {
        Kind::Dir => {
            if !tokio::fs::symlink_metadata(&path)
                .await
                .is_ok_and(|m| m.is_dir())
            {
                tree::delete(&path)?;
                tokio::fs::create_dir(&path).await?;
            }
            return Ok(());
        }
        Kind::File => {
            tree::delete(&path)?;
            let mut file = tokio::fs::File::create(&path).await?;
            let got = tokio::io::copy(&mut (&mut *input).take(meta.size), &mut file).await?;
            if got != meta.size {
                return Err(std::io::Error::other("the stream ended inside a file"));
            }
            file.sync_all().await?;
        }
        Kind::Symlink => {
            let target =
                target.ok_or_else(|| std::io::Error::other("a symlink without a target"))?;
            tree::delete(&path)?;
            tokio::fs::symlink(target, &path).await?;
        }
    }
    tree::set_meta(&path, meta)
}
