//! The daemons' small plain HTTP/1 server for local pages (Prometheus metrics, the control
//! service's status page): one accept loop on hyper, a synchronous handler that answers each
//! request (a streaming body for long answers such as server-sent events), stopped by a
//! shutdown future.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A response body: whole, or streamed.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Answers one request.
pub type Handler = Arc<dyn Fn(&Request<hyper::body::Incoming>) -> Response<Body> + Send + Sync>;

/// Serves `handler` on `listener` until `shutdown` completes; `what` names the server in
/// logs. Connections already open are not waited for.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    handler: Handler,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    continue;
                }
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let answer = handler(&request);
                    async move { Ok::<_, Infallible>(answer) }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "{what}: connection ended");
            }
        });
    }
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// `200 OK` with `content_type` and a whole body.
pub fn ok(content_type: &str, bytes: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .header("content-type", content_type)
        .body(full(bytes))
        .expect("a valid response")
}

/// An error status with a one-line text body.
pub fn error(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(full(Bytes::from_static(text.as_bytes())))
        .expect("a valid response")
}
