//! `flockerctl ca init|issue`: the cluster CA.

use std::path::PathBuf;

use clap::Subcommand;
use control::ca::{self, Role};

/// CA verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Make a new cluster CA (ca.crt, ca.key) in DIR.
    Init {
        /// Directory for the CA; keep ca.key secret.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a certificate into a TLS directory (ca.crt, tls.crt, tls.key).
    Issue {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Who holds it: a control member, an agent's node or an operator.
        #[arg(long, value_parser = ["control", "node", "user"])]
        role: String,
        /// The holder: member name, node name (as agents register) or user name.
        #[arg(long)]
        name: String,
        /// Extra DNS name or IP address for the certificate; repeatable.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Output directory [default: DIR/ROLE-NAME].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a CA verb (no network).
pub fn run(verb: Verb, _ctx: &super::Ctx) -> anyhow::Result<()> {
    match verb {
        Verb::Init { dir } => {
            ca::init(&dir)?;
            println!(
                "cluster CA written to {}; keep {} secret",
                dir.display(),
                dir.join(ca::CA_KEY).display()
            );
        }
        Verb::Issue {
            dir,
            role,
            name,
            hosts,
            out,
        } => {
            let role: Role = role.parse()?;
            let out = out.unwrap_or_else(|| dir.join(format!("{role}-{name}")));
            ca::issue(&dir, role, &name, &hosts, &out)?;
            println!(
                "{role} certificate for {name:?} written to {}",
                out.display()
            );
        }
    }
    Ok(())
}
