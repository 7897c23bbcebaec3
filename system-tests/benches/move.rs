//! Move benchmark: one control member and two `flocker-agent`s on loopback, each agent with
//! its own zfs-fuse pool on a sparse file, same machine, same disk. For 100 MiB, 1 GiB and
//! 4 GiB of random data, prints one table: total move time, downtime (from the moment the
//! writer's container lets go, or the handoff starts when idle, until the move is done) and
//! throughput, idle and with a writer appending at a steady 1 MiB/s, beside raw
//! `zfs send | zfs receive` of the same amount between the same two pools. Each row also
//! shows the CPU seconds the zfs-fuse daemon and the two agents used, since on a small
//! machine they compete for the same cores. Needs root and zfs-fuse.
//! Run with `cargo bench -p system-tests --bench move` (`MOVE_BENCH_SIZES=100` for 100 MiB only).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use control::ca::Role;
use proto::control as pb;
use testkit::hosts::Host;
use testkit::move_lab::Lab;
use testkit::pool::TestPool;
use testkit::{Scratch, cpu_seconds};

const MIB: u64 = 1 << 20;
/// The writer's steady rate: one 64 KiB append, fsynced, every 62.5 ms.
const WRITE_CHUNK: usize = 64 * 1024;
const WRITE_EVERY: Duration = Duration::from_micros(62_500);

struct Row {
    what: String,
    total: Duration,
    downtime: Option<Duration>,
    bytes: u64,
    /// CPU seconds of the zfs-fuse daemon, and of both agents, during the row.
    zfs_cpu: f64,
    agents_cpu: f64,
}

/// The zfs-fuse daemon's pid (one daemon serves every pool).
fn zfs_fuse_pid() -> u32 {
    let out = std::process::Command::new("pgrep")
        .args(["-x", "zfs-fuse"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("zfs-fuse runs")
}

/// CPU seconds used so far by zfs-fuse and by the given agents.
fn cpu_now(agents: &[u32]) -> (f64, f64) {
    let zfs = cpu_seconds(zfs_fuse_pid());
    (zfs, agents.iter().map(|p| cpu_seconds(*p)).sum())
}

/// `zfs destroy -r -f dataset`, retried while zfs-fuse still calls the dataset busy.
fn destroy(dataset: &str) {
    let mut last = String::new();
    for _ in 0..50 {
        let out = std::process::Command::new("zfs")
            .args(["destroy", "-r", "-f", dataset])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("cannot destroy {dataset} after 10 s of retries: {last}");
}

fn fill(path: &std::path::Path, bytes: u64) {
    let status = std::process::Command::new("dd")
        .args(["if=/dev/urandom", "bs=1M", "status=none"])
        .arg(format!("count={}", bytes / MIB))
        .arg(format!("of={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success());
    std::process::Command::new("sync").status().unwrap();
}

/// Raw `zfs send | zfs receive` of `bytes` from pool `a` to pool `b`.
fn raw(a: &TestPool, b: &TestPool, root: &std::path::Path, bytes: u64) -> Row {
    let src = format!("{}/raw", a.name());
    let mnt = root.join("raw");
    testkit::sh(
        "zfs",
        &[
            "create",
            "-o",
            &format!("mountpoint={}", mnt.display()),
            &src,
        ],
    );
    fill(&mnt.join("data"), bytes);
    testkit::sh("zfs", &["snapshot", &format!("{src}@s")]);
    let cpu = cpu_now(&[]);
    let started = Instant::now();
    let script = format!("zfs send {src}@s | zfs receive -u {}/raw", b.name());
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = started.elapsed();
    let zfs_cpu = cpu_now(&[]).0 - cpu.0;
    destroy(&src);
    destroy(&format!("{}/raw", b.name()));
    Row {
        what: "raw zfs send, zfs receive".into(),
        total,
        downtime: None,
        bytes,
        zfs_cpu,
        agents_cpu: 0.0,
    }
}

/// Moves a volume of `bytes` from host 0 to host 1, with or without a writer.
async fn moved(lab: &Lab, name: &str, bytes: u64, writer: bool) -> Row {
    lab.create(name, 0).await;
    fill(&lab.hosts[0].path(name).join("data"), bytes);
    let node_tls = lab.c.pki.tls(Role::Node, "host-a");
    let mut node = lab.c.client_with(1, &node_tls).await;
    let lease = pb::Lease {
        volume: name.into(),
        node: "host-a".into(),
        container_id: "w".into(),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let task = writer.then(|| {
        let stop = stop.clone();
        let path = lab.hosts[0].path(name).join("log");
        std::thread::spawn(move || {
            let chunk = vec![7u8; WRITE_CHUNK];
            let mut next = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .unwrap();
                f.write_all(&chunk).unwrap();
                f.sync_all().unwrap();
                next += WRITE_EVERY;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    });
    if writer {
        node.acquire_lease(lease.clone()).await.unwrap();
    }
    let agents: Vec<u32> = lab
        .hosts
        .iter()
        .filter_map(|h| h.agent.as_ref().map(|a| a.child.id()))
        .collect();
    let cpu = cpu_now(&agents);
    let started = Instant::now();
    let mut m = lab.start_move(1, name, 1);
    let mut events = Vec::new();
    let mut handoff = None;
    while let Some(e) = m.next() {
        if e["phase"] == "handoff" && handoff.is_none() {
            if let Some(t) = task.as_ref() {
                stop.store(true, Ordering::SeqCst);
                while !t.is_finished() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                node.release_lease(lease.clone()).await.unwrap();
            }
            handoff = Some(Instant::now());
        }
        let done = e["phase"] == "done";
        events.push(e);
        if done {
            break;
        }
    }
    let end = Instant::now();
    let after = cpu_now(&agents);
    m.expect_success(&events);
    let sent = events.last().unwrap()["bytes_sent"].as_u64().unwrap();
    Row {
        what: format!(
            "move, {}",
            if writer { "writer at 1 MiB/s" } else { "idle" }
        ),
        total: end - started,
        downtime: handoff.map(|h| end - h),
        bytes: sent,
        zfs_cpu: after.0 - cpu.0,
        agents_cpu: after.1 - cpu.1,
    }
}

fn print(size: u64, rows: &[Row]) {
    let base = rows[0].total.as_secs_f64();
    for r in rows {
        let secs = r.total.as_secs_f64();
        println!(
            "| {:>5} MiB | {:<24} | {:>7.2} s | {:>9} | {:>7.1} MiB/s | {:>5.2}x | {:>6.1} s | {:>6.1} s |",
            size / MIB,
            r.what,
            secs,
            r.downtime
                .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            r.bytes as f64 / MIB as f64 / secs,
            secs / base,
            r.zfs_cpu,
            r.agents_cpu,
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<u64> = std::env::var("MOVE_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1024,4096".into())
        .split(',')
        .map(|s| s.trim().parse::<u64>().expect("sizes in MiB") * MIB)
        .collect();
    println!(
        "| size | what | total | downtime | throughput | time vs raw | zfs-fuse CPU | agents CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for size in sizes {
        let pool_bytes = 3 * size + 512 * MIB;
        let (Some(a), Some(b)) = (
            TestPool::create_sized(pool_bytes),
            TestPool::create_sized(pool_bytes),
        ) else {
            eprintln!("skipped: ZFS is not available here");
            return;
        };
        let scratch = Scratch::new("mvbench");
        let raw_row = raw(&a, &b, scratch.path(), size);
        let hosts = vec![
            Host::with_pool("host-a", None, a).unwrap(),
            Host::with_pool("host-b", None, b).unwrap(),
        ];
        let mut lab = Lab::with_hosts(1, hosts).await;
        lab.deadline = Duration::from_secs(1800);
        let idle = moved(&lab, "idle", size, false).await;
        let busy = moved(&lab, "busy", size, true).await;
        print(size, &[raw_row, idle, busy]);
    }
}
