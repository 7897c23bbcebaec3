//! `apply`: the only code that changes [`State`]. Pure: no I/O, no clock, no randomness.

use std::collections::BTreeMap;

use super::ip::{self, Holder};
use super::names::{validate_node_name, validate_volume_name};
use super::{
    Command, CommandError, Lease, MOVE_HISTORY, Migration, Node, Phase, Response, State, Volume,
};

/// Applies one command, or leaves the state untouched and says why not.
pub fn apply(state: &mut State, command: Command) -> Result<Response, CommandError> {
    match command {
        Command::Batch { commands } => Ok(Response::Batch {
            results: commands.into_iter().map(|c| apply(state, c)).collect(),
        }),
        Command::RegisterNode {
            name,
            address,
            storage,
            at_ms,
        } => {
            validate_node_name(&name)?;
            let node = Node {
                name: name.clone(),
                address,
                storage,
                last_heartbeat_ms: at_ms,
                up: true,
            };
            state.nodes.insert(name, node.clone());
            Ok(Response::Node(node))
        }
        Command::Heartbeat { name, at_ms } => {
            let node = node_mut(state, &name)?;
            node.last_heartbeat_ms = node.last_heartbeat_ms.max(at_ms);
            node.up = true;
            Ok(Response::Node(node.clone()))
        }
        Command::MarkNodeDown {
            name,
            last_seen_ms,
            seen_ms,
        } => {
            let node = node_mut(state, &name)?;
            if node.last_heartbeat_ms != last_seen_ms || !node.up {
                return Ok(Response::Unchanged);
            }
            node.up = false;
            node.last_heartbeat_ms = node.last_heartbeat_ms.max(seen_ms.unwrap_or(0));
            let node = node.clone();
            Ok(node_down(state, node))
        }
        Command::CreateVolume {
            name,
            size_limit,
            owner,
            metadata,
            at_ms,
            replication,
        } => {
            if let Some(r) = replication {
                valid_replication(&name, r)?;
            }
            create_volume(state, name, size_limit, owner, metadata, at_ms, replication)
        }
        Command::DeleteVolume { name } => delete_volume(state, &name),
        Command::SetOwner { name, owner } => {
            known_node(state, &owner)?;
            not_moving(state, &name)?;
            if state
                .volumes
                .get(&name)
                .is_some_and(|v| v.owner.as_deref() != Some(&owner))
            {
                not_leased(state, &name)?;
            }
            let v = volume_mut(state, &name)?;
            set_owner(v, owner);
            Ok(Response::Volume(v.clone()))
        }
        Command::SetReplica {
            name,
            node,
            snapshot,
            taken_ms,
        } => {
            known_node(state, &node)?;
            let v = volume_mut(state, &name)?;
            v.replicas.retain(|r| r.node != node);
            v.replicas.push(super::Replica {
                node,
                snapshot,
                taken_ms,
                diverged: false,
            });
            v.replicas.sort_by(|a, b| a.node.cmp(&b.node));
            Ok(Response::Volume(v.clone()))
        }
        Command::PromoteVolume {
            name,
            node,
            force,
            automatic,
            at_ms,
        } => promote(state, name, node, (force, automatic), at_ms),
        Command::SetReplication { name, replication } => {
            if let Some(r) = replication {
                valid_replication(&name, r)?;
            }
            let v = volume_mut(state, &name)?;
            v.replication = replication;
            Ok(Response::Volume(v.clone()))
        }
        Command::SetSnapshotSchedule { name, schedule } => {
            if let Some(s) = schedule {
                valid_schedule(&name, s)?;
            }
            let v = volume_mut(state, &name)?;
            v.snapshot_schedule = schedule;
            Ok(Response::Volume(v.clone()))
        }
        Command::RecordSnapshot { volume, snapshot } => record_snapshot(state, &volume, snapshot),
        Command::CloneVolume {
            name,
            source,
            snapshot,
            owner,
            at_ms,
        } => clone_volume(state, name, &source, &snapshot, owner, at_ms),
        Command::ForgetSnapshot { volume, snapshot } => {
            let v = state
                .volumes
                .get(&volume)
                .ok_or_else(|| CommandError::NoSuchVolume {
                    name: volume.clone(),
                })?;
            let name = user_snapshot(v, &snapshot)?.name.clone();
            let clones = super::clones_of(state.volumes.values(), &volume, Some(&name));
            if !clones.is_empty() {
                return Err(CommandError::SnapshotHasClones {
                    volume,
                    snapshot: name,
                    clones: clones.join(", "),
                });
            }
            let v = volume_mut(state, &volume)?;
            v.snapshots.retain(|s| s.name != name);
            Ok(Response::Volume(v.clone()))
        }
        Command::SetMetadata { name, key, value } => {
            let v = volume_mut(state, &name)?;
            match value {
                Some(value) => v.metadata.insert(key, value),
                None => v.metadata.remove(&key),
            };
            Ok(Response::Volume(v.clone()))
        }
        Command::SetSizeLimit { name, size_limit } => {
            let v = volume_mut(state, &name)?;
            v.size_limit = size_limit;
            Ok(Response::Volume(v.clone()))
        }
        Command::AcquireLease(lease) => acquire_lease(state, lease),
        Command::ReleaseLease {
            volume,
            container_id,
        } => state
            .leases
            .remove(&(volume.clone(), container_id.clone()))
            .map(Response::LeaseReleased)
            .ok_or(CommandError::NoSuchLease {
                volume,
                container_id,
            }),
        Command::RecordMigration {
            volume,
            to,
            stop_containers,
            at_ms,
            trace,
        } => record_migration(state, volume, to, stop_containers, at_ms, trace),
        Command::AdvanceMigration {
            id,
            phase,
            bytes_sent,
            rounds,
            at_ms,
        } => advance_migration(state, id, phase, bytes_sent, rounds, at_ms),
        Command::FailMigration { id, error, at_ms } => {
            let m = migration_mut(state, id)?;
            if m.phase.is_terminal() {
                return Err(bad_phase(m, Phase::Failed));
            }
            m.phase = Phase::Failed;
            m.error = Some(error);
            m.cleanup_pending = true;
            m.ended_ms = at_ms;
            let m = m.clone();
            prune_moves(state, &m.volume);
            Ok(Response::Migration(m))
        }
        Command::CopyDestroyed { id, node } => Ok(copy_destroyed(state, id, &node)),
        Command::MigrationCleanedUp { id } => {
            let m = migration_mut(state, id)?;
            if m.phase != Phase::Failed {
                return Err(bad_phase(m, Phase::Failed));
            }
            m.cleanup_pending = false;
            let m = m.clone();
            prune_moves(state, &m.volume);
            Ok(Response::Migration(m))
        }
        Command::AddPool { cidr } => ip::add_pool(state, &cidr),
        Command::AllocateIp {
            pool,
            container_id,
            container_name,
            node,
        } => ip::allocate(
            state,
            &pool,
            Holder {
                container_id: &container_id,
                container_name: &container_name,
                node: &node,
            },
        ),
        Command::ClaimIp {
            address,
            container_id,
            container_name,
            node,
        } => ip::claim(
            state,
            &address,
            Holder {
                container_id: &container_id,
                container_name: &container_name,
                node: &node,
            },
        ),
        Command::ContainerStopped { container_id } => ip::stopped(state, &container_id),
        Command::ReleaseIp { container_id } => ip::release(state, &container_id),
        Command::ReclaimNode { node } => ip::reclaim(state, &node),
    }
}

fn node_mut<'a>(state: &'a mut State, name: &str) -> Result<&'a mut Node, CommandError> {
    state
        .nodes
        .get_mut(name)
        .ok_or_else(|| CommandError::UnknownNode {
            name: name.to_owned(),
        })
}

fn known_node(state: &State, name: &str) -> Result<(), CommandError> {
    if state.nodes.contains_key(name) {
        Ok(())
    } else {
        Err(CommandError::UnknownNode {
            name: name.to_owned(),
        })
    }
}

/// What the containers of a node now down held is let go: its leases are released and its
/// addresses marked stopped, so that a task rescheduled elsewhere can mount its volume and
/// claim its address. Its containers may still run behind a partition; if it comes back,
/// its agent takes the leases of its running containers again, and a volume's epoch fences
/// a stale owner.
fn node_down(state: &mut State, node: Node) -> Response {
    let mut released = Vec::new();
    state.leases.retain(|_, l| {
        let keep = l.node != node.name;
        if !keep {
            released.push(l.clone());
        }
        keep
    });
    let stopped = state
        .allocations
        .values_mut()
        .filter(|a| a.node == node.name && a.running)
        .map(|a| {
            a.running = false;
            a.clone()
        })
        .collect();
    Response::NodeDown {
        node,
        released,
        stopped,
    }
}

fn volume_mut<'a>(state: &'a mut State, name: &str) -> Result<&'a mut Volume, CommandError> {
    state
        .volumes
        .get_mut(name)
        .ok_or_else(|| CommandError::NoSuchVolume {
            name: name.to_owned(),
        })
}

fn migration_mut(state: &mut State, id: u64) -> Result<&mut Migration, CommandError> {
    state
        .migrations
        .get_mut(&id)
        .ok_or(CommandError::NoSuchMigration { id })
}

fn set_owner(v: &mut Volume, owner: String) {
    if v.owner.as_deref() != Some(owner.as_str()) {
        v.owner = Some(owner);
        v.epoch += 1;
    }
}

fn not_moving(state: &State, volume: &str) -> Result<(), CommandError> {
    match state
        .migrations
        .values()
        .find(|m| m.volume == volume && !m.phase.is_terminal())
    {
        Some(m) => Err(CommandError::VolumeMoving {
            volume: volume.to_owned(),
            migration: m.id,
        }),
        None => Ok(()),
    }
}

/// Running containers hold the volume: no delete, no owner change.
fn not_leased(state: &State, volume: &str) -> Result<(), CommandError> {
    let holders: Vec<String> = state
        .leases
        .values()
        .filter(|l| l.volume == volume)
        .map(|l| l.container_id.clone())
        .collect();
    if holders.is_empty() {
        Ok(())
    } else {
        Err(CommandError::VolumeInUse {
            volume: volume.to_owned(),
            containers: holders,
        })
    }
}

fn create_volume(
    state: &mut State,
    name: String,
    size_limit: Option<u64>,
    owner: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
    at_ms: u64,
    replication: Option<super::Replication>,
) -> Result<Response, CommandError> {
    validate_volume_name(&name)?;
    if state.volumes.contains_key(&name) {
        return Err(CommandError::VolumeExists { name });
    }
    if let Some(d) = state.deletions.values().find(|d| d.name == name) {
        let nodes = d.nodes.iter().cloned().collect::<Vec<_>>().join(", ");
        return Err(CommandError::StillDeleting { name, nodes });
    }
    if let Some(owner) = &owner {
        known_node(state, owner)?;
    }
    state.next_volume_id += 1;
    let volume = Volume {
        name: name.clone(),
        id: state.next_volume_id,
        size_limit,
        epoch: u64::from(owner.is_some()),
        owner,
        replicas: Vec::new(),
        replication,
        promotions: Vec::new(),
        snapshots: Vec::new(),
        origin: None,
        snapshot_schedule: None,
        created_ms: at_ms,
        metadata,
    };
    state.volumes.insert(name, volume.clone());
    Ok(Response::Volume(volume))
}

/// `PromoteVolume`: `node`'s replica becomes the owner at a new epoch; the old owner stays
/// recorded as a diverged replica; the promotion is kept in the volume's history.
fn promote(
    state: &mut State,
    name: String,
    node: String,
    (force, automatic): (bool, bool),
    at_ms: u64,
) -> Result<Response, CommandError> {
    known_node(state, &node)?;
    not_moving(state, &name)?;
    let v = state
        .volumes
        .get(&name)
        .ok_or_else(|| CommandError::NoSuchVolume { name: name.clone() })?;
    let owner = v.owner.clone().ok_or_else(|| CommandError::NoOwner {
        volume: name.clone(),
    })?;
    if owner == node {
        return Err(CommandError::AlreadyThere { volume: name, node });
    }
    let usable = |r: &&super::Replica| !r.snapshot.is_empty() && !r.diverged;
    let Some(replica) = v
        .replicas
        .iter()
        .filter(usable)
        .find(|r| r.node == node)
        .cloned()
    else {
        let usable: Vec<&str> = v
            .replicas
            .iter()
            .filter(usable)
            .map(|r| r.node.as_str())
            .collect();
        return Err(CommandError::NotAReplica {
            volume: name,
            node,
            replicas: if usable.is_empty() {
                "none".to_owned()
            } else {
                usable.join(", ")
            },
        });
    };
    if !state.is_up(&node) {
        return Err(CommandError::DestinationDown { node });
    }
    if state.is_up(&owner) {
        if !force {
            let age = match replica.taken_ms {
                Some(t) => format!("its data is {} s old", at_ms.saturating_sub(t) / 1000),
                None => "its age is unknown".to_owned(),
            };
            return Err(CommandError::OwnerUp {
                volume: name,
                owner,
                age,
            });
        }
        // A running container on the owner would go on writing to a copy that is no
        // longer the volume.
        not_leased(state, &name)?;
    }
    let v = volume_mut(state, &name)?;
    set_owner(v, node.clone());
    v.replicas.retain(|r| r.node != node && r.node != owner);
    v.replicas.push(super::Replica {
        node: owner.clone(),
        snapshot: replica.snapshot.clone(),
        taken_ms: None,
        diverged: true,
    });
    v.replicas.sort_by(|a, b| a.node.cmp(&b.node));
    v.promotions.push(super::Promotion {
        at_ms,
        from: owner,
        to: node,
        epoch: v.epoch,
        snapshot: replica.snapshot,
        taken_ms: replica.taken_ms,
        forced: force,
        automatic,
    });
    let excess = v.promotions.len().saturating_sub(super::PROMOTION_HISTORY);
    v.promotions.drain(..excess);
    Ok(Response::Volume(v.clone()))
}

/// A snapshot label follows the snapshot naming rule and leaves room for the
/// [`USER_SNAPSHOT_PREFIX`](super::USER_SNAPSHOT_PREFIX) within 63 characters.
pub fn validate_snapshot_label(label: &str) -> Result<(), CommandError> {
    let name = super::user_snapshot_name(Some(label), 0);
    let fits = foundation::names::check(foundation::names::NameKind::Snapshot, label).is_ok()
        && foundation::names::check(foundation::names::NameKind::Snapshot, &name).is_ok();
    if fits {
        Ok(())
    } else {
        Err(CommandError::InvalidSnapshotLabel {
            label: label.to_owned(),
        })
    }
}

/// The user snapshot of `v` called `snapshot` (name or label), or an error listing those
/// there are.
pub fn user_snapshot<'a>(
    v: &'a Volume,
    snapshot: &str,
) -> Result<&'a super::UserSnapshot, CommandError> {
    v.user_snapshot(snapshot).ok_or_else(|| {
        let known: Vec<&str> = v
            .snapshots
            .iter()
            .map(|s| s.label.as_deref().unwrap_or(&s.name))
            .collect();
        CommandError::NoSuchSnapshot {
            volume: v.name.clone(),
            snapshot: snapshot.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        }
    })
}

/// Whether `node` may take a user snapshot of `volume` now: the volume exists and `node`
/// owns it at `epoch` (`None`: at any epoch), it is up, and no move of it is under way.
pub fn may_snapshot(
    state: &State,
    volume: &str,
    node: Option<(&str, u64)>,
) -> Result<(), CommandError> {
    let v = state
        .volumes
        .get(volume)
        .ok_or_else(|| CommandError::NoSuchVolume {
            name: volume.to_owned(),
        })?;
    let owner = v.owner.clone().ok_or_else(|| CommandError::NoOwner {
        volume: volume.to_owned(),
    })?;
    if let Some((node, epoch)) = node
        && (node != owner || epoch != v.epoch)
    {
        return Err(CommandError::OwnerChanged {
            volume: volume.to_owned(),
            owner,
            epoch: v.epoch,
        });
    }
    not_moving(state, volume)?;
    if state.nodes.get(&owner).is_some_and(|n| !n.up) {
        return Err(CommandError::OwnerDown {
            volume: volume.to_owned(),
            node: owner,
        });
    }
    Ok(())
}

/// `CloneVolume`: a volume like `CreateVolume`'s, owned by the source's owner, that records
/// its origin.
fn clone_volume(
    state: &mut State,
    name: String,
    source: &str,
    snapshot: &str,
    owner: String,
    at_ms: u64,
) -> Result<Response, CommandError> {
    may_snapshot(state, source, None)?;
    let v = &state.volumes[source];
    let origin = super::Origin {
        volume: source.to_owned(),
        snapshot: user_snapshot(v, snapshot)?.name.clone(),
    };
    let current = v.owner.clone().unwrap_or_default();
    if current != owner {
        return Err(CommandError::OwnerChanged {
            volume: source.to_owned(),
            owner: current,
            epoch: v.epoch,
        });
    }
    let size_limit = v.size_limit;
    let metadata = std::collections::BTreeMap::new();
    let created = create_volume(state, name, size_limit, Some(owner), metadata, at_ms, None)?;
    let Response::Volume(mut clone) = created else {
        unreachable!("create_volume answers the volume")
    };
    clone.origin = Some(origin);
    state.volumes.insert(clone.name.clone(), clone.clone());
    Ok(Response::Volume(clone))
}

fn record_snapshot(
    state: &mut State,
    volume: &str,
    snapshot: super::UserSnapshot,
) -> Result<Response, CommandError> {
    if let Some(label) = &snapshot.label {
        validate_snapshot_label(label)?;
    }
    if snapshot.name != super::user_snapshot_name(snapshot.label.as_deref(), snapshot.taken_ms) {
        return Err(CommandError::InvalidSnapshotLabel {
            label: snapshot.name,
        });
    }
    may_snapshot(state, volume, Some((&snapshot.node, snapshot.epoch)))?;
    let v = volume_mut(state, volume)?;
    let taken = |s: &str| v.user_snapshot(s).is_some();
    if let Some(clash) = [Some(&snapshot.name), snapshot.label.as_ref()]
        .into_iter()
        .flatten()
        .find(|s| taken(s))
    {
        return Err(CommandError::SnapshotExists {
            volume: volume.to_owned(),
            snapshot: clash.clone(),
        });
    }
    v.snapshots.push(snapshot);
    Ok(Response::Volume(v.clone()))
}

/// A policy the leader can keep: 1 to [`MAX_REPLICAS`](super::MAX_REPLICAS) copies, a lag
/// of at least [`MIN_MAX_LAG_MS`](super::MIN_MAX_LAG_MS).
fn valid_replication(volume: &str, r: super::Replication) -> Result<(), CommandError> {
    let too_soon = r
        .promote_after_ms
        .is_some_and(|ms| ms < super::MIN_MAX_LAG_MS);
    if r.copies == 0
        || r.copies > super::MAX_REPLICAS
        || r.max_lag_ms < super::MIN_MAX_LAG_MS
        || too_soon
    {
        return Err(CommandError::InvalidReplication {
            volume: volume.to_owned(),
            copies: r.copies,
            max_lag_ms: r.max_lag_ms,
        });
    }
    Ok(())
}

fn valid_schedule(volume: &str, s: super::SnapshotSchedule) -> Result<(), CommandError> {
    if s.every_ms < super::MIN_SNAPSHOT_EVERY_MS
        || s.keep == 0
        || s.keep > super::MAX_SCHEDULED_KEPT
    {
        return Err(CommandError::InvalidSnapshotSchedule {
            volume: volume.to_owned(),
            every_ms: s.every_ms,
            keep: s.keep,
        });
    }
    Ok(())
}

fn delete_volume(state: &mut State, name: &str) -> Result<Response, CommandError> {
    if !state.volumes.contains_key(name) {
        return Err(CommandError::NoSuchVolume {
            name: name.to_owned(),
        });
    }
    not_leased(state, name)?;
    not_moving(state, name)?;
    let clones = super::clones_of(state.volumes.values(), name, None);
    if !clones.is_empty() {
        return Err(CommandError::VolumeHasClones {
            volume: name.to_owned(),
            clones: clones.join(", "),
        });
    }
    let v = state.volumes.remove(name).expect("checked above");
    let mut nodes: std::collections::BTreeSet<String> = v.owner.iter().cloned().collect();
    nodes.extend(v.replicas.iter().map(|r| r.node.clone()));
    for m in state.migrations.values_mut() {
        if m.volume == name && m.cleanup_pending {
            // The deletion destroys what the failed move left, with the rest.
            nodes.insert(m.to.clone());
            m.cleanup_pending = false;
        }
    }
    // A new volume of this name starts with no move history.
    state.migrations.retain(|_, m| m.volume != name);
    if !nodes.is_empty() {
        let name = name.to_owned();
        state
            .deletions
            .insert(v.id, super::Deletion { name, nodes });
    }
    Ok(Response::VolumeDeleted(v))
}

fn copy_destroyed(state: &mut State, id: u64, node: &str) -> Response {
    if let Some(d) = state.deletions.get_mut(&id) {
        d.nodes.remove(node);
        if d.nodes.is_empty() {
            state.deletions.remove(&id);
        }
    }
    Response::Unchanged
}

fn acquire_lease(state: &mut State, lease: Lease) -> Result<Response, CommandError> {
    if lease.container_id.is_empty() {
        return Err(CommandError::EmptyContainerId);
    }
    known_node(state, &lease.node)?;
    let v = state
        .volumes
        .get(&lease.volume)
        .ok_or_else(|| CommandError::NoSuchVolume {
            name: lease.volume.clone(),
        })?;
    match &v.owner {
        None => {
            return Err(CommandError::NoOwner {
                volume: lease.volume,
            });
        }
        Some(owner) if *owner != lease.node => {
            return Err(CommandError::NotOwner {
                volume: lease.volume,
                owner: owner.clone(),
                node: lease.node,
            });
        }
        Some(_) => {}
    }
    let key = (lease.volume.clone(), lease.container_id.clone());
    state.leases.insert(key, lease.clone());
    Ok(Response::Lease(lease))
}

fn record_migration(
    state: &mut State,
    volume: String,
    to: String,
    stop_containers: bool,
    at_ms: Option<u64>,
    trace: BTreeMap<String, String>,
) -> Result<Response, CommandError> {
    known_node(state, &to)?;
    let v = state
        .volumes
        .get(&volume)
        .ok_or_else(|| CommandError::NoSuchVolume {
            name: volume.clone(),
        })?;
    // A volume made without an owner holds data nowhere: "moving" it gives it to the node
    // at once, recorded as a move that is already done (what the agents' "no owner node
    // yet" error tells the user to run).
    let Some(from) = v.owner.clone() else {
        not_moving(state, &volume)?;
        state.next_migration_id += 1;
        let m = Migration {
            id: state.next_migration_id,
            volume: volume.clone(),
            from: to.clone(),
            to: to.clone(),
            phase: Phase::Done,
            bytes_sent: 0,
            rounds: 0,
            error: None,
            stop_containers,
            cleanup_pending: false,
            started_ms: at_ms,
            handoff_ms: None,
            ended_ms: at_ms,
            trace,
        };
        set_owner(volume_mut(state, &volume)?, to);
        state.migrations.insert(m.id, m.clone());
        prune_moves(state, &volume);
        return Ok(Response::Migration(m));
    };
    if from == to {
        return Err(CommandError::AlreadyThere { volume, node: to });
    }
    not_moving(state, &volume)?;
    if state.nodes.get(&from).is_some_and(|n| !n.up) {
        return Err(CommandError::OwnerDown { volume, node: from });
    }
    if state.nodes.get(&to).is_some_and(|n| !n.up) {
        return Err(CommandError::DestinationDown { node: to });
    }
    state.next_migration_id += 1;
    let m = Migration {
        id: state.next_migration_id,
        volume,
        from,
        to,
        phase: Phase::Copying,
        bytes_sent: 0,
        rounds: 0,
        error: None,
        stop_containers,
        cleanup_pending: false,
        started_ms: at_ms,
        handoff_ms: None,
        ended_ms: None,
        trace,
    };
    state.migrations.insert(m.id, m.clone());
    Ok(Response::Migration(m))
}

fn bad_phase(m: &Migration, to: Phase) -> CommandError {
    CommandError::BadPhase {
        id: m.id,
        from: m.phase.as_str().to_owned(),
        to: to.as_str().to_owned(),
    }
}

fn advance_migration(
    state: &mut State,
    id: u64,
    phase: Phase,
    bytes_sent: u64,
    rounds: u32,
    at_ms: Option<u64>,
) -> Result<Response, CommandError> {
    let m = migration_mut(state, id)?;
    // Forward only; repeating the current phase records progress.
    if m.phase.is_terminal() || phase < m.phase || phase == Phase::Failed {
        return Err(bad_phase(m, phase));
    }
    let volume = m.volume.clone();
    // The handoff commits only once the source's containers let go of the volume.
    if phase == Phase::Done {
        not_leased(state, &volume)?;
    }
    // The users' downtime starts at the first handoff step that finds no container holding
    // the volume (the driver records one as soon as they let go).
    let unheld = !state.leases.values().any(|l| l.volume == volume);
    let m = migration_mut(state, id)?;
    m.phase = phase;
    m.bytes_sent = m.bytes_sent.max(bytes_sent);
    m.rounds = m.rounds.max(rounds);
    if phase == Phase::Handoff && unheld && m.handoff_ms.is_none() {
        m.handoff_ms = at_ms;
    }
    if phase == Phase::Done {
        m.ended_ms = at_ms;
    }
    let m = m.clone();
    if phase == Phase::Done {
        let v = volume_mut(state, &m.volume)?;
        let from = m.from.clone();
        set_owner(v, m.to.clone());
        if !v.replicas.iter().any(|r| r.node == from) {
            v.replicas.push(super::Replica {
                node: from,
                snapshot: String::new(),
                taken_ms: at_ms,
                diverged: false,
            });
        }
        v.replicas.retain(|r| r.node != m.to);
        prune_moves(state, &m.volume);
    }
    Ok(Response::Migration(m))
}

/// Keeps `volume`'s move history bounded: of its finished moves, only the [`MOVE_HISTORY`]
/// newest (by id) are kept, and older ones go unless their clean-up is still pending. A
/// move under way is never removed.
fn prune_moves(state: &mut State, volume: &str) {
    let old: Vec<u64> = state
        .migrations
        .values()
        .rev()
        .filter(|m| m.volume == volume && m.phase.is_terminal())
        .skip(MOVE_HISTORY)
        .filter(|m| !m.cleanup_pending)
        .map(|m| m.id)
        .collect();
    for id in old {
        state.migrations.remove(&id);
    }
}
