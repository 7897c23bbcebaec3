//! The Docker daemon behind the proxy, reached over its unix socket. Never taken from
//! `DOCKER_HOST`: users point that at the proxy itself.
//!
//! Each client connection gets its own [`Session`]: one keep-alive connection to Docker,
//! dialled on first use and redialled if Docker closed it. HTTP/1.1 serves one request at a
//! time per connection, so one upstream connection per client connection is all it takes,
//! and no pool is shared between connections. The upstream connection is driven by the
//! client connection's own task ([`Driver`]), so a request and its response never hop
//! between threads inside the proxy.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::{Mutex, mpsc};

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

/// Where Docker listens; makes a [`Session`] per client connection.
#[derive(Clone, Debug)]
pub struct Upstream {
    socket: Arc<Path>,
}

impl Upstream {
    /// The daemon listening on `socket`. Nothing is dialled until the first request.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Upstream {
            socket: Arc::from(socket.into()),
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A session for one client connection, and the driver that must be polled alongside
    /// that connection for the session's requests to make progress.
    pub fn session(&self) -> (Session, Driver) {
        let (connections, incoming) = mpsc::unbounded_channel();
        let session = Session {
            socket: self.socket.clone(),
            sender: Mutex::new(None),
            connections,
        };
        (session, Driver { incoming })
    }
}

/// A boxed upstream connection future (it completes when Docker closes the connection or
/// it is upgraded).
type ConnectionFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One client connection's line to Docker.
pub struct Session {
    socket: Arc<Path>,
    sender: Mutex<Option<http1::SendRequest<ProxyBody>>>,
    connections: mpsc::UnboundedSender<ConnectionFuture>,
}

impl Session {
    /// Sends `request` (whose URI is a path and query) and returns Docker's response as
    /// soon as its head arrives; the body streams.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = self.sender.lock().await;
        let ready = match sender.as_mut() {
            Some(open) if !open.is_closed() => open.ready().await.is_ok(),
            _ => false,
        };
        if !ready {
            *sender = Some(self.dial().await?);
        }
        let open = sender.as_mut().expect("dialled above");
        open.send_request(request).await.map_err(|e| self.error(&e))
    }

    async fn dial(&self) -> Result<http1::SendRequest<ProxyBody>, UpstreamError> {
        let stream = UnixStream::connect(&*self.socket)
            .await
            .map_err(|e| self.error(&e))?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.error(&e))?;
        let connection: ConnectionFuture = Box::pin(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "connection to Docker ended with an error");
            }
        });
        // The driver only goes away with the client connection, which owns this session.
        let _ = self.connections.send(connection);
        Ok(sender)
    }

    fn error(&self, error: &dyn std::error::Error) -> UpstreamError {
        UpstreamError {
            socket: self.socket.to_path_buf(),
            reason: error_chain(error),
        }
    }
}

/// Drives a session's upstream connections; poll it in the same task as the client
/// connection (it never completes while its [`Session`] lives).
pub struct Driver {
    incoming: mpsc::UnboundedReceiver<ConnectionFuture>,
}

impl Driver {
    /// Runs the session's connections until the session is dropped and they have ended.
    pub async fn run(mut self) {
        let mut running = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                connection = self.incoming.recv() => match connection {
                    Some(connection) => running.push(connection),
                    None => break,
                },
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        }
        while running.next().await.is_some() {}
    }
}
