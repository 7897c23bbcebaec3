//! The replicated cluster state as plain data, and the pure function that changes it.
//!
//! - [`command`]: the typed commands (one Raft log entry each) and their responses.
//! - [`apply`](mod@apply): `apply(&mut State, Command) -> Result<Response, CommandError>`, with no I/O.
//! - [`ip`]: CIDR arithmetic and the IP allocation rules.
//! - [`names`]: validators for volume and node names.
//! - [`error`]: [`CommandError`], what a rejected command tells its caller.

pub mod apply;
pub mod command;
pub mod error;
pub mod ip;
pub mod names;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use apply::apply;
pub use command::{Command, Response};
pub use error::CommandError;
pub use ip::{AddressRequest, Cidr};

/// How many finished moves of each volume the state keeps (its move history).
pub const MOVE_HISTORY: usize = 20;

/// A host running an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Unique node name (the name in its certificate).
    pub name: String,
    /// Where its agent listens.
    pub address: String,
    /// Storage kind, e.g. `zfs:pool` or `dir:/path`.
    pub storage: String,
    /// Last heartbeat, milliseconds since the Unix epoch (the proposing member's clock).
    pub last_heartbeat_ms: u64,
    /// False once the leader saw too many heartbeats missed.
    pub up: bool,
}

/// A node holding a read-only copy of a volume, as of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The node holding the copy.
    pub node: String,
    /// The newest snapshot it has.
    pub snapshot: String,
    /// When that snapshot was taken on the owner, milliseconds since the Unix epoch (the
    /// leader's clock): the copy holds every write made before then. `None` for replicas
    /// recorded before times were kept.
    #[serde(default)]
    pub taken_ms: Option<u64>,
    /// This node owned the volume until another was promoted while it was down: its copy may
    /// hold writes made after `snapshot` that no other copy has. Before anything is streamed
    /// to it, its agent sets that copy aside (renamed, never mounted, kept for the operator).
    #[serde(default)]
    pub diverged: bool,
}

/// A replica made the owner by `volume promote` (or by the policy's automatic promotion)
/// while the owner was down: what the volume's data is as of, and so what may be lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// When, by the proposing member's clock.
    pub at_ms: u64,
    /// The owner that was down (or, forced, up).
    pub from: String,
    /// The replica promoted.
    pub to: String,
    /// The epoch it got.
    pub epoch: u64,
    /// The snapshot it held: the volume's data is that snapshot.
    pub snapshot: String,
    /// When that snapshot was taken: writes on the old owner after this are not in it.
    pub taken_ms: Option<u64>,
    /// Promoted while the owner was up (`--force`).
    pub forced: bool,
    /// Promoted by the policy's `promote_after`, not by an operator.
    pub automatic: bool,
}

/// A snapshot an operator took (`flockerctl volume snapshot`): kept on every copy of the
/// volume (moves and replica refreshes carry it along) until the operator deletes it; the
/// retention rule never destroys one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    /// Its name on every copy: [`USER_SNAPSHOT_PREFIX`] and the label, or the time taken
    /// when it has no label.
    pub name: String,
    /// The operator's label, if given.
    #[serde(default)]
    pub label: Option<String>,
    /// When it was taken, milliseconds since the Unix epoch (the clock of the member that
    /// took the call).
    pub taken_ms: u64,
    /// The volume's epoch then.
    pub epoch: u64,
    /// The owner it was taken on.
    pub node: String,
    /// Taken by the volume's [`SnapshotSchedule`] (which prunes it), not by hand.
    #[serde(default)]
    pub scheduled: bool,
}

/// What every user snapshot's name starts with; no other snapshot (a move's `m<ID>-…`, a
/// replica refresh's `rep-<ms>`) does, so the retention rule can tell them apart even before
/// one is recorded.
pub const USER_SNAPSHOT_PREFIX: &str = "u-";

/// Whether `name` is a user snapshot's (see [`USER_SNAPSHOT_PREFIX`]).
pub fn is_user_snapshot(name: &str) -> bool {
    name.starts_with(USER_SNAPSHOT_PREFIX)
}

/// The name a user snapshot labelled `label` (or, unlabelled, taken at `taken_ms`) has on
/// every copy.
pub fn user_snapshot_name(label: Option<&str>, taken_ms: u64) -> String {
    match label {
        Some(label) => format!("{USER_SNAPSHOT_PREFIX}{label}"),
        None => format!("{USER_SNAPSHOT_PREFIX}{taken_ms}"),
    }
}

/// What a clone was made from (`flockerctl volume clone`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The volume cloned.
    pub volume: String,
    /// Its user snapshot (by name), which stays while the clone exists: ZFS keeps it busy.
    pub snapshot: String,
}

/// How many promotions of each volume the state keeps.
pub const PROMOTION_HISTORY: usize = 10;

/// A volume's replication policy: how many other nodes keep a read-only copy, and how old
/// the newest data on each may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// Copies on nodes other than the owner (1 to [`MAX_REPLICAS`]).
    pub copies: u32,
    /// The oldest a copy's snapshot may get while its node is up, in milliseconds (at least
    /// [`MIN_MAX_LAG_MS`]): the owner's writes reach it within this bound.
    pub max_lag_ms: u64,
    /// Promote the freshest replica on its own once the owner has been down this long, in
    /// milliseconds; `None`: only an operator promotes.
    #[serde(default)]
    pub promote_after_ms: Option<u64>,
}

/// A volume's snapshot schedule: the leader takes a user snapshot every `every_ms` and keeps
/// the `keep` newest of those it took (never one taken by hand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSchedule {
    /// Milliseconds between scheduled snapshots (at least [`MIN_SNAPSHOT_EVERY_MS`]).
    pub every_ms: u64,
    /// How many scheduled snapshots are kept (1 to [`MAX_SCHEDULED_KEPT`]).
    pub keep: u32,
}

/// The shortest time between scheduled snapshots.
pub const MIN_SNAPSHOT_EVERY_MS: u64 = 1000;
/// The most scheduled snapshots a schedule may keep.
pub const MAX_SCHEDULED_KEPT: u32 = 1000;

/// The most replicas a volume's policy may ask for.
pub const MAX_REPLICAS: u32 = 8;
/// The smallest `max_lag` a policy may set: one increment takes a snapshot, an inventory on
/// both sides and a stream, so a tighter bound could not be kept.
pub const MIN_MAX_LAG_MS: u64 = 1_000;

/// A volume in the global `/flocker` namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Unique name, `[a-z0-9][a-z0-9_.-]{0,62}`.
    pub name: String,
    /// Never reused id.
    pub id: u64,
    /// Size limit in bytes.
    pub size_limit: Option<u64>,
    /// The node that may mount it read-write.
    pub owner: Option<String>,
    /// Bumped on every owner change; agents mount only at the current epoch.
    pub epoch: u64,
    /// Read-only copies on other nodes: those a policy keeps fresh and those moves left.
    pub replicas: Vec<Replica>,
    /// Kept fresh on other nodes by the leader, or `None` (copies only where moves left them).
    #[serde(default)]
    pub replication: Option<Replication>,
    /// Its promotions, oldest first (the [`PROMOTION_HISTORY`] newest).
    #[serde(default)]
    pub promotions: Vec<Promotion>,
    /// Its user snapshots, oldest first.
    #[serde(default)]
    pub snapshots: Vec<UserSnapshot>,
    /// Set for a clone: the snapshot it was made from.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Snapshots taken on a schedule, or `None` (by hand only).
    #[serde(default)]
    pub snapshot_schedule: Option<SnapshotSchedule>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Free-form labels.
    pub metadata: BTreeMap<String, String>,
}

impl Volume {
    /// The user snapshot called `snapshot`: by its name or by its label.
    pub fn user_snapshot(&self, snapshot: &str) -> Option<&UserSnapshot> {
        self.snapshots
            .iter()
            .find(|s| s.name == snapshot || s.label.as_deref() == Some(snapshot))
    }
}

/// The clones made from `volume`'s snapshots (only from `snapshot`, if given), by name.
pub fn clones_of<'a>(
    volumes: impl IntoIterator<Item = &'a Volume>,
    volume: &str,
    snapshot: Option<&str>,
) -> Vec<String> {
    volumes
        .into_iter()
        .filter(|v| {
            v.origin
                .as_ref()
                .is_some_and(|o| o.volume == volume && snapshot.is_none_or(|s| o.snapshot == s))
        })
        .map(|v| v.name.clone())
        .collect()
}

/// A running container holding a volume on its owner node.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lease {
    /// The volume held.
    pub volume: String,
    /// The node the container runs on.
    pub node: String,
    /// The container.
    pub container_id: String,
    /// The container's name, without Docker's leading `/` (leases taken before names were
    /// kept have none).
    #[serde(default)]
    pub container_name: Option<String>,
    /// For a Swarm task's container: its service (`com.docker.swarm.service.name`).
    #[serde(default)]
    pub service: Option<String>,
    /// For a Swarm task's container: its task (`com.docker.swarm.task.name`, e.g.
    /// `db.1.k2j3...`).
    #[serde(default)]
    pub task: Option<String>,
}

/// Phase of a volume move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Copying while the volume stays in use.
    Copying,
    /// Users stopped, final increment being sent.
    Handoff,
    /// Owner changed to the destination.
    Done,
    /// Given up; the source still owns the volume.
    Failed,
}

impl Phase {
    /// The lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copying => "copying",
            Phase::Handoff => "handoff",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "copying" => Phase::Copying,
            "handoff" => Phase::Handoff,
            "done" => Phase::Done,
            "failed" => Phase::Failed,
            _ => return None,
        })
    }

    /// Done or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
}

/// A volume move from one node to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Unique id.
    pub id: u64,
    /// The volume moved.
    pub volume: String,
    /// Owner when the move started.
    pub from: String,
    /// Destination.
    pub to: String,
    /// Where it is.
    pub phase: Phase,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Copy rounds so far.
    pub rounds: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// The handoff stops the containers holding the volume instead of waiting for them
    /// (`volume move --stop`); replicated so that a new leader makes the same choice.
    #[serde(default)]
    pub stop_containers: bool,
    /// A failed move whose leftovers (snapshots, a staged or partial copy) are not yet
    /// removed from both agents: the leader, whichever member it is, finishes the clean-up
    /// and records it with [`Command::MigrationCleanedUp`](crate::state::Command).
    #[serde(default)]
    pub cleanup_pending: bool,
    /// When the move was recorded, milliseconds since the Unix epoch (the clock of the
    /// member that took `MoveVolume`); `None` for moves recorded before times were kept.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// When the handoff began for the volume's users: the first handoff step the leader
    /// recorded while no container held the volume (it waits for them, or stops them, first).
    #[serde(default)]
    pub handoff_ms: Option<u64>,
    /// When the move ended, done or failed (the leader's clock).
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// The W3C trace context (`traceparent`, `tracestate`) of the request that asked for
    /// the move, so that whichever member leads makes its `move` span that request's child
    /// (also a move resumed by a new leader); empty when that request was not traced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trace: BTreeMap<String, String>,
}

impl Migration {
    /// How long no container could use the volume: from the handoff to the end of the move
    /// (done, or failed and the source given back); `None` before the end or for a move that
    /// never reached the handoff.
    pub fn downtime_ms(&self) -> Option<u64> {
        Some(self.ended_ms?.saturating_sub(self.handoff_ms?))
    }
}

/// An address held by a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The address.
    pub address: std::net::Ipv4Addr,
    /// The pool it lies in.
    pub pool: Cidr,
    /// The container holding it.
    pub container_id: String,
    /// The container's name, for humans.
    pub container_name: String,
    /// Where the container runs.
    pub node: String,
    /// False once the container stopped: then another container may claim the address.
    pub running: bool,
}

/// A deleted volume whose copies some agents have not yet destroyed: the leader has each of
/// them destroy its copy (an agent that is down, when it is back) and records each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// The volume's name (a new volume of that name waits until the deletion is done).
    pub name: String,
    /// Nodes that may still hold a copy: the owner, the replicas and the targets of failed
    /// moves whose clean-up was pending.
    pub nodes: std::collections::BTreeSet<String>,
}

/// The lease map as a JSON list of leases (each lease holds its own key). Snapshots made
/// before this had no lease in them (serialising one failed), so an empty map `{}` is read
/// as no leases too.
mod leases_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Lease;

    type Leases = BTreeMap<(String, String), Lease>;

    pub fn serialize<S: Serializer>(leases: &Leases, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(leases.values())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        List(Vec<Lease>),
        Map(BTreeMap<String, Lease>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Leases, D::Error> {
        let leases = match Stored::deserialize(d)? {
            Stored::List(list) => list,
            Stored::Map(map) => map.into_values().collect(),
        };
        Ok(leases
            .into_iter()
            .map(|l| ((l.volume.clone(), l.container_id.clone()), l))
            .collect())
    }
}

/// Everything the control service replicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Volumes by name.
    pub volumes: BTreeMap<String, Volume>,
    /// Leases by (volume, container id); stored as a list (JSON keys must be strings).
    #[serde(with = "leases_as_list")]
    pub leases: BTreeMap<(String, String), Lease>,
    /// Migrations by id: every move under way or with its clean-up pending, and the
    /// [`MOVE_HISTORY`] newest finished ones of each volume (older ones are pruned).
    pub migrations: BTreeMap<u64, Migration>,
    /// IP pools.
    pub pools: Vec<Cidr>,
    /// Allocations by address (a container may hold several).
    pub allocations: BTreeMap<std::net::Ipv4Addr, Allocation>,
    /// Deletions not yet done on every node, by the deleted volume's id.
    #[serde(default)]
    pub deletions: BTreeMap<u64, Deletion>,
    /// Next volume id.
    pub next_volume_id: u64,
    /// Next migration id.
    pub next_migration_id: u64,
}

impl State {
    /// Whether node `name` is known and up.
    pub fn is_up(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|n| n.up)
    }

    /// Whether `v` has an owner and it is up.
    pub fn owner_up(&self, v: &Volume) -> bool {
        v.owner.as_deref().is_some_and(|o| self.is_up(o))
    }
}

#[cfg(test)]
mod ip_tests;
#[cfg(test)]
mod tests;
