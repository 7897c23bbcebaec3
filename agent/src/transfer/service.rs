//! The `Agent` gRPC service over this host's storage backend. Who may call each RPC is
//! decided before a handler runs, by the table in [`super::auth`].

use std::pin::Pin;
use std::sync::Arc;

use proto::agent as pb;
use proto::agent::agent_server::Agent;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::fence::Fence;
use super::push::{PushContext, push};
use super::stop::Stopper;
use super::{TransferError, receive};
use crate::locks::VolumeLocks;
use crate::storage::{Access, Backend, SnapshotName, Storage, VolumeName};

/// Serves the Agent API.
#[derive(Clone)]
pub struct AgentService {
    push: PushContext,
    fence: Fence,
    stopper: Stopper,
    locks: VolumeLocks,
}

impl AgentService {
    /// A service over `push.storage`, streaming with `push.tls`, fencing with `fence`,
    /// stopping containers with `stopper`, one transfer per volume at a time under `locks`.
    pub fn new(push: PushContext, fence: Fence, stopper: Stopper, locks: VolumeLocks) -> Self {
        Self {
            push,
            fence,
            stopper,
            locks,
        }
    }

    fn storage(&self) -> &Arc<Backend> {
        &self.push.storage
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Agent for AgentService {
    type PushStream = Pin<Box<dyn Stream<Item = Result<pb::Progress, Status>> + Send>>;

    async fn push(&self, req: Request<pb::PushRequest>) -> Reply<Self::PushStream> {
        let req = req.into_inner();
        let span = tracing::info_span!("push", volume.name = %req.volume, push.to = %req.to_node,
            push.snapshot = %req.snapshot, push.r#final = req.r#final);
        let (out_tx, out_rx) = mpsc::channel(8);
        let (progress_tx, mut progress_rx) = mpsc::channel(8);
        let ctx = self.push.clone();
        let locks = self.locks.clone();
        tokio::spawn(
            async move {
                let _guard = locks.transfer(&req.volume).await;
                let forward = {
                    let out_tx = out_tx.clone();
                    async move {
                        while let Some(p) = progress_rx.recv().await {
                            if out_tx.send(Ok(p)).await.is_err() {
                                return;
                            }
                        }
                    }
                };
                let work = push(&ctx, req, progress_tx);
                let (result, ()) = tokio::join!(work, forward);
                match result {
                    Ok(bytes) => tracing::info!(bytes, "push finished"),
                    Err(e) => {
                        tracing::warn!(error = %e, "push failed");
                        let _ = out_tx.send(Err(Status::from(e))).await;
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn receive(&self, req: Request<Streaming<pb::Chunk>>) -> Reply<pb::Received> {
        let received = receive::receive(
            self.storage().clone(),
            &self.locks,
            &self.fence,
            req.into_inner(),
        )
        .instrument(tracing::info_span!(
            "receive",
            volume.name = tracing::field::Empty
        ))
        .await;
        match received {
            Ok(r) => Ok(Response::new(r)),
            Err(e) => {
                tracing::warn!(error = %e, "receive failed; nothing applied");
                Err(e.into())
            }
        }
    }

    async fn mount(&self, req: Request<pb::MountRequest>) -> Reply<pb::Mounted> {
        let req = req.into_inner();
        let volume = VolumeName::new(&req.volume).map_err(TransferError::from)?;
        let access = if req.read_write {
            self.fence.check_owner(&req.volume, req.epoch).await?;
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let path = self
            .storage()
            .mount(&volume, access)
            .await
            .map_err(TransferError::from)?;
        tracing::info!(volume.name = %volume, volume.epoch = req.epoch, read_write = req.read_write, "mounted");
        Ok(Response::new(pb::Mounted {
            path: path.to_string_lossy().into_owned(),
        }))
    }

    async fn unmount(&self, req: Request<pb::VolumeRef>) -> Reply<pb::Unmounted> {
        let volume = VolumeName::new(&req.into_inner().volume).map_err(TransferError::from)?;
        self.storage()
            .unmount(&volume)
            .await
            .map_err(TransferError::from)?;
        Ok(Response::new(pb::Unmounted {}))
    }

    async fn clean_up(&self, req: Request<pb::CleanUpRequest>) -> Reply<pb::CleanedUp> {
        let req = req.into_inner();
        let volume = VolumeName::new(&req.volume).map_err(TransferError::from)?;
        let _guard = self.locks.transfer(volume.as_str()).await;
        let destroyed = clean_up(self.storage(), &self.fence, &volume, &req)
            .instrument(tracing::info_span!("clean_up", volume.name = %volume))
            .await?;
        Ok(Response::new(pb::CleanedUp { destroyed }))
    }

    async fn inventory(&self, _req: Request<pb::InventoryRequest>) -> Reply<pb::Inventory> {
        let mut volumes = Vec::new();
        let names = self
            .storage()
            .volumes()
            .await
            .map_err(TransferError::from)?;
        for v in names {
            let snapshots = self
                .storage()
                .snapshots(&v)
                .await
                .map_err(TransferError::from)?;
            let used_bytes = self.storage().used(&v).await.map_err(TransferError::from)?;
            volumes.push(pb::VolumeSnapshots {
                volume: v.as_str().to_owned(),
                snapshots: snapshots
                    .iter()
                    .map(|s| pb::Snapshot {
                        name: s.name.to_string(),
                        guid: s.guid,
                    })
                    .collect(),
                used_bytes,
            });
        }
        Ok(Response::new(pb::Inventory { volumes }))
    }

    async fn stop_containers(
        &self,
        req: Request<pb::StopContainersRequest>,
    ) -> Reply<pb::StoppedContainers> {
        let req = req.into_inner();
        let volume = VolumeName::new(&req.volume).map_err(TransferError::from)?;
        let grace = std::time::Duration::from_secs(req.grace_seconds.into());
        let stopped = self
            .stopper
            .stop(&volume, &req.container_ids, grace)
            .instrument(tracing::info_span!("stop_containers", volume.name = %volume))
            .await?;
        Ok(Response::new(stopped))
    }

    type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

    async fn export(&self, req: Request<pb::ExportRequest>) -> Reply<Self::ExportStream> {
        let req = req.into_inner();
        let volume = VolumeName::new(&req.volume).map_err(TransferError::from)?;
        let snapshot = SnapshotName::new(&req.snapshot).map_err(TransferError::from)?;
        let base = (!req.base.is_empty())
            .then(|| SnapshotName::new(&req.base))
            .transpose()
            .map_err(TransferError::from)?;
        let span = tracing::info_span!("export", volume.name = %volume, snapshot = %snapshot,
            base = req.base);
        let guard = self.locks.transfer(volume.as_str()).await;
        let mut source = self
            .storage()
            .send(&volume, base.as_ref(), &snapshot)
            .instrument(span.clone())
            .await
            .map_err(TransferError::from)?;
        let (tx, rx) = mpsc::channel(super::CHUNKS_AHEAD);
        tokio::spawn(
            async move {
                let _guard = guard;
                let mut bytes = 0u64;
                loop {
                    match super::push::read_chunk(&mut source).await {
                        Ok(chunk) if chunk.is_empty() => break,
                        Ok(chunk) => {
                            bytes += chunk.len() as u64;
                            let data = pb::ExportChunk { data: chunk };
                            if tx.send(Ok(data)).await.is_err() {
                                tracing::warn!("export abandoned by the caller");
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "export failed");
                            let failed = Status::internal(format!(
                                "the stream of volume {volume} failed: {e}"
                            ));
                            let _ = tx.send(Err(failed)).await;
                            return;
                        }
                    }
                }
                tracing::info!(bytes, "exported");
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn clone_snapshot(&self, req: Request<pb::CloneRequest>) -> Reply<pb::Cloned> {
        let req = req.into_inner();
        let volume = VolumeName::new(&req.volume).map_err(TransferError::from)?;
        let snapshot = SnapshotName::new(&req.snapshot).map_err(TransferError::from)?;
        let clone = VolumeName::new(&req.clone).map_err(TransferError::from)?;
        let _guard = self.locks.transfer(clone.as_str()).await;
        let span = tracing::info_span!("clone", volume.name = %volume, snapshot = %snapshot, clone = %clone);
        self.storage()
            .clone_snapshot(&volume, &snapshot, &clone)
            .instrument(span.clone())
            .await
            .map_err(TransferError::from)?;
        span.in_scope(|| tracing::info!("clone made"));
        Ok(Response::new(pb::Cloned {}))
    }

    async fn snapshot(&self, req: Request<pb::SnapshotRequest>) -> Reply<pb::Snapshot> {
        let req = req.into_inner();
        let volume = VolumeName::new(&req.volume).map_err(TransferError::from)?;
        let name = SnapshotName::new(&req.snapshot).map_err(TransferError::from)?;
        let _guard = self.locks.transfer(volume.as_str()).await;
        let storage = self.storage();
        let span = tracing::info_span!("user_snapshot", volume.name = %volume, snapshot = %name);
        let taken = async {
            let held =
                |all: Vec<crate::storage::Snapshot>| all.into_iter().find(|s| s.name == name);
            if let Some(s) = held(storage.snapshots(&volume).await?) {
                return Ok(s);
            }
            storage.snapshot(&volume, &name).await?;
            tracing::info!("user snapshot taken");
            held(storage.snapshots(&volume).await?).ok_or_else(|| {
                crate::storage::StorageError::NoSuchSnapshot {
                    volume: volume.to_string(),
                    snapshot: name.to_string(),
                }
            })
        }
        .instrument(span)
        .await
        .map_err(TransferError::from)?;
        Ok(Response::new(pb::Snapshot {
            name: taken.name.to_string(),
            guid: taken.guid,
        }))
    }
}

/// Destroys what `req` names of `volume` here: the listed snapshots that exist, a staged
/// copy, and (never on the owner) the whole copy, or sets the whole copy aside. Returns what
/// was destroyed or set aside.
async fn clean_up(
    storage: &Backend,
    fence: &Fence,
    volume: &VolumeName,
    req: &pb::CleanUpRequest,
) -> Result<Vec<String>, TransferError> {
    let mut destroyed = Vec::new();
    if req.staging {
        let had_one = !storage.staged_snapshots(volume).await?.is_empty();
        storage.discard_staged(volume).await?;
        if had_one {
            destroyed.push(format!("{volume} (staged copy)"));
        }
    }
    if !storage.volumes().await?.contains(volume) {
        return Ok(destroyed);
    }
    if !req.set_aside_as.is_empty() {
        fence.check_not_owner(volume.as_str()).await?;
        let label = SnapshotName::new(&req.set_aside_as).map_err(|_| {
            TransferError::BadRequest(format!(
                "cannot set the copy aside as {:?}: use letters, digits, '_', '.', '-'",
                req.set_aside_as
            ))
        })?;
        let kept = storage.set_aside(volume, label.as_str()).await?;
        tracing::warn!(
            kept,
            "this copy was the owner's before a promotion: set aside, kept for the operator"
        );
        destroyed.push(format!("{volume} (set aside as {kept})"));
        return Ok(destroyed);
    }
    if req.copy {
        fence.check_not_owner(volume.as_str()).await?;
        storage.destroy(volume).await?;
        destroyed.push(volume.to_string());
        tracing::info!("copy destroyed");
        return Ok(destroyed);
    }
    for s in storage.snapshots(volume).await? {
        if req.snapshots.iter().any(|d| d == s.name.as_str()) {
            storage.destroy_snapshot(volume, &s.name).await?;
            destroyed.push(format!("{volume}@{}", s.name));
        }
    }
    if !destroyed.is_empty() {
        tracing::info!(destroyed = ?destroyed, "cleaned up");
    }
    Ok(destroyed)
}
