//! Connecting to the control API with mutual TLS: to one member, or to whichever of several
//! answers first (any member accepts calls and forwards writes to the leader), the way
//! `etcdctl --endpoints` fails over. A connection pings its member over HTTP/2, so one whose
//! member vanished without closing it (a host cut off the network) fails its calls, as
//! `unavailable`, within [`KEEPALIVE_INTERVAL`] + [`KEEPALIVE_TIMEOUT`] instead of hanging. Either function makes any client of a channel: a
//! [`NodeClient`] (agents), an [`OperatorClient`], or the [`Channel`] itself, to make both.
//! [`NodeClient`] and [`OperatorClient`] carry the calling span's trace context
//! ([`crate::trace`]).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use tonic::transport::{Channel, Endpoint};

use crate::control::node_api_client::NodeApiClient;
use crate::control::operator_api_client::OperatorApiClient;
use crate::tls::TlsDir;
use crate::trace::{Traced, traced};

/// A `NodeApi` client over a traced channel: what agents use.
pub type NodeClient = NodeApiClient<Traced>;
/// An `OperatorApi` client over a traced channel.
pub type OperatorClient = OperatorApiClient<Traced>;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a connection pings its member, also while no call is in flight.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a ping may go unanswered before the connection counts as dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// No control member could be reached.
#[derive(Debug, thiserror::Error)]
#[error("no control member reachable: {}", .failures.join("; "))]
pub struct Unreachable {
    /// Each address tried, with what it said (`ADDRESS: CAUSE`).
    pub failures: Vec<String>,
}

impl From<Channel> for NodeApiClient<Channel> {
    fn from(channel: Channel) -> Self {
        NodeApiClient::new(channel)
    }
}

impl From<Channel> for OperatorApiClient<Channel> {
    fn from(channel: Channel) -> Self {
        OperatorApiClient::new(channel)
    }
}

impl From<Channel> for NodeApiClient<Traced> {
    fn from(channel: Channel) -> Self {
        NodeApiClient::new(traced(channel))
    }
}

impl From<Channel> for OperatorApiClient<Traced> {
    fn from(channel: Channel) -> Self {
        OperatorApiClient::new(traced(channel))
    }
}

/// A client of the member at `address` (`host:port`).
pub async fn connect<C: From<Channel>>(
    address: &str,
    tls: &TlsDir,
) -> Result<C, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls.client_config())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect()
        .await?;
    Ok(C::from(channel))
}

/// A client for whichever member in `addresses` answers first: all are tried at once, so a
/// member that drops packets (its host cut off) costs no [`CONNECT_TIMEOUT`] before the
/// others are tried. On failure, what each address said, in the order given.
pub async fn connect_any<C: From<Channel>>(
    addresses: &[String],
    tls: &TlsDir,
) -> Result<C, Unreachable> {
    let mut attempts: FuturesUnordered<_> = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| async move { (i, address, connect::<C>(address, tls).await) })
        .collect();
    let mut failures = Vec::new();
    while let Some((i, address, outcome)) = attempts.next().await {
        match outcome {
            Ok(client) => return Ok(client),
            Err(e) => failures.push((i, format!("{address}: {}", chain(&e)))),
        }
    }
    failures.sort();
    let mut failures: Vec<String> = failures.into_iter().map(|(_, f)| f).collect();
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
