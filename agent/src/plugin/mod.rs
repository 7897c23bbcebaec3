//! The Docker volume plugin (driver `flocker`): a unix socket `<plugin-dir>/flocker.sock`
//! speaking the VolumeDriver protocol.
//!
//! - [`driver`]: the calls (Create, Remove, Mount, Unmount, Path, Get, List, Capabilities).
//! - [`state`]: mount reference counts by mount ID, persisted so they survive a restart.
//! - [`time`]: RFC 3339 for `CreatedAt`.
//!
//! This file is the wire: every call is `POST /<Subsystem>.<Method>` with a JSON body (or
//! none) and no dependable Content-Type; success is 200 with the call's JSON, failure is
//! 500 with `{"Err": "..."}`. The socket is removed when the plugin stops, so a stale
//! socket never stalls `docker volume ls`.

pub mod driver;
pub mod registration;
pub mod state;
pub mod time;

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use foundation::shutdown::Supervisor;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tracing::Instrument;

use driver::{Driver, VolumeRequest};

use crate::daemon::SHUTDOWN_GRACE;

/// The largest request body accepted (the calls carry a name, an ID and a few options).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The plugin's socket name in the plugin directory: Docker derives the driver name from it.
pub const SOCKET_NAME: &str = "flocker.sock";

/// A bound plugin socket, removed on drop.
pub struct Plugin {
    listener: UnixListener,
    path: PathBuf,
    driver: Arc<Driver>,
}

impl Plugin {
    /// Binds `<plugin_dir>/flocker.sock` (replacing a stale socket file).
    pub fn bind(plugin_dir: &Path, driver: Driver) -> std::io::Result<Self> {
        std::fs::create_dir_all(plugin_dir)?;
        let path = plugin_dir.join(SOCKET_NAME);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            )
        })?;
        Ok(Self {
            listener,
            path,
            driver: Arc::new(driver),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves calls until `shutdown` completes, then lets the calls in progress finish
    /// (within [`SHUTDOWN_GRACE`]).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let supervisor = Supervisor::<Infallible>::new();
        let connections = supervisor.spawner();
        // The loop owns the plugin: when the shutdown drops it, the socket goes with it.
        let plugin = self;
        supervisor.spawn("plugin accept loop", async move {
            loop {
                let stream = match plugin.listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "plugin socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let driver = plugin.driver.clone();
                let service = hyper::service::service_fn(move |req| {
                    let driver = driver.clone();
                    async move { Ok::<_, Infallible>(handle(&driver, req).await) }
                });
                let stop = connections.token().clone();
                connections.spawn(
                    async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        let served = tokio::select! {
                            served = conn.as_mut() => served,
                            () = stop.cancelled() => {
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "plugin connection ended");
                        }
                    }
                    .instrument(tracing::debug_span!("plugin.connection")),
                );
            }
        });
        let _ = supervisor.run(shutdown, SHUTDOWN_GRACE).await;
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(driver: &Driver, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let call = req.uri().path().trim_start_matches('/').to_owned();
    let span = tracing::info_span!("plugin.call", plugin.call = %call, volume.name = tracing::field::Empty);
    async move {
        let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(e) => return reply(Err(format!("cannot read the request: {e}"))),
        };
        let result = dispatch(driver, &call, &body).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "plugin call failed");
        }
        reply(result)
    }
    .instrument(span)
    .await
}

async fn dispatch(driver: &Driver, call: &str, body: &[u8]) -> driver::CallResult {
    let volume = || -> Result<VolumeRequest, String> {
        let request: VolumeRequest = serde_json::from_slice(body)
            .map_err(|e| format!("{call}: the request is not {{\"Name\": ...}} JSON: {e}"))?;
        tracing::Span::current().record("volume.name", request.name.as_str());
        Ok(request)
    };
    match call {
        "Plugin.Activate" => Ok(Driver::activate()),
        "VolumeDriver.Capabilities" => Ok(Driver::capabilities()),
        "VolumeDriver.Create" => driver.create(volume()?).await,
        "VolumeDriver.Remove" => driver.remove(volume()?).await,
        "VolumeDriver.Mount" => driver.mount(volume()?).await,
        "VolumeDriver.Unmount" => driver.unmount(volume()?).await,
        "VolumeDriver.Path" => driver.path(volume()?).await,
        "VolumeDriver.Get" => driver.get(volume()?).await,
        "VolumeDriver.List" => driver.list().await,
        other => Err(format!("unknown call {other:?}")),
    }
}

/// The one place results become wire replies.
fn reply(result: driver::CallResult) -> Response<Full<Bytes>> {
    let (status, mut body) = match result {
        Ok(value) => (StatusCode::OK, value),
        Err(message) => (StatusCode::INTERNAL_SERVER_ERROR, json!({"Err": message})),
    };
    if status == StatusCode::OK && body.get("Err").is_none() && body.is_object() {
        body["Err"] = Value::String(String::new());
    }
    let mut bytes = serde_json::to_vec(&body).expect("plain JSON");
    bytes.push(b'\n');
    Response::builder()
        .status(status)
        .header("Content-Type", "application/vnd.docker.plugins.v1.1+json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("a valid response")
}
