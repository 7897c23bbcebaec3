//! Connecting to the control API with mutual TLS: to one member, or to the first of several
//! that answers (any member accepts calls and forwards writes to the leader), the way
//! `etcdctl --endpoints` fails over, without waiting long on a member that does not answer. A connection pings its member over HTTP/2, so one whose
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

/// How long [`connect_any`] waits for one member before it also tries the next.
pub const CONNECT_STAGGER: Duration = Duration::from_millis(250);

/// A client for the first member in `addresses` that answers, preferring them in the order
/// given but not waiting on one: the next is tried as soon as one fails, or once it has not
/// answered within [`CONNECT_STAGGER`] (as Happy Eyeballs does, RFC 8305), and the first
/// connection made wins. So a member that drops packets (its host cut off) costs a quarter
/// of a second, not a [`CONNECT_TIMEOUT`]. On failure, what each address said, in order.
pub async fn connect_any<C: From<Channel>>(
    addresses: &[String],
    tls: &TlsDir,
) -> Result<C, Unreachable> {
    let mut waiting = addresses.iter().enumerate();
    let mut attempts = FuturesUnordered::new();
    let mut failures = Vec::new();
    loop {
        if attempts.is_empty() {
            let Some(next) = waiting.next() else {
                break;
            };
            attempts.push(attempt::<C>(next, tls));
        }
        let outcome = if waiting.len() == 0 {
            attempts.next().await
        } else {
            match tokio::time::timeout(CONNECT_STAGGER, attempts.next()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    attempts.push(attempt::<C>(waiting.next().expect("one is waiting"), tls));
                    continue;
                }
            }
        };
        match outcome {
            Some((_, _, Ok(client))) => return Ok(client),
            Some((i, address, Err(e))) => {
                failures.push((i, format!("{address}: {}", chain(&e))));
                if let Some(next) = waiting.next() {
                    attempts.push(attempt::<C>(next, tls));
                }
            }
            None => {}
        }
    }
    failures.sort();
    let mut failures: Vec<String> = failures.into_iter().map(|(_, f)| f).collect();
    if failures.is_empty() {
        failures.push("no address given".to_owned());
    }
    Err(Unreachable { failures })
}

/// One try of [`connect_any`]: the address's place in the list, the address, the outcome.
async fn attempt<'a, C: From<Channel>>(
    (i, address): (usize, &'a String),
    tls: &TlsDir,
) -> (usize, &'a String, Result<C, tonic::transport::Error>) {
    (i, address, connect::<C>(address, tls).await)
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
