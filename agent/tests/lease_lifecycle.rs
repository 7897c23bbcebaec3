//! A lease follows its container's real state: short-lived `--rm` containers with a flocker
//! volume leave no lease behind, and a lease written straight to the control service for a
//! container that does not exist is released by the agent's periodic reconcile within
//! seconds. Real parts: a `flocker-control` member, a `flocker-agent` process and a private
//! dockerd behind the agent's proxy. Needs root, dockerd and busybox-static; skipped without
//! them, a failure under `CI=true`.

use std::time::Duration;

use agent::flocker::leases::LEASE_RECONCILE_PERIOD;
use proto::control as pb;
use testkit::stack::{self, Stack};
use testkit::wait_until;

fn leases(stack: &Stack) -> Vec<pb::Lease> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = stack.client_as("user-admin").await;
        c.list_leases(pb::Empty {})
            .await
            .unwrap()
            .into_inner()
            .leases
    })
}

fn leases_on(stack: &Stack, volume: &str) -> Vec<pb::Lease> {
    let mut all = leases(stack);
    all.retain(|l| l.volume == volume);
    all
}

#[test]
fn short_lived_containers_leave_no_lease_and_drift_is_repaired() {
    if !stack::available() {
        return;
    }
    let stack = Stack::start(None);

    for round in 0..10 {
        for (command, want) in [(&["true"][..], 0), (&["sh", "-c", "exit 7"][..], 7)] {
            let mut args = vec!["run", "--rm", "-v", "/flocker/quick:/data", "busybox"];
            args.extend_from_slice(command);
            let out = stack.docker(&args);
            assert_eq!(
                out.status.code(),
                Some(want),
                "round {round}, {command:?}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                stack.agent_log()
            );
            wait_until(Duration::from_secs(5), "no lease on quick", || {
                leases_on(&stack, "quick").is_empty()
            });
        }
    }
    // Nothing blocks the volume: removing it (refused while leased) goes through.
    let out = stack.ctl(&["volume", "rm", "quick"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A lease for a container that does not exist, as if its die had been lost.
    stack.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/flocker/drift:/data",
        "busybox",
        "true",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut n1 = stack.client_as("node-n1").await;
        n1.acquire_lease(pb::Lease {
            volume: "drift".into(),
            node: "n1".into(),
            container_id: "no-such-container-0123456789abcdef".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    assert_eq!(leases_on(&stack, "drift").len(), 1);
    wait_until(
        LEASE_RECONCILE_PERIOD + Duration::from_secs(5),
        "the periodic reconcile to release the lease",
        || leases_on(&stack, "drift").is_empty(),
    );
}
