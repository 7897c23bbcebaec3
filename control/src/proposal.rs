//! What a member is asked to do on the leader's behalf, and what comes back. A [`Proposal`]
//! travels between members (as JSON in `Forwarded`) when a follower forwards a call to the
//! leader; the answer is the JSON of `Result<R, ExecError>`, `R` the proposal's own reply
//! type: the applied [`Response`] of a write, the [`Read::Reply`] of a read, `()` for a
//! membership change. Callers get typed replies: a write's [`Response`] becomes its
//! command's reply type through [`Applied`], in one place.

use std::net::Ipv4Addr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::soft::Soft;
use crate::state::{
    AddressRequest, Allocation, Cidr, Command, CommandError, Lease, Migration, Node, Response,
    State, Volume,
};

/// A call that must run on the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Proposal {
    /// A replicated write.
    Write(Command),
    /// A linearizable read.
    Read(Query),
    /// Add a voting member at `address`.
    AddMember {
        /// Member id.
        id: u64,
        /// Its gRPC address.
        address: String,
    },
    /// Remove a voting member.
    RemoveMember {
        /// Member id.
        id: u64,
    },
}

/// A read of the state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Query {
    /// Every node.
    Nodes,
    /// Every volume.
    Volumes,
    /// One volume.
    Volume(String),
    /// A volume's moves, newest first.
    Moves(String),
    /// Every lease.
    Leases,
    /// Pools and allocations.
    Ips,
    /// The address `ClaimIp` would give a new container on `node`, or its refusal.
    CheckClaim {
        /// The address asked for.
        address: String,
        /// The container's node.
        node: String,
    },
    /// The address `AllocateIp` would give a new container on `node`, or its refusal.
    CheckAllocation {
        /// The pool asked from.
        pool: String,
        /// The container's node.
        node: String,
    },
    /// Where a user snapshot of a volume would be taken now, or why not.
    SnapshotSite(String),
    /// What a command would answer if it were applied now; nothing is written.
    DryRun(Command),
}

/// A pool and how many of its addresses are held.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolUsage {
    /// The pool.
    pub cidr: Cidr,
    /// Held addresses.
    pub allocated: u32,
}

/// A read of the state with the one type it answers: the leader runs it on its applied
/// state (a linearizable read), a follower forwards its [`Query`] and reads the answer as
/// [`Read::Reply`].
pub trait Read: Into<Query> + Clone + Send + 'static {
    /// What the read answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// Runs the read on `state`.
    fn read(self, state: &State) -> Result<Self::Reply, CommandError>;
    /// Lays the leader's soft values of `term` ([`crate::soft`]) over the reply; most
    /// replies hold none.
    fn soften(_reply: &mut Self::Reply, _soft: &Soft, _term: u64, _now_ms: u64) {}
}

/// Every node ([`Query::Nodes`]).
#[derive(Clone, Copy, Debug)]
pub struct Nodes;

/// Every volume ([`Query::Volumes`]).
#[derive(Clone, Copy, Debug)]
pub struct Volumes;

/// A volume's moves under way and kept, newest first ([`Query::Moves`]).
#[derive(Clone, Debug)]
pub struct Moves(pub String);

/// One volume, by name ([`Query::Volume`]).
#[derive(Clone, Debug)]
pub struct VolumeNamed(pub String);

/// Every lease ([`Query::Leases`]).
#[derive(Clone, Copy, Debug)]
pub struct Leases;

/// A volume and its owner's node, if a user snapshot of it may be taken now
/// ([`Query::SnapshotSite`]; the rule is [`crate::state::apply::may_snapshot`]).
#[derive(Clone, Debug)]
pub struct SnapshotSite(pub String);

/// A command applied to a copy of the state ([`Query::DryRun`]): its refusal, if it would be
/// refused now, before work outside the state (an agent's) that it is to record.
#[derive(Clone, Debug)]
pub struct DryRun(pub Command);

/// Pools and allocations ([`Query::Ips`]).
#[derive(Clone, Copy, Debug)]
pub struct Ips;

/// The address `ClaimIp` would give a new container ([`Query::CheckClaim`]).
#[derive(Clone, Debug)]
pub struct CheckClaim {
    /// The address asked for.
    pub address: String,
    /// The container's node.
    pub node: String,
}

/// The address `AllocateIp` would give a new container ([`Query::CheckAllocation`]).
#[derive(Clone, Debug)]
pub struct CheckAllocation {
    /// The pool asked from.
    pub pool: String,
    /// The container's node.
    pub node: String,
}

/// Every pool with its usage, and every allocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IpUsage {
    /// The pools.
    pub pools: Vec<PoolUsage>,
    /// The allocations.
    pub allocations: Vec<Allocation>,
}

impl Read for Nodes {
    type Reply = Vec<Node>;
    fn read(self, s: &State) -> Result<Vec<Node>, CommandError> {
        Ok(s.nodes.values().cloned().collect())
    }
    fn soften(nodes: &mut Vec<Node>, soft: &Soft, term: u64, now_ms: u64) {
        soft.soften(term, now_ms, nodes, &mut []);
    }
}

impl Read for Moves {
    type Reply = Vec<Migration>;
    fn read(self, s: &State) -> Result<Vec<Migration>, CommandError> {
        let moves = s.migrations.values().rev();
        Ok(moves.filter(|m| m.volume == self.0).cloned().collect())
    }
    fn soften(moves: &mut Vec<Migration>, soft: &Soft, term: u64, now_ms: u64) {
        soft.soften(term, now_ms, &mut [], moves);
    }
}

impl Read for Volumes {
    type Reply = Vec<Volume>;
    fn read(self, s: &State) -> Result<Vec<Volume>, CommandError> {
        Ok(s.volumes.values().cloned().collect())
    }
}

impl Read for VolumeNamed {
    type Reply = Volume;
    fn read(self, s: &State) -> Result<Volume, CommandError> {
        s.volumes
            .get(&self.0)
            .cloned()
            .ok_or(CommandError::NoSuchVolume { name: self.0 })
    }
}

impl Read for SnapshotSite {
    type Reply = (Volume, Node);
    fn read(self, s: &State) -> Result<(Volume, Node), CommandError> {
        crate::state::apply::may_snapshot(s, &self.0, None)?;
        let v = s.volumes.get(&self.0).cloned();
        let owner = v
            .as_ref()
            .and_then(|v| s.nodes.get(v.owner.as_deref()?).cloned());
        match (v, owner) {
            (Some(v), Some(owner)) => Ok((v, owner)),
            _ => Err(CommandError::UnknownNode {
                name: String::new(),
            }),
        }
    }
}

impl Read for DryRun {
    type Reply = ();
    fn read(self, s: &State) -> Result<(), CommandError> {
        crate::state::apply(&mut s.clone(), self.0).map(drop)
    }
}

impl Read for Leases {
    type Reply = Vec<Lease>;
    fn read(self, s: &State) -> Result<Vec<Lease>, CommandError> {
        Ok(s.leases.values().cloned().collect())
    }
}

impl Read for Ips {
    type Reply = IpUsage;
    fn read(self, s: &State) -> Result<IpUsage, CommandError> {
        let pools = s
            .pools
            .iter()
            .map(|p| PoolUsage {
                cidr: *p,
                allocated: s.allocations.values().filter(|a| a.pool == *p).count() as u32,
            })
            .collect();
        Ok(IpUsage {
            pools,
            allocations: s.allocations.values().cloned().collect(),
        })
    }
}

impl Read for CheckClaim {
    type Reply = Ipv4Addr;
    fn read(self, s: &State) -> Result<Ipv4Addr, CommandError> {
        s.check_address(AddressRequest::Explicit(&self.address), &self.node)
    }
}

impl Read for CheckAllocation {
    type Reply = Ipv4Addr;
    fn read(self, s: &State) -> Result<Ipv4Addr, CommandError> {
        s.check_address(AddressRequest::Pool(&self.pool), &self.node)
    }
}

impl From<Nodes> for Query {
    fn from(_: Nodes) -> Self {
        Query::Nodes
    }
}

impl From<Volumes> for Query {
    fn from(_: Volumes) -> Self {
        Query::Volumes
    }
}

impl From<VolumeNamed> for Query {
    fn from(v: VolumeNamed) -> Self {
        Query::Volume(v.0)
    }
}

impl From<Moves> for Query {
    fn from(m: Moves) -> Self {
        Query::Moves(m.0)
    }
}

impl From<SnapshotSite> for Query {
    fn from(v: SnapshotSite) -> Self {
        Query::SnapshotSite(v.0)
    }
}

impl From<DryRun> for Query {
    fn from(d: DryRun) -> Self {
        Query::DryRun(d.0)
    }
}

impl From<Leases> for Query {
    fn from(_: Leases) -> Self {
        Query::Leases
    }
}

impl From<Ips> for Query {
    fn from(_: Ips) -> Self {
        Query::Ips
    }
}

impl From<CheckClaim> for Query {
    fn from(c: CheckClaim) -> Self {
        Query::CheckClaim {
            address: c.address,
            node: c.node,
        }
    }
}

impl From<CheckAllocation> for Query {
    fn from(c: CheckAllocation) -> Self {
        Query::CheckAllocation {
            pool: c.pool,
            node: c.node,
        }
    }
}

/// What a write's [`Response`] is read as: the one place where the state machine's answer
/// becomes the typed reply of a command (a node for `RegisterNode`, a volume for
/// `CreateVolume`, ...).
pub trait Applied: Sized {
    /// What the caller expected, for the error when the answer is something else.
    const WHAT: &'static str;
    /// The reply, or the response itself when it is not one.
    fn from_response(r: Response) -> Result<Self, Box<Response>>;
}

impl Applied for Response {
    const WHAT: &'static str = "response";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        Ok(r)
    }
}

impl Applied for Node {
    const WHAT: &'static str = "node";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Node(n) => Ok(n),
            r => Err(Box::new(r)),
        }
    }
}

impl Applied for Volume {
    const WHAT: &'static str = "volume";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Volume(v) | Response::VolumeDeleted(v) => Ok(v),
            r => Err(Box::new(r)),
        }
    }
}

impl Applied for Lease {
    const WHAT: &'static str = "lease";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Lease(l) | Response::LeaseReleased(l) => Ok(l),
            r => Err(Box::new(r)),
        }
    }
}

impl Applied for Migration {
    const WHAT: &'static str = "migration";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Migration(m) => Ok(m),
            r => Err(Box::new(r)),
        }
    }
}

impl Applied for Cidr {
    const WHAT: &'static str = "pool";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Pool(c) => Ok(c),
            r => Err(Box::new(r)),
        }
    }
}

impl Applied for Allocation {
    const WHAT: &'static str = "allocation";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Allocation(a) => Ok(a),
            r => Err(Box::new(r)),
        }
    }
}

impl Applied for Vec<Allocation> {
    const WHAT: &'static str = "list of allocations";
    fn from_response(r: Response) -> Result<Self, Box<Response>> {
        match r {
            Response::Allocations(all) | Response::AllocationsReleased(all) => Ok(all),
            r => Err(Box::new(r)),
        }
    }
}

/// The typed reply of an applied write.
pub fn applied<R: Applied>(r: Response) -> Result<R, ExecError> {
    R::from_response(r).map_err(|r| ExecError::Mismatch {
        expected: R::WHAT.to_owned(),
        got: format!("{r:?}"),
    })
}

/// Why a proposal did not go through.
#[derive(Clone, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum ExecError {
    /// The state machine refused the command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// This member is not the leader.
    #[error("not the leader; the leader is {}", leader_text(.leader))]
    NotLeader {
        /// The leader, if known: (id, address).
        leader: Option<(u64, String)>,
    },
    /// No leader could be found or the write did not commit in time.
    #[error(
        "no quorum: the call did not complete within {timeout_ms} ms ({detail}); a majority of control members must be up and reachable (check `flockerctl cluster status`)"
    )]
    NoQuorum {
        /// The deadline.
        timeout_ms: u64,
        /// What was last seen.
        detail: String,
    },
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// openraft stopped or failed.
    #[error("raft failure: {0}")]
    Raft(String),
    /// The state machine answered a write with another kind of object than its command
    /// returns (a bug).
    #[error("the state machine answered {got} where a {expected} was expected")]
    Mismatch {
        /// What the command returns.
        expected: String,
        /// What came back.
        got: String,
    },
}

fn leader_text(leader: &Option<(u64, String)>) -> String {
    match leader {
        Some((id, addr)) => format!("member {id} at {addr}"),
        None => "not known yet (an election is under way)".to_owned(),
    }
}
