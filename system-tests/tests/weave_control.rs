//! End to end on one host: the real `docker` CLI through a real powerstrip with
//! `builtin:weave` in front of a private dockerd in its own network namespace (testkit's
//! `WeaveHost`), the weave adapter allocating through `ControlAllocator` from a real
//! control member process, and the `LifecycleFollower` reporting Docker's die and destroy
//! events. What the user sees: the address on `ethwe` and in `flockerctl ip ls`, a
//! conflict refused naming the holder, stop and removal reflected in the allocations.
//! Needs root, dockerd, docker, busybox (skipped with a reason, a failure under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use agent::cluster::Control;
use agent::docker::Docker;
use agent::weave::{ControlAllocator, LifecycleFollower};
use testkit::cluster::{flockerctl, ip_ls, row};
use testkit::netns::{ethwe_of, prerequisites_with};
use testkit::weave::WeaveHost;
use testkit::{Cluster, poll_until, stderr, stdout};

#[test]
fn weave_cidr_addresses_come_from_the_control_service() {
    let test = "weave_cidr_addresses_come_from_the_control_service";
    if !prerequisites_with(test, &["dockerd", "docker", "busybox", "tar"]) {
        return;
    }
    let c = Cluster::start(1, &[]);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.leader(1));
    let out = flockerctl(&c, &["ip", "add-pool", "10.2.0.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let allocator = async {
        let client = c.register_node("n1", "10.77.0.1:4524").await;
        ControlAllocator::new(Control::with_client(client), "n1")
    };
    let Some(host) = WeaveHost::start_with(test, allocator) else {
        return;
    };
    let _follower = {
        let _in = host.runtime().enter();
        let docker = Arc::new(Docker::new(host.docker.socket()));
        LifecycleFollower::spawn(docker, Arc::new(host.attacher.allocator().clone()))
    };

    // net: gets a free address from the pool, on ethwe and in `flockerctl ip ls`.
    let out = host.docker(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-e",
        "WEAVE_CIDR=net:10.2.0.0/24",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: u32 = stdout(&host.docker(&["inspect", "-f", "{{.State.Pid}}", "holder"]))
        .parse()
        .unwrap();
    assert!(
        ethwe_of(pid).contains("inet 10.2.0.1/24"),
        "{}",
        ethwe_of(pid)
    );
    assert_eq!(ip_ls(&c), [row("10.2.0.1", "holder", "n1", "running")]);

    // The same address for another container is refused, naming the holder, at create:
    // no container is made (so no other hook of the create, e.g. a volume move, acted).
    let out = host.docker(&[
        "run",
        "--name",
        "intruder",
        "-e",
        "WEAVE_CIDR=10.2.0.1/24",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("\"holder\"") && err.contains("\"n1\""),
        "{err}"
    );
    let made = host.docker(&["ps", "-a", "-q", "--filter", "name=intruder"]);
    assert_eq!(
        stdout(&made),
        "",
        "the refused run created a container: {err}"
    );

    // A second net: container gets another address.
    let out = host.docker(&[
        "run",
        "--rm",
        "-e",
        "WEAVE_CIDR=net:10.2.0.0/24",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "ethwe",
    ]);
    assert!(
        stdout(&out).contains("inet 10.2.0.2/24"),
        "{}",
        stdout(&out)
    );

    // docker stop: the address is marked stopped; docker rm: it is freed.
    let out = host.docker(&["stop", "-t", "1", "holder"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = |want: &str| {
        poll_until(Duration::from_secs(10), || {
            ip_ls(&c).iter().any(|r| r.0 == "10.2.0.1" && r.3 == want)
        })
    };
    assert!(state("stopped"), "{:?}", ip_ls(&c));
    let out = host.docker(&["rm", "holder"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        poll_until(Duration::from_secs(10), || ip_ls(&c).is_empty()),
        "{:?}",
        ip_ls(&c)
    );
}
