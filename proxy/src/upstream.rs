//! The Docker daemon behind the proxy, reached over its unix socket with pooled keep-alive
//! connections. Never taken from `DOCKER_HOST`: users point that at the proxy itself.

use std::path::{Path, PathBuf};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;

use crate::body::ProxyBody;
use crate::errors::error_chain;

/// Why Docker could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Docker at unix://{}: {reason}; is dockerd running, and is --docker its socket?", socket.display())]
pub struct UpstreamError {
    /// The socket that was dialled.
    pub socket: PathBuf,
    /// What failed, with its causes.
    pub reason: String,
}

/// A pooled HTTP/1.1 client for one Docker socket.
#[derive(Clone)]
pub struct Upstream {
    socket: PathBuf,
    client: Client<UnixConnector, ProxyBody>,
}

impl Upstream {
    /// A client for the daemon listening on `socket`. Nothing is dialled until the first
    /// request.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(UnixConnector);
        Upstream {
            socket: socket.into(),
            client,
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `request` (whose URI is only a path and query) and returns Docker's response
    /// as soon as its head arrives; the body streams.
    pub async fn send(
        &self,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        *request.uri_mut() = hyperlocal::Uri::new(&self.socket, path).into();
        self.client
            .request(request)
            .await
            .map_err(|e| UpstreamError {
                socket: self.socket.clone(),
                reason: error_chain(&e),
            })
    }
}
