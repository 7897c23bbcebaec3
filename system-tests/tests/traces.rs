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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_is_one_trace_across_the_member_and_both_agents() {
    let Some(receiver) = OtlpReceiver::start("traces") else {
        return;
    };
    let endpoint = receiver.endpoint();
    let mut hosts = Vec::new();
    for (name, service) in [("host-a", Some(AGENT_A)), ("host-b", None)] {
        let Some(mut host) = Host::new(name, None) else {
            return;
        };
        host.env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            endpoint.clone().into(),
        ));
        // Export every 100 ms: agents are killed at the end of the test, not stopped.
        host.env
            .push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
        if let Some(service) = service {
            host.env.push(("OTEL_SERVICE_NAME".into(), service.into()));
        }
        hosts.push(host);
    }
    let flag = format!("--otlp-endpoint={endpoint}");
    let lab = Lab::with_hosts_flags(1, hosts, &[&flag]).await;
    lab.create("traced", 0).await;
    std::fs::write(lab.hosts[0].path("traced").join("note"), "on a\n").unwrap();
    lab.move_ok("traced", 1);

    // The member exports every 5 s (the SDK's default OTEL_BSP_SCHEDULE_DELAY).
    let trace = eventually(Duration::from_secs(40), "the move's spans", || async {
        let spans = receiver.spans();
        let moved = spans.iter().find(|s| s["name"] == "move")?;
        let id = moved["trace_id"].clone();
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
        (has("move.after_commit", CONTROL)
            && has("receive", AGENT_B)
            && has("storage.mount", AGENT_B)
            && has("push", AGENT_A))
        .then_some(Trace(trace))
    })
    .await;
    eprintln!("the move's trace:\n{}", trace.tree());

    // The move is the child of the MoveVolume call that asked for it, and its phases are
    // its children.
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
