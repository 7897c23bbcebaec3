//! Commands (one per Raft log entry) and what applying one returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Allocation, Lease, Migration, Node, Phase, Replication, SnapshotSchedule, UserSnapshot, Volume,
};

/// A change to the cluster state. Times are set by the member that proposes the command, so
/// applying it is deterministic on every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Add or update a node; marks it up.
    RegisterNode {
        /// Node name.
        name: String,
        /// Agent address.
        address: String,
        /// Storage kind.
        storage: String,
        /// Now.
        at_ms: u64,
    },
    /// A node is alive. Logged only to bring a node up that is recorded down (the leader
    /// holds other heartbeats as soft state, [`crate::soft`]); older versions logged every one.
    Heartbeat {
        /// Node name.
        name: String,
        /// Now.
        at_ms: u64,
    },
    /// The leader saw no heartbeat for the node timeout; ignored unless the node is up and
    /// its replicated `last_heartbeat_ms` is still `last_seen_ms`, so a logged command that
    /// brought it up after the leader judged (which changes that time) keeps it up.
    MarkNodeDown {
        /// Node name.
        name: String,
        /// The node's replicated heartbeat time when the leader judged: with heartbeats held
        /// as the leader's soft state ([`crate::soft`]), the time it was last logged up.
        last_seen_ms: u64,
        /// The last heartbeat the leader saw (its soft state), kept as the node's last
        /// heartbeat once it is down; `None` in entries written before heartbeats were soft.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen_ms: Option<u64>,
    },
    /// Create a volume.
    CreateVolume {
        /// Volume name.
        name: String,
        /// Size limit in bytes.
        size_limit: Option<u64>,
        /// Initial owner node.
        owner: Option<String>,
        /// Labels.
        metadata: BTreeMap<String, String>,
        /// Now.
        at_ms: u64,
        /// Replicas to keep fresh from the start.
        #[serde(default)]
        replication: Option<Replication>,
    },
    /// Delete a volume that no container holds.
    DeleteVolume {
        /// Volume name.
        name: String,
    },
    /// Give a volume to another node; bumps its epoch.
    SetOwner {
        /// Volume name.
        name: String,
        /// New owner.
        owner: String,
    },
    /// Record that a node holds a copy of a volume up to a snapshot.
    SetReplica {
        /// Volume name.
        name: String,
        /// The node.
        node: String,
        /// Its newest snapshot.
        snapshot: String,
        /// When that snapshot was taken (`None` in entries written before times were kept).
        #[serde(default)]
        taken_ms: Option<u64>,
    },
    /// Make `node`'s replica the owner at a new epoch: only while the owner is down, unless
    /// `force`; the old owner stays as a diverged replica.
    PromoteVolume {
        /// Volume name.
        name: String,
        /// The replica's node.
        node: String,
        /// Even though the owner is up (writes since the replica's snapshot are lost).
        force: bool,
        /// Proposed by the leader under the volume's `promote_after` policy.
        automatic: bool,
        /// Now.
        at_ms: u64,
    },
    /// Set a volume's replication policy, or with `None` stop keeping replicas fresh (the
    /// copies stay, as stale replicas).
    SetReplication {
        /// Volume name.
        name: String,
        /// The policy.
        replication: Option<Replication>,
    },
    /// Set or remove a volume's snapshot schedule.
    SetSnapshotSchedule {
        /// Volume name.
        name: String,
        /// The schedule.
        schedule: Option<SnapshotSchedule>,
    },
    /// Record a user snapshot its owner's agent has just taken: refused unless `snapshot.node`
    /// still owns the volume at `snapshot.epoch` and no move of it is under way, and unless
    /// its name and label are new for the volume.
    RecordSnapshot {
        /// Volume name.
        volume: String,
        /// The snapshot.
        snapshot: UserSnapshot,
    },
    /// Record volume `name`, a clone of user snapshot `snapshot` of `source` that `owner` (the
    /// source's owner) has just made: refused as `CreateVolume` is, and unless the snapshot
    /// is recorded and `owner` still owns `source`.
    CloneVolume {
        /// The new volume.
        name: String,
        /// The volume cloned.
        source: String,
        /// Its user snapshot, by name or label.
        snapshot: String,
        /// The node holding the clone.
        owner: String,
        /// Now.
        at_ms: u64,
    },
    /// Forget a user snapshot (by name or label), once its owner destroyed it.
    ForgetSnapshot {
        /// Volume name.
        volume: String,
        /// The snapshot's name or label.
        snapshot: String,
    },
    /// Set (or with `None` remove) one metadata key.
    SetMetadata {
        /// Volume name.
        name: String,
        /// Key.
        key: String,
        /// Value.
        value: Option<String>,
    },
    /// Set or clear a size limit.
    SetSizeLimit {
        /// Volume name.
        name: String,
        /// Bytes.
        size_limit: Option<u64>,
    },
    /// A container on the owner node holds the volume.
    AcquireLease(Lease),
    /// The container let go.
    ReleaseLease {
        /// Volume name.
        volume: String,
        /// The container.
        container_id: String,
    },
    /// Start moving a volume from its owner to `to`.
    RecordMigration {
        /// Volume name.
        volume: String,
        /// Destination node.
        to: String,
        /// Stop the containers holding the volume at the handoff instead of waiting.
        #[serde(default)]
        stop_containers: bool,
        /// Now (`None` in entries written before times were kept).
        #[serde(default)]
        at_ms: Option<u64>,
        /// The asking request's trace context ([`Migration::trace`](crate::state::Migration)).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        trace: BTreeMap<String, String>,
    },
    /// A move progressed; reaching `done` hands the volume to the destination.
    AdvanceMigration {
        /// Migration id.
        id: u64,
        /// New phase.
        phase: Phase,
        /// Bytes sent so far.
        bytes_sent: u64,
        /// Rounds so far.
        rounds: u32,
        /// Now, by the leader's clock (`None` in entries written before times were kept).
        #[serde(default)]
        at_ms: Option<u64>,
    },
    /// A move failed; the source keeps the volume and the move's leftovers await clean-up.
    FailMigration {
        /// Migration id.
        id: u64,
        /// Why.
        error: String,
        /// Now, by the leader's clock (`None` in entries written before times were kept).
        #[serde(default)]
        at_ms: Option<u64>,
    },
    /// `node` destroyed its copy of deleted volume `id`.
    CopyDestroyed {
        /// The deleted volume's id.
        id: u64,
        /// The node.
        node: String,
    },
    /// The leftovers of failed move `id` are gone from both agents.
    MigrationCleanedUp {
        /// Migration id.
        id: u64,
    },
    /// Add an IP pool.
    AddPool {
        /// `a.b.c.d/len`.
        cidr: String,
    },
    /// Give a container a free address in a pool (idempotent per container).
    AllocateIp {
        /// Pool CIDR.
        pool: String,
        /// Container id (the key).
        container_id: String,
        /// Container name.
        container_name: String,
        /// Its node.
        node: String,
    },
    /// Give a container a given address (idempotent per container).
    ClaimIp {
        /// The address.
        address: String,
        /// Container id (the key).
        container_id: String,
        /// Container name.
        container_name: String,
        /// Its node.
        node: String,
    },
    /// The container stopped; its addresses may be claimed by another.
    ContainerStopped {
        /// Container id.
        container_id: String,
    },
    /// The container is gone; free its addresses.
    ReleaseIp {
        /// Container id.
        container_id: String,
    },
    /// A node is dead: free every address held on it. Refused while the node is up.
    ReclaimNode {
        /// Node name.
        node: String,
    },
    /// Several commands proposed at once, in one log entry (group commit, see
    /// [`crate::batch`]): each applied in turn as if alone, each with its own result
    /// ([`Response::Batch`]). Written only by the leader, and only once every member
    /// understands it.
    Batch {
        /// The commands, in the order they were proposed.
        commands: Vec<Command>,
    },
}

/// What a command changed. Each variant carries the object after the change, which is also
/// what watchers receive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// What each command of a [`Command::Batch`] did, in order.
    Batch {
        /// One result per command.
        results: Vec<Result<Response, super::CommandError>>,
    },
    /// A node changed.
    Node(Node),
    /// A volume changed.
    Volume(Volume),
    /// A volume was deleted.
    VolumeDeleted(Volume),
    /// A lease was taken.
    Lease(Lease),
    /// A lease was released.
    LeaseReleased(Lease),
    /// A migration changed.
    Migration(Migration),
    /// A pool was added.
    Pool(super::Cidr),
    /// An allocation changed.
    Allocation(Allocation),
    /// An allocation was released (only as a watch event, see [`Response::into_changes`]).
    AllocationReleased(Allocation),
    /// Several allocations changed (a container stopped); possibly none.
    Allocations(Vec<Allocation>),
    /// Allocations were released (a container removed, a node reclaimed); possibly none.
    AllocationsReleased(Vec<Allocation>),
    /// A node was marked down: its leases were released and its addresses marked stopped.
    NodeDown {
        /// The node, now down.
        node: Node,
        /// The leases its containers held.
        released: Vec<Lease>,
        /// Its addresses, now claimable.
        stopped: Vec<Allocation>,
    },
    /// Nothing a watcher sees changed (a stale mark-down, a copy of a deleted volume gone).
    Unchanged,
}

impl Response {
    /// The change as single-object changes, one per watch event: a multi-allocation
    /// response becomes one `Allocation`/`AllocationReleased` each (none when empty), and
    /// the move that gives an ownerless volume its first owner (recorded done at once) is
    /// followed by that volume as `state` has it, so that the new owner's agent makes it.
    pub fn into_changes(self, state: &super::State) -> Vec<Response> {
        match self {
            Response::Unchanged => Vec::new(),
            Response::Migration(m) if m.from == m.to => {
                let volume = state.volumes.get(&m.volume).cloned();
                let mut changes = vec![Response::Migration(m)];
                changes.extend(volume.map(Response::Volume));
                changes
            }
            Response::NodeDown {
                node,
                released,
                stopped,
            } => std::iter::once(Response::Node(node))
                .chain(released.into_iter().map(Response::LeaseReleased))
                .chain(stopped.into_iter().map(Response::Allocation))
                .collect(),
            Response::Allocations(all) => all.into_iter().map(Response::Allocation).collect(),
            Response::AllocationsReleased(all) => {
                all.into_iter().map(Response::AllocationReleased).collect()
            }
            Response::Batch { results } => results
                .into_iter()
                .flatten()
                .flat_map(|r| r.into_changes(state))
                .collect(),
            other => vec![other],
        }
    }
}
