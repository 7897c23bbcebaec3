//! Serving Prometheus metrics: `GET /metrics` over plain HTTP/1 ([`crate::http`]), the page
//! rendered by the daemon at each scrape (its own registry of series), 404 for any other
//! path. The daemons bind it only when `--metrics-listen` is set.

use std::sync::Arc;

use hyper::StatusCode;
use tokio::net::TcpListener;

/// Prometheus' text exposition format, as `prometheus-client` writes it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` with the page `render` makes, until `shutdown`
/// completes.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) {
    let handler: crate::http::Handler = Arc::new(move |request| {
        if request.uri().path() == "/metrics" {
            crate::http::ok(CONTENT_TYPE, render())
        } else {
            crate::http::error(StatusCode::NOT_FOUND, "only /metrics is served here\n")
        }
    });
    crate::http::serve("metrics", listener, handler, shutdown).await;
}
