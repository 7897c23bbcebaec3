//! What a member is asked to do on the leader's behalf, and what comes back. These travel
//! between members (as JSON in `Forwarded`) when a follower forwards a call to the leader.

use serde::{Deserialize, Serialize};

use crate::state::{Allocation, Cidr, Command, CommandError, Lease, Node, Response, Volume};

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
}

/// A pool and how many of its addresses are held.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolUsage {
    /// The pool.
    pub cidr: Cidr,
    /// Held addresses.
    pub allocated: u32,
}

/// What a proposal returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    /// A write was committed and applied.
    Applied(Response),
    /// Nodes.
    Nodes(Vec<Node>),
    /// Volumes.
    Volumes(Vec<Volume>),
    /// One volume.
    Volume(Volume),
    /// Leases.
    Leases(Vec<Lease>),
    /// Pools and allocations.
    Ips(Vec<PoolUsage>, Vec<Allocation>),
    /// A membership change was committed.
    MembershipChanged,
    /// The address a check found.
    Address(std::net::Ipv4Addr),
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
}

fn leader_text(leader: &Option<(u64, String)>) -> String {
    match leader {
        Some((id, addr)) => format!("member {id} at {addr}"),
        None => "not known yet (an election is under way)".to_owned(),
    }
}
