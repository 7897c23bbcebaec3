//! Scale benchmark (issue 15, section 3): 3 real flocker-control members (processes on
//! loopback, mutual TLS) and N simulated agents in this process, for N = 10, 100, 1000 (or
//! `SCALE_HOSTS=10,100`). Each simulated agent is what a real one is to the control service,
//! minus Docker: its own node certificate and gRPC channel to one of the members, a
//! registration, a watch stream it reads to the end, a heartbeat every 2 s, one volume it owns
//! and an address for it (100 volumes and 100 addresses per 100 hosts).
//!
//! Printed per N, one row each, from one run: the leader's CPU (share of one core) and
//! resident memory at rest, the Raft log's growth per minute at rest, the commit latency of a
//! volume create (p50, p99) with that background, the time from a create's commit until every
//! watcher has seen it (p99 over the creates), the newest snapshot's size, and the time for a
//! new, empty member to join (`--join`, `AddMember`) and apply the whole log from a snapshot.
//! Run with `cargo bench -p control --bench scale`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::ca::Role;
use futures_util::StreamExt;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use testkit::Cluster;
use testkit::{cpu_seconds, rss_mib};
use tonic::transport::Channel;

/// How often each simulated agent heartbeats (the agent's default).
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long the cluster is watched at rest.
const AT_REST: Duration = Duration::from_secs(30);
/// Volume creates timed under the background.
const PROBES: usize = 50;
/// Agents set up at once.
const SETUP_CONCURRENCY: usize = 32;
/// The pool the simulated containers' addresses come from.
const POOL: &str = "10.128.0.0/14";

/// When each probe volume was seen, by how many watchers.
#[derive(Default)]
struct Seen(Mutex<HashMap<String, (usize, Instant)>>);

impl Seen {
    fn saw(&self, key: &str) {
        let mut seen = self.0.lock().expect("seen lock");
        let entry = seen.entry(key.to_owned()).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    /// When the `n`th watcher saw `key`, if `n` have.
    fn all_saw(&self, key: &str, n: usize) -> Option<Instant> {
        let seen = self.0.lock().expect("seen lock");
        seen.get(key)
            .filter(|(count, _)| *count >= n)
            .map(|(_, at)| *at)
    }
}

/// One row of the table.
struct Row {
    hosts: usize,
    leader_cpu: f64,
    leader_rss_mib: f64,
    log_per_minute: f64,
    create_p50_ms: f64,
    create_p99_ms: f64,
    watch_p99_ms: f64,
    snapshot_kib: f64,
    join_s: f64,
}

/// A simulated agent: registers, watches, heartbeats, owns one volume with one address.
async fn agent(
    c: &Cluster,
    i: usize,
    seen: Arc<Seen>,
    tasks: &Mutex<Vec<tokio::task::JoinHandle<()>>>,
) {
    let name = format!("sim-{i}");
    let tls = c.pki.tls(Role::Node, &name);
    let member = (i % 3) as u64 + 1;
    let channel: Channel = proto::connect::connect(&c.addr(member), &tls)
        .await
        .expect("an agent connects");
    let mut client = NodeApiClient::new(channel);
    client
        .register_node(pb::RegisterNodeRequest {
            name: name.clone(),
            address: format!("127.0.0.1:{}", 20000 + i),
            storage: "dir".into(),
        })
        .await
        .expect("register");
    let mut watch = client
        .watch(pb::WatchRequest {})
        .await
        .expect("watch")
        .into_inner();
    let watching = tokio::spawn(async move {
        while let Some(Ok(event)) = watch.next().await {
            if event.key.starts_with("probe-") && !event.deleted {
                seen.saw(&event.key);
            }
        }
    });
    let mut beating = client.clone();
    let beat_name = name.clone();
    let heartbeats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tick.tick().await;
            let beat = pb::HeartbeatRequest {
                name: beat_name.clone(),
            };
            if let Err(e) = beating.heartbeat(beat).await {
                eprintln!("{beat_name}: heartbeat failed: {}", e.message());
            }
        }
    });
    let volume = format!("vol-{i}");
    client
        .create_volume(pb::CreateVolumeRequest {
            name: volume.clone(),
            owner: Some(name.clone()),
            ..Default::default()
        })
        .await
        .expect("create the agent's volume");
    client
        .allocate_ip(pb::AllocateRequest {
            pool: POOL.into(),
            container_id: format!("ctr-{i}"),
            container_name: volume,
            node: name,
            dry_run: false,
        })
        .await
        .expect("an address");
    tasks
        .lock()
        .expect("tasks lock")
        .extend([watching, heartbeats]);
}

/// The size of the newest snapshot the leader built, from its log.
fn snapshot_kib(c: &Cluster, leader: u64) -> f64 {
    let log = testkit::cluster::read_log(&c.log_path(leader));
    log.lines()
        .filter(|l| l.contains("snapshot built"))
        .filter_map(|l| l.split("snapshot.bytes=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .map_or(0.0, |b| b / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run(hosts: usize) -> Row {
    // Snapshots often enough that one is built during the setup (writes are batched).
    let mut c = Cluster::start(3, &["--snapshot-threshold", "20"]);
    let leader = c.leader(1).await;
    let mut operator = c.operator(leader).await;
    operator
        .add_pool(pb::AddPoolRequest { cidr: POOL.into() })
        .await
        .expect("add the pool");

    let seen = Arc::new(Seen::default());
    let tasks = Mutex::new(Vec::new());
    let started = Instant::now();
    futures_util::stream::iter(0..hosts)
        .for_each_concurrent(SETUP_CONCURRENCY, |i| agent(&c, i, seen.clone(), &tasks))
        .await;
    eprintln!(
        "scale: {hosts} agents registered, watching, heartbeating, with a volume and an address each ({:.1?})",
        started.elapsed()
    );
    // Let the setup's writes settle (and a snapshot be built) before measuring rest.
    tokio::time::sleep(HEARTBEAT * 2).await;

    let pid = c.procs[leader as usize - 1].as_ref().expect("leader").id();
    let index = |s: pb::ClusterStatus| s.commit_index;
    let before = index(c.status_with_leader(leader).await);
    let (cpu_before, rest_started) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(AT_REST).await;
    let rest = rest_started.elapsed().as_secs_f64();
    let leader_cpu = (cpu_seconds(pid) - cpu_before) / rest;
    let leader_rss_mib = rss_mib(pid);
    let after = index(c.status_with_leader(leader).await);
    let log_per_minute = (after - before) as f64 * 60.0 / rest;

    let mut creates = Vec::new();
    let mut watched = Vec::new();
    let mut client = c.client(leader).await;
    for k in 0..PROBES {
        let name = format!("probe-{k}");
        let t = Instant::now();
        client
            .create_volume(pb::CreateVolumeRequest {
                name: name.clone(),
                ..Default::default()
            })
            .await
            .expect("a probe create");
        let committed = Instant::now();
        creates.push((committed - t).as_secs_f64() * 1000.0);
        let deadline = committed + Duration::from_secs(30);
        let all = loop {
            if let Some(at) = seen.all_saw(&name, hosts) {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: not every watcher saw it within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        watched.push(all.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    creates.sort_by(f64::total_cmp);
    watched.sort_by(f64::total_cmp);
    let snapshot_kib = snapshot_kib(&c, leader);

    // A new, empty member joins and applies everything (from a snapshot: the log before the
    // newest one is purged).
    let joining = Instant::now();
    let (id, s) = c.add_member(leader).await;
    c.wait_applied(leader, &[id], s.commit_index).await;
    let join_s = joining.elapsed().as_secs_f64();

    for task in tasks.into_inner().expect("tasks lock") {
        task.abort();
    }
    Row {
        hosts,
        leader_cpu,
        leader_rss_mib,
        log_per_minute,
        create_p50_ms: percentile(&creates, 0.50),
        create_p99_ms: percentile(&creates, 0.99),
        watch_p99_ms: percentile(&watched, 0.99),
        snapshot_kib,
        join_s,
    }
}

/// This process's limit on open files (a socket per simulated agent here; the members it
/// starts inherit it).
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<usize> = std::env::var("SCALE_HOSTS")
        .unwrap_or_else(|_| "10,100,1000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("SCALE_HOSTS: numbers, comma-separated")
        })
        .collect();
    let most = sizes.iter().copied().max().unwrap_or(0);
    assert!(
        open_files_limit() >= 2 * most + 256,
        "{most} simulated hosts need at least {} open files (`ulimit -n`)",
        2 * most + 256
    );
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows = Vec::new();
    for n in sizes {
        rows.push(run(n).await);
    }
    println!();
    println!(
        "3 members and N simulated agents on loopback (mutual TLS, a heartbeat every {}s each), {} cores; {AT_REST:?} at rest, {PROBES} creates",
        HEARTBEAT.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "load average before: {}",
        load_before.split_whitespace().next().unwrap_or("?")
    );
    println!(
        "{:>6} {:>11} {:>11} {:>13} {:>11} {:>11} {:>13} {:>10} {:>8}",
        "hosts",
        "leader CPU",
        "leader RSS",
        "log/min rest",
        "create p50",
        "create p99",
        "watchers p99",
        "snapshot",
        "join"
    );
    for r in rows {
        println!(
            "{:>6} {:>10.0}% {:>7.0} MiB {:>13.0} {:>8.1} ms {:>8.1} ms {:>10.1} ms {:>6.0} KiB {:>6.2} s",
            r.hosts,
            r.leader_cpu * 100.0,
            r.leader_rss_mib,
            r.log_per_minute,
            r.create_p50_ms,
            r.create_p99_ms,
            r.watch_p99_ms,
            r.snapshot_kib,
            r.join_s
        );
    }
}
