//! `flockerctl`: the operator's CLI. One module per noun (`ca`, `cluster`, `node`, `volume`,
//! `ip`), `status` (the members, or the live status page) and `events` (changes as they
//! happen); [`output`] prints aligned tables or JSON.

mod backup;
mod ca;
mod cluster;
mod events;
mod ip;
mod move_cmd;
mod node;
mod output;
mod status;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use proto::tls::TlsDir;
use tonic::transport::Channel;

pub use output::Format;

/// Drive a Flocker cluster.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit codes: 0 done, 1 failed, 2 usage, 3 control service unreachable, \
                  4 not found, 5 refused (exists, in use, not allowed), 6 invalid value."
)]
struct Cli {
    /// Control members to talk to, comma-separated HOST:PORT, tried in order until one
    /// answers (any member serves; writes go to the leader).
    #[arg(
        long,
        global = true,
        env = "FLOCKER_CONTROL",
        value_delimiter = ',',
        default_value = "127.0.0.1:4523"
    )]
    control: Vec<String>,
    /// TLS directory with ca.crt, tls.crt, tls.key (a `user` certificate).
    #[arg(
        long,
        global = true,
        env = "FLOCKER_TLS_DIR",
        default_value = proto::tls::USER_DIR
    )]
    tls_dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    noun: Noun,
}

#[derive(Subcommand, Debug)]
enum Noun {
    /// The cluster CA and certificates.
    #[command(subcommand)]
    Ca(ca::Verb),
    /// Control members.
    #[command(subcommand)]
    Cluster(cluster::Verb),
    /// Agent hosts.
    #[command(subcommand)]
    Node(node::Verb),
    /// Volumes in the /flocker namespace.
    #[command(subcommand)]
    Volume(volume::Verb),
    /// IP pools and allocations.
    #[command(subcommand)]
    Ip(ip::Verb),
    /// The members (as `cluster status`), or with `--web` the live status page of the
    /// whole cluster, served on loopback.
    Status(status::StatusArgs),
    /// The cluster's changes as they happen (volumes, moves, nodes, leases, addresses,
    /// pools), one line each; `--output json` gives one JSON object per line. Runs until
    /// Ctrl-C.
    Events(events::EventsArgs),
}

/// What every noun needs to make calls.
pub struct Ctx {
    control: Vec<String>,
    tls_dir: PathBuf,
    /// Output format.
    pub format: Format,
}

impl Ctx {
    /// A connected client: a `NodeApiClient` (volumes, moves, listings), an `OperatorApiClient`
    /// (pools, members, status, usage), or the `Channel` to make both.
    pub async fn client<C: From<Channel>>(&self) -> anyhow::Result<C> {
        let tls = TlsDir::load(&self.tls_dir).with_context(
            || "a user certificate is needed: pass --tls-dir or set FLOCKER_TLS_DIR",
        )?;
        proto::connect::connect_any(&self.control, &tls)
            .await
            .map_err(|e| Failure::Unreachable.with(e.to_string()))
            .context("cannot reach the control service: check --control (or FLOCKER_CONTROL) and that a member runs there")
    }
}

/// Why a command failed, as its exit code (documented in docs/control.md). Anything not
/// classified exits 1; clap's usage errors exit 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No control member could be reached, or none has a leader.
    Unreachable = 3,
    /// What the command names does not exist.
    NotFound = 4,
    /// The cluster refused: it exists already, is in use, or the certificate may not.
    Refused = 5,
    /// The cluster rejected a value (a name, an address, a CIDR).
    Invalid = 6,
}

/// An error that knows its [`Failure`] kind.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Classified {
    /// Its kind.
    pub failure: Failure,
    /// What to tell the user.
    pub message: String,
}

impl Failure {
    /// `message` as an error of this kind.
    pub fn with(self, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Classified {
            failure: self,
            message: message.into(),
        })
    }

    /// The kind of `e`, if any error in its chain has one.
    fn of(e: &anyhow::Error) -> Option<Failure> {
        e.chain()
            .find_map(|c| c.downcast_ref::<Classified>())
            .map(|c| c.failure)
    }
}

/// A gRPC error as a one-line message of its kind.
pub fn call_failed(status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    match status.code() {
        Code::Unavailable
            if status.message().contains("transport") || status.message().is_empty() =>
        {
            Failure::Unreachable.with(format!("control service unreachable: {status}"))
        }
        Code::Unknown if status.message().contains("certificate") => {
            Failure::Refused.with(format!(
                "the control service refused our certificate: {}",
                status.message()
            ))
        }
        Code::Unavailable => Failure::Unreachable.with(status.message()),
        Code::NotFound => Failure::NotFound.with(status.message()),
        Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::Unauthenticated => Failure::Refused.with(status.message()),
        Code::InvalidArgument | Code::OutOfRange => Failure::Invalid.with(status.message()),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let ctx = Ctx {
        control: cli.control,
        tls_dir: cli.tls_dir,
        format: cli.output,
    };
    let result = match cli.noun {
        Noun::Ca(v) => ca::run(v, &ctx),
        Noun::Cluster(v) => cluster::run(v, &ctx).await,
        Noun::Node(v) => node::run(v, &ctx).await,
        Noun::Volume(v) => volume::run(v, &ctx).await,
        Noun::Ip(v) => ip::run(v, &ctx).await,
        Noun::Status(args) => status::run(args, &ctx).await,
        Noun::Events(args) => events::run(args, &ctx).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flockerctl: {e:#}");
            Failure::of(&e).map_or(ExitCode::FAILURE, |f| ExitCode::from(f as u8))
        }
    }
}
