//! The source side of a move round: snapshot the volume (unmounting it first for the final
//! push), stream the snapshot to the target agent's `Receive` in chunks, and report progress.
//! A push that stops part way (the caller went away, the target died) sends nothing more
//! and leaves the source's volume as it was; the target discards the partial stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proto::agent::agent_client::AgentClient;
use proto::agent::{Chunk, ChunkHeader, Progress, PushRequest, chunk};
use proto::tls::TlsDir;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::TransferError;
use crate::storage::{Backend, SnapshotName, Storage, VolumeName};

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
    if !ctx.storage.snapshots(&volume).await?.contains(&snapshot) {
        ctx.storage.snapshot(&volume, &snapshot).await?;
    }
    let mut source = ctx.storage.send(&volume, base.as_ref(), &snapshot).await?;
    let target_err = |reason: String| TransferError::Target {
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
        })),
    })
    .await
    .map_err(|_| target_err("stream closed".into()))?;
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let reader = {
        let sent = sent.clone();
        let limit = ctx.rate_limit;
        async move {
            loop {
                let data = read_chunk(&mut source).await?;
                if data.is_empty() {
                    return Ok::<(), std::io::Error>(());
                }
                let n = data.len() as u64;
                let total = sent.fetch_add(n, Ordering::Relaxed) + n;
                let chunk = Chunk {
                    part: Some(chunk::Part::Data(data)),
                };
                if tx.send(chunk).await.is_err() {
                    return Err(std::io::Error::other("the target closed the stream"));
                }
                if let Some(limit) = limit {
                    let due = Duration::from_secs_f64(total as f64 / limit.max(1) as f64);
                    tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
                }
            }
        }
    };
    let mut client = AgentClient::new(channel);
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
        read.map_err(|e| {
            TransferError::Storage(crate::storage::StorageError::BadStream {
                volume: req.volume.clone(),
                reason: format!("reading the local snapshot stream failed: {e}"),
            })
        })?;
        received.map_err(|s| target_err(s.message().to_owned()))
    };
    tokio::select! {
        r = work => { r?; }
        () = ticker => return Err(target_err("the caller went away".into())),
    }
    let _ = progress.send(report(true)).await;
    Ok(sent.load(Ordering::Relaxed))
}

/// Reads up to [`super::CHUNK_BYTES`] from `source`, as many as it has before its end: an
/// empty chunk means the end.
async fn read_chunk<R>(source: &mut R) -> std::io::Result<bytes::Bytes>
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
