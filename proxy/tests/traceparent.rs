//! W3C trace context on Powerstrip v1 HTTP adapter calls: the adapter receives a
//! `traceparent` whose trace id is the proxy request's and whose parent is the hook call's
//! span; the call to Docker is a child span of the request. The proxy runs in this process
//! under an OpenTelemetry tracer whose exporter keeps the finished spans.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use testkit::http::read_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tracing_subscriber::layer::SubscriberExt;

/// Keeps every exported span.
#[derive(Clone, Debug, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_adapter_receives_the_requests_trace_context() {
    let kept = Kept::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(kept.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = testkit::unique_dir("pstp");
    // Docker: answers every request with an empty object.
    let docker = UnixListener::bind(dir.join("docker.sock")).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = docker.accept().await {
            tokio::spawn(async move {
                let _ = read_request(&mut s).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                    .await;
            });
        }
    });
    // The adapter: keeps the head of the hook call and echoes the request unchanged.
    let adapter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", adapter.local_addr().unwrap());
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = adapter.accept().await.unwrap();
        let (head, body) = read_request(&mut s).await;
        let hook: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let reply = serde_json::to_vec(&testkit::adapter::echo_pre(&hook)).unwrap();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.len()
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        s.write_all(&reply).await.unwrap();
        let _ = head_tx.send(head);
    });
    let config = format!(
        "endpoints:\n  \"POST /*/containers/create\": {{ pre: [hooked] }}\nadapters:\n  hooked: {url}\n"
    );
    std::fs::write(dir.join("adapters.yml"), config).unwrap();
    let socket = dir.join("p.sock");
    let options = proxy::launch::Options {
        config: dir.join("adapters.yml"),
        listen: vec![format!("unix://{}", socket.display())],
        docker: format!("unix://{}", dir.join("docker.sock").display()),
        tls_cert: None,
        tls_key: None,
        tls_ca: None,
        insecure: false,
        max_hook_body: proxy::limits::DEFAULT_MAX_HOOK_BODY_BYTES,
    };
    let bound = options
        .validate(proxy::adapter::builtin::Builtins::standard())
        .unwrap()
        .bind()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(bound.run(async {
        let _ = stopped.await;
    }));

    let mut client = UnixStream::connect(&socket).await.unwrap();
    let body = r#"{"Image":"busybox"}"#;
    let request = format!(
        "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let head = head_rx.await.unwrap();
    let _ = stop.send(());
    let _ = serving.await;
    let _ = std::fs::remove_dir_all(&dir);

    let traceparent = head
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("no traceparent in the hook call:\n{head}"));
    // version-traceid-parentid-flags
    let fields: Vec<&str> = traceparent.trim().split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[3], "01", "sampled: {traceparent}");

    // The request span ends when the response is written: wait for it.
    let spans = testkit::eventually(std::time::Duration::from_secs(5), "the spans", || {
        let spans = kept.0.lock().unwrap().clone();
        async move {
            spans
                .iter()
                .any(|s| s.name == "proxy.request")
                .then_some(spans)
        }
    })
    .await;
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no span {name} in {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
            .clone()
    };
    let request = named("proxy.request");
    let hook = named("pre-hook hooked");
    let upstream = named("docker.upstream");
    let trace_id = request.span_context.trace_id().to_string();
    assert_eq!(fields[1], trace_id, "the adapter joins the request's trace");
    assert_eq!(
        fields[2],
        hook.span_context.span_id().to_string(),
        "the adapter's parent is the hook call"
    );
    assert_eq!(hook.parent_span_id, request.span_context.span_id());
    assert_eq!(upstream.parent_span_id, request.span_context.span_id());
    assert_eq!(upstream.span_context.trace_id().to_string(), trace_id);
}
