//! Move benchmark: one control member and two `flocker-agent`s on loopback, each agent with
//! its own zfs-fuse pool on a sparse file, same machine, same disk. For 100 MiB and 1 GiB of
//! random data, prints one table: total move time, downtime (from the moment the writer's
//! container lets go, or the handoff starts when idle, until the move is done) and throughput,
//! idle and with a writer appending at a steady 1 MiB/s, beside raw `zfs send | zfs receive`
//! of the same amount between the same two pools. Needs root and zfs-fuse.
//! Run with `cargo bench -p control --bench move` (`MOVE_BENCH_SIZES=100` for 100 MiB only).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/hosts.rs"]
mod hosts;
#[path = "../tests/common/move_lab.rs"]
mod move_lab;
#[path = "../../agent/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use control::ca::Role;
use hosts::Host;
use move_lab::Lab;
use proto::control as pb;
use support::pool::TestPool;

const MIB: u64 = 1 << 20;
/// The writer's steady rate: one 64 KiB append, fsynced, every 62.5 ms.
const WRITE_CHUNK: usize = 64 * 1024;
const WRITE_EVERY: Duration = Duration::from_micros(62_500);

struct Row {
    what: String,
    total: Duration,
    downtime: Option<Duration>,
    bytes: u64,
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
    support::sh(
        "zfs",
        &[
            "create",
            "-o",
            &format!("mountpoint={}", mnt.display()),
            &src,
        ],
    );
    fill(&mnt.join("data"), bytes);
    support::sh("zfs", &["snapshot", &format!("{src}@s")]);
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
    support::sh("zfs", &["destroy", "-r", &src]);
    support::sh("zfs", &["destroy", "-r", &format!("{}/raw", b.name())]);
    Row {
        what: "raw zfs send, zfs receive".into(),
        total,
        downtime: None,
        bytes,
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
    }
}

fn print(size: u64, rows: &[Row]) {
    let base = rows[0].total.as_secs_f64();
    for r in rows {
        let secs = r.total.as_secs_f64();
        println!(
            "| {:>5} MiB | {:<24} | {:>7.2} s | {:>9} | {:>7.1} MiB/s | {:>5.2}x |",
            size / MIB,
            r.what,
            secs,
            r.downtime
                .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            r.bytes as f64 / MIB as f64 / secs,
            secs / base,
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<u64> = std::env::var("MOVE_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1024".into())
        .split(',')
        .map(|s| s.trim().parse::<u64>().expect("sizes in MiB") * MIB)
        .collect();
    println!("| size | what | total | downtime | throughput | time vs raw |");
    println!("|---|---|---|---|---|---|");
    for size in sizes {
        let pool_bytes = 3 * size + 512 * MIB;
        let (Some(a), Some(b)) = (
            TestPool::create_sized(pool_bytes),
            TestPool::create_sized(pool_bytes),
        ) else {
            eprintln!("skipped: ZFS is not available here");
            return;
        };
        let scratch = support::scratch::Scratch::new("mvbench");
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
