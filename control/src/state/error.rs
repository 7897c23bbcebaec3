//! Why a command was rejected. Every variant names the thing at fault and, where it helps,
//! what to do about it.

use serde::{Deserialize, Serialize};

/// A command the state machine refused. Serialised into the Raft log's responses, so it
/// crosses members unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    /// Volume name fails `[a-z0-9][a-z0-9_.-]{0,62}`.
    #[error(
        "invalid volume name {name:?}: use 1 to 63 characters from a-z, 0-9, '_', '.', '-', starting with a letter or digit"
    )]
    InvalidVolumeName {
        /// The name given.
        name: String,
    },
    /// Node name fails `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`.
    #[error("invalid node name {name:?}: use 1 to 63 characters from A-Z, a-z, 0-9, '_', '.', '-'")]
    InvalidNodeName {
        /// The name given.
        name: String,
    },
    /// A volume of that name exists.
    #[error("volume {name:?} already exists (inspect it with `flockerctl volume inspect {name}`)")]
    VolumeExists {
        /// The name.
        name: String,
    },
    /// A volume of that name was deleted and a node that held a copy has not destroyed it.
    #[error(
        "volume {name:?} was deleted and its copy on {nodes} is not destroyed yet (that agent is down?); create it again once that agent is back, or choose another name"
    )]
    StillDeleting {
        /// The name.
        name: String,
        /// The nodes, comma-separated.
        nodes: String,
    },
    /// A replication policy outside what the leader can keep.
    #[error(
        "invalid replication for volume {volume:?}: {copies} replicas with a max lag of {max_lag_ms} ms; ask for 1 to 8 replicas (`--replicas 0` is spelled `volume set NAME --no-replication`), a max lag of at least 1s and no automatic promotion sooner than 1s"
    )]
    InvalidReplication {
        /// The volume.
        volume: String,
        /// Replicas asked for.
        copies: u32,
        /// Lag asked for.
        max_lag_ms: u64,
    },
    /// A snapshot schedule outside what the leader keeps.
    #[error(
        "invalid snapshot schedule for volume {volume:?}: every {every_ms} ms keeping {keep}; ask for a snapshot at most every 1s and to keep 1 to 1000 of them (`volume set NAME --no-snapshot-schedule` removes the schedule)"
    )]
    InvalidSnapshotSchedule {
        /// The volume.
        volume: String,
        /// Interval asked for.
        every_ms: u64,
        /// How many to keep, asked for.
        keep: u32,
    },
    /// A promotion while the owner is up, without `--force`.
    #[error(
        "volume {volume:?}'s owner {owner:?} is up: move the volume instead (`flockerctl volume move {volume} --to NODE`), or promote with --force, losing the writes made on {owner:?} since the replica's snapshot ({age})"
    )]
    OwnerUp {
        /// The volume.
        volume: String,
        /// Its owner.
        owner: String,
        /// The replica's data age, for people.
        age: String,
    },
    /// Promoting a node that holds no usable copy.
    #[error(
        "node {node:?} holds no up-to-date replica of volume {volume:?} (replicas: {replicas}); promote one of them"
    )]
    NotAReplica {
        /// The volume.
        volume: String,
        /// The node.
        node: String,
        /// The volume's usable replicas, comma-separated (`none` if none).
        replicas: String,
    },
    /// No such volume.
    #[error("no volume named {name:?} (list volumes with `flockerctl volume ls`)")]
    NoSuchVolume {
        /// The name.
        name: String,
    },
    /// No such node.
    #[error(
        "unknown node {name:?}: its agent has not registered (list nodes with `flockerctl node ls`)"
    )]
    UnknownNode {
        /// The name.
        name: String,
    },
    /// The volume is held by running containers.
    #[error("volume {volume:?} is in use by container(s) {containers:?}: stop them first")]
    VolumeInUse {
        /// The volume.
        volume: String,
        /// Holders.
        containers: Vec<String>,
    },
    /// The volume is being moved.
    #[error("volume {volume:?} is being moved (migration {migration}): wait for it or fail it")]
    VolumeMoving {
        /// The volume.
        volume: String,
        /// The migration id.
        migration: u64,
    },
    /// The volume has no owner, so it cannot be leased or moved.
    #[error(
        "volume {volume:?} has no owner node: give it one with `flockerctl volume move {volume} --to NODE`"
    )]
    NoOwner {
        /// The volume.
        volume: String,
    },
    /// A lease must be taken on the owner node.
    #[error("volume {volume:?} is owned by {owner:?}, not {node:?}: move it there first")]
    NotOwner {
        /// The volume.
        volume: String,
        /// Its owner.
        owner: String,
        /// The node that asked.
        node: String,
    },
    /// No such lease.
    #[error("container {container_id:?} holds no lease on volume {volume:?}")]
    NoSuchLease {
        /// The volume.
        volume: String,
        /// The container.
        container_id: String,
    },
    /// The volume's owner is down: its data cannot be copied from there.
    #[error(
        "volume {volume:?} is on node {node:?}, which is down: its data cannot be copied until \
         {node:?} is back (start its agent); the volume stays on {node:?}"
    )]
    OwnerDown {
        /// The volume.
        volume: String,
        /// Its owner.
        node: String,
    },
    /// A move's destination is down.
    #[error("node {node:?} is down: nothing can be moved to it until its agent is back")]
    DestinationDown {
        /// The destination.
        node: String,
    },
    /// Moving a volume to where it is.
    #[error("volume {volume:?} is already on node {node:?}")]
    AlreadyThere {
        /// The volume.
        volume: String,
        /// The node.
        node: String,
    },
    /// No such migration.
    #[error("no migration with id {id}")]
    NoSuchMigration {
        /// The id.
        id: u64,
    },
    /// A phase change that does not go forward.
    #[error("migration {id} cannot go from {from} to {to}")]
    BadPhase {
        /// The migration.
        id: u64,
        /// Its phase.
        from: String,
        /// The phase asked for.
        to: String,
    },
    /// CIDR text that does not parse.
    #[error("invalid CIDR {cidr:?}: write it as a.b.c.d/len with len from 1 to 30")]
    InvalidCidr {
        /// The text.
        cidr: String,
    },
    /// Address text that does not parse.
    #[error("invalid IPv4 address {address:?}")]
    InvalidAddress {
        /// The text.
        address: String,
    },
    /// A pool overlapping an existing one.
    #[error("pool {cidr} overlaps existing pool {existing}")]
    PoolOverlap {
        /// The new pool.
        cidr: String,
        /// The pool it overlaps.
        existing: String,
    },
    /// No such pool.
    #[error("no IP pool {cidr} (add it with AddPool; list pools with `flockerctl ip ls`)")]
    NoSuchPool {
        /// The pool asked for.
        cidr: String,
    },
    /// Every address of the pool is held.
    #[error("pool {cidr} has no free address: release some or add a pool")]
    PoolExhausted {
        /// The pool.
        cidr: String,
    },
    /// An address no pool contains.
    #[error("address {address} is outside every IP pool (list pools with `flockerctl ip ls`)")]
    AddressOutsidePools {
        /// The address.
        address: String,
    },
    /// An address held by a running container.
    #[error(
        "address {address} is held by running container {container_name:?} ({container_id}) on node {node:?}: {hint}"
    )]
    AddressHeld {
        /// The address.
        address: String,
        /// Holder id.
        container_id: String,
        /// Holder name.
        container_name: String,
        /// Holder's node.
        node: String,
        /// What to do about it.
        hint: String,
    },
    /// Reclaiming the addresses of a node that is up.
    #[error(
        "node {name:?} is up: its containers may still use their addresses; reclaim only frees a dead node's addresses (stop the agent, wait until `flockerctl node ls` shows it down, then retry)"
    )]
    NodeUp {
        /// The node.
        name: String,
    },
    /// A snapshot label that breaks the naming rule.
    #[error(
        "invalid snapshot label {label:?}: use 1 to 61 characters from a-z, 0-9, '_', '.', '-', starting with a letter or digit"
    )]
    InvalidSnapshotLabel {
        /// The label given.
        label: String,
    },
    /// The volume has a snapshot of that name or label already.
    #[error(
        "volume {volume:?} already has a snapshot {snapshot:?} (list them with `flockerctl volume snapshots {volume}`); choose another label"
    )]
    SnapshotExists {
        /// The volume.
        volume: String,
        /// The name or label.
        snapshot: String,
    },
    /// No user snapshot of that name or label.
    #[error(
        "volume {volume:?} has no snapshot {snapshot:?} (its snapshots: {known}; list them with `flockerctl volume snapshots {volume}`)"
    )]
    NoSuchSnapshot {
        /// The volume.
        volume: String,
        /// The name or label asked for.
        snapshot: String,
        /// The volume's snapshots, comma-separated (`none` if none).
        known: String,
    },
    /// The volume changed owner (a move or promotion) while a snapshot or clone was made.
    #[error(
        "volume {volume:?} changed owner meanwhile (it is now on {owner:?} at epoch {epoch}): take the snapshot, or make the clone, again"
    )]
    OwnerChanged {
        /// The volume.
        volume: String,
        /// Its owner now (empty if none).
        owner: String,
        /// Its epoch now.
        epoch: u64,
    },
    /// A snapshot that clones were made from.
    #[error(
        "snapshot {snapshot:?} of volume {volume:?} is the origin of clone(s) {clones}, which depend on it: delete them first (`flockerctl volume rm CLONE`)"
    )]
    SnapshotHasClones {
        /// The volume.
        volume: String,
        /// The snapshot.
        snapshot: String,
        /// The clones, comma-separated.
        clones: String,
    },
    /// A volume whose snapshots clones were made from.
    #[error(
        "volume {volume:?} has clone(s) {clones} made from its snapshots, which depend on it: delete them first (`flockerctl volume rm CLONE`)"
    )]
    VolumeHasClones {
        /// The volume.
        volume: String,
        /// The clones, comma-separated.
        clones: String,
    },
    /// A container id that is empty.
    #[error("container id must not be empty")]
    EmptyContainerId,
}

impl CommandError {
    /// True for errors that mean "the thing asked for does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            CommandError::NoSuchVolume { .. }
                | CommandError::UnknownNode { .. }
                | CommandError::NoSuchLease { .. }
                | CommandError::NoSuchMigration { .. }
                | CommandError::NoSuchPool { .. }
                | CommandError::NoSuchSnapshot { .. }
        )
    }

    /// True for errors that mean "it exists already or is taken".
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            CommandError::VolumeExists { .. }
                | CommandError::StillDeleting { .. }
                | CommandError::VolumeInUse { .. }
                | CommandError::VolumeMoving { .. }
                | CommandError::AddressHeld { .. }
                | CommandError::PoolOverlap { .. }
                | CommandError::SnapshotExists { .. }
        )
    }
}
