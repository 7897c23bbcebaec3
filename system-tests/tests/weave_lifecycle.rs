//! An allocation follows its container's real state whatever order things arrive in, end to
//! end: a real control member, a private dockerd in its own network namespace and a real
//! `flocker-agent --underlay` process (`testkit::weave_agent`). Short-lived `--rm`
//! containers with the same explicit address, run again and again through the agent's proxy,
//! each get the address, pass their exit code through and leave it free; an allocation
//! written straight to the control service for a container that does not exist (or does not
//! run) is repaired by the agent's periodic reconcile within seconds. Needs root, dockerd,
//! docker, busybox (skipped with a reason, a failure under `CI=true`).

use std::time::Duration;

use agent::weave::reconcile::RECONCILE_PERIOD;
use control::ca::Role;
use proto::control as pb;
use testkit::cluster::{flockerctl, ip_ls, row};
use testkit::netns::prerequisites_with;
use testkit::weave_agent::AgentHost;
use testkit::{Cluster, poll_until, stderr};

/// How long a repair may take: one reconcile period and the time one pass needs.
fn repair_deadline() -> Duration {
    RECONCILE_PERIOD + Duration::from_secs(5)
}

/// A control member with the pool `pool` and one agent host `n1`; `None` where skipped.
fn cluster_with_agent(test: &str, pool: &str) -> Option<(Cluster, AgentHost)> {
    if !prerequisites_with(test, &["dockerd", "docker", "busybox", "tar"]) {
        return None;
    }
    let c = Cluster::start(1, &[]);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.leader(1));
    let out = flockerctl(&c, &["ip", "add-pool", pool]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = AgentHost::start(test, &c, "n1")?;
    Some((c, h))
}

/// The allocations of `address` that are marked running.
fn running_at(c: &Cluster, address: &str) -> Vec<(String, String, String, String)> {
    let mut rows = ip_ls(c);
    rows.retain(|r| r.0 == address && r.3 == "running");
    rows
}

#[test]
fn short_lived_containers_leave_their_address_free_every_time() {
    let test = "short_lived_containers_leave_their_address_free_every_time";
    let Some((c, h)) = cluster_with_agent(test, "10.255.0.0/16") else {
        return;
    };
    let cidr = "WEAVE_CIDR=10.255.9.20/16";
    for round in 0..20 {
        for (command, want) in [(&["true"][..], 0), (&["sh", "-c", "exit 7"][..], 7)] {
            let mut args = vec!["run", "--rm", "-e", cidr, "busybox"];
            args.extend_from_slice(command);
            let out = h.docker(&args);
            assert_eq!(
                out.status.code(),
                Some(want),
                "round {round}, {command:?}: {}\n{}",
                stderr(&out),
                h.log()
            );
            let freed = poll_until(Duration::from_secs(5), || {
                running_at(&c, "10.255.9.20").is_empty()
            });
            assert!(
                freed,
                "round {round}, {command:?}: the address is still held: {:?}\n{}",
                ip_ls(&c),
                h.log()
            );
        }
    }
}

#[test]
fn containers_that_exit_while_their_start_is_hooked_leave_their_address_free() {
    let test = "containers_that_exit_while_their_start_is_hooked_leave_their_address_free";
    let Some((c, h)) = cluster_with_agent(test, "10.255.0.0/16") else {
        return;
    };
    for round in 0..20 {
        // Created past the agent, so no wait-for-net holds the command back: it exits (and
        // `--rm` removes it) while the post-hook of the start inspects and allocates.
        let out = h.docker_direct(&[
            "create",
            "--rm",
            "-e",
            "WEAVE_CIDR=10.255.9.21/16",
            "busybox",
            "true",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let out = h.docker(&["start", &id]);
        assert!(
            out.status.success(),
            "round {round}: {}\n{}",
            stderr(&out),
            h.log()
        );
        let freed = poll_until(Duration::from_secs(5), || {
            running_at(&c, "10.255.9.21").is_empty()
        });
        assert!(
            freed,
            "round {round}: the address is still held: {:?}\n{}",
            ip_ls(&c),
            h.log()
        );
    }
}

/// Claims `address` for `container` on n1 straight through the control service, as if an
/// event had been lost.
fn claim_behind_the_agents_back(c: &Cluster, address: &str, container: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut node = c.client_with(1, &c.pki.tls(Role::Node, "n1")).await;
        node.claim_ip(pb::ClaimRequest {
            address: address.into(),
            container_id: container.into(),
            container_name: container.into(),
            node: "n1".into(),
            dry_run: false,
        })
        .await
        .unwrap();
    });
}

#[test]
fn the_periodic_reconcile_repairs_allocations_that_drifted() {
    let test = "the_periodic_reconcile_repairs_allocations_that_drifted";
    let Some((c, h)) = cluster_with_agent(test, "10.2.0.0/24") else {
        return;
    };
    // A container that stopped (it exists, it does not run) and one that never existed.
    let out = h.docker_direct(&["create", "--name", "idle", "busybox", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let idle = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    claim_behind_the_agents_back(&c, "10.2.0.7", &idle);
    claim_behind_the_agents_back(&c, "10.2.0.8", "no-such-container-0123456789abcdef");
    assert_eq!(
        ip_ls(&c),
        [
            row("10.2.0.7", &idle, "n1", "running"),
            row(
                "10.2.0.8",
                "no-such-container-0123456789abcdef",
                "n1",
                "running"
            ),
        ]
    );

    let want = [row("10.2.0.7", &idle, "n1", "stopped")];
    let repaired = poll_until(repair_deadline(), || ip_ls(&c) == want);
    assert!(repaired, "allocations {:?}\n{}", ip_ls(&c), h.log());

    // The freed address can be taken at once by a container that asks for it.
    let out = h.docker(&[
        "run",
        "--rm",
        "-e",
        "WEAVE_CIDR=10.2.0.8/24",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
    ]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("inet 10.2.0.8/24"),
        "{shown}{}",
        stderr(&out)
    );
}
