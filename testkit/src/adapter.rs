//! HTTP adapters served from the test process, speaking the Powerstrip v1 protocol (or
//! misbehaving on purpose), for the proxy's tests and benchmark.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// What the adapter answers.
pub enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// This status and body, verbatim.
    Raw(u16, &'static str),
    /// Nothing, for this long.
    Hang(Duration),
}

type Handler = dyn Fn(&Value) -> Reply + Send + Sync;

/// An adapter on 127.0.0.1, served by a thread of its own (so sync and async tests can use
/// it alike); stops when dropped.
pub struct AdapterServer {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdapterServer {
    /// Serves `handler` (which receives the hook request JSON) on a free port.
    pub fn start(handler: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> AdapterServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = calls.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = stopped => {}
                    _ = serve(listener, handler, counter) => {}
                }
            });
            runtime.shutdown_background();
        });
        AdapterServer {
            addr,
            calls,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The adapter's URL for adapters.yml.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// How many hook calls it received.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A URL where nothing listens (a port that was free a moment ago).
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}/hook", crate::free_port())
}

/// Echoes the request (a pre-hook that changes nothing).
pub fn echo_pre(hook: &Value) -> Value {
    serde_json::json!({
        "PowerstripProtocolVersion": 1,
        "ModifiedClientRequest": hook["ClientRequest"].clone(),
    })
}

/// Applies `change` to the request's JSON body and returns the pre-hook reply.
pub fn rewrite_body(hook: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut request = hook["ClientRequest"].clone();
    let mut body: Value = serde_json::from_str(request["Body"].as_str().unwrap_or("{}")).unwrap();
    change(&mut body);
    request["Body"] = Value::String(body.to_string());
    serde_json::json!({"PowerstripProtocolVersion": 1, "ModifiedClientRequest": request})
}

/// Applies `change` to the response's JSON body and returns the post-hook reply.
pub fn rewrite_response(hook: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut response = hook["ServerResponse"].clone();
    let mut body: Value = serde_json::from_str(response["Body"].as_str().unwrap_or("{}")).unwrap();
    change(&mut body);
    response["Body"] = Value::String(body.to_string());
    serde_json::json!({"PowerstripProtocolVersion": 1, "ModifiedServerResponse": response})
}

impl Drop for AdapterServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    handler: Arc<Handler>,
    counter: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        let counter = counter.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let hook: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, text) = match handler(&hook) {
                        Reply::Json(value) => (200, value.to_string()),
                        Reply::Raw(status, text) => (status, text.to_owned()),
                        Reply::Hang(duration) => {
                            tokio::time::sleep(duration).await;
                            (200, hook.to_string())
                        }
                    };
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(text)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
