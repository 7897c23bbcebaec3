//! The rows of `tests/authorization/main.rs`: who calls, and for each RPC of the NodeApi,
//! OperatorApi, Raft and Agent services who may call it and one call of it. Written by hand, independently of the
//! authorization tables they check.

#![allow(dead_code)]

use proto::agent as apb;
use proto::agent::agent_client::AgentClient;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use proto::raft::raft_client::RaftClient;
use proto::raft::{Forwarded, MetricsRequest, RaftPayload};
pub use testkit::cluster::register;
use tonic::Status;
use tonic::transport::Channel;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    NoCert,
    ForeignCa,
    /// A node certificate for another node than the one the call is about.
    NodeOther,
    /// The node certificate of the node the call is about.
    NodeSelf,
    User,
    Member,
}

use Who::*;

/// The order matters only for calls that change state: a node acting for another node calls
/// first, while the objects it must not touch are still there.
pub const EVERY: [Who; 6] = [NoCert, ForeignCa, NodeOther, NodeSelf, User, Member];
pub const ALL_ROLES: &[Who] = &[NodeOther, NodeSelf, User, Member];
pub const OWN: &[Who] = &[NodeSelf, User, Member];
pub const OPERATORS: &[Who] = &[User, Member];
pub const MEMBERS: &[Who] = &[Member];
pub const NODES: &[Who] = &[NodeOther, NodeSelf];
pub const NODES_AND_MEMBERS: &[Who] = &[NodeOther, NodeSelf, Member];

/// The node the Control calls are about, the other node, and the agent's node.
pub const N1: &str = "n1";
pub const N2: &str = "n2";
pub const AGENT: &str = "agent-a";
pub const VOLUME: &str = "vol-n1";
pub const LEASED_BY: &str = "c-lease";
pub const HOLDER: &str = "c-ip";
pub const POOL: &str = "10.77.0.0/24";

pub fn ok<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    r.map(|_| ())
}

/// Who may call each NodeApi RPC, and one call of it about node `n1` and its objects.
pub async fn node_call(
    c: &mut NodeApiClient<Channel>,
    method: &str,
) -> (&'static [Who], Result<(), Status>) {
    let lease = pb::Lease {
        volume: VOLUME.into(),
        node: N1.into(),
        container_id: LEASED_BY.into(),
        ..Default::default()
    };
    let holder = pb::ContainerId {
        container_id: HOLDER.into(),
    };
    match method {
        "RegisterNode" => (OWN, ok(c.register_node(register(N1)).await)),
        "Heartbeat" => (
            OWN,
            ok(c.heartbeat(pb::HeartbeatRequest { name: N1.into() }).await),
        ),
        "ListNodes" => (ALL_ROLES, ok(c.list_nodes(pb::Empty {}).await)),
        "CreateVolume" => (OWN, ok(c.create_volume(volume("vol-new", Some(N1))).await)),
        // Leased, so an allowed call is refused for that reason and the volume stays.
        "DeleteVolume" => (OWN, ok(c.delete_volume(name(VOLUME)).await)),
        "GetVolume" => (ALL_ROLES, ok(c.get_volume(name(VOLUME)).await)),
        "ListVolumes" => (ALL_ROLES, ok(c.list_volumes(pb::Empty {}).await)),
        "AcquireLease" => (OWN, ok(c.acquire_lease(lease).await)),
        "ReleaseLease" => (OWN, ok(c.release_lease(lease).await)),
        "ListLeases" => (ALL_ROLES, ok(c.list_leases(pb::Empty {}).await)),
        // The volume is on n1 already: an allowed call is refused for that reason.
        "MoveVolume" => {
            let req = pb::MoveVolumeRequest {
                name: VOLUME.into(),
                to: N1.into(),
                stop_containers: false,
            };
            (OWN, ok(c.move_volume(req).await))
        }
        "AllocateIp" => {
            let req = pb::AllocateRequest {
                pool: POOL.into(),
                container_id: HOLDER.into(),
                container_name: "web".into(),
                node: N1.into(),
                dry_run: false,
            };
            (OWN, ok(c.allocate_ip(req).await))
        }
        "ClaimIp" => (OWN, ok(c.claim_ip(claim(N1)).await)),
        "ContainerStopped" => (OWN, ok(c.container_stopped(holder).await)),
        "ReleaseIp" => (OWN, ok(c.release_ip(holder).await)),
        "ListIps" => (ALL_ROLES, ok(c.list_ips(pb::Empty {}).await)),
        "Watch" => (ALL_ROLES, ok(c.watch(pb::WatchRequest {}).await)),
        other => panic!(
            "NodeApi/{other} has no row in this test: add one, and a rule to control/src/server/auth.rs"
        ),
    }
}

/// Who may call each OperatorApi RPC, and one call of it.
pub async fn operator_call(
    c: &mut OperatorApiClient<Channel>,
    method: &str,
) -> (&'static [Who], Result<(), Status>) {
    match method {
        "VolumeUsage" => (OPERATORS, ok(c.volume_usage(pb::Empty {}).await)),
        "AddPool" => (
            OPERATORS,
            ok(c.add_pool(pb::AddPoolRequest { cidr: POOL.into() }).await),
        ),
        "SetReplication" => {
            let req = pb::SetReplicationRequest {
                name: VOLUME.into(),
                replication: None,
            };
            (OPERATORS, ok(c.set_replication(req).await))
        }
        "SetSnapshotSchedule" => {
            let req = pb::SetSnapshotScheduleRequest {
                name: VOLUME.into(),
                schedule: None,
            };
            (OPERATORS, ok(c.set_snapshot_schedule(req).await))
        }
        // The owner n1 is up and n2 holds no replica: an allowed call is refused by the state
        // (not a replica), never by authorization, and changes nothing.
        "PromoteVolume" => {
            let req = pb::PromoteVolumeRequest {
                name: VOLUME.into(),
                node: "n2".into(),
                force: false,
            };
            (OPERATORS, ok(c.promote_volume(req).await))
        }
        // An unknown volume, an unknown snapshot: an allowed call is refused by the state
        // (not found), never by authorization, and reaches no agent.
        "SnapshotVolume" => {
            let req = pb::SnapshotVolumeRequest {
                name: "nope".into(),
                label: Some("x".into()),
            };
            (OPERATORS, ok(c.snapshot_volume(req).await))
        }
        "CloneVolume" => {
            let req = pb::CloneVolumeRequest {
                name: "nope".into(),
                snapshot: "x".into(),
                clone: "nope-x".into(),
            };
            (OPERATORS, ok(c.clone_volume(req).await))
        }
        // An unknown volume: refused by the state before any agent is asked.
        "BackupVolume" => {
            let req = pb::BackupRequest {
                name: "nope".into(),
                base: None,
                base_guid: 0,
            };
            (OPERATORS, ok(c.backup_volume(req).await))
        }
        // An empty stream: an allowed call is refused for want of a header.
        "RestoreVolume" => (
            OPERATORS,
            ok(c.restore_volume(tokio_stream::iter(Vec::new())).await),
        ),
        "DeleteSnapshot" => {
            let req = pb::DeleteSnapshotRequest {
                name: VOLUME.into(),
                snapshot: "nope".into(),
            };
            (OPERATORS, ok(c.delete_snapshot(req).await))
        }
        "ReclaimNode" => (
            OPERATORS,
            ok(c.reclaim_node(pb::ReclaimRequest { node: N1.into() }).await),
        ),
        "Status" => (ALL_ROLES, ok(c.status(pb::Empty {}).await)),
        // Member 1 is a voter already, so an allowed call changes nothing.
        "AddMember" => {
            let req = pb::AddMemberRequest {
                id: 1,
                address: String::new(),
            };
            (OPERATORS, ok(c.add_member(req).await))
        }
        "RemoveMember" => (
            OPERATORS,
            ok(c.remove_member(pb::RemoveMemberRequest { id: 99 }).await),
        ),
        other => panic!(
            "OperatorApi/{other} has no row in this test: add one, and a rule to control/src/server/auth.rs"
        ),
    }
}

/// Who may call each Raft RPC, and one call of it (payloads that do not decode, so an
/// allowed call changes nothing).
pub async fn raft_call(
    c: &mut RaftClient<Channel>,
    method: &str,
) -> (&'static [Who], Result<(), Status>) {
    let junk = || RaftPayload {
        data: b"not json".to_vec(),
    };
    let r = match method {
        "AppendEntries" => ok(c.append_entries(junk()).await),
        "Vote" => ok(c.vote(junk()).await),
        "InstallSnapshot" => ok(c.install_snapshot(junk()).await),
        "Forward" => ok(c.forward(Forwarded { data: junk().data }).await),
        "Metrics" => ok(c.metrics(MetricsRequest {}).await),
        other => panic!(
            "Raft/{other} has no row in this test: add one, and a rule to control/src/server/auth.rs"
        ),
    };
    (MEMBERS, r)
}

/// Who may call each Agent RPC, and one call of it about a volume the agent does not have.
pub async fn agent_call(
    c: &mut AgentClient<Channel>,
    method: &str,
) -> (&'static [Who], Result<(), Status>) {
    let nope = || "nope".to_owned();
    let r = match method {
        "Push" => ok(c
            .push(apb::PushRequest {
                volume: nope(),
                to_address: "127.0.0.1:9".into(),
                to_node: N2.into(),
                base_snapshot: String::new(),
                snapshot: "s1".into(),
                r#final: false,
                base_guid: 0,
            })
            .await),
        // An empty stream: an allowed call is refused for want of a header. Members relay a
        // restore into it.
        "Receive" => {
            let r = ok(c.receive(tokio_stream::iter(Vec::new())).await);
            return (NODES_AND_MEMBERS, r);
        }
        "Mount" => ok(c
            .mount(apb::MountRequest {
                volume: nope(),
                read_write: false,
                epoch: 0,
            })
            .await),
        "Unmount" => ok(c.unmount(apb::VolumeRef { volume: nope() }).await),
        "CleanUp" => ok(c
            .clean_up(apb::CleanUpRequest {
                volume: nope(),
                ..Default::default()
            })
            .await),
        "Inventory" => ok(c.inventory(apb::InventoryRequest {}).await),
        "StopContainers" => ok(c
            .stop_containers(apb::StopContainersRequest {
                volume: nope(),
                container_ids: Vec::new(),
                grace_seconds: 1,
            })
            .await),
        "Snapshot" => ok(c
            .snapshot(apb::SnapshotRequest {
                volume: nope(),
                snapshot: "u-x".into(),
            })
            .await),
        "Export" => ok(c
            .export(apb::ExportRequest {
                volume: nope(),
                snapshot: "u-x".into(),
                base: String::new(),
            })
            .await),
        "CloneSnapshot" => ok(c
            .clone_snapshot(apb::CloneRequest {
                volume: nope(),
                snapshot: "u-x".into(),
                clone: "nope-x".into(),
            })
            .await),
        other => panic!(
            "Agent/{other} has no row in this test: add one, and a rule to agent/src/transfer/auth.rs"
        ),
    };
    (MEMBERS, r)
}

pub fn volume(name: &str, owner: Option<&str>) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        owner: owner.map(str::to_owned),
        ..testkit::cluster::volume(name)
    }
}

pub fn name(name: &str) -> pb::VolumeName {
    pb::VolumeName { name: name.into() }
}

pub fn claim(node: &str) -> pb::ClaimRequest {
    pb::ClaimRequest {
        address: "10.77.0.5".into(),
        container_id: HOLDER.into(),
        container_name: "web".into(),
        node: node.into(),
        dry_run: false,
    }
}
