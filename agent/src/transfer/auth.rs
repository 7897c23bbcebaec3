//! Who may call the agent: the authorization table of the `Agent` service, the one place
//! that says so. Control members (role `control`) give orders and relay a restore in
//! (`Receive`); other agents (role `node`) may only stream a snapshot in (`Receive`); users may
//! call nothing. [`authorized`] wraps the
//! service so the table applies to every call before any handler runs, and a method without
//! a rule is refused. The TLS layer has already checked that the certificate comes from the
//! cluster CA.

use proto::agent::agent_server::AgentServer;
use proto::authz::{Authorize, Rule, Scope};
use proto::identity::Role;

use super::AgentService;

/// The `Agent` service's full name, as in the `.proto` file.
pub const AGENT: &str = "flocker.agent.Agent";

/// The `Agent` service's table.
pub fn rules(method: &str) -> Option<Rule> {
    let rule = |roles, note| {
        Some(Rule {
            roles,
            scope: Scope::Any,
            note,
        })
    };
    match method {
        "Push" | "Mount" | "Unmount" | "CleanUp" | "Inventory" | "StopContainers" | "Snapshot"
        | "CloneSnapshot" | "Export" => rule(&[Role::Control], "orders from control members"),
        "Receive" => rule(
            &[Role::Node, Role::Control],
            "a snapshot stream from another agent, or a restore relayed by a member",
        ),
        _ => None,
    }
}

/// `service` behind its authorization table: the way to serve it.
pub fn authorized(service: AgentService) -> Authorize<AgentServer<AgentService>> {
    Authorize::new(AgentServer::new(service), rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_rpc_has_a_rule() {
        let methods = proto::authz::methods_of(AGENT);
        assert!(methods.contains(&"Receive"), "{methods:?}");
        for method in methods {
            assert!(rules(method).is_some(), "{AGENT}/{method} has no rule");
        }
        assert_eq!(rules("Nope"), None, "deny by default");
    }

    #[test]
    fn the_docs_list_the_table() {
        let docs = include_str!("../../../docs/control.md");
        let expected = proto::authz::markdown_table(AGENT, rules);
        assert!(
            docs.contains(&expected),
            "docs/control.md must contain the table of {AGENT}:\n{expected}"
        );
    }
}
