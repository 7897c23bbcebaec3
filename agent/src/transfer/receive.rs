//! The target side of a move round: a header naming the volume, the snapshot it brings this
//! host up to and the base, then one or more parts (a part header and its data chunks), each
//! fed to one backend `receive`.
//!
//! - **Incremental** (a base named): the base must be here with the GUID the source matched;
//!   each part lands on the volume itself and is atomic (a part that fails leaves the volume
//!   at the previous part's snapshot).
//! - **Full** (no base): the parts build a staging copy beside whatever this host holds (a
//!   stale replica with no snapshot in common with the source, or nothing), swapped in only
//!   once every part arrived. A transfer that fails or is cut leaves the volume here exactly
//!   as it was and no staging copy behind.
//!
//! The owner's live copy never receives: only replicas do.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream::{self, Peekable, StreamExt};
use proto::agent::{Chunk, ChunkHeader, Received, chunk};
use tokio_stream::Stream;
use tokio_util::io::StreamReader;

use super::TransferError;
use super::fence::Fence;
use crate::locks::VolumeLocks;
use crate::storage::{Backend, Slot, SnapshotName, Storage, VolumeName};

/// Applies one incoming transfer to `storage`.
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
    tracing::Span::current().record("volume.name", volume.as_str());
    let _guard = locks.transfer(volume.as_str()).await;
    fence.check_not_owner(volume.as_str()).await?;
    let slot = if header.base.is_empty() {
        // Whatever an earlier, cut transfer staged is of no use: start from nothing.
        storage.discard_staged(&volume).await?;
        Slot::Staging
    } else {
        check_base(&storage, &volume, &header).await?;
        Slot::Volume
    };
    let counted = Arc::new(AtomicU64::new(0));
    let mut inbound = inbound.peekable();
    let applied = apply_parts(&storage, &volume, slot, &mut inbound, &counted).await;
    let finished = match applied {
        Ok(()) => finish(&storage, &volume, slot, &snapshot).await,
        Err(e) => Err(e),
    };
    if let Err(e) = finished {
        if slot == Slot::Staging
            && let Err(again) = storage.discard_staged(&volume).await
        {
            tracing::warn!(error = %again, "cannot remove the staged copy; the next transfer or the move's clean-up does");
        }
        return Err(e);
    }
    let bytes = counted.load(Ordering::Relaxed);
    tracing::info!(bytes, full = slot == Slot::Staging, "snapshot received");
    crate::metrics::METRICS.snapshot_received(bytes);
    Ok(Received {
        volume: header.volume,
        snapshot: header.snapshot,
        bytes,
    })
}

/// Fails unless this host holds the header's base with the GUID the source matched.
async fn check_base(
    storage: &Backend,
    volume: &VolumeName,
    header: &ChunkHeader,
) -> Result<(), TransferError> {
    let missing = || TransferError::MissingBase {
        volume: header.volume.clone(),
        base: header.base.clone(),
    };
    if !storage.volumes().await?.contains(volume) {
        return Err(missing());
    }
    let held = storage.snapshots(volume).await?;
    match held.iter().find(|s| s.name.as_str() == header.base) {
        Some(s) if header.base_guid == 0 || s.guid == header.base_guid => Ok(()),
        _ => Err(missing()),
    }
}

/// Receives every part of the stream into `slot`.
async fn apply_parts<S>(
    storage: &Backend,
    volume: &VolumeName,
    slot: Slot,
    inbound: &mut Peekable<S>,
    counted: &Arc<AtomicU64>,
) -> Result<(), TransferError>
where
    S: Stream<Item = Result<Chunk, tonic::Status>> + Unpin + Send,
{
    let mut parts = 0;
    loop {
        let part = match inbound.next().await {
            None if parts > 0 => return Ok(()),
            None => return Err(bad("the stream carried no part")),
            Some(Ok(Chunk {
                part: Some(chunk::Part::PartHeader(p)),
            })) => p,
            Some(Err(status)) => {
                return Err(bad(format!(
                    "the sender's stream failed: {}",
                    status.message()
                )));
            }
            Some(Ok(_)) => return Err(bad("expected a part header")),
        };
        parts += 1;
        tracing::debug!(part.snapshot = %part.snapshot, part.base = %part.base, "receiving part");
        let data = Box::pin(part_data(Pin::new(&mut *inbound), counted.clone()));
        storage
            .receive(volume, slot, StreamReader::new(data))
            .await?;
    }
}

/// The data chunks of one part, up to the next part header or the end of the stream.
fn part_data<'a, S>(
    inbound: Pin<&'a mut Peekable<S>>,
    counted: Arc<AtomicU64>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'a
where
    S: Stream<Item = Result<Chunk, tonic::Status>> + Unpin + Send + 'a,
{
    stream::unfold((inbound, counted), |(mut inbound, counted)| async move {
        let item = inbound
            .as_mut()
            .next_if(|c| {
                matches!(
                    c,
                    Ok(Chunk {
                        part: Some(chunk::Part::Data(_))
                    }) | Err(_)
                )
            })
            .await?;
        let data = match item {
            Ok(Chunk {
                part: Some(chunk::Part::Data(d)),
            }) => {
                counted.fetch_add(d.len() as u64, Ordering::Relaxed);
                Ok(d)
            }
            Ok(_) => unreachable!("next_if passes only data and errors"),
            Err(status) => Err(std::io::Error::other(format!(
                "the sender's stream failed: {}",
                status.message()
            ))),
        };
        Some((data, (inbound, counted)))
    })
}

/// Checks that `slot` now holds `snapshot` and swaps a staged copy in.
async fn finish(
    storage: &Backend,
    volume: &VolumeName,
    slot: Slot,
    snapshot: &SnapshotName,
) -> Result<(), TransferError> {
    let held = match slot {
        Slot::Volume => storage.snapshots(volume).await?,
        Slot::Staging => storage.staged_snapshots(volume).await?,
    };
    if !held.iter().any(|s| &s.name == snapshot) {
        return Err(bad(format!(
            "the stream for volume {volume} did not carry snapshot {snapshot}"
        )));
    }
    if slot == Slot::Staging {
        storage.commit_staged(volume).await?;
    }
    Ok(())
}

fn bad(reason: impl Into<String>) -> TransferError {
    TransferError::BadRequest(reason.into())
}
