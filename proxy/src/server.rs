//! Accept loops and connections, with one shutdown design: on the shutdown signal the
//! loops stop accepting, every connection finishes its current request, and whatever is
//! still open after [`SHUTDOWN_GRACE`] is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use foundation::shutdown::{Spawner, Supervisor};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::limits::{MAX_CONNECTIONS, SHUTDOWN_GRACE};
use crate::listen::Listener;
use crate::proxy::Proxy;

/// Serves `listeners` until `shutdown` completes, then drains. TCP connections go through
/// `tls` when it is given.
pub async fn serve(
    proxy: Arc<Proxy>,
    listeners: Vec<Listener>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let supervisor = Supervisor::<Infallible>::new();
    let context = Context {
        proxy,
        connections: supervisor.spawner(),
        limit: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        tls,
    };
    for listener in listeners {
        // Dropped when the shutdown begins: no new connections.
        supervisor.spawn("accept loop", context.clone().accept_loop(listener));
    }
    let _ = supervisor
        .run(
            async {
                shutdown.await;
                tracing::info!("shutting down: no new connections, finishing open requests");
            },
            SHUTDOWN_GRACE,
        )
        .await;
}

/// What every connection task shares.
#[derive(Clone)]
struct Context {
    proxy: Arc<Proxy>,
    /// Spawns each connection's task, which the shutdown waits for within the grace.
    connections: Spawner,
    limit: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
}

impl Context {
    async fn accept_loop(self, listener: Listener) {
        loop {
            let permit = self
                .limit
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            let accepted = match &listener {
                Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
                Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                    let _ = s.set_nodelay(true);
                    Accepted::Tcp(s, peer)
                }),
            };
            let connection = match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let context = self.clone();
            self.connections.spawn(async move {
                context.connection(connection).await;
                drop(permit);
            });
        }
    }

    async fn connection(self, accepted: Accepted) {
        match (accepted, &self.tls) {
            (Accepted::Unix(stream), _) => self.serve(stream).await,
            (Accepted::Tcp(stream, _), None) => self.serve(stream).await,
            (Accepted::Tcp(stream, peer), Some(tls)) => match tls.accept(stream).await {
                Ok(stream) => self.serve(stream).await,
                Err(error) => tracing::info!(%peer, %error, "TLS handshake refused"),
            },
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (session, driver) = self.proxy.session();
        let session = Arc::new(session);
        let proxy = self.proxy.clone();
        let service = service_fn(move |request| {
            let proxy = proxy.clone();
            let session = session.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, &session).await) }
        });
        let connection = http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        // `biased`: both branches are polled on every wake anyway; fixed order spares the
        // random draw a fair select makes per poll.
        let serving = async {
            tokio::select! {
                biased;
                result = connection.as_mut() => result,
                () = self.connections.token().cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        };
        // The upstream connection is driven here, in the client connection's own task.
        let result = tokio::select! {
            biased;
            result = serving => result,
            () = driver.run() => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "connection closed with an error");
        }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
}
