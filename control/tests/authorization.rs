//! Every RPC of the Control, Raft and Agent services, called with every identity: a user, a
//! node acting for itself, a node acting for another node, a control member, no client
//! certificate, and a certificate from a foreign CA. The RPC lists come from the `.proto`
//! files (`proto::authz::methods_of`), so an RPC without a row here fails the test; the
//! expected answers are written here, independently of the tables they check
//! (`control/src/server/auth.rs`, `agent/src/transfer/auth.rs`).
//!
//! Denied calls must be `PERMISSION_DENIED` or `UNAUTHENTICATED` (or, without a certificate
//! from the cluster CA, fail at the TLS handshake); allowed calls may fail for other reasons
//! (`NOT_FOUND`, `INVALID_ARGUMENT`, ...) but never with a denial. Real members and a real
//! agent over mutual TLS on loopback.

mod common;
#[path = "common/hosts.rs"]
mod hosts;
#[path = "../../agent/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Cluster, Pki, Proc, eventually, free_port};
use control::ca::Role;
use control::proposal::Proposal;
use control::state::{Command as StateCommand, Phase};
use proto::agent as apb;
use proto::agent::agent_client::AgentClient;
use proto::authz::methods_of;
use proto::control as pb;
use proto::control::control_client::ControlClient;
use proto::raft::raft_client::RaftClient;
use proto::raft::{Forwarded, MetricsRequest, RaftPayload};
use proto::tls::{CONTROL_SERVER_NAME, TlsDir};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
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
const EVERY: [Who; 6] = [NoCert, ForeignCa, NodeOther, NodeSelf, User, Member];
const ALL_ROLES: &[Who] = &[NodeOther, NodeSelf, User, Member];
const OWN: &[Who] = &[NodeSelf, User, Member];
const OPERATORS: &[Who] = &[User, Member];
const MEMBERS: &[Who] = &[Member];
const NODES: &[Who] = &[NodeOther, NodeSelf];

/// The node the Control calls are about, the other node, and the agent's node.
const N1: &str = "n1";
const N2: &str = "n2";
const AGENT: &str = "agent-a";
const VOLUME: &str = "vol-n1";
const LEASED_BY: &str = "c-lease";
const HOLDER: &str = "c-ip";
const POOL: &str = "10.77.0.0/24";

/// The client TLS settings of `who`, for a server whose certificate names `server`.
fn tls(pki: &Pki, foreign: &Pki, who: Who, self_node: &str, server: &str) -> ClientTlsConfig {
    let ca = pki.tls(Role::User, "admin").ca_pem;
    let base = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name(server);
    let with = |t: TlsDir| {
        base.clone()
            .identity(Identity::from_pem(t.cert_pem, t.key_pem))
    };
    match who {
        NoCert => base,
        ForeignCa => with(foreign.tls(Role::User, "admin")),
        NodeOther => with(pki.tls(Role::Node, N2)),
        NodeSelf => with(pki.tls(Role::Node, self_node)),
        User => with(pki.tls(Role::User, "admin")),
        Member => with(pki.tls(Role::Control, "m-test")),
    }
}

async fn channel(addr: &str, tls: ClientTlsConfig) -> Result<Channel, Status> {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("connect: {e:?}")))
}

/// Checks one answer: denied or not, as expected.
fn check(service: &str, method: &str, who: Who, allowed: &[Who], r: &Result<(), Status>) {
    let denied = |s: &Status| matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated);
    match who {
        // Refused at the handshake (a transport error) or by the authorization layer.
        NoCert | ForeignCa => {
            let e = r.as_ref().err();
            assert!(
                e.is_some_and(|s| denied(s)
                    || matches!(
                        s.code(),
                        Code::Unavailable | Code::Unknown | Code::Cancelled
                    )),
                "{service}/{method} by {who:?}: expected a refusal, got {r:?}"
            );
        }
        _ if allowed.contains(&who) => assert!(
            !r.as_ref().is_err_and(denied),
            "{service}/{method} by {who:?} must be allowed, got {r:?}"
        ),
        _ => assert!(
            r.as_ref().is_err_and(denied),
            "{service}/{method} by {who:?} must be denied, got {r:?}"
        ),
    }
}

fn ok<T>(r: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    r.map(|_| ())
}

/// Who may call each Control RPC, and one call of it about node `n1` and its objects.
async fn control_call(
    c: &mut ControlClient<Channel>,
    method: &str,
) -> (&'static [Who], Result<(), Status>) {
    let lease = pb::Lease {
        volume: VOLUME.into(),
        node: N1.into(),
        container_id: LEASED_BY.into(),
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
        "VolumeUsage" => (OPERATORS, ok(c.volume_usage(pb::Empty {}).await)),
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
        "AddPool" => (
            OPERATORS,
            ok(c.add_pool(pb::AddPoolRequest { cidr: POOL.into() }).await),
        ),
        "AllocateIp" => {
            let req = pb::AllocateRequest {
                pool: POOL.into(),
                container_id: HOLDER.into(),
                container_name: "web".into(),
                node: N1.into(),
            };
            (OWN, ok(c.allocate_ip(req).await))
        }
        "ClaimIp" => (OWN, ok(c.claim_ip(claim(N1)).await)),
        "ContainerStopped" => (OWN, ok(c.container_stopped(holder).await)),
        "ReleaseIp" => (OWN, ok(c.release_ip(holder).await)),
        "ReclaimNode" => (
            OPERATORS,
            ok(c.reclaim_node(pb::ReclaimRequest { node: N1.into() }).await),
        ),
        "ListIps" => (ALL_ROLES, ok(c.list_ips(pb::Empty {}).await)),
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
        "Watch" => (ALL_ROLES, ok(c.watch(pb::WatchRequest {}).await)),
        other => panic!(
            "Control/{other} has no row in this test: add one, and a rule to control/src/server/auth.rs"
        ),
    }
}

/// Who may call each Raft RPC, and one call of it (payloads that do not decode, so an
/// allowed call changes nothing).
async fn raft_call(
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
async fn agent_call(
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
            })
            .await),
        // An empty stream: an allowed call is refused for want of a header.
        "Receive" => return (NODES, ok(c.receive(tokio_stream::iter(Vec::new())).await)),
        "Mount" => ok(c
            .mount(apb::MountRequest {
                volume: nope(),
                read_write: false,
                epoch: 0,
            })
            .await),
        "Unmount" => ok(c.unmount(apb::VolumeRef { volume: nope() }).await),
        "DestroySnapshots" => ok(c
            .destroy_snapshots(apb::DestroySnapshotsRequest {
                volume: nope(),
                keep: Vec::new(),
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
        other => panic!(
            "Agent/{other} has no row in this test: add one, and a rule to agent/src/transfer/auth.rs"
        ),
    };
    (MEMBERS, r)
}

fn register(name: &str) -> pb::RegisterNodeRequest {
    pb::RegisterNodeRequest {
        name: name.into(),
        address: format!("{name}:4524"),
        storage: "dir:/srv".into(),
    }
}

fn volume(name: &str, owner: Option<&str>) -> pb::CreateVolumeRequest {
    pb::CreateVolumeRequest {
        owner: owner.map(str::to_owned),
        ..common::volume(name)
    }
}

fn name(name: &str) -> pb::VolumeName {
    pb::VolumeName { name: name.into() }
}

fn claim(node: &str) -> pb::ClaimRequest {
    pb::ClaimRequest {
        address: "10.77.0.5".into(),
        container_id: HOLDER.into(),
        container_name: "web".into(),
        node: node.into(),
    }
}

/// Nodes n1 and n2, a pool, volume `vol-n1` owned by n1 and leased there, and an address
/// held by a container on n1.
async fn fixture(c: &Cluster) {
    let mut user = c.client(1).await;
    for n in [N1, N2] {
        user.register_node(register(n)).await.unwrap();
    }
    user.add_pool(pb::AddPoolRequest { cidr: POOL.into() })
        .await
        .unwrap();
    user.create_volume(volume(VOLUME, Some(N1))).await.unwrap();
    user.acquire_lease(pb::Lease {
        volume: VOLUME.into(),
        node: N1.into(),
        container_id: LEASED_BY.into(),
    })
    .await
    .unwrap();
    user.claim_ip(claim(N1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_and_raft_rpc_answers_every_identity_as_its_rule_says() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    fixture(&c).await;
    let foreign = Pki::new();
    let addr = c.addr(1);
    for method in methods_of("flocker.control.Control") {
        for who in EVERY {
            let tls = tls(&c.pki, &foreign, who, N1, CONTROL_SERVER_NAME);
            let (allowed, r) = match channel(&addr, tls).await {
                Ok(ch) => control_call(&mut ControlClient::new(ch), method).await,
                Err(e) => (&[][..], Err(e)),
            };
            check("Control", method, who, allowed, &r);
        }
    }
    for method in methods_of("flocker.raft.Raft") {
        for who in EVERY {
            let tls = tls(&c.pki, &foreign, who, N1, CONTROL_SERVER_NAME);
            let (allowed, r) = match channel(&addr, tls).await {
                Ok(ch) => raft_call(&mut RaftClient::new(ch), method).await,
                Err(e) => (&[][..], Err(e)),
            };
            check("Raft", method, who, allowed, &r);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_touches_only_objects_held_on_itself_and_nobody_writes_move_phases() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    fixture(&c).await;
    let mut n2 = c.client_with(1, &c.pki.tls(Role::Node, N2)).await;

    // n2 names itself, but the lease and the address are held on n1.
    let e = n2
        .release_lease(pb::Lease {
            volume: VOLUME.into(),
            node: N2.into(),
            container_id: LEASED_BY.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = n2.claim_ip(claim(N2)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("held on node \"n1\""),
        "{}",
        e.message()
    );
    let e = n2
        .release_ip(pb::ContainerId {
            container_id: HOLDER.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = n2
        .move_volume(pb::MoveVolumeRequest {
            name: VOLUME.into(),
            to: N2.into(),
            stop_containers: true,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let ips = n2.list_ips(pb::Empty {}).await.unwrap().into_inner();
    assert!(
        ips.allocations
            .iter()
            .any(|a| a.container_id == HOLDER && a.node == N1),
        "the address stays with n1: {ips:?}"
    );

    // Even a member cannot forward a migration phase: only the leader writes them, locally.
    let member = c.pki.tls(Role::Control, "m-test");
    let ch = channel(&c.addr(1), member.client_config()).await.unwrap();
    for cmd in [
        StateCommand::AdvanceMigration {
            id: 1,
            phase: Phase::Done,
            bytes_sent: 0,
            rounds: 0,
        },
        StateCommand::FailMigration {
            id: 1,
            error: "x".into(),
        },
    ] {
        let data = serde_json::to_vec(&Proposal::Write(cmd)).unwrap();
        let e = RaftClient::new(ch.clone())
            .forward(Forwarded { data })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_rpc_answers_every_identity_as_its_rule_says() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _agent = start_agent(&c, dir.path(), &addr);
    eventually(Duration::from_secs(30), "the agent to listen", || async {
        std::net::TcpStream::connect(&addr).ok()
    })
    .await;
    let foreign = Pki::new();
    for method in methods_of("flocker.agent.Agent") {
        for who in EVERY {
            let tls = tls(&c.pki, &foreign, who, AGENT, AGENT);
            let (allowed, r) = match channel(&addr, tls).await {
                Ok(ch) => agent_call(&mut AgentClient::new(ch), method).await,
                Err(e) => (&[][..], Err(e)),
            };
            check("Agent", method, who, allowed, &r);
        }
    }
}

/// A real `flocker-agent` named `agent-a` over a directory backend in `dir`.
fn start_agent(c: &Cluster, dir: &std::path::Path, addr: &str) -> Proc {
    let tls = c.pki.issue(Role::Node, AGENT);
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let child = Command::new(hosts::agent_binary())
        .args(["--node", AGENT, "--control", &c.addr(1), "--tls-dir"])
        .arg(&tls)
        .args(["--advertise", addr, "--listen", addr])
        .arg(format!("--storage=dir:{}", storage.display()))
        .arg("--volume-root")
        .arg(dir.join("volumes"))
        .arg(format!(
            "--listen-docker=unix://{}",
            dir.join("proxy.sock").display()
        ))
        .arg(format!(
            "--docker=unix://{}",
            dir.join("no-dockerd.sock").display()
        ))
        .arg(format!("--state-dir={}", dir.join("state").display()))
        .arg("--no-plugin")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn flocker-agent");
    Proc { child }
}
