//! Who is at the other end of a mutual-TLS connection: the role and name in the verified
//! client certificate's SAN URI `flocker://ROLE/NAME` (written by `flockerctl ca issue`).
//! The control service and the agents both authorise calls with it.

use tonic::Request;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The role and name a certificate carries, as written (the caller checks the role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// `control`, `node` or `user`.
    pub role: String,
    /// The holder's name.
    pub name: String,
}

/// Parses `flocker://ROLE/NAME` out of a DER certificate.
pub fn of_der(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|g| match g {
        GeneralName::URI(uri) => {
            let rest = uri.strip_prefix("flocker://")?;
            let (role, name) = rest.split_once('/')?;
            Some(PeerIdentity {
                role: role.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => None,
    })
}

/// The identity in a request's verified client certificate, if it has one.
pub fn of_request<T>(req: &Request<T>) -> Option<PeerIdentity> {
    let certs = req.peer_certs()?;
    of_der(certs.first()?.as_ref())
}
