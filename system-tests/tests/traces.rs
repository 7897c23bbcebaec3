//! One trace per move across three processes, received by a real OTLP/gRPC receiver that is
//! not ours (`testkit::otlp`: opentelemetry-proto's TraceService on Python's grpcio): a
//! control member (`--otlp-endpoint`) and two `flocker-agent`s (the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, one named by `OTEL_SERVICE_NAME`), a volume moved with
//! `flockerctl volume move`. The test checks the span tree: one trace id in all three
//! processes, the move's phases under the move, each agent's call span the child of the
//! leader's (or the other agent's) span that made the call, and the agents' work under it.
//! Needs root, zfs-fuse and the Python modules (deploy/setup-host): skipped with a reason
//! otherwise, failing under `CI=true`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use testkit::docker::TestDocker;
use testkit::eventually;
use testkit::hosts::Host;
use testkit::move_lab::Lab;
use testkit::otlp::OtlpReceiver;

/// The received spans of one trace, by span id.
struct Trace(HashMap<String, Value>);

impl Trace {
    fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let name = name.to_owned();
        self.0.values().filter(move |s| s["name"] == name.as_str())
    }

    fn one(&self, name: &str, service: &str) -> &Value {
        self.named(name)
            .find(|s| s["service"] == service)
            .unwrap_or_else(|| panic!("no span {name} of {service} in the trace:\n{}", self.tree()))
    }

    fn parent(&self, span: &Value) -> Option<&Value> {
        self.0.get(span["parent_span_id"].as_str()?)
    }

    /// `child`'s parent is named `name` (and, when given, in `service`).
    fn assert_parent(&self, child: &Value, names: &[&str], service: Option<&str>) {
        let parent = self.parent(child).unwrap_or_else(|| {
            panic!(
                "{} has no parent in the trace:\n{}",
                child["name"],
                self.tree()
            )
        });
        assert!(
            names.iter().any(|n| parent["name"] == *n)
                && service.is_none_or(|s| parent["service"] == s),
            "the parent of {} ({}) is {} ({}), expected one of {names:?} ({service:?}):\n{}",
            child["name"],
            child["service"],
            parent["name"],
            parent["service"],
            self.tree()
        );
    }

    /// The tree as indented lines: `name [service] ms`.
    fn tree(&self) -> String {
        let mut out = String::new();
        let mut roots: Vec<&Value> = self
            .0
            .values()
            .filter(|s| self.parent(s).is_none())
            .collect();
        roots.sort_by_key(|s| s["start_ns"].as_u64());
        for r in roots {
            self.render(r, 0, &mut out);
        }
        out
    }

    fn render(&self, span: &Value, depth: usize, out: &mut String) {
        let ms = (span["end_ns"].as_u64().unwrap_or(0))
            .saturating_sub(span["start_ns"].as_u64().unwrap_or(0)) as f64
            / 1e6;
        out.push_str(&format!(
            "{}{} [{}] {ms:.1} ms\n",
            "  ".repeat(depth),
            span["name"].as_str().unwrap_or("?"),
            span["service"].as_str().unwrap_or("?")
        ));
        let mut children: Vec<&Value> = self
            .0
            .values()
            .filter(|s| s["parent_span_id"] == span["span_id"])
            .collect();
        children.sort_by_key(|s| s["start_ns"].as_u64());
        for c in children {
            self.render(c, depth + 1, out);
        }
    }
}

const CONTROL: &str = "flocker-control";
/// Host a's agent, named by OTEL_SERVICE_NAME.
const AGENT_A: &str = "agent-host-a";
/// Host b's agent, named by default after its binary.
const AGENT_B: &str = "flocker-agent";

/// Two agent hosts exporting to `receiver`: `host-a` named [`AGENT_A`] by
/// `OTEL_SERVICE_NAME`, `host-b` by default [`AGENT_B`]; `None` (skip) without ZFS.
fn traced_hosts(receiver: &OtlpReceiver) -> Option<Vec<Host>> {
    let mut hosts = Vec::new();
    for (name, service) in [("host-a", Some(AGENT_A)), ("host-b", None)] {
        let mut host = Host::new(name, None)?;
        host.env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            receiver.endpoint().into(),
        ));
        // Export every 100 ms: agents are killed at the end of the test, not stopped.
        host.env
            .push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
        if let Some(service) = service {
            host.env.push(("OTEL_SERVICE_NAME".into(), service.into()));
        }
        hosts.push(host);
    }
    Some(hosts)
}

/// `members` control members exporting to `receiver` (`--otlp-endpoint`), and `hosts`
/// started.
async fn traced_lab(receiver: &OtlpReceiver, members: usize, hosts: Vec<Host>) -> Lab {
    let flag = format!("--otlp-endpoint={}", receiver.endpoint());
    Lab::with_hosts_flags(members, hosts, &[&flag]).await
}

/// The trace of the first move received, once it holds the span that asked for the move,
/// the move's end on the member, the target's receive and mount, and the source's push.
async fn move_trace(receiver: &OtlpReceiver, source: &str, target: &str) -> Trace {
    // The member exports every 5 s (the SDK's default OTEL_BSP_SCHEDULE_DELAY).
    eventually(Duration::from_secs(40), "the move's spans", || async {
        let spans = receiver.spans();
        let moved = spans.iter().find(|s| s["name"] == "move")?;
        let id = moved["trace_id"].clone();
        let parent = moved["parent_span_id"].as_str().unwrap_or("").to_owned();
        let trace: HashMap<String, Value> = spans
            .into_iter()
            .filter(|s| s["trace_id"] == id)
            .map(|s| (s["span_id"].as_str().unwrap().to_owned(), s))
            .collect();
        let has = |name: &str, service: &str| {
            trace
                .values()
                .any(|s| s["name"] == name && s["service"] == service)
        };
        // Each process exports on its own schedule: wait for the span that asked for the
        // move too (a member's export comes every 5 s).
        let asked = trace.contains_key(&parent);
        (asked
            && has("move.after_commit", CONTROL)
            && has("receive", target)
            && has("storage.mount", target)
            && has("push", source))
        .then_some(Trace(trace))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_is_one_trace_across_the_member_and_both_agents() {
    let Some(receiver) = OtlpReceiver::start("traces") else {
        return;
    };
    let Some(hosts) = traced_hosts(&receiver) else {
        return;
    };
    let lab = traced_lab(&receiver, 3, hosts).await;
    lab.create("traced", 0).await;
    std::fs::write(lab.hosts[0].path("traced").join("note"), "on a\n").unwrap();
    // Asked of a member that does not lead: the move is recorded with the call's trace
    // context, and the leader's driver joins it.
    let leader = lab.c.leader(1).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut mover = lab.start_move(follower, "traced", 1);
    let events = mover.rest();
    mover.expect_success(&events);

    let trace = move_trace(&receiver, AGENT_A, AGENT_B).await;
    eprintln!("the move's trace:\n{}", trace.tree());

    // The move (on the leader) is the child of the MoveVolume call that asked for it (on
    // another member), and its phases are its children.
    let moved = trace.one("move", CONTROL);
    trace.assert_parent(
        moved,
        &["grpc /flocker.control.NodeApi/MoveVolume"],
        Some(CONTROL),
    );
    for phase in [
        "move.copy_round",
        "move.wait_for_holders",
        "move.final_increment",
        "move.handoff",
        "move.after_commit",
    ] {
        trace.assert_parent(trace.one(phase, CONTROL), &["move"], Some(CONTROL));
    }
    // The source agent's push: its call span is the child of the leader's copy round or
    // final increment, and the snapshot and `zfs send` happen under it.
    let push_call = trace.one("grpc /flocker.agent.Agent/Push", AGENT_A);
    trace.assert_parent(
        push_call,
        &["move.copy_round", "move.final_increment"],
        Some(CONTROL),
    );
    let push = trace.one("push", AGENT_A);
    trace.assert_parent(push, &["grpc /flocker.agent.Agent/Push"], Some(AGENT_A));
    trace.assert_parent(
        trace.one("storage.snapshot", AGENT_A),
        &["push"],
        Some(AGENT_A),
    );
    trace.assert_parent(trace.one("storage.send", AGENT_A), &["push"], Some(AGENT_A));
    // The target's receive is the child of the source's push (agent to agent), and its
    // `zfs recv` happens under it.
    let receive_call = trace.one("grpc /flocker.agent.Agent/Receive", AGENT_B);
    trace.assert_parent(receive_call, &["push"], Some(AGENT_A));
    trace.assert_parent(
        trace.one("receive", AGENT_B),
        &["grpc /flocker.agent.Agent/Receive"],
        Some(AGENT_B),
    );
    trace.assert_parent(
        trace.one("storage.receive", AGENT_B),
        &["receive"],
        Some(AGENT_B),
    );
    // The handoff mounts the target read-write, fenced by the control service.
    let mount_call = trace
        .named("grpc /flocker.agent.Agent/Mount")
        .find(|s| {
            s["service"] == AGENT_B && trace.parent(s).is_some_and(|p| p["name"] == "move.handoff")
        })
        .unwrap_or_else(|| panic!("no Mount call of the handoff:\n{}", trace.tree()));
    let fence = trace
        .named("fence.check_owner")
        .find(|s| s["parent_span_id"] == mount_call["span_id"])
        .unwrap_or_else(|| {
            panic!(
                "no fence check under the handoff's mount:\n{}",
                trace.tree()
            )
        });
    assert_eq!(fence["service"], AGENT_B);
    let services: std::collections::BTreeSet<&str> = trace
        .0
        .values()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert!(
        [CONTROL, AGENT_A, AGENT_B]
            .iter()
            .all(|s| services.contains(s)),
        "one trace across the three processes: {services:?}"
    );
}

/// A span's duration in milliseconds.
fn millis(span: &Value) -> f64 {
    span["end_ns"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(span["start_ns"].as_u64().unwrap_or(0)) as f64
        / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_run_that_moves_its_volume_is_one_trace_from_the_proxy_to_both_agents() {
    let test = "a_docker_run_that_moves_its_volume_is_one_trace_from_the_proxy_to_both_agents";
    let Some(receiver) = OtlpReceiver::start("traces") else {
        return;
    };
    let Some(mut hosts) = traced_hosts(&receiver) else {
        return;
    };
    // Host a runs the container: its agent's proxy is in front of a dockerd of the test's.
    hosts[0].share_volume_root();
    let Some(docker) = TestDocker::start(test) else {
        return;
    };
    hosts[0].docker_socket = Some(docker.socket());
    let lab = traced_lab(&receiver, 1, hosts).await;
    let name = format!("run{}", std::process::id());
    lab.create(&name, 1).await;
    std::fs::write(lab.hosts[1].path(&name).join("note"), "on b\n").unwrap();

    let bind = format!("/flocker/{name}:/data");
    let out = docker
        .cli_at(&lab.hosts[0].proxy_socket())
        .args(["run", "--rm", "-v", &bind, "busybox", "cat", "/data/note"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker run through host-a's agent: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.hosts[0].log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "on b\n");

    let trace = move_trace(&receiver, AGENT_B, AGENT_A).await;
    eprintln!("the docker run's trace:\n{}", trace.tree());

    // The root is the agent's proxy request for the container's create; the flocker hook ran
    // under it, and Docker was called after it.
    let request = trace
        .named("proxy.request")
        .find(|s| trace.parent(s).is_none())
        .unwrap_or_else(|| panic!("no proxy request at the root:\n{}", trace.tree()));
    assert_eq!(request["service"], AGENT_A, "{}", trace.tree());
    let path = request["attributes"]["http.path"].as_str().unwrap_or("");
    assert!(path.ends_with("/containers/create"), "{path}");
    let hook = trace.one("pre-hook flocker", AGENT_A);
    trace.assert_parent(hook, &["proxy.request"], Some(AGENT_A));
    let upstream = trace.one("docker.upstream", AGENT_A);
    trace.assert_parent(upstream, &["proxy.request"], Some(AGENT_A));
    assert!(
        upstream["start_ns"].as_u64() >= hook["end_ns"].as_u64(),
        "Docker is called once the hook is done:\n{}",
        trace.tree()
    );

    // The move the hook asked for is in the same trace: its call on the member descends from
    // the hook, and the source's push and the target's receive are under the move.
    let moved = trace.one("move", CONTROL);
    let mut ancestor = trace.parent(moved);
    while let Some(a) = ancestor {
        if a["span_id"] == hook["span_id"] {
            break;
        }
        ancestor = trace.parent(a);
    }
    assert!(
        ancestor.is_some(),
        "the move descends from the flocker hook:\n{}",
        trace.tree()
    );
    trace.assert_parent(
        trace.one("push", AGENT_B),
        &["grpc /flocker.agent.Agent/Push"],
        Some(AGENT_B),
    );

    // The spans add up to the request's wall time: the hook and the Docker call cover it.
    // The hook waits for the move's commit (its final increment, which records it done),
    // then mounts the volume read-write here itself; the driver's handoff mount of the same
    // volume may end before or after that, and the move's clean-up on the source
    // (after_commit) goes on after the request.
    let (total, hooked, docker_ms) = (millis(request), millis(hook), millis(upstream));
    let handoff = trace.one("move.handoff", CONTROL);
    eprintln!(
        "request {total:.1} ms = hook {hooked:.1} ms (move to its handoff {:.1} ms) + Docker {docker_ms:.1} ms + {:.1} ms",
        (handoff["end_ns"].as_u64().unwrap() - moved["start_ns"].as_u64().unwrap()) as f64 / 1e6,
        total - hooked - docker_ms
    );
    assert!(
        hooked + docker_ms >= 0.9 * total,
        "the hook and the Docker call cover the request:\n{}",
        trace.tree()
    );
    let committed = trace.one("move.final_increment", CONTROL);
    assert!(
        committed["end_ns"].as_u64() <= hook["end_ns"].as_u64(),
        "the move's commit ends within the hook:\n{}",
        trace.tree()
    );
}
