//! The directory backend's stream format: a magic line, then frames (a 4-byte big-endian
//! length and a JSON [`Frame`]); a file's bytes follow its frame. The stream ends with
//! [`Frame::End`], so a truncated stream is always detected.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tree::{Kind, Meta};

/// The first bytes of every stream (format version 1).
pub const MAGIC: &[u8] = b"flocker-dir-stream 1\n";

/// The largest frame header accepted; anything bigger is a corrupt stream.
pub const MAX_FRAME: u32 = 1024 * 1024;

/// One frame of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Frame {
    /// The first frame: which snapshots the stream goes from and to.
    Header {
        /// The base snapshot the receiver must hold, for an increment.
        from: Option<String>,
        /// The snapshot the receiver will hold afterwards.
        to: String,
        /// When `to` was taken (nanoseconds since the epoch).
        taken_ns: u64,
        /// `to`'s GUID, kept by the receiver (0 from senders before GUIDs: the receiver then
        /// derives it as the sender does).
        #[serde(default)]
        guid: u64,
    },
    /// Remove a path.
    Delete {
        /// Relative path, as bytes.
        path: Vec<u8>,
    },
    /// Make a directory, file (its `size` bytes follow) or symlink.
    Entry {
        /// Relative path, as bytes.
        path: Vec<u8>,
        /// `d`, `f` or `l`.
        kind: char,
        /// Bytes that follow (files only).
        size: u64,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Modification time, nanoseconds since the epoch.
        mtime_ns: u64,
        /// A symlink's target, as bytes.
        target: Option<Vec<u8>>,
    },
    /// The end of a complete stream.
    End,
}

/// Nanoseconds since the epoch (0 for earlier times).
pub fn to_ns(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The time `ns` nanoseconds after the epoch.
pub fn from_ns(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

/// The entry frame for `rel` described by `meta`.
pub fn entry(rel: &Path, meta: &Meta, target: Option<PathBuf>) -> Frame {
    Frame::Entry {
        path: rel.as_os_str().as_bytes().to_vec(),
        kind: match meta.kind {
            Kind::Dir => 'd',
            Kind::File => 'f',
            Kind::Symlink => 'l',
        },
        size: meta.size,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        mtime_ns: to_ns(meta.mtime),
        target: target.map(|t| t.into_os_string().into_vec()),
    }
}

/// The relative path and [`Meta`] an entry frame describes, or `None` for a bad kind.
pub fn meta_of(frame: &Frame) -> Option<(PathBuf, Meta)> {
    let Frame::Entry {
        path,
        kind,
        size,
        mode,
        uid,
        gid,
        mtime_ns,
        ..
    } = frame
    else {
        return None;
    };
    let kind = match kind {
        'd' => Kind::Dir,
        'f' => Kind::File,
        'l' => Kind::Symlink,
        _ => return None,
    };
    let meta = Meta {
        kind,
        size: *size,
        mode: *mode,
        uid: *uid,
        gid: *gid,
        mtime: from_ns(*mtime_ns),
    };
    Some((path_of(path), meta))
}

/// A path from the bytes a frame carries.
pub fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(out: &mut W, frame: &Frame) -> std::io::Result<()> {
    let json = serde_json::to_vec(frame)?;
    let len = u32::try_from(json.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes()).await?;
    out.write_all(&json).await
}

/// Reads one frame; `Err` with a reason on a short or malformed stream.
pub async fn read_frame<R: AsyncRead + Unpin>(input: &mut R) -> Result<Frame, String> {
    let len = input
        .read_u32()
        .await
        .map_err(|e| format!("the stream ended before its end marker ({e})"))?;
    if len > MAX_FRAME {
        return Err(format!(
            "a frame of {len} bytes is over the limit of {MAX_FRAME}"
        ));
    }
    let mut json = vec![0u8; len as usize];
    input
        .read_exact(&mut json)
        .await
        .map_err(|e| format!("the stream ended inside a frame ({e})"))?;
    serde_json::from_slice(&json).map_err(|e| format!("a frame is not valid: {e}"))
}

/// Reads and checks the magic line.
pub async fn read_magic<R: AsyncRead + Unpin>(input: &mut R) -> Result<(), String> {
    let mut magic = vec![0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .await
        .map_err(|e| format!("the stream is empty or short ({e})"))?;
    if magic != MAGIC {
        return Err("not a directory-backend stream (wrong magic)".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_truncation_is_an_error() {
        let frames = vec![
            Frame::Header {
                from: None,
                to: "s1".into(),
                taken_ns: 7,
                guid: 9,
            },
            Frame::Delete {
                path: b"a/\xffb".to_vec(),
            },
            Frame::End,
        ];
        let mut bytes = MAGIC.to_vec();
        for frame in &frames {
            write_frame(&mut bytes, frame).await.unwrap();
        }
        let mut input = &bytes[..];
        read_magic(&mut input).await.unwrap();
        for frame in &frames {
            assert_eq!(&read_frame(&mut input).await.unwrap(), frame);
        }
        let mut short = &bytes[..bytes.len() - 3];
        read_magic(&mut short).await.unwrap();
        read_frame(&mut short).await.unwrap();
        read_frame(&mut short).await.unwrap();
        assert!(read_frame(&mut short).await.is_err());
    }
}
