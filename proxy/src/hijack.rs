//! Hijacked connections: `attach`, `exec start`, BuildKit's `/session` and `/grpc`.
//!
//! Docker answers an upgrade request with `101 UPGRADED`; from then on both connections
//! carry raw bytes. The proxy relays the 101 (with Docker's own headers), then copies bytes
//! both ways. A half-close is passed on: when the client shuts its write side (stdin hit
//! EOF), Docker's side is shut for writing too and output keeps flowing back until Docker
//! closes. Post-hooks never run here.

use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use crate::body::{ProxyBody, empty};
use crate::proxy::stream;

/// Answers the client with Docker's `101` and splices the two upgraded connections in the
/// background. Any other answer from Docker (an error, say) goes to the client as it is.
pub fn splice(client: OnUpgrade, mut response: Response<Incoming>) -> Response<ProxyBody> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return stream(response);
    }
    let docker = hyper::upgrade::on(&mut response);
    let span = tracing::debug_span!("hijack");
    tokio::spawn(
        async move {
            let (client, docker) = match tokio::try_join!(client, docker) {
                Ok(both) => both,
                Err(error) => {
                    tracing::debug!(%error, "upgrade did not complete");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut docker = TokioIo::new(docker);
            match tokio::io::copy_bidirectional(&mut client, &mut docker).await {
                Ok((to_docker, to_client)) => {
                    tracing::debug!(
                        bytes.to_docker = to_docker,
                        bytes.to_client = to_client,
                        "hijack closed"
                    );
                }
                Err(error) => tracing::debug!(%error, "hijacked connection ended with an error"),
            }
        }
        .instrument(span),
    );
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, empty())
}
