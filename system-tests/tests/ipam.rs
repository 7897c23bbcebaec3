//! Replicated IP allocation seen from two agents: a real control member process, each
//! node's `ControlAllocator` (the agent library, with its node certificate) and the real
//! `flockerctl ip ls|reclaim`. Explicit claims, conflicts naming the holder, takeover after
//! a stop, `net:` allocation, release on removal, and reclaim of a dead node.

use std::time::Duration;

use agent::cluster::Control;
use agent::weave::cidr::{self, CidrRequest};
use agent::weave::{AddressAllocator, AllocError, ControlAllocator};
use control::ca::Role;
use proto::control as pb;
use testkit::cluster::{flockerctl, ip_ls, row};
use testkit::{Cluster, eventually};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn request(s: &str) -> CidrRequest {
    cidr::parse(s).unwrap().remove(0)
}

/// Registers `node` with its own certificate and returns its allocator.
async fn node(c: &Cluster, name: &str, address: &str) -> ControlAllocator {
    ControlAllocator::new(
        Control::with_client(c.register_node(name, address).await),
        name,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_claimed_moved_allocated_released_and_reclaimed() {
    let c = Cluster::start(1, &["--node-timeout", "1s"]);
    c.leader(1).await;
    for pool in ["10.255.0.0/16", "10.2.0.0/24"] {
        let out = flockerctl(&c, &["ip", "add-pool", pool]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let n1 = node(&c, "n1", "10.77.0.1:4524").await;
    let n2 = node(&c, "n2", "10.77.0.2:4524").await;

    // An explicit address is claimed and listed with its container and node.
    let web = request("10.255.0.51/16");
    let got = n1.allocate("c-web", "web", &web).await.unwrap();
    assert_eq!(got.to_string(), "10.255.0.51/16");
    assert_eq!(ip_ls(&c), [row("10.255.0.51", "web", "n1", "running")]);
    // Idempotent: again for the same container changes nothing.
    assert_eq!(n1.allocate("c-web", "web", &web).await.unwrap(), got);

    // Another running container on another node is refused, naming the holder.
    let err = n2.allocate("c-web2", "web2", &web).await.unwrap_err();
    assert!(matches!(err, AllocError::Refused { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"web\"") && msg.contains("c-web") && msg.contains("\"n1\""),
        "{msg}"
    );

    // Once the holder stopped, the address moves to the new container on n2.
    assert_eq!(n1.stopped("c-web").await.unwrap(), 1);
    assert_eq!(ip_ls(&c), [row("10.255.0.51", "web", "n1", "stopped")]);
    n2.allocate("c-web2", "web2", &web).await.unwrap();
    assert_eq!(ip_ls(&c), [row("10.255.0.51", "web2", "n2", "running")]);

    // net: gives distinct addresses, the same one again for the same container; a
    // container may hold several.
    let net = request("net:10.2.0.0/24");
    let a = n1.allocate("c-a", "a", &net).await.unwrap();
    let b = n2.allocate("c-web2", "web2", &net).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(a.prefix_len(), 24);
    assert_eq!(n1.allocate("c-a", "a", &net).await.unwrap(), a);
    assert_eq!(ip_ls(&c).len(), 3);

    // Removal frees every address of the container.
    n2.release("c-web2").await.unwrap();
    let rows = ip_ls(&c);
    assert_eq!(rows, [row(&a.addr().to_string(), "a", "n1", "running")]);

    // Reclaim is refused while the node is up...
    let mut beat = c.client_with(1, &c.pki.tls(Role::Node, "n1")).await;
    beat.heartbeat(pb::HeartbeatRequest { name: "n1".into() })
        .await
        .unwrap();
    let out = flockerctl(&c, &["ip", "reclaim", "n1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is up"), "{}", text(&out.stderr));
    // ...and frees the dead node's addresses once it is down (no heartbeats since).
    eventually(Duration::from_secs(20), "n1 to be marked down", || async {
        let out = flockerctl(&c, &["ip", "reclaim", "n1"]);
        out.status.success().then_some(())
    })
    .await;
    assert_eq!(ip_ls(&c), []);
    // The address is free for anyone again.
    assert_eq!(n2.allocate("c-b", "b", &net).await.unwrap(), a);
}
