//! User snapshots (`flockerctl volume snapshot`): taken on the volume's owner through its
//! agent, then recorded through Raft; deleted on the owner first, then forgotten, then
//! destroyed on the replicas. Clones of them (`volume clone`): made by the owner's agent, then
//! recorded as a new volume on that node.
//!
//! The order keeps the record true: a snapshot is recorded only once its owner's agent has
//! taken it (and destroyed again if the record is refused, e.g. because the volume changed
//! owner meanwhile), and forgotten only once the owner has destroyed it (an owner that cannot,
//! because a clone depends on it, keeps it recorded). The retention rule never destroys a user
//! snapshot (by its `u-` name, so not one taken and not yet recorded either).

use proto::tls::TlsDir;
use tonic::Status;

use super::node_service::now_ms;
use super::status::to_status;
use crate::member::Member;
use crate::migration::MoveError;
use crate::migration::agents::{AgentLink, CleanUp};
use crate::proposal::{DryRun, ExecError, Nodes, SnapshotSite, VolumeNamed};
use crate::state::apply::{user_snapshot, validate_snapshot_label};
use crate::state::{Command, CommandError, UserSnapshot, Volume, clones_of, user_snapshot_name};

fn refused(e: CommandError) -> Status {
    to_status(ExecError::Command(e))
}

fn agent_failed(e: MoveError, what: &str) -> Status {
    Status::unavailable(format!(
        "{what}: {e} (is its agent running? `flockerctl node ls` shows whether it is up)"
    ))
}

/// Takes a user snapshot of `volume` on its owner and records it (`scheduled`: by the
/// volume's snapshot schedule).
pub async fn take(
    member: &Member,
    tls: &TlsDir,
    volume: String,
    label: Option<String>,
    scheduled: bool,
) -> Result<UserSnapshot, Status> {
    if let Some(label) = &label {
        validate_snapshot_label(label).map_err(refused)?;
    }
    let (v, owner) = member
        .read(SnapshotSite(volume.clone()))
        .await
        .map_err(to_status)?;
    // Read on the leader after any removal of the schedule that committed before: a
    // schedule removed while this snapshot was due takes none after the removal returned.
    if scheduled && v.snapshot_schedule.is_none() {
        return Err(Status::failed_precondition(format!(
            "volume {volume} has no snapshot schedule any more"
        )));
    }
    let taken_ms = now_ms();
    let snapshot = UserSnapshot {
        name: user_snapshot_name(label.as_deref(), taken_ms),
        label,
        taken_ms,
        epoch: v.epoch,
        node: owner.name.clone(),
        scheduled,
    };
    if let Some(clash) = [Some(&snapshot.name), snapshot.label.as_ref()]
        .into_iter()
        .flatten()
        .find(|s| v.user_snapshot(s).is_some())
    {
        return Err(refused(CommandError::SnapshotExists {
            volume,
            snapshot: clash.clone(),
        }));
    }
    let what = format!("cannot take the snapshot on {}", owner.name);
    let mut link = AgentLink::connect(&owner, tls)
        .await
        .map_err(|e| agent_failed(e, &what))?;
    link.snapshot(&volume, &snapshot.name)
        .await
        .map_err(|e| agent_failed(e, &what))?;
    let record = Command::RecordSnapshot {
        volume: volume.clone(),
        snapshot: snapshot.clone(),
    };
    match member.write::<Volume>(record).await {
        Ok(_) => {
            tracing::info!(volume.name = %volume, snapshot = %snapshot.name, node.name = %owner.name, "user snapshot taken");
            Ok(snapshot)
        }
        Err(e) => {
            // Refused for sure (not merely unanswered), and not because the same snapshot was
            // recorded by a call beside this one: nothing names what was taken.
            let refused = matches!(&e, ExecError::Command(c)
                if !matches!(c, CommandError::SnapshotExists { .. }));
            if refused {
                let gone = link
                    .clean_up(&volume, CleanUp::snapshots(vec![snapshot.name.clone()]))
                    .await;
                if let Err(gone) = gone {
                    tracing::warn!(volume.name = %volume, snapshot = %snapshot.name, error = %gone, "an unrecorded user snapshot is left on the owner");
                }
            }
            Err(to_status(e))
        }
    }
}

/// Makes `clone` on `volume`'s owner from its user snapshot `snapshot` (name or label) and
/// records it; a clone the record refuses is destroyed again.
pub async fn clone(
    member: &Member,
    tls: &TlsDir,
    volume: String,
    snapshot: String,
    clone: String,
) -> Result<Volume, Status> {
    let (_, owner) = member
        .read(SnapshotSite(volume.clone()))
        .await
        .map_err(to_status)?;
    let record = Command::CloneVolume {
        name: clone.clone(),
        source: volume.clone(),
        snapshot,
        owner: owner.name.clone(),
        at_ms: now_ms(),
    };
    // Every refusal the record would meet (a bad or taken name, an unknown snapshot) comes
    // before the agent makes anything.
    member
        .read(DryRun(record.clone()))
        .await
        .map_err(to_status)?;
    let Command::CloneVolume { snapshot, .. } = &record else {
        unreachable!()
    };
    let name = {
        let v = member
            .read(VolumeNamed(volume.clone()))
            .await
            .map_err(to_status)?;
        user_snapshot(&v, snapshot).map_err(refused)?.name.clone()
    };
    let what = format!("cannot make the clone on {}", owner.name);
    let mut link = AgentLink::connect(&owner, tls)
        .await
        .map_err(|e| agent_failed(e, &what))?;
    link.clone_volume(&volume, &name, &clone)
        .await
        .map_err(|e| agent_failed(e, &what))?;
    match member.write::<Volume>(record).await {
        Ok(v) => {
            tracing::info!(volume.name = %volume, snapshot = %name, clone = %clone, node.name = %owner.name, "clone made");
            Ok(v)
        }
        Err(e) => {
            if matches!(e, ExecError::Command(_)) {
                // Refused: nothing names the clone (the agent refuses to destroy a copy the
                // control service says it owns, so a volume of that name made meanwhile is safe).
                let gone = CleanUp {
                    copy: true,
                    ..CleanUp::default()
                };
                if let Err(gone) = link.clean_up(&clone, gone).await {
                    tracing::warn!(clone = %clone, error = %gone, "an unrecorded clone is left on the owner");
                }
            }
            Err(to_status(e))
        }
    }
}

/// Destroys user snapshot `snapshot` (name or label) of `volume` on its owner, forgets it,
/// then destroys it on every replica whose node is up (one that is down keeps its copy of
/// the snapshot: see docs/volumes.md).
pub async fn delete(
    member: &Member,
    tls: &TlsDir,
    volume: String,
    snapshot: String,
) -> Result<Volume, Status> {
    let v = member
        .read(VolumeNamed(volume.clone()))
        .await
        .map_err(to_status)?;
    let name = user_snapshot(&v, &snapshot).map_err(refused)?.name.clone();
    // Checked before the owner is asked (it could not destroy a ZFS clone's origin anyway).
    let volumes = member
        .read(crate::proposal::Volumes)
        .await
        .map_err(to_status)?;
    let clones = clones_of(&volumes, &volume, Some(&name));
    if !clones.is_empty() {
        return Err(refused(CommandError::SnapshotHasClones {
            volume,
            snapshot: name,
            clones: clones.join(", "),
        }));
    }
    let (_, owner) = member
        .read(SnapshotSite(volume.clone()))
        .await
        .map_err(to_status)?;
    let what = format!("cannot destroy the snapshot on {}", owner.name);
    AgentLink::connect(&owner, tls)
        .await
        .map_err(|e| agent_failed(e, &what))?
        .clean_up(&volume, CleanUp::snapshots(vec![name.clone()]))
        .await
        .map_err(|e| agent_failed(e, &what))?;
    let v: Volume = member
        .write(Command::ForgetSnapshot {
            volume: volume.clone(),
            snapshot: name.clone(),
        })
        .await
        .map_err(to_status)?;
    let nodes = member.read(Nodes).await.map_err(to_status)?;
    for r in &v.replicas {
        let Some(node) = nodes.iter().find(|n| n.name == r.node && n.up) else {
            tracing::warn!(volume.name = %volume, snapshot = %name, node.name = %r.node, "replica's node is down: it keeps its copy of the deleted snapshot");
            continue;
        };
        let gone = async {
            AgentLink::connect(node, tls)
                .await?
                .clean_up(&volume, CleanUp::snapshots(vec![name.clone()]))
                .await
        };
        if let Err(e) = gone.await {
            tracing::warn!(volume.name = %volume, snapshot = %name, node.name = %r.node, error = %e, "the replica keeps its copy of the deleted snapshot");
        }
    }
    tracing::info!(volume.name = %volume, snapshot = %name, "user snapshot deleted");
    Ok(v)
}
