//! Connecting to the Control API with mutual TLS: to one member, or to the first of several
//! that answers (any member accepts calls and forwards writes to the leader), the way
//! `etcdctl --endpoints` fails over.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::control::control_client::ControlClient;
use crate::tls::TlsDir;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// No control member could be reached.
#[derive(Debug, thiserror::Error)]
#[error("no control member reachable: {}", .failures.join("; "))]
pub struct Unreachable {
    /// Each address tried, with what it said (`ADDRESS: CAUSE`).
    pub failures: Vec<String>,
}

/// A Control-API client for the member at `address` (`host:port`).
pub async fn connect(
    address: &str,
    tls: &TlsDir,
) -> Result<ControlClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls.client_config())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(ControlClient::new(channel))
}

/// A client for the first member in `addresses` that answers, trying them in order.
pub async fn connect_any(
    addresses: &[String],
    tls: &TlsDir,
) -> Result<ControlClient<Channel>, Unreachable> {
    let mut failures = Vec::new();
    for address in addresses {
        match connect(address, tls).await {
            Ok(client) => return Ok(client),
            Err(e) => failures.push(format!("{address}: {}", chain(&e))),
        }
    }
    if failures.is_empty() {
        failures.push("no address given".to_owned());
    }
    Err(Unreachable { failures })
}

/// An error and its causes on one line, each said once (tonic's transport error alone says
/// only "transport error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let line = e.to_string();
        if !said.iter().any(|s| s.contains(&line)) {
            said.push(line);
        }
        next = e.source();
    }
    said.join(": ")
}
