//! Who may call what: the authorization tables of the `NodeApi`, `OperatorApi` and `Raft` services,
//! the one place that says, for each RPC, which certificate roles may call it and whether a
//! node acts only for itself. [`proto::authz::Authorize`], one interceptor per service,
//! applies its table to every call before any handler runs and refuses a method that has no
//! rule; handlers check no roles. Handlers of [`Scope::OwnNode`] methods check only the
//! nodes a request names, and the nodes of the stored objects it changes, with
//! [`proto::authz::Caller::acts_for`] (a no-op for unconfined callers).
//!
//! The services split the API by caller: `NodeApi` holds every RPC a node certificate may call
//! (agents call all of them; operators may too, for any node, and `flockerctl` does for
//! volumes, moves and listings), `OperatorApi` what only `flockerctl` calls. The rules are
//! those of the one `Control` service they replace, RPC by RPC.
//!
//! Migration phases are not in the API at all: the leader's orchestrator writes them locally
//! (`Member::write_local`), and the `Raft` service's `Forward` refuses them.

use proto::authz::{Rule, Scope};
use proto::identity::Role::{self, Control, Node, User};

/// The `NodeApi` service's full name, as in the `.proto` file.
pub const NODE: &str = "flocker.control.NodeApi";
/// The `OperatorApi` service's full name.
pub const OPERATOR: &str = "flocker.control.OperatorApi";
/// The `Raft` service's full name.
pub const RAFT: &str = "flocker.raft.Raft";

const EVERYONE: &[Role] = &[User, Node, Control];
const OPERATORS: &[Role] = &[User, Control];
const MEMBERS: &[Role] = &[Control];

const fn rule(roles: &'static [Role], scope: Scope, note: &'static str) -> Option<Rule> {
    Some(Rule { roles, scope, note })
}

/// The `NodeApi` service's table: every role, a node confined to itself where it changes
/// anything.
pub fn node(method: &str) -> Option<Rule> {
    use Scope::{Any, OwnNode};
    match method {
        "ListNodes" | "GetVolume" | "ListVolumes" | "ListLeases" | "ListIps" | "Watch" => {
            rule(EVERYONE, Any, "read only")
        }
        "RegisterNode" | "Heartbeat" => rule(EVERYONE, OwnNode, "a node names only itself"),
        "CreateVolume" => rule(EVERYONE, OwnNode, "a node makes only itself the owner"),
        "DeleteVolume" => rule(
            EVERYONE,
            OwnNode,
            "a node deletes only a volume it owns (the volume plugin's `Remove`)",
        ),
        "AcquireLease" => rule(EVERYONE, OwnNode, "a node takes leases only for itself"),
        "ReleaseLease" => rule(
            EVERYONE,
            OwnNode,
            "a node releases only a lease held on itself",
        ),
        "MoveVolume" => rule(
            EVERYONE,
            OwnNode,
            "a node moves a volume only to itself, and may not ask to stop containers",
        ),
        "AllocateIp" | "ClaimIp" => rule(
            EVERYONE,
            OwnNode,
            "a node names only itself, and not for a container whose address is held on another node",
        ),
        "ContainerStopped" | "ReleaseIp" => rule(
            EVERYONE,
            OwnNode,
            "a node acts only for a container whose addresses are held on itself",
        ),
        _ => None,
    }
}

/// The `OperatorApi` service's table: operators only, but for the `Status` read.
pub fn operator(method: &str) -> Option<Rule> {
    match method {
        "VolumeUsage"
        | "AddPool"
        | "SetReplication"
        | "SetSnapshotSchedule"
        | "PromoteVolume"
        | "SnapshotVolume"
        | "CloneVolume"
        | "DeleteSnapshot"
        | "BackupVolume"
        | "RestoreVolume"
        | "ReclaimNode"
        | "AddMember"
        | "RemoveMember" => rule(OPERATORS, Scope::Any, "operators only"),
        "Status" => rule(EVERYONE, Scope::Any, "read only"),
        _ => None,
    }
}

/// The `Raft` service's table: control members only.
pub fn raft(method: &str) -> Option<Rule> {
    match method {
        "AppendEntries" | "Vote" | "InstallSnapshot" | "Metrics" => {
            rule(MEMBERS, Scope::Any, "between members")
        }
        "Forward" => rule(
            MEMBERS,
            Scope::Any,
            "proposals of the `NodeApi` and `OperatorApi` services only; migration phases and other leader-only commands are refused",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proto::authz::{markdown_table, methods_of};

    use super::*;

    #[test]
    fn every_rpc_in_the_protos_has_a_rule() {
        let tables = [
            (NODE, node as proto::authz::Rules),
            (OPERATOR, operator),
            (RAFT, raft),
        ];
        for (service, table) in tables {
            let methods = methods_of(service);
            assert!(!methods.is_empty(), "{service} is not in the .proto files");
            for method in methods {
                assert!(table(method).is_some(), "{service}/{method} has no rule");
            }
        }
        assert_eq!(node("AdvanceMigration"), None, "deny by default");
        assert_eq!(operator("RegisterNode"), None, "each RPC in one service");
    }

    #[test]
    fn the_docs_list_the_tables() {
        let docs = include_str!("../../../docs/control.md");
        let tables = [
            (NODE, node as proto::authz::Rules),
            (OPERATOR, operator),
            (RAFT, raft),
        ];
        for (service, table) in tables {
            let expected = markdown_table(service, table);
            assert!(
                docs.contains(&expected),
                "docs/control.md must contain the table of {service}:\n{expected}"
            );
        }
    }
}
