//! Who is calling: the role and name in the client certificate's `flocker://ROLE/NAME` SAN URI.
//! The TLS layer has already checked that the certificate comes from the cluster CA.

use tonic::{Request, Status};

use crate::ca::Role;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its role.
    pub role: Role,
    /// Its name.
    pub name: String,
}

impl Caller {
    /// Fails unless the caller is a user or a control member.
    pub fn require_operator(&self) -> Result<(), Status> {
        match self.role {
            Role::User | Role::Control => Ok(()),
            Role::Node => Err(Status::permission_denied(format!(
                "node certificate {:?} may not do this: use a user certificate (`flockerctl ca issue --role user`)",
                self.name
            ))),
        }
    }

    /// Fails when a node certificate tries to act as another node.
    pub fn require_node(&self, node: &str) -> Result<(), Status> {
        if self.role == Role::Node && self.name != node {
            return Err(Status::permission_denied(format!(
                "certificate for node {:?} cannot act as node {node:?}",
                self.name
            )));
        }
        Ok(())
    }

    /// Fails unless the caller is a control member.
    pub fn require_control(&self) -> Result<(), Status> {
        if self.role == Role::Control {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{} certificate {:?} may not call the Raft service",
                self.role, self.name
            )))
        }
    }
}

/// Reads the caller from the request's verified client certificate.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let certs = req.peer_certs().ok_or_else(|| {
        Status::unauthenticated("no client certificate: every call needs one from the cluster CA")
    })?;
    let der = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
    identity_of(der.as_ref()).ok_or_else(|| {
        Status::permission_denied(
            "client certificate names no flocker role: issue one with `flockerctl ca issue`",
        )
    })
}

/// Parses `flocker://ROLE/NAME` out of a DER certificate.
pub fn identity_of(der: &[u8]) -> Option<Caller> {
    let id = proto::identity::of_der(der)?;
    Some(Caller {
        role: id.role.parse().ok()?,
        name: id.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_name_their_holder() {
        let dir = tempfile::tempdir().unwrap();
        crate::ca::init(&dir.path().join("ca")).unwrap();
        crate::ca::issue(
            &dir.path().join("ca"),
            Role::Node,
            "host-1",
            &[],
            &dir.path().join("n"),
        )
        .unwrap();
        let pem = std::fs::read_to_string(dir.path().join("n/tls.crt")).unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        assert_eq!(
            identity_of(&der),
            Some(Caller {
                role: Role::Node,
                name: "host-1".into()
            })
        );
        assert!(
            crate::ca::init(&dir.path().join("ca")).is_err(),
            "init must not overwrite"
        );
    }
}
