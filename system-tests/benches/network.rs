//! Network benchmark: one table from one run, each figure beside its baseline.
//!
//! **Attach latency.** One control member and one real `flocker-agent --underlay` in front of
//! a private dockerd, both in the test's own network namespace (`testkit/src/weave_agent.rs`).
//! N containers per mode (`NET_BENCH_CONTAINERS`, default 50), the modes interleaved so that
//! the machine's noise falls on all of them alike. Each container is created first (not
//! timed), then one `POST /containers/{id}/start` is sent on the socket (raw HTTP, no CLI
//! in the measurement). Two times are taken from the moment the request is written: the
//! start answer, and the application running with its address: the container's command
//! (run by `wait-for-net` when it asks for `WEAVE_CIDR`) writes its hostname and the
//! addresses of `ethwe` into a FIFO the benchmark reads. Modes: dockerd directly and the
//! agent's proxy without `WEAVE_CIDR` (baselines), the proxy with `WEAVE_CIDR=net:...` (the
//! start answer is held until `ethwe` is up), and dockerd directly for a `WEAVE_CIDR`
//! container (attached by the agent's restart watcher from Docker's `start` event).
//!
//! **Overlay throughput.** Two hosts as network namespaces joined by a veth underlay, the
//! agent's own bridge + VXLAN code in each (`testkit/src/overlay.rs`); iperf3 (TCP,
//! 5 s) from a "container" attached to `weave` on host 2 to one on host 1, alternated with
//! iperf3 between the two hosts' underlay addresses, 3 times each. Also checked: the
//! overlay MTU (the largest ping that passes with DF set) and that no IP fragments were
//! made or reassembled in the hosts.
//!
//! Needs root, dockerd, docker, busybox, iperf3. Run with `cargo bench -p system-tests
//! --bench network`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent::network::Network;
use testkit::Cluster;
use testkit::cluster::flockerctl;
use testkit::netns::{TestNetns, prerequisites_with};
use testkit::overlay::{Container, Host, UNDERLAY, cidr, two_hosts};
use testkit::weave_agent::AgentHost;

const POOL: &str = "10.2.0.0/16";
/// What each benchmark container runs: report the hostname and ethwe's addresses, then idle.
const REPORT: &str =
    "echo \"$(hostname) $(ip -4 -o addr show ethwe 2>/dev/null)\" > /bench/fifo; exec sleep 600";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Direct,
    Proxy,
    ProxyWeave,
    DirectWeave,
}

impl Mode {
    const ALL: [Mode; 4] = [
        Mode::Direct,
        Mode::Proxy,
        Mode::ProxyWeave,
        Mode::DirectWeave,
    ];

    fn label(self) -> &'static str {
        match self {
            Mode::Direct => "dockerd directly, no WEAVE_CIDR (baseline)",
            Mode::Proxy => "agent proxy, no WEAVE_CIDR (baseline)",
            Mode::ProxyWeave => "agent proxy, WEAVE_CIDR=net:",
            Mode::DirectWeave => "dockerd directly, WEAVE_CIDR=net: (restart watcher)",
        }
    }

    fn weave(self) -> bool {
        matches!(self, Mode::ProxyWeave | Mode::DirectWeave)
    }

    /// Where the container is created (through the proxy when it needs the rewrite).
    fn create_via_proxy(self) -> bool {
        self != Mode::Direct
    }

    fn start_via_proxy(self) -> bool {
        matches!(self, Mode::Proxy | Mode::ProxyWeave)
    }
}

fn main() {
    if !prerequisites_with(
        "the network benchmark",
        &["dockerd", "docker", "busybox", "tar", "iperf3", "mkfifo"],
    ) {
        return;
    }
    let n: usize = std::env::var("NET_BENCH_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let attach = attach_latency(n);
    let overlay = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(overlay_throughput());
    print_attach(n, &attach);
    print_overlay(&overlay);
}

// ---------- attach latency ----------

/// Per mode: (start answered, application running with its address) per container.
type Samples = Vec<(Mode, Vec<(Duration, Duration)>)>;

/// The samples, and the `weave` post-hook durations the agent logged (ms).
fn attach_latency(n: usize) -> (Samples, Vec<f64>) {
    let c = Cluster::start(1, &[]);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.leader(1));
    let out = flockerctl(&c, &["ip", "add-pool", POOL]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = AgentHost::start("the network benchmark", &c, "n1").expect("prerequisites checked");
    let bench_dir = h.docker.dir().join("bench");
    std::fs::create_dir_all(&bench_dir).unwrap();
    testkit::run("mkfifo", &[bench_dir.join("fifo").to_str().unwrap()]);
    let lines = read_fifo(bench_dir.join("fifo"));
    eprintln!(
        "attach latency: {n} containers per mode, {} modes",
        Mode::ALL.len()
    );
    let mut samples: Samples = Mode::ALL.iter().map(|m| (*m, Vec::new())).collect();
    let (mut created, mut attached) = (Vec::new(), Vec::new());
    for i in 0..n {
        for (mode, times) in samples.iter_mut() {
            let id = create(&h, *mode, &bench_dir);
            created.push(id.clone());
            if *mode == Mode::ProxyWeave {
                attached.push(id.clone());
            }
            let socket = if mode.start_via_proxy() {
                h.proxy()
            } else {
                h.docker.socket()
            };
            times.push(start_and_wait(&socket, &id, mode.weave(), &lines, &h));
        }
        if (i + 1) % 10 == 0 {
            eprintln!("  {} of {n}", i + 1);
        }
    }
    let mut rm = vec!["rm", "-f"];
    rm.extend(created.iter().map(String::as_str));
    let _ = h.docker_direct(&rm);
    let logged = h.weave_post_hooks();
    let hooks: Vec<f64> = attached
        .iter()
        .filter_map(|id| logged.iter().find(|(path, _)| path.contains(id.as_str())))
        .map(|(_, ms)| *ms)
        .collect();
    assert_eq!(
        hooks.len(),
        n,
        "a logged weave post-hook for each start with WEAVE_CIDR"
    );
    (samples, hooks)
}

fn create(h: &AgentHost, mode: Mode, bench_dir: &Path) -> String {
    let bind = format!("{}:/bench", bench_dir.display());
    let mut args = vec!["create", "-v", &bind];
    let cidr = format!("WEAVE_CIDR=net:{POOL}");
    if mode.weave() {
        args.extend(["-e", &cidr]);
    }
    args.extend(["busybox", "sh", "-c", REPORT]);
    let out = if mode.create_via_proxy() {
        h.docker(&args)
    } else {
        h.docker_direct(&args)
    };
    ok(&out, "docker create", h).trim().to_owned()
}

/// The FIFO's lines as they arrive, each with the instant it was read.
fn read_fifo(path: PathBuf) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read and write: the FIFO never reports end-of-file between writers.
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open the FIFO");
        for line in BufReader::new(fifo).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    rx
}

fn start_and_wait(
    socket: &Path,
    id: &str,
    weave: bool,
    lines: &mpsc::Receiver<(Instant, String)>,
    h: &AgentHost,
) -> (Duration, Duration) {
    let begun = Instant::now();
    post_start(socket, id);
    let answered = begun.elapsed();
    let (at, line) = lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("container {id} never reported; agent log:\n{}", h.log()));
    assert!(line.starts_with(&id[..12]), "{line:?} is not from {id}");
    assert_eq!(line.contains("inet 10.2."), weave, "{line:?}");
    (answered, at - begun)
}

/// `POST /containers/{id}/start` on `socket`, returning once the answer's head is read.
fn post_start(socket: &Path, id: &str) {
    let mut stream = UnixStream::connect(socket).expect("connect to the Docker socket");
    write!(
        stream,
        "POST /v1.41/containers/{id}/start HTTP/1.1\r\nHost: docker\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let got = stream.read(&mut buf).expect("read the start answer");
        assert!(got > 0, "the socket closed before answering");
        head.extend_from_slice(&buf[..got]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    if !text.starts_with("HTTP/1.1 204") {
        let mut rest = String::new();
        let _ = stream.read_to_string(&mut rest);
        panic!("start of {id} failed: {text}{rest}");
    }
}

fn ok(out: &Output, what: &str, h: &AgentHost) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99, max in milliseconds.
fn stats(mut d: Vec<Duration>) -> [f64; 3] {
    d.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    [
        ms(percentile(&d, 50.0)),
        ms(percentile(&d, 99.0)),
        ms(*d.last().unwrap()),
    ]
}

fn print_attach(n: usize, (samples, hooks): &(Samples, Vec<f64>)) {
    println!();
    println!("Attach latency, {n} containers per mode (ms, from the start request)");
    println!(
        "| {:<52} | {:>21} | {:>21} |",
        "mode", "start answered", "app running + address"
    );
    println!(
        "| {:<52} | {:>6} {:>6} {:>7} | {:>6} {:>6} {:>7} |",
        "", "p50", "p99", "max", "p50", "p99", "max"
    );
    let mut app = Vec::new();
    for (mode, times) in samples {
        let s = stats(times.iter().map(|t| t.0).collect());
        let a = stats(times.iter().map(|t| t.1).collect());
        app.push(a);
        println!(
            "| {:<52} | {:>6.1} {:>6.1} {:>7.1} | {:>6.1} {:>6.1} {:>7.1} |",
            mode.label(),
            s[0],
            s[1],
            s[2],
            a[0],
            a[1],
            a[2]
        );
    }
    let hook = stats(
        hooks
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .collect(),
    );
    println!(
        "| {:<52} | {:>6.1} {:>6.1} {:>7.1} | {:>21} |",
        "weave post-hook alone (inspect, allocate, attach)", hook[0], hook[1], hook[2], ""
    );
    let (proxy, weave) = (app[1], app[2]);
    println!(
        "attach cost, proxy with WEAVE_CIDR minus proxy without (app running): p50 {:+.1} ms, \
         p99 {:+.1} ms; the post-hook alone: p99 {:.1} ms (goal: p99 under 100 ms; Weave: \
         500-1350 ms)",
        weave[0] - proxy[0],
        weave[1] - proxy[1],
        hook[1]
    );
}

// ---------- overlay throughput ----------

struct Overlay {
    mtu: u32,
    underlay: Vec<f64>,
    overlay: Vec<f64>,
    /// A bare kernel VXLAN pair between the same two hosts (no bridge, no container veth):
    /// the ceiling an overlay can reach here.
    bare_vxlan: Vec<f64>,
    largest_df_ping: Option<usize>,
    fragments: u64,
}

/// A background iperf3 server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn overlay_throughput() -> Overlay {
    eprintln!("overlay throughput: iperf3 TCP 5 s, underlay and overlay alternated 3 times");
    let (h1, h2) = two_hosts().await;
    let server = ["iperf3", "-s", "-p", "5201", "--logfile", "/dev/null"];
    let srv = Container::start_cmd(&h1, &server, "iperf3");
    let cli = Container::start(&h2);
    let o = h1.net.ensure_overlay().await.unwrap();
    h1.net
        .attach("bench-srv", srv.pid, &[cidr("10.255.0.1/16")])
        .await
        .unwrap();
    h2.net
        .attach("bench-cli", cli.pid, &[cidr("10.255.0.2/16")])
        .await
        .unwrap();
    let _underlay_srv = Server(
        h1.ns
            .command("iperf3")
            .args(["-s", "-p", "5202"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(cli.ping("10.255.0.1", Duration::from_secs(3)), "overlay up");
    let in_cli = |program: &str| {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", cli.pid))
            .arg(program);
        c
    };
    // The bare VXLAN pair: one kernel VXLAN device in each host over the same underlay, the
    // overlay's MTU, the addresses on the devices themselves.
    for (h, me, peer, addr) in [
        (&h1, h1.ip, h2.ip, "10.96.0.1/24"),
        (&h2, h2.ip, h1.ip, "10.96.0.2/24"),
    ] {
        let (me, peer, mtu) = (me.to_string(), peer.to_string(), o.mtu.to_string());
        let bare = [
            "link", "add", "vxbare", "type", "vxlan", "id", "4242", "local", &me, "remote", &peer,
            "dstport", "4790", "dev", UNDERLAY,
        ];
        ok_ip(h, &bare);
        ok_ip(h, &["link", "set", "vxbare", "mtu", &mtu, "up"]);
        ok_ip(h, &["addr", "add", addr, "dev", "vxbare"]);
    }
    let _bare_srv = Server(
        h1.ns
            .command("iperf3")
            .args(["-s", "-p", "5203", "-B", "10.96.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fragments_before = fragments(&h1.ns) + fragments(&h2.ns);
    let (mut underlay, mut overlay, mut bare_vxlan) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut u = h2.ns.command("iperf3");
        underlay.push(iperf(u.args(["-c", &h1.ip.to_string(), "-p", "5202"])));
        let mut b = h2.ns.command("iperf3");
        bare_vxlan.push(iperf(b.args(["-c", "10.96.0.1", "-p", "5203"])));
        overlay.push(iperf(in_cli("iperf3").args([
            "-c",
            "10.255.0.1",
            "-p",
            "5201",
        ])));
    }
    let fragments = fragments(&h1.ns) + fragments(&h2.ns) - fragments_before;
    // The largest ICMP payload that passes with DF set: MTU minus 28 (IPv4 20, ICMP 8).
    let df_ping = |size: usize| {
        in_cli("ping")
            .args([
                "-M",
                "do",
                "-c",
                "1",
                "-W",
                "1",
                "-s",
                &size.to_string(),
                "10.255.0.1",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mtu_payload = o.mtu as usize - 28;
    let largest_df_ping =
        (df_ping(mtu_payload) && !df_ping(mtu_payload + 1)).then_some(mtu_payload);
    Overlay {
        mtu: o.mtu,
        underlay,
        overlay,
        bare_vxlan,
        largest_df_ping,
        fragments,
    }
}

/// `ip ARGS` in host `h`'s namespace, which must succeed.
fn ok_ip(h: &Host, args: &[&str]) {
    let out = h.ns.ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One iperf3 client run; the receiver's rate in Gbit/s.
fn iperf(cmd: &mut Command) -> f64 {
    let out = cmd.args(["-t", "5", "-J"]).output().expect("iperf3 runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("iperf3: {}", String::from_utf8_lossy(&out.stderr)));
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 failed: {v}"));
    bps / 1e9
}

/// IP fragments made plus reassemblies asked for so far in a namespace (`/proc/net/snmp`).
fn fragments(ns: &TestNetns) -> u64 {
    let out = ns.command("cat").arg("/proc/net/snmp").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ip: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("Ip:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (names, values) = (&ip[0], &ip[1]);
    names
        .iter()
        .zip(values)
        .filter(|(n, _)| ["FragCreates", "ReasmReqds"].contains(n))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum()
}

fn print_overlay(o: &Overlay) {
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let runs = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (u, w, b) = (
        median(&o.underlay),
        median(&o.overlay),
        median(&o.bare_vxlan),
    );
    println!();
    println!("Throughput between two hosts, iperf3 TCP 5 s per run (Gbit/s)");
    println!("| {:<44} | {:>6} | {:<16} |", "path", "median", "runs");
    println!(
        "| {:<44} | {:>6.2} | {:<16} |",
        "underlay (veth, MTU 1500, baseline)",
        u,
        runs(&o.underlay)
    );
    println!(
        "| {:<44} | {:>6.2} | {:<16} |",
        format!("bare kernel VXLAN pair (MTU {}, ceiling)", o.mtu),
        b,
        runs(&o.bare_vxlan)
    );
    println!(
        "| {:<44} | {:>6.2} | {:<16} |",
        format!("overlay (ethwe -> weave -> VXLAN, MTU {})", o.mtu),
        w,
        runs(&o.overlay)
    );
    println!(
        "overlay / bare VXLAN: {:.0}% (goal: within 5%); overlay / underlay: {:.0}%, bare VXLAN / underlay: {:.0}%",
        100.0 * w / b,
        100.0 * w / u,
        100.0 * b / u
    );
    println!(
        "largest DF ping over the overlay: {}; IP fragments in the hosts during the runs: {}",
        o.largest_df_ping
            .map_or("not MTU - 28 (check the MTU)".to_owned(), |p| format!(
                "{p} bytes (MTU {} - 28)",
                o.mtu
            )),
        o.fragments
    );
}
