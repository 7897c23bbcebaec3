//! Tests of the IP allocation rules: several addresses per container, stop and takeover,
//! release on removal, reclaim of a dead node.

use super::*;

fn cluster() -> State {
    let mut s = State::default();
    for name in ["a", "b"] {
        ok(
            &mut s,
            Command::RegisterNode {
                name: name.into(),
                address: format!("{name}:4524"),
                storage: "dir:/tmp".into(),
                at_ms: 1,
            },
        );
    }
    for cidr in ["10.0.0.0/29", "10.1.0.0/24"] {
        ok(&mut s, Command::AddPool { cidr: cidr.into() });
    }
    s
}

fn ok(state: &mut State, c: Command) -> Response {
    apply(state, c).expect("command should apply")
}

fn alloc(pool: &str, id: &str, node: &str) -> Command {
    Command::AllocateIp {
        pool: pool.into(),
        container_id: id.into(),
        container_name: format!("{id}-name"),
        node: node.into(),
    }
}

fn claim(addr: &str, id: &str, node: &str) -> Command {
    Command::ClaimIp {
        address: addr.into(),
        container_id: id.into(),
        container_name: format!("{id}-name"),
        node: node.into(),
    }
}

fn addresses_of(s: &State, id: &str) -> Vec<String> {
    s.allocations
        .values()
        .filter(|a| a.container_id == id)
        .map(|a| a.address.to_string())
        .collect()
}

fn mark_down(s: &mut State, node: &str) {
    let last_seen_ms = s.nodes[node].last_heartbeat_ms;
    ok(
        s,
        Command::MarkNodeDown {
            name: node.into(),
            last_seen_ms,
            seen_ms: None,
        },
    );
}

#[test]
fn a_container_holds_several_addresses() {
    let mut s = cluster();
    ok(&mut s, claim("10.0.0.3", "c1", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c1", "a"));
    ok(&mut s, alloc("10.0.0.0/29", "c1", "a"));
    // Asking again for each entry changes nothing.
    let before = s.clone();
    ok(&mut s, claim("10.0.0.3", "c1", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c1", "a"));
    assert_eq!(before, s);
    // net: in the pool of the explicit address returns that address (one per pool).
    assert_eq!(addresses_of(&s, "c1"), ["10.0.0.3", "10.1.0.1"]);
    // Another container gets a different address.
    let Response::Allocation(a) = ok(&mut s, alloc("10.1.0.0/24", "c2", "b")) else {
        panic!("expected an allocation")
    };
    assert_eq!(a.address.to_string(), "10.1.0.2");
}

#[test]
fn stop_then_takeover_moves_the_address() {
    let mut s = cluster();
    ok(&mut s, claim("10.0.0.3", "c1", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c1", "a"));
    let err = apply(&mut s, claim("10.0.0.3", "c2", "b")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("c1-name") && text.contains("\"a\""), "{text}");
    assert!(text.contains("stop or remove"), "{text}");
    let Response::Allocations(stopped) = ok(
        &mut s,
        Command::ContainerStopped {
            container_id: "c1".into(),
        },
    ) else {
        panic!("expected allocations")
    };
    assert_eq!(stopped.len(), 2);
    assert!(stopped.iter().all(|a| !a.running));
    ok(&mut s, claim("10.0.0.3", "c2", "b"));
    assert_eq!(addresses_of(&s, "c1"), ["10.1.0.1"]);
    assert_eq!(s.allocations[&"10.0.0.3".parse().unwrap()].node, "b");
}

#[test]
fn stop_and_release_of_an_unknown_container_are_empty() {
    let mut s = cluster();
    let before = s.clone();
    let stop = Command::ContainerStopped {
        container_id: "nope".into(),
    };
    assert_eq!(ok(&mut s, stop), Response::Allocations(vec![]));
    let release = Command::ReleaseIp {
        container_id: "nope".into(),
    };
    assert_eq!(ok(&mut s, release), Response::AllocationsReleased(vec![]));
    assert_eq!(before, s);
    assert!(
        Response::Allocations(vec![])
            .into_changes(&State::default())
            .is_empty()
    );
}

#[test]
fn release_frees_every_address_of_the_container() {
    let mut s = cluster();
    ok(&mut s, claim("10.0.0.3", "c1", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c1", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c2", "a"));
    let r = ok(
        &mut s,
        Command::ReleaseIp {
            container_id: "c1".into(),
        },
    );
    assert_eq!(r.into_changes(&State::default()).len(), 2);
    assert!(addresses_of(&s, "c1").is_empty());
    assert_eq!(addresses_of(&s, "c2"), ["10.1.0.2"]);
}

#[test]
fn a_node_marked_down_lets_its_addresses_go_and_reclaim_frees_them() {
    let mut s = cluster();
    ok(&mut s, claim("10.0.0.3", "c1", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c2", "a"));
    ok(&mut s, alloc("10.1.0.0/24", "c3", "b"));
    let err = apply(&mut s, Command::ReclaimNode { node: "a".into() }).unwrap_err();
    assert!(matches!(err, CommandError::NodeUp { .. }), "{err}");
    assert!(err.to_string().contains("is up"), "{err}");
    assert!(matches!(
        apply(&mut s, Command::ReclaimNode { node: "zz".into() }),
        Err(CommandError::UnknownNode { .. })
    ));
    mark_down(&mut s, "a");
    // Marked down, a's addresses are stopped: a task rescheduled on b takes one over.
    assert!(s.allocations.values().all(|a| a.running == (a.node == "b")));
    ok(&mut s, claim("10.0.0.3", "c9", "b"));
    assert_eq!(s.allocations[&"10.0.0.3".parse().unwrap()].node, "b");
    let Response::AllocationsReleased(freed) =
        ok(&mut s, Command::ReclaimNode { node: "a".into() })
    else {
        panic!("expected released allocations")
    };
    assert_eq!(freed.len(), 1, "{freed:?}");
    assert_eq!(addresses_of(&s, "c2"), Vec::<String>::new());
    assert_eq!(s.allocations.len(), 2);
}

#[test]
fn a_check_answers_as_the_claim_would_and_changes_nothing() {
    let mut s = cluster();
    ok(&mut s, claim("10.1.0.5", "c1", "a"));
    let before = s.clone();
    let held = s.check_address(AddressRequest::Explicit("10.1.0.5"), "b");
    assert!(
        matches!(held, Err(CommandError::AddressHeld { ref node, .. }) if node == "a"),
        "{held:?}"
    );
    let free = s.check_address(AddressRequest::Explicit("10.1.0.6"), "b");
    assert_eq!(free.unwrap().to_string(), "10.1.0.6");
    let outside = s.check_address(AddressRequest::Explicit("192.168.0.1"), "b");
    assert!(outside.is_err());
    let pool = s.check_address(AddressRequest::Pool("10.0.0.0/29"), "b");
    assert_eq!(pool.unwrap().to_string(), "10.0.0.1");
    let unknown_node = s.check_address(AddressRequest::Pool("10.0.0.0/29"), "zz");
    assert!(unknown_node.is_err());
    assert_eq!(s, before, "a check writes nothing");
    // Once its holder stopped, the address may be taken over: the check says so too.
    ok(
        &mut s,
        Command::ContainerStopped {
            container_id: "c1".into(),
        },
    );
    let taken_over = s.check_address(AddressRequest::Explicit("10.1.0.5"), "b");
    assert_eq!(taken_over.unwrap().to_string(), "10.1.0.5");
}
