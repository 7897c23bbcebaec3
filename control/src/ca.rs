//! The cluster CA: `flockerctl ca init` makes it, `flockerctl ca issue` signs certificates
//! whose role and name are in a SAN URI `flocker://ROLE/NAME` (and in the subject's OU and CN).
//! Control certificates also carry the DNS name [`proto::tls::CONTROL_SERVER_NAME`], which
//! clients verify, so members can be dialled by any address.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// CA certificate file in the CA directory.
pub const CA_CERT: &str = "ca.crt";
/// CA key file in the CA directory (mode 0600).
pub const CA_KEY: &str = "ca.key";

pub use proto::identity::Role;

/// The SAN URI naming a certificate's holder.
pub fn identity_uri(role: Role, name: &str) -> String {
    format!("flocker://{role}/{name}")
}

/// A CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA exists already.
    #[error("{0} already holds a CA; refusing to overwrite it (use another --dir)")]
    Exists(PathBuf),
    /// rcgen refused.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// Bad holder name.
    #[error(
        "invalid certificate name {0:?}: use 1 to 63 characters from A-Z, a-z, 0-9, '_', '.', '-'"
    )]
    BadName(String),
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), CaError> {
    let io = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Makes a new CA in `dir` (`ca.crt`, `ca.key`).
pub fn init(dir: &Path) -> Result<(), CaError> {
    if dir.join(CA_KEY).exists() {
        return Err(CaError::Exists(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(DnType::CommonName, "flocker cluster CA");
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write(&dir.join(CA_CERT), &cert.pem(), false)
}

/// What `issue` writes into its output directory (the TLS-directory layout of
/// [`proto::tls`]).
pub struct Issued {
    /// The directory written.
    pub dir: PathBuf,
}

/// Issues a certificate for `name` in `role`, signed by the CA in `ca_dir`, into `out`
/// as `ca.crt`, `tls.crt`, `tls.key`. `hosts` are extra DNS names or IP addresses.
pub fn issue(
    ca_dir: &Path,
    role: Role,
    name: &str,
    hosts: &[String],
    out: &Path,
) -> Result<Issued, CaError> {
    if crate::state::names::validate_node_name(name).is_err() {
        return Err(CaError::BadName(name.to_owned()));
    }
    let ca_pem = read(&ca_dir.join(CA_CERT))?;
    let ca_key = KeyPair::from_pem(&read(&ca_dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.as_str());
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let uri = identity_uri(role, name);
    params
        .subject_alt_names
        .push(SanType::URI(uri.as_str().try_into()?));
    params
        .subject_alt_names
        .push(SanType::DnsName(name.try_into()?));
    if role == Role::Control {
        params.subject_alt_names.push(SanType::DnsName(
            proto::tls::CONTROL_SERVER_NAME.try_into()?,
        ));
    }
    for host in hosts {
        params.subject_alt_names.push(match host.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.as_str().try_into()?),
        });
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::create_dir_all(out).map_err(|source| CaError::Io {
        path: out.to_owned(),
        source,
    })?;
    write(&out.join(proto::tls::CA_FILE), &ca_pem, false)?;
    write(&out.join(proto::tls::CERT_FILE), &cert.pem(), false)?;
    write(&out.join(proto::tls::KEY_FILE), &key.serialize_pem(), true)?;
    Ok(Issued {
        dir: out.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_name_their_holder() {
        let dir = tempfile::tempdir().unwrap();
        init(&dir.path().join("ca")).unwrap();
        issue(
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
            proto::identity::of_der(&der),
            Some(proto::identity::PeerIdentity {
                role: Role::Node,
                name: "host-1".into()
            })
        );
        assert!(
            init(&dir.path().join("ca")).is_err(),
            "init must not overwrite"
        );
    }
}
