//! Backups and restores (`flockerctl volume backup|restore`), relayed by the member that takes
//! the call: operators never talk to agents (their certificates open nothing on the Agent
//! API), and the member checks and records what the agents do.
//!
//! - **Backup**: a new user snapshot `backup-<ms>` of the volume on its owner (so the next
//!   incremental backup finds it there, whatever moves happen meanwhile), then the owner's
//!   `Export` of it, in full or since the directory's newest snapshot, streamed to the caller
//!   behind a header saying what it is.
//! - **Restore**: the caller's chain of streams (full first), relayed into the chosen node's
//!   `Receive` as one full transfer (staged, swapped in only once every part arrived, so a cut
//!   or corrupt stream leaves nothing), then the volume recorded on that node with the chain's
//!   snapshots as its user snapshots.

use std::pin::Pin;

use proto::agent as apb;
use proto::control as pb;
use proto::tls::TlsDir;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

use super::node_service::now_ms;
use super::status::to_status;
use crate::convert;
use crate::member::Member;
use crate::migration::MoveError;
use crate::migration::agents::{AgentLink, CleanUp};
use crate::migration::replicate::{least_loaded, storage_kind};
use crate::proposal::{DryRun, ExecError, Nodes, SnapshotSite, VolumeNamed};
use crate::state::{Command, CommandError, UserSnapshot, Volume};

/// A backup as it streams to the caller.
pub type BackupStream = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

fn refused(e: CommandError) -> Status {
    to_status(ExecError::Command(e))
}

fn agent_failed(e: MoveError, what: &str) -> Status {
    Status::unavailable(format!("{what}: {e}"))
}

/// Takes a backup snapshot of `req.name` on its owner and streams it, in full or since
/// `req.base` (which the owner must hold with `req.base_guid`).
pub async fn backup(
    member: &Member,
    tls: &TlsDir,
    req: pb::BackupRequest,
) -> Result<BackupStream, Status> {
    let name = req.name;
    let (_, owner) = member
        .read(SnapshotSite(name.clone()))
        .await
        .map_err(to_status)?;
    let what = format!("cannot back up volume {name} from {}", owner.name);
    let mut link = AgentLink::connect(&owner, tls)
        .await
        .map_err(|e| agent_failed(e, &what))?;
    if let Some(base) = &req.base {
        let held = link
            .snapshots(&name)
            .await
            .map_err(|e| agent_failed(e, &what))?;
        let same = held
            .iter()
            .any(|s| s.name == *base && (req.base_guid == 0 || s.guid == req.base_guid));
        if !same {
            return Err(Status::failed_precondition(format!(
                "the newest backup in that directory is snapshot {base}, which volume {name} on {} does not hold (deleted, or another volume of that name): back up in full into an empty directory",
                owner.name
            )));
        }
    }
    let label = format!("backup-{}", now_ms());
    let snapshot = super::snapshots::take(member, tls, name.clone(), Some(label), false).await?;
    let guid = link
        .snapshots(&name)
        .await
        .map_err(|e| agent_failed(e, &what))?
        .into_iter()
        .find(|s| s.name == snapshot.name)
        .map_or(0, |s| s.guid);
    let data = link
        .export(&name, &snapshot.name, req.base.as_deref())
        .await
        .map_err(|e| agent_failed(e, &what))?;
    tracing::info!(volume.name = %name, snapshot = %snapshot.name, base = ?req.base, node.name = %owner.name, "backup streaming");
    let header = pb::BackupHeader {
        volume: name,
        snapshot: Some(convert::user_snapshot(snapshot)),
        guid,
        base: req.base.unwrap_or_default(),
        storage: storage_kind(&owner.storage).to_owned(),
    };
    let node = owner.name;
    let data = data.map(move |chunk| match chunk {
        Ok(c) => Ok(pb::BackupChunk {
            part: Some(pb::backup_chunk::Part::Data(c.data)),
        }),
        Err(s) => Err(Status::unavailable(format!(
            "the backup stream from {node} failed: {}",
            s.message()
        ))),
    });
    let header = pb::BackupChunk {
        part: Some(pb::backup_chunk::Part::Header(header)),
    };
    Ok(Box::pin(tokio_stream::once(Ok(header)).chain(data)))
}

/// Makes the volume the header names from the chain of streams that follows it, on the node
/// it names (or one of the backup's storage kind), and records it.
pub async fn restore(
    member: &Member,
    tls: &TlsDir,
    mut inbound: Streaming<pb::RestoreChunk>,
) -> Result<Volume, Status> {
    let header = match inbound.message().await? {
        Some(pb::RestoreChunk {
            part: Some(pb::restore_chunk::Part::Header(h)),
        }) => h,
        _ => return Err(Status::invalid_argument("a restore starts with its header")),
    };
    let name = header.name.clone();
    let last = header
        .snapshots
        .last()
        .map(|s| s.name.clone())
        .ok_or_else(|| Status::invalid_argument("the backup names no snapshot"))?;
    let kind = header.storage.clone();
    let node = match header.node.clone() {
        Some(node) => node,
        None => member
            .sm
            .read(|s| least_loaded(s, &kind))
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "no node that is up stores volumes in {kind}: storage, which this backup needs (`flockerctl node ls`); bring one up, or name one with --on NODE"
                ))
            })?,
    };
    let nodes = member.read(Nodes).await.map_err(to_status)?;
    let target = nodes
        .into_iter()
        .find(|n| n.name == node)
        .ok_or_else(|| refused(CommandError::UnknownNode { name: node.clone() }))?;
    if !target.up {
        return Err(refused(CommandError::DestinationDown { node }));
    }
    if storage_kind(&target.storage) != kind {
        return Err(Status::failed_precondition(format!(
            "node {node} stores volumes in {}, and this backup is a stream of {kind}: storage: restore onto a node with {kind}: storage (--on NODE)",
            target.storage
        )));
    }
    let create = Command::CreateVolume {
        name: name.clone(),
        size_limit: None,
        owner: Some(node.clone()),
        metadata: Default::default(),
        at_ms: now_ms(),
        replication: None,
    };
    member
        .read(DryRun(create.clone()))
        .await
        .map_err(to_status)?;

    let what = format!("cannot restore volume {name} onto {node}");
    let mut link = AgentLink::connect(&target, tls)
        .await
        .map_err(|e| agent_failed(e, &what))?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let start = apb::Chunk {
        part: Some(apb::chunk::Part::Header(apb::ChunkHeader {
            volume: name.clone(),
            snapshot: last,
            base: String::new(),
            base_guid: 0,
        })),
    };
    let _ = tx.send(start).await;
    // The caller's parts, as they come; a caller that fails or stops part way ends the stream
    // early, which the agent's receive refuses (a truncated part, or the last snapshot
    // missing), discarding everything.
    let relay = tokio::spawn(async move {
        loop {
            let part = match inbound.message().await {
                Ok(Some(pb::RestoreChunk { part: Some(p) })) => p,
                Ok(Some(_)) => return Err(Status::invalid_argument("an empty restore message")),
                Ok(None) => return Ok(()),
                Err(s) => return Err(s),
            };
            let chunk = match part {
                pb::restore_chunk::Part::PartHeader(p) => {
                    apb::chunk::Part::PartHeader(apb::PartHeader {
                        snapshot: p.snapshot,
                        base: p.base,
                    })
                }
                pb::restore_chunk::Part::Data(d) => apb::chunk::Part::Data(d),
                pb::restore_chunk::Part::Header(_) => {
                    return Err(Status::invalid_argument("a restore has one header"));
                }
            };
            if tx.send(apb::Chunk { part: Some(chunk) }).await.is_err() {
                return Ok(());
            }
        }
    });
    let received = link
        .receive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let relayed = relay
        .await
        .unwrap_or_else(|e| Err(Status::internal(e.to_string())));
    if let Err(s) = relayed {
        return Err(Status::new(
            s.code(),
            format!(
                "{what}: the backup stream failed ({}); nothing was created",
                s.message()
            ),
        ));
    }
    let received =
        received.map_err(|e| agent_failed(e, &format!("{what}; nothing was created")))?;
    match member.write::<Volume>(create).await {
        Ok(_) => {}
        Err(e) => {
            if matches!(e, ExecError::Command(_)) {
                let gone = CleanUp {
                    copy: true,
                    ..CleanUp::default()
                };
                if let Err(gone) = link.clean_up(&name, gone).await {
                    tracing::warn!(volume.name = %name, error = %gone, "an unrecorded restored copy is left on the node");
                }
            }
            return Err(to_status(e));
        }
    }
    for s in header.snapshots {
        let snapshot = UserSnapshot {
            name: s.name,
            label: s.label,
            taken_ms: s.taken_ms,
            epoch: 1,
            node: node.clone(),
            scheduled: false,
        };
        let record = Command::RecordSnapshot {
            volume: name.clone(),
            snapshot,
        };
        if let Err(e) = member.write::<Volume>(record).await {
            tracing::warn!(volume.name = %name, error = %e, "a restored snapshot is not recorded");
        }
    }
    tracing::info!(volume.name = %name, node.name = %node, bytes = received.bytes, "volume restored");
    member.read(VolumeNamed(name)).await.map_err(to_status)
}
