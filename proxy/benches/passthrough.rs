//! Throughput and latency of Docker API calls through `powerstrip`, beside the direct
//! socket and plain proxies, from one run on one machine (so the ratios mean something).
//!
//! `cargo bench -p proxy --bench passthrough` (root: it starts its own dockerd). Targets:
//! the direct Docker socket; powerstrip with no hooks; with a built-in hook (`debug`) on
//! endpoints the requests do not match; with it on the requests' own endpoints; with an
//! HTTP hook (an echo adapter on loopback); haproxy and socat as plain-proxy baselines.
//! Workloads: `GET /_ping`, `GET /containers/json`, and a create + remove cycle, each at
//! concurrency 1, 8 and 32 over keep-alive connections.
//!
//! Each cell runs `BENCH_ROUNDS` times (default 3), the targets interleaved round by round
//! so that drift on a shared machine hits them alike; `BENCH_SECONDS` is the time per round
//! (default 2). Besides throughput and latency it reports the p50 latency the target adds
//! to the direct socket's, and the CPU time the proxy process (with its children) spent per
//! request, read from /proc: the figure least disturbed by whatever else the machine is
//! doing.
//!
//! A shorter run: `BENCH_WORKLOADS` (a comma-separated subset of `ping,list,create`),
//! `BENCH_CONCURRENCY` (e.g. `8,32`), `BENCH_TARGETS` (comma-separated pieces of target
//! names, e.g. `no hooks,haproxy`; the direct socket is always measured). The proxies'
//! process ids are printed first, for `perf record -p`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use testkit::adapter::{AdapterServer, Reply, echo_pre};
use testkit::docker::TestDocker;
use testkit::powerstrip::Powerstrip;

const HOOKED_ENDPOINTS: [&str; 3] = [
    "GET /_ping",
    "GET /*/containers/json",
    "POST /*/containers/create",
];

/// Endpoints no benchmarked request matches (as an agent hooks volumes and starts), so
/// that every request is matched against them and passes through.
const UNMATCHED_ENDPOINTS: [&str; 4] = [
    "POST /*/containers/*/start",
    "POST /*/volumes/create",
    "DELETE /*/volumes/*",
    "POST /*/networks/*/connect",
];

#[derive(Clone, Copy)]
enum Workload {
    Ping,
    List,
    CreateRemove,
}

impl Workload {
    fn key(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::List => "list",
            Workload::CreateRemove => "create",
        }
    }

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
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: usize,
    /// CPU time of the proxy process tree, when there is a proxy.
    cpu: Option<Duration>,
}

impl Figures {
    fn new() -> Figures {
        Figures {
            requests: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            errors: 0,
            cpu: Some(Duration::ZERO),
        }
    }

    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 * q) as usize)
            .min(self.latencies.len().saturating_sub(1));
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// Where a target listens, and the process whose CPU time is the proxy's.
struct Target {
    name: &'static str,
    socket: PathBuf,
    pid: Option<u32>,
}

fn main() {
    let Some(docker) = TestDocker::start_on_host("the passthrough benchmark") else {
        return;
    };
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let list = |name: &str| std::env::var(name).ok().filter(|s| !s.trim().is_empty());
    let seconds = env("BENCH_SECONDS", 2);
    let rounds = env("BENCH_ROUNDS", 3);
    let round = Duration::from_secs(seconds);
    let workloads: Vec<Workload> = [Workload::Ping, Workload::List, Workload::CreateRemove]
        .into_iter()
        .filter(|w| {
            list("BENCH_WORKLOADS").is_none_or(|l| l.split(',').any(|k| k.trim() == w.key()))
        })
        .collect();
    let concurrencies: Vec<usize> = list("BENCH_CONCURRENCY").map_or(vec![1, 8, 32], |l| {
        l.split(',')
            .map(|c| c.trim().parse().expect("BENCH_CONCURRENCY: numbers"))
            .collect()
    });
    let wanted = |name: &str| {
        list("BENCH_TARGETS").is_none_or(|l| l.split(',').any(|piece| name.contains(piece.trim())))
    };

    let no_hooks = Powerstrip::start_quiet("endpoints: {}\nadapters: {}\n", &docker.socket());
    let unmatched = Powerstrip::start_quiet(
        &config_hooking(&UNMATCHED_ENDPOINTS, "builtin:debug"),
        &docker.socket(),
    );
    let builtin = Powerstrip::start_quiet(
        &config_hooking(&HOOKED_ENDPOINTS, "builtin:debug"),
        &docker.socket(),
    );
    let echo = AdapterServer::start(|hook| Reply::Json(echo_pre(hook)));
    let http = Powerstrip::start_quiet(
        &config_hooking(&HOOKED_ENDPOINTS, &echo.url()),
        &docker.socket(),
    );
    let haproxy = Baseline::haproxy(&docker);
    let socat = Baseline::socat(&docker);

    let mut targets = vec![
        Target {
            name: "direct socket",
            socket: docker.socket(),
            pid: None,
        },
        Target {
            name: "powerstrip, no hooks",
            socket: no_hooks.socket(),
            pid: Some(no_hooks.pid()),
        },
        Target {
            name: "powerstrip, built-in, unmatched",
            socket: unmatched.socket(),
            pid: Some(unmatched.pid()),
        },
        Target {
            name: "powerstrip, built-in hook",
            socket: builtin.socket(),
            pid: Some(builtin.pid()),
        },
        Target {
            name: "powerstrip, HTTP hook",
            socket: http.socket(),
            pid: Some(http.pid()),
        },
    ];
    for (name, baseline) in [("haproxy", &haproxy), ("socat", &socat)] {
        if let Some(baseline) = baseline {
            targets.push(Target {
                name,
                socket: baseline.socket.clone(),
                pid: Some(baseline.child.id()),
            });
        }
    }

    targets.retain(|t| t.pid.is_none() || wanted(t.name));
    for target in &targets {
        if let Some(pid) = target.pid {
            eprintln!("{}: pid {pid}", target.name);
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "\npowerstrip passthrough benchmark: {rounds} interleaved rounds of {seconds} s per cell, keep-alive connections, dockerd {}",
        docker_version(&docker)
    );
    println!(
        "{:<22} {:>4}  {:<32} {:>8} {:>8} {:>8} {:>10} {:>12} {:>13}",
        "workload",
        "conc",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "vs direct",
        "p50 added",
        "proxy cpu/req"
    );
    for &workload in &workloads {
        for &concurrency in &concurrencies {
            let mut cells: Vec<Figures> = targets.iter().map(|_| Figures::new()).collect();
            for _ in 0..rounds {
                for (target, cell) in targets.iter().zip(cells.iter_mut()) {
                    let before = target.pid.map(cpu_time);
                    let (latencies, errors, elapsed) =
                        runtime.block_on(measure(&target.socket, workload, concurrency, round));
                    cell.cpu = match (before, target.pid.map(cpu_time), cell.cpu) {
                        (Some(before), Some(after), Some(total)) => {
                            Some(total + after.saturating_sub(before))
                        }
                        _ => None,
                    };
                    cell.requests += latencies.len();
                    cell.latencies.extend(latencies);
                    cell.errors += errors;
                    cell.elapsed += elapsed;
                }
            }
            let direct = cells[0].per_second();
            let direct_p50 = cells[0].percentile(0.50);
            for (target, cell) in targets.iter().zip(cells.iter_mut()) {
                let cpu = match cell.cpu {
                    Some(cpu) if cell.requests > 0 => {
                        format!("{:.0} us", cpu.as_secs_f64() * 1e6 / cell.requests as f64)
                    }
                    _ => "-".into(),
                };
                let (p50, p99) = (cell.percentile(0.50), cell.percentile(0.99));
                let added = match target.pid {
                    Some(_) => format!(
                        "{:.0} us",
                        (p50.as_secs_f64() - direct_p50.as_secs_f64()) * 1e6
                    ),
                    None => "-".into(),
                };
                println!(
                    "{:<22} {:>4}  {:<32} {:>8.0} {:>8.2} {:>8.2} {:>9.0}% {:>12} {:>13}{}",
                    workload.name(),
                    concurrency,
                    target.name,
                    cell.per_second(),
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3,
                    100.0 * cell.per_second() / direct,
                    added,
                    cpu,
                    if cell.errors > 0 {
                        format!("  ({} errors)", cell.errors)
                    } else {
                        String::new()
                    },
                );
            }
        }
    }
}

/// CPU time of `pid` and all its live descendants (every thread, nanosecond precision from
/// schedstat), plus what the children it already reaped used (clock ticks: socat forks a
/// child per connection).
fn cpu_time(pid: u32) -> Duration {
    const TICK: Duration = Duration::from_millis(10); // USER_HZ is 100 on Linux
    let mut parents = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(process) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) {
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            parents.insert(process, fields[1].parse::<u32>().unwrap_or(0));
        }
    }
    let descends = |mut p: u32| loop {
        if p == pid {
            return true;
        }
        match parents.get(&p) {
            Some(&parent) if parent != 0 && parent != p => p = parent,
            _ => return false,
        }
    };
    let mut total = Duration::ZERO;
    for process in parents.keys().copied().filter(|p| descends(*p)) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let schedstat =
                std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let nanos: u64 = schedstat
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            total += Duration::from_nanos(nanos);
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    if let Some(close) = stat.rfind(')') {
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let reaped: u32 = [13, 14]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<u32>().ok())
            .sum();
        total += TICK * reaped;
    }
    total
}

/// adapters.yml hooking `adapter` onto `endpoints` as a pre-hook.
fn config_hooking(endpoints: &[&str], adapter: &str) -> String {
    let endpoints: String = endpoints
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

/// Runs `concurrency` clients, each on its own keep-alive connection, for `duration`;
/// returns the latencies of the requests that succeeded, the failures, and the time taken.
async fn measure(
    socket: &Path,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
) -> (Vec<Duration>, usize, Duration) {
    let started = Instant::now();
    let deadline = started + duration;
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
    (latencies, errors, started.elapsed())
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
        if !testkit::have("haproxy") {
            eprintln!("haproxy is not installed: its row is left out (apt-get install haproxy)");
            return None;
        }
        let dir = testkit::unique_dir("psbha");
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
        if !testkit::have("socat") {
            eprintln!("socat is not installed: its row is left out (apt-get install socat)");
            return None;
        }
        let dir = testkit::unique_dir("psbso");
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
        testkit::wait_until(
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
