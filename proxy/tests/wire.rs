//! The proxy against a canned Docker: exact bytes on the wire for the odd cases (chunked
//! JSON, `101`, truncated and oversized bodies, a response whose head comes long before
//! its body), start-up refusals, and TLS with client certificates. No root, no dockerd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use testkit::adapter::{AdapterServer, Reply, rewrite_response};
use testkit::http::read_request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A fake dockerd: answers every connection with `reply(request head)`.
struct CannedDocker {
    dir: PathBuf,
}

impl CannedDocker {
    fn start<F, Fut>(reply: F) -> CannedDocker
    where
        F: Fn(String, UnixStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let dir = testkit::unique_dir("pswire");
        let listener = UnixListener::bind(dir.join("docker.sock")).unwrap();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let (head, _) = read_request(&mut stream).await;
                    reply(head, stream).await;
                });
            }
        });
        CannedDocker { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }
}

impl Drop for CannedDocker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A proxy (the library, in this process) on a unix socket in front of `docker`.
async fn proxy(config: &str, docker: &Path) -> (PathBuf, tokio::sync::oneshot::Sender<()>) {
    let dir = testkit::unique_dir("pswp");
    std::fs::write(dir.join("adapters.yml"), config).unwrap();
    let socket = dir.join("p.sock");
    let options = proxy::launch::Options {
        config: dir.join("adapters.yml"),
        listen: vec![format!("unix://{}", socket.display())],
        docker: format!("unix://{}", docker.display()),
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
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(bound.run(async {
        let _ = stopped.await;
    }));
    (socket, stop)
}

/// Sends raw bytes and reads until the server closes.
async fn exchange(socket: &Path, request: &str) -> String {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

const CLOSE_GET: &str =
    "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn chunked_json_passes_through_intact() {
    let docker = CannedDocker::start(|_, mut stream| async move {
        let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                     3\r\n[{\"\r\n6\r\nId\":1}\r\n1\r\n]\r\n0\r\n\r\n";
        stream.write_all(reply.as_bytes()).await.unwrap();
    });
    let (socket, _stop) = proxy("endpoints: {}\nadapters: {}\n", &docker.socket()).await;
    let response = exchange(&socket, CLOSE_GET).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let body: String = dechunk(&response);
    assert_eq!(body, "[{\"Id\":1}]");
}

#[tokio::test]
async fn post_hook_rewrites_a_chunked_response_and_recomputes_its_length() {
    let docker = CannedDocker::start(|_, mut stream| async move {
        let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                     9\r\n{\"Id\":\"x\"\r\n1\r\n}\r\n0\r\n\r\n";
        stream.write_all(reply.as_bytes()).await.unwrap();
    });
    let adapter = AdapterServer::start(|hook| {
        Reply::Json(rewrite_response(hook, |body| {
            body["Added"] = serde_json::json!("by the hook")
        }))
    });
    let config = format!(
        "endpoints:\n  \"GET /*/containers/json\": {{ post: [add] }}\nadapters:\n  add: {}\n",
        adapter.url()
    );
    let (socket, _stop) = proxy(&config, &docker.socket()).await;
    let response = exchange(&socket, CLOSE_GET).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, r#"{"Added":"by the hook","Id":"x"}"#);
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
}

#[tokio::test]
async fn attach_upgrade_is_relayed_with_half_close() {
    upgrade_round_trip("/v1.41/containers/x/attach?stream=1&stdin=1", "tcp").await;
}

#[tokio::test]
async fn buildkit_h2c_upgrades_are_tunnelled() {
    upgrade_round_trip("/v1.41/grpc", "h2c").await;
    upgrade_round_trip("/v1.41/session", "h2c").await;
}

/// An upgrade to `protocol` on `path`: Docker's side answers 101, upper-cases what it gets
/// until EOF, then says bye and closes; the client half-closes after sending.
async fn upgrade_round_trip(path: &'static str, protocol: &'static str) {
    let docker = CannedDocker::start(move |head, mut stream| async move {
        assert!(head.starts_with(&format!("POST {path} ")), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("upgrade: {protocol}")),
            "{head}"
        );
        let reply = format!(
            "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
        );
        stream.write_all(reply.as_bytes()).await.unwrap();
        let mut input = Vec::new();
        stream.read_to_end(&mut input).await.unwrap();
        stream.write_all(&input.to_ascii_uppercase()).await.unwrap();
        stream.write_all(b" bye").await.unwrap();
    });
    let (socket, _stop) = proxy("endpoints: {}\nadapters: {}\n", &docker.socket()).await;
    let mut stream = UnixStream::connect(&socket).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap(); // stdin EOF: the write side only
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(
        response.contains("application/vnd.docker.raw-stream"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nHELLO bye"), "{response}");
}

#[tokio::test]
async fn a_response_head_is_sent_before_its_body_exists() {
    // Like /containers/{id}/wait: the head now, the body when the container exits, which
    // here is once the client has read the head: a proxy that waited for the body would
    // never pass the head on.
    let (exit, exited) = tokio::sync::watch::channel(false);
    let docker = CannedDocker::start(move |_, mut stream| {
        let mut exited = exited.clone();
        async move {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let _ = exited.wait_for(|exited| *exited).await;
            stream
                .write_all(b"11\r\n{\"StatusCode\":0}\r\n0\r\n\r\n")
                .await
                .unwrap();
        }
    });
    let (socket, _stop) = proxy("endpoints: {}\nadapters: {}\n", &docker.socket()).await;
    let mut stream = UnixStream::connect(&socket).await.unwrap();
    stream
        .write_all(b"POST /v1.41/containers/x/wait HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 15];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut first))
        .await
        .expect("the head waited for the body")
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    exit.send(true).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("{\"StatusCode\":0}"));
}

#[tokio::test]
async fn a_truncated_response_under_a_post_hook_is_a_clear_error() {
    let docker = CannedDocker::start(|_, mut stream| async move {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Id\":")
            .await
            .unwrap();
    });
    let adapter = AdapterServer::start(|hook| Reply::Json(rewrite_response(hook, |_| {})));
    let config = format!(
        "endpoints:\n  \"GET /*/containers/json\": {{ post: [a] }}\nadapters:\n  a: {}\n",
        adapter.url()
    );
    let (socket, _stop) = proxy(&config, &docker.socket()).await;
    let response = exchange(&socket, CLOSE_GET).await;
    assert!(response.starts_with("HTTP/1.1 502"), "{response}");
    assert!(
        response.contains("reading Docker's response for the post-hooks failed"),
        "{response}"
    );
    assert_eq!(adapter.calls(), 0);
}

#[tokio::test]
async fn an_oversized_response_under_a_post_hook_is_refused_not_buffered() {
    let docker = CannedDocker::start(|_, mut stream| async move {
        let size = proxy::limits::MAX_POST_HOOK_RESPONSE_BYTES + 1;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(&vec![b' '; size]).await;
    });
    let adapter = AdapterServer::start(|hook| Reply::Json(rewrite_response(hook, |_| {})));
    let config = format!(
        "endpoints:\n  \"GET /*/containers/json\": {{ post: [a] }}\nadapters:\n  a: {}\n",
        adapter.url()
    );
    let (socket, _stop) = proxy(&config, &docker.socket()).await;
    let response = exchange(&socket, CLOSE_GET).await;
    assert!(response.starts_with("HTTP/1.1 502"), "{response}");
    assert!(
        response.contains("larger than the 16777216 bytes that post-hooks may inspect"),
        "{response}"
    );
}

/// SIGTERM's path: the proxy stops accepting at once, and a request already in flight
/// still gets Docker's whole answer.
#[tokio::test]
async fn a_shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let docker = CannedDocker::start({
        let arrived = arrived.clone();
        move |_, mut stream| {
            let arrived = arrived.clone();
            async move {
                arrived.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]";
                stream.write_all(reply.as_bytes()).await.unwrap();
            }
        }
    });
    let (socket, stop) = proxy("endpoints: {}\nadapters: {}\n", &docker.socket()).await;
    let in_flight = tokio::spawn({
        let socket = socket.clone();
        async move { exchange(&socket, CLOSE_GET).await }
    });
    arrived.notified().await;
    stop.send(()).unwrap();
    let response = in_flight.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("[]"), "{response}");
    assert!(
        UnixStream::connect(&socket).await.is_err(),
        "a connection was accepted after the shutdown"
    );
}

#[tokio::test]
async fn docker_down_is_a_clear_error() {
    let dir = testkit::unique_dir("psdown");
    let (socket, _stop) = proxy("endpoints: {}\nadapters: {}\n", &dir.join("nothing.sock")).await;
    let response = exchange(&socket, CLOSE_GET).await;
    assert!(response.starts_with("HTTP/1.1 502"), "{response}");
    assert!(
        response.contains("cannot reach Docker at unix://"),
        "{response}"
    );
    assert!(response.contains("is dockerd running"), "{response}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn every_hook_call_is_traced_with_its_adapter_duration_and_outcome() {
    let docker = CannedDocker::start(|_, mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
            .await;
    });
    let dir = testkit::unique_dir("pstrace");
    let config = format!(
        "endpoints:\n  \"GET /_ping\": {{ pre: [dbg, gone] }}\nadapters:\n  dbg: builtin:debug\n  gone: {{ url: \"{}\", on_error: ignore }}\n",
        testkit::adapter::dead_url()
    );
    std::fs::write(dir.join("adapters.yml"), config).unwrap();
    let socket = dir.join("p.sock");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_powerstrip"))
        .arg("--config")
        .arg(dir.join("adapters.yml"))
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .arg("--docker")
        .arg(format!("unix://{}", docker.socket().display()))
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stderr(log)
        .spawn()
        .unwrap();
    testkit::wait_until(Duration::from_secs(10), "powerstrip to listen", || {
        socket.exists()
    });
    let response = exchange(
        &socket,
        "GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(response.ends_with("OK"), "{response}");
    let finished: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hook call finished"))
        .collect();
    assert_eq!(finished.len(), 2, "{log}");
    assert!(
        finished[0].contains("hook.adapter=dbg") && finished[0].contains("hook.outcome=ok"),
        "{log}"
    );
    assert!(
        finished[1].contains("hook.adapter=gone")
            && finished[1].contains("hook.outcome=unreachable"),
        "{log}"
    );
    assert!(
        finished
            .iter()
            .all(|l| l.contains("request{") && l.contains("hook.duration_ms=")),
        "{log}"
    );
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
fn refused_start(config: &str, extra: &[&str]) -> String {
    let dir = testkit::unique_dir("psbad");
    std::fs::write(dir.join("adapters.yml"), config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_powerstrip"))
        .arg("--config")
        .arg(dir.join("adapters.yml"))
        .arg("--listen")
        .arg(format!("unix://{}", dir.join("p.sock").display()))
        .args(extra)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(output.status.code(), Some(64), "expected exit 64");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_configuration_stops_start_up_naming_every_problem() {
    let stderr = refused_start(
        "endpoints:\n  \"GET /*/containers/*/logs\": { post: [x] }\n  \"POST /*/containers/create\": { pre: [nope] }\nadapters:\n  x: builtin:debug\n  bad: ftp://x\n",
        &[],
    );
    assert!(
        stderr.contains("post-hooks cannot run on GET /containers/*/logs"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pre-hook adapter 'nope' is not defined"),
        "{stderr}"
    );
    assert!(
        stderr.contains("adapter 'bad': 'ftp://x' must be http://host:port/path or builtin:NAME"),
        "{stderr}"
    );
    let stderr = refused_start("endpoints: [unclosed", &[]);
    assert!(stderr.contains("is not valid YAML"), "{stderr}");
}

#[test]
fn plain_tcp_beyond_loopback_needs_tls_or_insecure() {
    let stderr = refused_start(
        "endpoints: {}\nadapters: {}\n",
        &["--listen", "tcp://0.0.0.0:0"],
    );
    assert!(
        stderr.contains("tcp://0.0.0.0:0 is reachable beyond this host"),
        "{stderr}"
    );
    let stderr = refused_start(
        "endpoints: {}\nadapters: {}\n",
        &["--tls-cert", "/nonexistent"],
    );
    assert!(stderr.contains("go together"), "{stderr}");
    let stderr = refused_start(
        "endpoints: {}\nadapters: {}\n",
        &["--docker", "tcp://127.0.0.1:2375"],
    );
    assert!(
        stderr.contains("must be unix:///path/to/docker.sock"),
        "{stderr}"
    );
}

/// Undoes chunked transfer encoding of a whole response.
fn dechunk(response: &str) -> String {
    let (_, mut rest) = response.split_once("\r\n\r\n").unwrap();
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// A CA and certificates it signed, written as PEM files.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA (`ca.pem`), a server certificate for 127.0.0.1 (`server.pem`, `server.key`)
    /// and a client certificate (`client.pem`, `client.key`).
    fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = testkit::unique_dir(name);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for (file, names) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ),
            ("client", vec!["client".to_owned()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A client configuration trusting this CA, presenting `client` (or no certificate).
    fn client(&self, client: Option<&Pki>) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.path("ca.pem")).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(pki) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(pki.path("client.pem")).unwrap()],
                    PrivateKeyDer::from_pem_file(pki.path("client.key")).unwrap(),
                )
                .unwrap(),
        };
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET /_ping` over TLS; the response, or the error that ended the exchange.
async fn ping_over_tls(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<String, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn tls_listeners_require_a_client_certificate_from_the_ca() {
    let docker = CannedDocker::start(|_, mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
            .await;
    });
    let pki = Pki::new("pstls");
    let stranger = Pki::new("psother");
    let dir = testkit::unique_dir("pstlsp");
    std::fs::write(dir.join("adapters.yml"), "endpoints: {}\nadapters: {}\n").unwrap();
    let options = proxy::launch::Options {
        config: dir.join("adapters.yml"),
        listen: vec!["tcp://127.0.0.1:0".into()],
        docker: format!("unix://{}", docker.socket().display()),
        tls_cert: Some(pki.path("server.pem")),
        tls_key: Some(pki.path("server.key")),
        tls_ca: Some(pki.path("ca.pem")),
        insecure: false,
        max_hook_body: proxy::limits::DEFAULT_MAX_HOOK_BODY_BYTES,
    };
    let bound = options
        .validate(proxy::adapter::builtin::Builtins::standard())
        .unwrap()
        .bind()
        .await
        .unwrap();
    let proxy::listen::ListenAddr::Tcp(addr) = bound.local_addrs()[0] else {
        unreachable!()
    };
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.run(async {
        let _ = stopped.await;
    }));

    let ok = ping_over_tls(addr, pki.client(Some(&pki))).await.unwrap();
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("OK"), "{ok}");
    for (what, config) in [
        ("no certificate", pki.client(None)),
        ("another CA's certificate", pki.client(Some(&stranger))),
    ] {
        let refused = ping_over_tls(addr, config).await;
        assert!(
            !refused.as_ref().is_ok_and(|r| r.contains("200 OK")),
            "{what} was let through: {refused:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
