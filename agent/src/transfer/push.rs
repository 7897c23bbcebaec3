//! The source side of a move round: snapshot the volume (unmounting it first for the final
//! push), stream it to the target agent's `Receive` in chunks, and report progress.
//!
//! A transfer carries every snapshot this host holds after the base (all of them, the first
//! in full, when there is no base), one backend stream per part: so the target receives the
//! lineage the retention rule keeps (the snapshots replicas hold), and a later move to any
//! replica holder is incremental. A push that stops part way (the caller went away, the
//! target died) sends nothing more and leaves the source's volume as it was; the target
//! discards what it got of the unfinished part.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proto::agent::agent_client::AgentClient;
use proto::agent::{Chunk, ChunkHeader, PartHeader, Progress, PushRequest, chunk};
use proto::tls::TlsDir;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tracing::Instrument;

use super::TransferError;
use crate::storage::{Backend, Snapshot, SnapshotName, Storage, VolumeName};

/// How often a running push reports progress.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How long connecting to the target agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a push needs besides the request.
#[derive(Clone)]
pub struct PushContext {
    /// This agent's storage.
    pub storage: Arc<Backend>,
    /// This agent's node certificate (the client side of the stream).
    pub tls: TlsDir,
    /// Bytes per second at most, if limited (tests slow a push down with it).
    pub rate_limit: Option<u64>,
}

/// Runs one push, sending progress to `progress`; returns the bytes streamed.
pub async fn push(
    ctx: &PushContext,
    req: PushRequest,
    progress: mpsc::Sender<Progress>,
) -> Result<u64, TransferError> {
    let volume = VolumeName::new(&req.volume)?;
    let snapshot = SnapshotName::new(&req.snapshot)?;
    let base = match req.base_snapshot.as_str() {
        "" => None,
        b => Some(SnapshotName::new(b)?),
    };
    if req.r#final {
        ctx.storage.unmount(&volume).await?;
    }
    let held = ctx.storage.snapshots(&volume).await?;
    if !held.iter().any(|s| s.name == snapshot) {
        ctx.storage.snapshot(&volume, &snapshot).await?;
    }
    let held = ctx.storage.snapshots(&volume).await?;
    let parts = parts(&held, base.as_ref(), req.base_guid, &snapshot).ok_or_else(|| {
        TransferError::MissingBase {
            volume: req.volume.clone(),
            base: req.base_snapshot.clone(),
        }
    })?;
    let target_err = |reason: String| TransferError::Unreachable {
        volume: req.volume.clone(),
        node: req.to_node.clone(),
        address: req.to_address.clone(),
        reason,
    };
    let channel = Endpoint::from_shared(format!("https://{}", req.to_address))
        .map_err(|e| target_err(e.to_string()))?
        .tls_config(ctx.tls.client_config_for_node(&req.to_node))
        .map_err(|e| target_err(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::STREAM_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .connect()
        .await
        .map_err(|e| target_err(format!("{e:?}")))?;
    let (tx, rx) = mpsc::channel::<Chunk>(super::CHUNKS_AHEAD);
    tx.send(Chunk {
        part: Some(chunk::Part::Header(ChunkHeader {
            volume: req.volume.clone(),
            snapshot: req.snapshot.clone(),
            base: req.base_snapshot.clone(),
            base_guid: req.base_guid,
        })),
    })
    .await
    .map_err(|_| target_err("stream closed".into()))?;
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let reader = {
        let sent = sent.clone();
        let limit = ctx.rate_limit;
        let storage = ctx.storage.clone();
        let volume = volume.clone();
        async move {
            for (from, to) in parts {
                let header = PartHeader {
                    snapshot: to.to_string(),
                    base: from.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                };
                let header = Chunk {
                    part: Some(chunk::Part::PartHeader(header)),
                };
                if tx.send(header).await.is_err() {
                    return Err(SendError::Closed);
                }
                // `zfs send` (or the directory backend's packing) of one part, to its end.
                let span = tracing::info_span!("storage.send", volume.name = %volume,
                    snapshot = %to, base = from.as_ref().map(|f| f.to_string()));
                async {
                    let mut source = storage.send(&volume, from.as_ref(), &to).await?;
                    loop {
                        let data = read_chunk(&mut source).await?;
                        if data.is_empty() {
                            return Ok(());
                        }
                        let n = data.len() as u64;
                        let total = sent.fetch_add(n, Ordering::Relaxed) + n;
                        let chunk = Chunk {
                            part: Some(chunk::Part::Data(data)),
                        };
                        if tx.send(chunk).await.is_err() {
                            return Err(SendError::Closed);
                        }
                        if let Some(limit) = limit {
                            let due = Duration::from_secs_f64(total as f64 / limit.max(1) as f64);
                            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
                        }
                    }
                }
                .instrument(span)
                .await?;
            }
            Ok(())
        }
    };
    let mut client = AgentClient::new(proto::trace::traced(channel));
    let call = client.receive(ReceiverStream::new(rx));
    let report = |done: bool| Progress {
        bytes: sent.load(Ordering::Relaxed),
        bytes_per_second: rate(sent.load(Ordering::Relaxed), started.elapsed()),
        snapshot: req.snapshot.clone(),
        done,
    };
    let ticker = async {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        loop {
            tick.tick().await;
            if progress.send(report(false)).await.is_err() {
                return;
            }
        }
    };
    let work = async {
        let (read, received) = tokio::join!(reader, call);
        // The target's answer explains a closed stream better than the closing does.
        let received = received.map_err(|s| TransferError::from_target(&req, &s));
        match read {
            Ok(()) => received.map(drop),
            Err(SendError::Closed) => {
                Err(received.err().unwrap_or_else(|| TransferError::Refused {
                    volume: req.volume.clone(),
                    node: req.to_node.clone(),
                    reason: "it ended the stream before the end".into(),
                }))
            }
            Err(SendError::Storage(e)) => Err(e.into()),
            Err(SendError::Read(e)) => Err(TransferError::Storage(
                crate::storage::StorageError::BadStream {
                    volume: req.volume.clone(),
                    reason: format!("reading the local snapshot stream failed: {e}"),
                },
            )),
        }
    };
    tokio::select! {
        r = work => { r?; }
        () = ticker => return Err(TransferError::Abandoned { volume: req.volume.clone() }),
    }
    let _ = progress.send(report(true)).await;
    Ok(sent.load(Ordering::Relaxed))
}

/// Why the sending half of a push stopped.
enum SendError {
    /// The stream to the target closed (the target's answer says why).
    Closed,
    /// The local backend could not start a stream.
    Storage(crate::storage::StorageError),
    /// Reading the local stream failed.
    Read(std::io::Error),
}

impl From<crate::storage::StorageError> for SendError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<std::io::Error> for SendError {
    fn from(e: std::io::Error) -> Self {
        Self::Read(e)
    }
}

/// The backend streams that bring a holder of `base` (`None`: a holder of nothing) up to
/// `snapshot`, given this host's snapshots `held` (oldest first): one `(from, to)` per
/// snapshot after the base up to `snapshot`, the first without `from` when there is no base.
/// `None` when `base` is not held here with `base_guid` (0: any GUID) or `snapshot` is not
/// held after it.
pub fn parts(
    held: &[Snapshot],
    base: Option<&SnapshotName>,
    base_guid: u64,
    snapshot: &SnapshotName,
) -> Option<Vec<(Option<SnapshotName>, SnapshotName)>> {
    let start = match base {
        Some(base) => {
            let i = held.iter().position(|s| &s.name == base)?;
            if base_guid != 0 && held[i].guid != base_guid {
                return None;
            }
            i + 1
        }
        None => 0,
    };
    let end = held.iter().position(|s| &s.name == snapshot)?;
    if end < start {
        return None;
    }
    let mut from = base.cloned();
    let mut parts = Vec::new();
    for s in &held[start..=end] {
        parts.push((from.replace(s.name.clone()), s.name.clone()));
    }
    Some(parts)
}

/// Reads up to [`super::CHUNK_BYTES`] from `source`, as many as it has before its end: an
/// empty chunk means the end.
pub(super) async fn read_chunk<R>(source: &mut R) -> std::io::Result<bytes::Bytes>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(super::CHUNK_BYTES);
    while buf.len() < super::CHUNK_BYTES {
        let want = (super::CHUNK_BYTES - buf.len()) as u64;
        if (&mut *source).take(want).read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// Bytes per second over `elapsed`.
pub fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0
    } else {
        (bytes as f64 / secs) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn held(names: &[&str]) -> Vec<Snapshot> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Snapshot {
                name: SnapshotName::new(n).unwrap(),
                guid: 100 + i as u64,
            })
            .collect()
    }

    fn name(n: &str) -> SnapshotName {
        SnapshotName::new(n).unwrap()
    }

    fn shown(parts: Vec<(Option<SnapshotName>, SnapshotName)>) -> Vec<String> {
        parts
            .into_iter()
            .map(|(from, to)| format!("{}>{to}", from.map(|f| f.to_string()).unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_full_transfer_carries_every_snapshot_up_to_the_one_asked_for() {
        let h = held(&["m1-final", "m2-final", "m3-r1", "m3-r2"]);
        let parts = parts(&h, None, 0, &name("m3-r1")).unwrap();
        assert_eq!(
            shown(parts),
            [">m1-final", "m1-final>m2-final", "m2-final>m3-r1"]
        );
    }

    #[test]
    fn an_increment_carries_the_snapshots_after_the_base() {
        let h = held(&["m1-final", "m2-final", "m3-r1"]);
        let parts = parts(&h, Some(&name("m1-final")), 100, &name("m3-r1")).unwrap();
        assert_eq!(shown(parts), ["m1-final>m2-final", "m2-final>m3-r1"]);
        let one = super::parts(&h, Some(&name("m2-final")), 0, &name("m3-r1")).unwrap();
        assert_eq!(shown(one), ["m2-final>m3-r1"]);
    }

    #[test]
    fn a_base_with_another_guid_or_after_the_snapshot_is_refused() {
        let h = held(&["a", "b", "c"]);
        assert!(parts(&h, Some(&name("a")), 999, &name("c")).is_none());
        assert!(parts(&h, Some(&name("c")), 0, &name("b")).is_none());
        assert!(parts(&h, Some(&name("x")), 0, &name("c")).is_none());
        assert!(parts(&h, None, 0, &name("x")).is_none());
    }

    /// A pipe hands out 64 KiB per read; chunks still come out full, then the rest, then
    /// the end, with every byte in order.
    #[tokio::test]
    async fn chunks_are_filled_from_a_trickling_source() {
        let total = 2 * super::super::CHUNK_BYTES + 12_345;
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let (mut w, mut r) = tokio::io::duplex(64 * 1024);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(64 * 1024) {
                w.write_all(piece).await.unwrap();
            }
        });
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let chunk = read_chunk(&mut r).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            sizes.push(chunk.len());
            got.extend_from_slice(&chunk);
        }
        writer.await.unwrap();
        let full = super::super::CHUNK_BYTES;
        assert_eq!(sizes, vec![full, full, 12_345]);
        assert_eq!(got, data);
    }
}
