//! Connecting to the Control API of any member, with mutual TLS.

use std::time::Duration;

use proto::control::control_client::ControlClient;
use proto::tls::TlsDir;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to a member may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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
