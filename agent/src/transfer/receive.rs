//! The target side of a move round: a header naming the volume, the snapshot and the base,
//! then data chunks fed to the backend's `receive`. A stream that ends early or fails (the
//! sender died, the connection dropped) makes the backend discard what it got, so the
//! volume here stays as it was. The owner's live copy never receives: only replicas do.

use std::sync::Arc;

use proto::agent::{Chunk, Received, chunk};
use tokio_stream::{Stream, StreamExt};
use tokio_util::io::StreamReader;

use super::TransferError;
use super::fence::Fence;
use super::locks::VolumeLocks;
use crate::storage::{Backend, SnapshotName, Storage, VolumeName};

/// Applies one incoming stream to `storage`.
pub async fn receive<S>(
    storage: Arc<Backend>,
    locks: &VolumeLocks,
    fence: &Fence,
    mut inbound: S,
) -> Result<Received, TransferError>
where
    S: Stream<Item = Result<Chunk, tonic::Status>> + Unpin + Send,
{
    let header = match inbound.next().await {
        Some(Ok(Chunk {
            part: Some(chunk::Part::Header(h)),
        })) => h,
        _ => {
            return Err(TransferError::BadRequest(
                "a receive stream must start with a header".into(),
            ));
        }
    };
    let volume = VolumeName::new(&header.volume)?;
    let snapshot = SnapshotName::new(&header.snapshot)?;
    let _guard = locks.lock(volume.as_str()).await;
    fence.check_not_owner(volume.as_str()).await?;
    if !header.base.is_empty() {
        let base = SnapshotName::new(&header.base)?;
        let present = storage.volumes().await?.contains(&volume)
            && storage.snapshots(&volume).await?.contains(&base);
        if !present {
            return Err(TransferError::MissingBase {
                volume: header.volume,
                base: header.base,
            });
        }
    }
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let data = {
        let counted = counted.clone();
        inbound.map(move |c| match c {
            Ok(Chunk {
                part: Some(chunk::Part::Data(d)),
            }) => {
                counted.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(d)
            }
            Ok(_) => Err(std::io::Error::other("a second header in a receive stream")),
            Err(status) => Err(std::io::Error::other(format!(
                "the sender's stream failed: {}",
                status.message()
            ))),
        })
    };
    storage.receive(&volume, StreamReader::new(data)).await?;
    if !storage.snapshots(&volume).await?.contains(&snapshot) {
        return Err(TransferError::BadRequest(format!(
            "the stream for volume {volume} did not carry snapshot {snapshot}"
        )));
    }
    let bytes = counted.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(bytes, "snapshot received");
    Ok(Received {
        volume: header.volume,
        snapshot: header.snapshot,
        bytes,
    })
}
