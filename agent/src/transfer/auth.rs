//! Who may call the agent: control members (role `control`) give orders; other agents (role
//! `node`) may only stream a snapshot in. The TLS layer has already checked that the
//! certificate comes from the cluster CA.

use tonic::{Request, Status};

/// Fails unless the caller holds a control certificate.
pub fn require_control<T>(req: &Request<T>) -> Result<(), Status> {
    match proto::identity::of_request(req) {
        Some(id) if id.role == "control" => Ok(()),
        Some(id) => Err(Status::permission_denied(format!(
            "{} certificate {:?} may not give orders to an agent: only control members may",
            id.role, id.name
        ))),
        None => Err(unidentified()),
    }
}

/// Fails unless the caller is another agent or a control member.
pub fn require_peer<T>(req: &Request<T>) -> Result<(), Status> {
    match proto::identity::of_request(req) {
        Some(id) if id.role == "control" || id.role == "node" => Ok(()),
        Some(id) => Err(Status::permission_denied(format!(
            "{} certificate {:?} may not stream snapshots into an agent",
            id.role, id.name
        ))),
        None => Err(unidentified()),
    }
}

fn unidentified() -> Status {
    Status::unauthenticated(
        "no flocker identity in the client certificate: issue one with `flockerctl ca issue`",
    )
}
