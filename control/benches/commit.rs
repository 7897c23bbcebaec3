//! Commit benchmark: a 3-member flocker-control cluster and a 3-member etcd cluster on
//! loopback, same machine, same disk. Prints one table: committed writes/s and p50/p99
//! commit latency at 1 and 32 concurrent clients, and leader failover time (kill -9 the
//! leader, time until a write commits again).
//!
//! flocker-control is driven through its gRPC control API (`NodeApi`) with mutual TLS (one HTTP/2
//! channel, like etcd's own client); etcd through its HTTP/JSON gateway (`POST /v3/kv/put`,
//! keep-alive connections), once with mutual TLS on every hop (client and peers, certificates
//! of a CA made by `control::ca` like flocker-control's) and once plain. flocker-control runs
//! twice: with group commit (the default) and with `--max-batch 1` (one entry per write, as
//! before group commit). Each write is one committed Raft entry fsynced on a
//! quorum in both systems. Run with `cargo bench -p control --bench commit`.

use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use control::ca::{self, Role};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use proto::tls::TlsDir;
use rustls_pki_types::ServerName;
use tempfile::TempDir;
use testkit::{Proc, binary, eventually, free_port};
use tonic::transport::Channel;

/// How long each throughput phase runs.
const PHASE: Duration = Duration::from_secs(5);
/// Concurrency levels measured.
const CLIENTS: [usize; 2] = [1, 32];
/// How long a member or etcd may take to answer.
const WAIT: Duration = Duration::from_secs(30);

/// Figures for one system.
#[derive(Default)]
struct Figures {
    rate: Vec<f64>,
    p50_ms: Vec<f64>,
    p99_ms: Vec<f64>,
    failover: Duration,
}

/// A write: `Ok` once committed.
trait Target: Clone + Send + Sync + 'static {
    fn write(&self, member: usize, key: String) -> impl Future<Output = Result<(), String>> + Send;
}

async fn measure<T: Target>(target: &T, member: usize, clients: usize) -> (f64, f64, f64) {
    let seq = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + PHASE;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (target, seq) = (target.clone(), seq.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let key = format!("c{clients}-k{c}x{}", seq.fetch_add(1, Ordering::Relaxed));
                    let t = Instant::now();
                    target
                        .write(member, key)
                        .await
                        .expect("write during throughput phase");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    (all.len() as f64 / secs, pct(0.50), pct(0.99))
}

async fn failover<T: Target>(target: &T, survivor: usize, kill: impl FnOnce()) -> Duration {
    let t0 = Instant::now();
    kill();
    let mut i = 0;
    loop {
        i += 1;
        let w = tokio::time::timeout(
            Duration::from_millis(500),
            target.write(survivor, format!("failover-{i}")),
        );
        if let Ok(Ok(())) = w.await {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no write committed within 30 s of the kill"
        );
    }
}

// ---------------------------------------------------------------- flocker-control

#[derive(Clone)]
struct Flocker {
    clients: Vec<NodeApiClient<Channel>>,
}

impl Target for Flocker {
    async fn write(&self, member: usize, key: String) -> Result<(), String> {
        let mut c = self.clients[member].clone();
        c.create_volume(pb::CreateVolumeRequest {
            name: key,
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_owned())
    }
}

/// flocker-control's figures, each member started with `flags` too.
async fn bench_flocker(dir: &Path, flags: &[&str]) -> Figures {
    ca::init(&dir.join("ca")).unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let mut procs: Vec<Option<Proc>> = Vec::new();
    for i in 0..3 {
        let tls = dir.join(format!("m{i}"));
        ca::issue(&dir.join("ca"), Role::Control, &format!("m{i}"), &[], &tls).unwrap();
        let mut cmd = Command::new(binary("flocker-control"));
        cmd.args(["--id", &(i + 1).to_string(), "--listen", &addr(i)])
            .arg("--data-dir")
            .arg(dir.join(format!("data{i}")))
            .arg("--tls-dir")
            .arg(&tls)
            .args(flags)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for j in (0..3).filter(|j| *j != i) {
            cmd.arg("--peer").arg(format!("{}={}", j + 1, addr(j)));
        }
        procs.push(Some(Proc::new(cmd.spawn().unwrap())));
    }
    let user = dir.join("user");
    ca::issue(&dir.join("ca"), Role::User, "bench", &[], &user).unwrap();
    let tls = TlsDir::load(&user).unwrap();
    let mut clients: Vec<Channel> = Vec::new();
    for i in 0..3 {
        let a = addr(i);
        clients.push(
            eventually(WAIT, "member to accept", || async {
                proto::connect::connect(&a, &tls).await.ok()
            })
            .await,
        );
    }
    let leader = eventually(WAIT, "a leader", || {
        let mut c = OperatorApiClient::new(clients[0].clone());
        async move { c.status(pb::Empty {}).await.ok()?.into_inner().leader }
    })
    .await as usize
        - 1;
    let target = Flocker {
        clients: clients.into_iter().map(NodeApiClient::new).collect(),
    };
    target.write(leader, "warmup".into()).await.unwrap();
    let mut f = Figures::default();
    for n in CLIENTS {
        let (rate, p50, p99) = measure(&target, leader, n).await;
        f.rate.push(rate);
        f.p50_ms.push(p50);
        f.p99_ms.push(p99);
    }
    let survivor = (leader + 1) % 3;
    f.failover = failover(&target, survivor, || procs[leader] = None).await;
    f
}

// ---------------------------------------------------------------- etcd

/// A keep-alive HTTP/1.1 connection to etcd.
type Connection = SendRequest<Full<Bytes>>;

#[derive(Clone)]
struct Etcd {
    /// Client ports, by member.
    ports: Vec<u16>,
    /// TLS to etcd with a client certificate, like flocker-control's mutual TLS; `None`:
    /// plain HTTP.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Idle keep-alive connections, by member.
    idle: Arc<Mutex<Vec<Vec<Connection>>>>,
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Etcd {
    /// A new HTTP/1.1 connection to `member` (over TLS when configured).
    async fn connect(&self, member: usize) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.ports[member]))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = match &self.tls {
            None => {
                let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                return Ok(sender);
            }
            Some(config) => {
                let name = ServerName::try_from("127.0.0.1").expect("an IP address");
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS to etcd: {e}"))?;
                http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn post(
        &self,
        member: usize,
        path: &str,
        body: String,
    ) -> Result<serde_json::Value, String> {
        let req = || {
            hyper::Request::post(path)
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| e.to_string())
        };
        let idle = self.idle.lock().expect("pool lock")[member].pop();
        // A kept connection the server closed meanwhile fails at once: once more on a new one.
        let mut sent = None;
        if let Some(mut kept) = idle
            && let Ok(resp) = kept.send_request(req()?).await
        {
            sent = Some((kept, resp));
        }
        let (sender, resp) = match sent {
            Some(sent) => sent,
            None => {
                let mut fresh = self.connect(member).await?;
                let resp = fresh.send_request(req()?).await;
                (fresh, resp.map_err(|e| e.to_string())?)
            }
        };
        let ok = resp.status().is_success();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.idle.lock().expect("pool lock")[member].push(sender);
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if ok && v.get("error").is_none() {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    }
}

impl Target for Etcd {
    async fn write(&self, member: usize, key: String) -> Result<(), String> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(key.as_bytes()),
            base64(b"bench-value")
        );
        self.post(member, "/v3/kv/put", body).await.map(|_| ())
    }
}

/// etcd's figures; with `tls`, every hop (client and peer) is mutual TLS with certificates of
/// a CA made in `dir`, as flocker-control's are.
async fn bench_etcd(dir: &Path, tls: bool) -> Figures {
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peer_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let scheme = if tls { "https" } else { "http" };
    let cluster: Vec<String> = (0..3)
        .map(|i| format!("e{i}={scheme}://127.0.0.1:{}", peer_ports[i]))
        .collect();
    let ca_dir = dir.join("ca");
    if tls {
        ca::init(&ca_dir).unwrap();
    }
    let mut procs: Vec<Option<Proc>> = Vec::new();
    for i in 0..3 {
        let client = format!("{scheme}://127.0.0.1:{}", client_ports[i]);
        let peer = format!("{scheme}://127.0.0.1:{}", peer_ports[i]);
        let mut tls_flags: Vec<String> = Vec::new();
        if tls {
            let certs = dir.join(format!("tls{i}"));
            let hosts = ["127.0.0.1".to_owned()];
            ca::issue(&ca_dir, Role::Control, &format!("e{i}"), &hosts, &certs).unwrap();
            let file = |f: &str| certs.join(f).display().to_string();
            for side in ["", "peer-"] {
                tls_flags.extend([
                    format!("--{side}cert-file={}", file("tls.crt")),
                    format!("--{side}key-file={}", file("tls.key")),
                    format!("--{side}trusted-ca-file={}", file("ca.crt")),
                    format!("--{side}client-cert-auth"),
                ]);
            }
        }
        let child = Command::new("etcd")
            .args(&tls_flags)
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.join(format!("etcd{i}")))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
            ])
            .args(["--initial-cluster-token", "bench", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server) must be installed");
        procs.push(Some(Proc::new(child)));
    }
    let client_tls = tls.then(|| {
        let user = dir.join("user");
        ca::issue(&ca_dir, Role::User, "bench", &[], &user).unwrap();
        client_config(&user)
    });
    let etcd = Etcd {
        ports: client_ports,
        tls: client_tls,
        idle: Arc::new(Mutex::new((0..3).map(|_| Vec::new()).collect())),
    };
    let leader = eventually(WAIT, "an etcd leader", || async {
        for i in 0..3 {
            let s = etcd
                .post(i, "/v3/maintenance/status", "{}".into())
                .await
                .ok()?;
            if s["leader"] == s["header"]["member_id"] && s["leader"].is_string() {
                return Some(i);
            }
        }
        None
    })
    .await;
    eventually(WAIT, "etcd to accept writes", || async {
        etcd.write(leader, "warmup".into()).await.ok()
    })
    .await;
    let mut f = Figures::default();
    for n in CLIENTS {
        let (rate, p50, p99) = measure(&etcd, leader, n).await;
        f.rate.push(rate);
        f.p50_ms.push(p50);
        f.p99_ms.push(p99);
    }
    let survivor = (leader + 1) % 3;
    f.failover = failover(&etcd, survivor, || procs[leader] = None).await;
    f
}

/// A rustls client configuration trusting the CA of TLS directory `dir` and presenting its
/// certificate.
fn client_config(dir: &Path) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(dir.join("tls.crt")).unwrap()],
            PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap(),
        )
        .unwrap();
    Arc::new(config)
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn version(cmd: &str) -> String {
    Command::new(cmd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "etcd".into())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let load_before = loadavg();
    let dir = TempDir::new().unwrap();
    let ours = bench_flocker(&dir.path().join("flocker"), &[]).await;
    let unbatched = bench_flocker(&dir.path().join("unbatched"), &["--max-batch", "1"]).await;
    let etcd_tls = bench_etcd(&dir.path().join("etcd-tls"), true).await;
    let etcd = bench_etcd(&dir.path().join("etcd"), false).await;

    println!();
    println!(
        "3 members on loopback, {} cores, {}s per phase, one run ({})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        PHASE.as_secs(),
        version("etcd")
    );
    println!(
        "1-minute load average before / after the run: {load_before} / {} (other work on the machine skews every figure)",
        loadavg()
    );
    println!(
        "flocker-control: group commit (the default); --max-batch 1: one entry per write (before)"
    );
    println!(
        "etcd TLS: mutual TLS on client and peer hops, as flocker-control; ratio: flocker-control / etcd TLS"
    );
    println!(
        "{:<32} {:>16} {:>14} {:>10} {:>10} {:>7}",
        "", "flocker-control", "--max-batch 1", "etcd TLS", "etcd", "ratio"
    );
    let row = |name: String, pick: &dyn Fn(&Figures) -> f64, unit: &str| {
        let (a, before, b, plain) = (pick(&ours), pick(&unbatched), pick(&etcd_tls), pick(&etcd));
        println!(
            "{name:<32} {:>16} {:>14} {:>10} {:>10} {:>7}",
            format!("{a:.1}{unit}"),
            format!("{before:.1}{unit}"),
            format!("{b:.1}{unit}"),
            format!("{plain:.1}{unit}"),
            format!("{:.2}x", a / b)
        );
    };
    for (i, n) in CLIENTS.iter().enumerate() {
        row(format!("writes/s, {n} client(s)"), &|f| f.rate[i], "");
        row(
            format!("p50 commit latency, {n} client(s)"),
            &|f| f.p50_ms[i],
            " ms",
        );
        row(
            format!("p99 commit latency, {n} client(s)"),
            &|f| f.p99_ms[i],
            " ms",
        );
    }
    row(
        "leader failover (kill -9)".into(),
        &|f| f.failover.as_secs_f64() * 1000.0,
        " ms",
    );
}
