//! Throughput and latency of Docker API calls through `powerstrip`, beside the direct
//! socket and plain proxies, from one run on one machine (so the ratios mean something).
//!
//! `cargo bench -p proxy --bench passthrough` (root: it starts its own dockerd). Targets:
//! the direct Docker socket; powerstrip with no hooks; with a built-in hook (`debug`); with
//! an HTTP hook (an echo adapter on loopback); haproxy and socat as plain-proxy baselines.
//! Workloads: `GET /_ping`, `GET /containers/json`, and a create + remove cycle, each at
//! concurrency 1 and 32 over keep-alive connections. `BENCH_SECONDS` sets the time per
//! cell (default 3).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use support::adapter::{AdapterServer, Reply, echo_pre};
use support::docker::TestDocker;
use support::powerstrip::Powerstrip;

const HOOKED_ENDPOINTS: [&str; 3] = [
    "GET /_ping",
    "GET /*/containers/json",
    "POST /*/containers/create",
];

#[derive(Clone, Copy)]
enum Workload {
    Ping,
    List,
    CreateRemove,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Ping => "GET /_ping",
            Workload::List => "GET /containers/json",
            Workload::CreateRemove => "create+remove",
        }
    }
}

/// Figures for one cell of the table.
struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

fn main() {
    let Some(docker) = TestDocker::start() else {
        return;
    };
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let cell = Duration::from_secs(seconds);

    let no_hooks = Powerstrip::start_quiet("endpoints: {}\nadapters: {}\n", &docker.socket());
    let builtin = Powerstrip::start_quiet(&hooked_config("builtin:debug"), &docker.socket());
    let echo = AdapterServer::start(|hook| Reply::Json(echo_pre(hook)));
    let http = Powerstrip::start_quiet(&hooked_config(&echo.url()), &docker.socket());
    let haproxy = Baseline::haproxy(&docker);
    let socat = Baseline::socat(&docker);

    let mut targets: Vec<(&str, PathBuf)> = vec![
        ("direct socket", docker.socket()),
        ("powerstrip, no hooks", no_hooks.socket()),
        ("powerstrip, built-in hook", builtin.socket()),
        ("powerstrip, HTTP hook", http.socket()),
    ];
    if let Some(haproxy) = &haproxy {
        targets.push(("haproxy", haproxy.socket.clone()));
    }
    if let Some(socat) = &socat {
        targets.push(("socat", socat.socket.clone()));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "\npowerstrip passthrough benchmark: {seconds} s per cell, keep-alive connections, dockerd {}",
        docker_version(&docker)
    );
    println!(
        "{:<22} {:>4}  {:<26} {:>10} {:>9} {:>9} {:>10}",
        "workload", "conc", "target", "req/s", "p50 ms", "p99 ms", "vs direct"
    );
    for workload in [Workload::Ping, Workload::List, Workload::CreateRemove] {
        for concurrency in [1usize, 32] {
            let mut direct = None;
            for (name, socket) in &targets {
                let figures = runtime.block_on(measure(socket, workload, concurrency, cell));
                let baseline = *direct.get_or_insert(figures.per_second);
                println!(
                    "{:<22} {:>4}  {:<26} {:>10.0} {:>9.2} {:>9.2} {:>9.0}%{}",
                    workload.name(),
                    concurrency,
                    name,
                    figures.per_second,
                    figures.p50.as_secs_f64() * 1e3,
                    figures.p99.as_secs_f64() * 1e3,
                    100.0 * figures.per_second / baseline,
                    if figures.errors > 0 {
                        format!("  ({} errors)", figures.errors)
                    } else {
                        String::new()
                    },
                );
            }
        }
    }
}

/// adapters.yml hooking `adapter` onto every benchmarked endpoint.
fn hooked_config(adapter: &str) -> String {
    let endpoints: String = HOOKED_ENDPOINTS
        .iter()
        .map(|e| format!("  \"{e}\": {{ pre: [hook] }}\n"))
        .collect();
    format!("endpoints:\n{endpoints}adapters:\n  hook: \"{adapter}\"\n")
}

fn docker_version(docker: &TestDocker) -> String {
    let out = Command::new("docker")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", docker.socket().display()),
        )
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `concurrency` clients, each on its own keep-alive connection, for `duration`.
async fn measure(
    socket: &Path,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
) -> Figures {
    let deadline = Instant::now() + duration;
    let clients: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(client(Arc::from(socket), workload, deadline)))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for client in clients {
        let (mine, failed) = client.await.unwrap();
        latencies.extend(mine);
        errors += failed;
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        per_second: latencies.len() as f64 / duration.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

async fn client(
    socket: Arc<Path>,
    workload: Workload,
    deadline: Instant,
) -> (Vec<Duration>, usize) {
    // socat forks per connection and its backlog overflows at 32 connects at once: retry.
    let stream = loop {
        match tokio::net::UnixStream::connect(&*socket).await {
            Ok(stream) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("cannot connect to {}: {e}", socket.display()),
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < deadline {
        let started = Instant::now();
        let ok = match workload {
            Workload::Ping => call(&mut sender, "GET", "/v1.41/_ping", None)
                .await
                .is_some(),
            Workload::List => call(&mut sender, "GET", "/v1.41/containers/json", None)
                .await
                .is_some(),
            Workload::CreateRemove => create_remove(&mut sender).await,
        };
        if ok {
            latencies.push(started.elapsed());
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
}

async fn create_remove(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> bool {
    let body = r#"{"Image":"busybox","Cmd":["true"]}"#;
    let Some(created) = call(sender, "POST", "/v1.41/containers/create", Some(body)).await else {
        return false;
    };
    let id = serde_json::from_slice::<serde_json::Value>(&created)
        .ok()
        .and_then(|v| v["Id"].as_str().map(str::to_owned));
    match id {
        Some(id) => call(
            sender,
            "DELETE",
            &format!("/v1.41/containers/{id}?force=1"),
            None,
        )
        .await
        .is_some(),
        None => false,
    }
}

/// One request; the body on a 2xx, `None` otherwise.
async fn call(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<Bytes> {
    sender.ready().await.ok()?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "docker")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let ok = response.status().is_success();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    ok.then_some(bytes)
}

/// A plain proxy on a unix socket in front of Docker's, stopped on drop.
struct Baseline {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Baseline {
    fn haproxy(docker: &TestDocker) -> Option<Baseline> {
        if !support::have("haproxy") {
            eprintln!("haproxy is not installed: its row is left out (apt-get install haproxy)");
            return None;
        }
        let dir = support::unique_dir("psbha");
        let socket = dir.join("haproxy.sock");
        let config = format!(
            "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n\
             frontend docker\n  bind {}\n  default_backend dockerd\nbackend dockerd\n  http-reuse always\n  server d {}\n",
            socket.display(),
            docker.socket().display()
        );
        std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.join("haproxy.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Baseline::ready(child, socket, dir))
    }

    fn socat(docker: &TestDocker) -> Option<Baseline> {
        if !support::have("socat") {
            eprintln!("socat is not installed: its row is left out (apt-get install socat)");
            return None;
        }
        let dir = support::unique_dir("psbso");
        let socket = dir.join("socat.sock");
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", socket.display()))
            .arg(format!("UNIX-CONNECT:{}", docker.socket().display()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Baseline::ready(child, socket, dir))
    }

    fn ready(child: Child, socket: PathBuf, dir: PathBuf) -> Baseline {
        support::wait_until(
            Duration::from_secs(10),
            "the baseline proxy to listen",
            || socket.exists(),
        );
        Baseline { child, socket, dir }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
