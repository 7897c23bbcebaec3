//! A TLS directory holds `ca.crt` (the cluster CA), `tls.crt` and `tls.key` (this party's
//! certificate and key). `flockerctl ca issue` writes exactly this layout.
//!
//! One convention for every binary: each role's directory is `/etc/flocker/tls/<role>`
//! ([`CONTROL_DIR`], [`NODE_DIR`], [`USER_DIR`]) unless `--tls-dir` says otherwise, so a host
//! that runs a control member and an agent holds both certificates side by side.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The DNS name every control member's certificate carries; clients verify members against it,
/// so members can be dialled by IP address or any host name.
pub const CONTROL_SERVER_NAME: &str = "flocker-control";

/// The TLS directory of a control member (`flocker-control --tls-dir`'s default).
pub const CONTROL_DIR: &str = "/etc/flocker/tls/control";
/// The TLS directory of an agent (`flocker-agent --tls-dir`'s default).
pub const NODE_DIR: &str = "/etc/flocker/tls/node";
/// The TLS directory of an operator (`flockerctl --tls-dir`'s default).
pub const USER_DIR: &str = "/etc/flocker/tls/user";

/// The file names inside a TLS directory.
pub const CA_FILE: &str = "ca.crt";
/// This party's certificate.
pub const CERT_FILE: &str = "tls.crt";
/// This party's private key.
pub const KEY_FILE: &str = "tls.key";

/// A TLS directory could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {cause} (make one with `flockerctl ca issue`)")]
pub struct TlsDirError {
    /// The file that failed.
    pub path: PathBuf,
    /// Why (part of the message; not named `source`, so that error reporters do not
    /// print it a second time as the cause).
    pub cause: std::io::Error,
}

/// The PEM contents of a TLS directory.
#[derive(Clone, Debug)]
pub struct TlsDir {
    /// The cluster CA certificate.
    pub ca_pem: String,
    /// This party's certificate.
    pub cert_pem: String,
    /// This party's private key.
    pub key_pem: String,
}

impl TlsDir {
    /// Reads `ca.crt`, `tls.crt` and `tls.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TlsDirError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|cause| TlsDirError { path, cause })
        };
        Ok(Self {
            ca_pem: read(CA_FILE)?,
            cert_pem: read(CERT_FILE)?,
            key_pem: read(KEY_FILE)?,
        })
    }

    /// Server side: present our certificate and require a client certificate from the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    /// Client side of a call to a control member: trust only the cluster CA, present our
    /// certificate.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(CONTROL_SERVER_NAME)
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// Client side of a call to an agent: trust only the cluster CA and expect the agent's
    /// certificate to name `node` (node certificates carry their name as a DNS name).
    pub fn client_config_for_node(&self, node: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name(node)
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}
