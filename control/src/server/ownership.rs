//! "A node acts only on its own node's objects" for objects a request names by id or name:
//! the stored lease, allocations or volume must be held on the confined caller's node. Each
//! check reads the leader's state (a linearizable read) just before the write; callers that
//! are not confined ([`Caller::confined_to`] is `None`) skip it.
//!
//! Between the read and the write the holder cannot change in a way that matters: a lease's
//! node is the volume's owner, which cannot change while the lease is held; an allocation's
//! node changes only when the same container id claims again, which a node may only do for a
//! container held on itself; a volume's owner changes only through a move, and a volume
//! under way to another node cannot be deleted.

use proto::authz::Caller;
use tonic::Status;

use super::status::to_status;
use crate::member::Member;
use crate::proposal::{Ips, Leases, Read, VolumeNamed};

async fn read<Q: Read>(member: &Member, query: Q) -> Result<Q::Reply, Status> {
    member.read(query).await.map_err(to_status)
}

/// Every address `container_id` holds must be held on the caller's node.
pub async fn allocations(
    member: &Member,
    caller: &Caller,
    container_id: &str,
) -> Result<(), Status> {
    let Some(own) = caller.confined_to() else {
        return Ok(());
    };
    let allocations = read(member, Ips).await?.allocations;
    match allocations
        .iter()
        .find(|a| a.container_id == container_id && a.node != own)
    {
        Some(a) => Err(Status::permission_denied(format!(
            "certificate for node {own:?} cannot act for container {container_id:?}: its address {} is held on node {:?}",
            a.address, a.node
        ))),
        None => Ok(()),
    }
}

/// The lease of `container_id` on `volume`, if there is one, must be held on the caller's
/// node (a missing lease is left for the write to report).
pub async fn lease(
    member: &Member,
    caller: &Caller,
    volume: &str,
    container_id: &str,
) -> Result<(), Status> {
    if caller.confined_to().is_none() {
        return Ok(());
    }
    let leases = read(member, Leases).await?;
    match leases
        .iter()
        .find(|l| l.volume == volume && l.container_id == container_id)
    {
        Some(l) => caller.acts_for(&l.node),
        None => Ok(()),
    }
}

/// `name` must be owned by the caller's node (a missing volume is left for the write to
/// report).
pub async fn volume(member: &Member, caller: &Caller, name: &str) -> Result<(), Status> {
    let Some(own) = caller.confined_to() else {
        return Ok(());
    };
    let v = match read(member, VolumeNamed(name.to_owned())).await {
        Ok(v) => v,
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(()),
        Err(s) => return Err(s),
    };
    if v.owner.as_deref() == Some(own) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "certificate for node {own:?} may delete only volumes it owns; {name:?} is owned by {}: ask an operator (`flockerctl volume rm`)",
        v.owner.map_or("nobody".to_owned(), |o| format!("{o:?}"))
    )))
}
