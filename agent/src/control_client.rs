//! Connecting to the control service: try each member in turn (any member accepts calls and
//! forwards writes to the leader).

use std::time::Duration;

use proto::control::control_client::ControlClient;
use proto::tls::TlsDir;
use tonic::transport::{Channel, Endpoint};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// No control member could be reached.
#[derive(Debug, thiserror::Error)]
#[error("no control member reachable (tried {tried}): {last}")]
pub struct Unreachable {
    /// The addresses tried.
    pub tried: String,
    /// The last error.
    pub last: String,
}

/// Connects to the first control member in `addresses` that answers.
pub async fn connect_any(
    addresses: &[String],
    tls: &TlsDir,
) -> Result<ControlClient<Channel>, Unreachable> {
    let mut last = String::from("no addresses given");
    for address in addresses {
        match connect(address, tls).await {
            Ok(c) => {
                tracing::debug!(control.address = %address, "connected to control member");
                return Ok(ControlClient::new(c));
            }
            Err(e) => last = format!("{address}: {e}"),
        }
    }
    Err(Unreachable {
        tried: addresses.join(","),
        last,
    })
}

async fn connect(address: &str, tls: &TlsDir) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls.client_config())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
}
