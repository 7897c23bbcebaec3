//! Who is at the other end of a mutual-TLS connection: the role and name in the verified
//! client certificate's SAN URI `flocker://ROLE/NAME` (written by `flockerctl ca issue`).
//! The control service and the agents both authorise calls with it (see [`crate::authz`]).

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a certificate lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A control member.
    Control,
    /// An agent, acting only as its own node.
    Node,
    /// An operator driving `flockerctl`.
    User,
}

impl Role {
    /// Every role, in the order tables list them.
    pub const ALL: [Role; 3] = [Role::User, Role::Node, Role::Control];

    /// The name used in certificates and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Control => "control",
            Role::Node => "node",
            Role::User => "user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `control`, `node` or `user`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: use control, node or user")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "control" => Ok(Role::Control),
            "node" => Ok(Role::Node),
            "user" => Ok(Role::User),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

/// The role and name a certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The holder's role.
    pub role: Role,
    /// The holder's name.
    pub name: String,
}

/// Parses `flocker://ROLE/NAME` out of a DER certificate; `None` when it has no such URI or
/// names an unknown role.
pub fn of_der(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|g| match g {
        GeneralName::URI(uri) => {
            let rest = uri.strip_prefix("flocker://")?;
            let (role, name) = rest.split_once('/')?;
            Some(PeerIdentity {
                role: role.parse().ok()?,
                name: name.to_owned(),
            })
        }
        _ => None,
    })
}
