//! Every RPC of the NodeApi, OperatorApi, Raft and Agent services, called with every identity: a user, a
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

mod rows;

use std::process::{Command, Stdio};
use std::time::Duration;

use control::ca::Role;
use control::proposal::Proposal;
use control::state::{Command as StateCommand, Phase};
use proto::agent::agent_client::AgentClient;
use proto::authz::methods_of;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use proto::raft::Forwarded;
use proto::raft::raft_client::RaftClient;
use proto::tls::{CONTROL_SERVER_NAME, TlsDir};
use rows::Who::{self, *};
use rows::*;
use testkit::{Cluster, Pki, Proc, binary, eventually, free_port};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

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

/// Nodes n1 and n2, a pool, volume `vol-n1` owned by n1 and leased there, and an address
/// held by a container on n1.
async fn fixture(c: &Cluster) {
    let mut user = c.client(1).await;
    for n in [N1, N2] {
        user.register_node(register(n)).await.unwrap();
    }
    c.operator(1)
        .await
        .add_pool(pb::AddPoolRequest { cidr: POOL.into() })
        .await
        .unwrap();
    user.create_volume(volume(VOLUME, Some(N1))).await.unwrap();
    user.acquire_lease(pb::Lease {
        volume: VOLUME.into(),
        node: N1.into(),
        container_id: LEASED_BY.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    user.claim_ip(claim(N1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_operator_and_raft_rpc_answers_every_identity_as_its_rule_says() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    fixture(&c).await;
    let foreign = Pki::new();
    let addr = c.addr(1);
    for method in methods_of("flocker.control.NodeApi") {
        for who in EVERY {
            let tls = tls(&c.pki, &foreign, who, N1, CONTROL_SERVER_NAME);
            let (allowed, r) = match channel(&addr, tls).await {
                Ok(ch) => node_call(&mut NodeApiClient::new(ch), method).await,
                Err(e) => (&[][..], Err(e)),
            };
            check("NodeApi", method, who, allowed, &r);
        }
    }
    for method in methods_of("flocker.control.OperatorApi") {
        for who in EVERY {
            let tls = tls(&c.pki, &foreign, who, N1, CONTROL_SERVER_NAME);
            let (allowed, r) = match channel(&addr, tls).await {
                Ok(ch) => operator_call(&mut OperatorApiClient::new(ch), method).await,
                Err(e) => (&[][..], Err(e)),
            };
            check("OperatorApi", method, who, allowed, &r);
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
            ..Default::default()
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
    // A node certificate is refused on the operators' service by its one interceptor.
    let mut n2_operator: OperatorApiClient<Channel> =
        c.connect(1, &c.pki.tls(Role::Node, N2)).await;
    let e = n2_operator
        .add_pool(pb::AddPoolRequest {
            cidr: "10.78.0.0/24".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("/flocker.control.OperatorApi/AddPool"),
        "{}",
        e.message()
    );
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
            at_ms: None,
        },
        StateCommand::FailMigration {
            id: 1,
            error: "x".into(),
            at_ms: None,
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
    let child = Command::new(binary("flocker-agent"))
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
    Proc::new(child)
}
