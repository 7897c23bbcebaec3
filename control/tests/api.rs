//! The control API (`NodeApi`, `OperatorApi`) against a real member process: invalid input
//! gets a clear error, and mutual TLS refuses strangers and impostors.

use control::ca::Role;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use testkit::cluster::{register, volume};
use testkit::{Cluster, Pki};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn claim(address: &str, container: &str, node: &str) -> pb::ClaimRequest {
    pb::ClaimRequest {
        address: address.into(),
        container_id: container.into(),
        container_name: format!("{container}-name"),
        node: node.into(),
        dry_run: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_gets_a_clear_error() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let mut user = c.client(1).await;

    let e = user.create_volume(volume("../etc")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("invalid volume name \"../etc\""),
        "{}",
        e.message()
    );

    user.create_volume(volume("db")).await.unwrap();
    let e = user.create_volume(volume("db")).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(
        e.message().contains("volume \"db\" already exists"),
        "{}",
        e.message()
    );

    let e = user
        .create_volume(pb::CreateVolumeRequest {
            owner: Some("ghost".into()),
            ..volume("x")
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("unknown node \"ghost\""),
        "{}",
        e.message()
    );

    let e = user
        .get_volume(pb::VolumeName {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    user.register_node(register("n1")).await.unwrap();
    user.register_node(register("n2")).await.unwrap();
    c.operator(1)
        .await
        .add_pool(pb::AddPoolRequest {
            cidr: "10.255.0.0/24".into(),
        })
        .await
        .unwrap();
    let e = user
        .claim_ip(claim("10.9.9.9", "c1", "n1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("outside every IP pool"),
        "{}",
        e.message()
    );

    user.claim_ip(claim("10.255.0.51", "c1", "n1"))
        .await
        .unwrap();
    let e = user
        .claim_ip(claim("10.255.0.51", "c2", "n2"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(
        e.message().contains("c1-name") && e.message().contains("\"n1\""),
        "{}",
        e.message()
    );

    // Allocation is idempotent per container.
    let alloc = pb::AllocateRequest {
        pool: "10.255.0.0/24".into(),
        container_id: "c3".into(),
        container_name: "web".into(),
        node: "n2".into(),
        dry_run: false,
    };
    let a = user.allocate_ip(alloc.clone()).await.unwrap().into_inner();
    let b = user.allocate_ip(alloc).await.unwrap().into_inner();
    assert_eq!(a.address, b.address);
}

async fn try_connect(
    addr: &str,
    tls: ClientTlsConfig,
) -> Result<NodeApiClient<tonic::transport::Channel>, String> {
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(NodeApiClient::new(ch))
}

/// A call either fails at the handshake or is refused; it never succeeds.
async fn refused(addr: &str, tls: ClientTlsConfig) {
    if let Ok(mut c) = try_connect(addr, tls).await {
        let r = c.list_volumes(pb::Empty {}).await;
        assert!(
            r.is_err(),
            "a call without a valid client certificate succeeded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_impostors_are_refused() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let addr = c.addr(1);
    let ca = c.pki.tls(Role::User, "admin").ca_pem;

    // No client certificate at all.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name(proto::tls::CONTROL_SERVER_NAME);
    refused(&addr, anonymous).await;

    // A certificate from another CA.
    let other = Pki::new();
    let stranger = other.tls(Role::User, "admin");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name(proto::tls::CONTROL_SERVER_NAME)
        .identity(tonic::transport::Identity::from_pem(
            &stranger.cert_pem,
            &stranger.key_pem,
        ));
    refused(&addr, tls).await;

    // A node certificate acts only as its own node.
    let n1 = c.pki.tls(Role::Node, "n1");
    let mut node = c.client_with(1, &n1).await;
    node.register_node(register("n1")).await.expect("own node");
    let e = node.register_node(register("n2")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("cannot act as node \"n2\""),
        "{}",
        e.message()
    );
    let e = node
        .heartbeat(pb::HeartbeatRequest { name: "n2".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A node certificate is refused on the operators' service.
    let mut node_as_operator: OperatorApiClient<tonic::transport::Channel> =
        c.connect(1, &n1).await;
    let e = node_as_operator
        .add_pool(pb::AddPoolRequest {
            cidr: "10.0.0.0/8".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Only members may speak Raft.
    let user = c.pki.tls(Role::User, "admin");
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(user.client_config())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let e = proto::raft::raft_client::RaftClient::new(ch)
        .metrics(proto::raft::MetricsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

/// `flockerctl` tells failures apart by exit code, as documented in docs/control.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flockerctl_describes_and_exit_codes_say_what_kind_of_failure() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let code = |args: &[&str]| {
        let out = testkit::cluster::flockerctl(&c, args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code(&["volume", "create", "fine"]).0, Some(0));
    let shown = testkit::cluster::flockerctl(&c, &["volume", "inspect", "fine"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    for line in ["Name:", "Owner:", "Replicas:"] {
        assert!(
            text.contains(line),
            "inspect reads as a description: {text}"
        );
    }
    let (exists, err) = code(&["volume", "create", "fine"]);
    assert_eq!(exists, Some(5), "a volume that exists is refused: {err}");
    let (missing, err) = code(&["volume", "inspect", "nosuch"]);
    assert_eq!(missing, Some(4), "{err}");
    let (invalid, err) = code(&["volume", "create", "Bad/Name"]);
    assert_eq!(invalid, Some(6), "{err}");
    let (usage, err) = code(&["volume", "frobnicate"]);
    assert_eq!(usage, Some(2), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flockerctl"))
        .args(["--control", "127.0.0.1:1", "--tls-dir"])
        .arg(c.pki.issue(Role::User, "admin"))
        .args(["volume", "ls"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot reach the control service"), "{err}");
    // The cause is said once, not repeated by each layer.
    assert_eq!(err.matches("127.0.0.1:1").count(), 1, "{err}");
}
