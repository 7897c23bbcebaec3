//! Replica lag benchmark (issue 12): real control member and three `flocker-agent`s on
//! loopback, each with its own zfs-fuse pool (testkit's move lab). A volume on host-a with
//! the policy `--replicas 2 --max-lag 10s`; a writer writes random data into it at 1, 10 and
//! 50 MiB/s for 30 s while the age of each replica's data (now - the time its snapshot was
//! taken on the owner, from `volume inspect`) is sampled every 250 ms.
//!
//! Columns: the rate asked for and achieved, the max lag, p50 / p99 / max of the sampled
//! ages, the agents' CPU (owner and both replicas, user + system) per MiB written, and the
//! baseline: raw `zfs send -i | zfs receive` between two pools of one increment of the same
//! size as half a max lag of writes (what one refresh has to carry at that rate).
//! The bytes the owner's agent pushed per MiB written (both replicas) are a column too.
//! Then a reschedule: a 1 GiB volume moved from host-a, once to a node without a copy and
//! once to the node holding its warm replica (`--replicas 1 --max-lag 10s`): the move's whole
//! time, its downtime and the bytes it sent.
//! Needs root and zfs-fuse. Run with `cargo bench -p system-tests --bench replication`
//! (`REPLICATION_BENCH_RATES=1,10` to choose the rates, `REPLICATION_BENCH_SECS` the time,
//! `REPLICATION_BENCH_RESCHEDULE_MIB` the reschedule's size, 0 for none).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::cpu_seconds;
use testkit::hosts::Host;
use testkit::move_lab::Lab;
use testkit::pool::TestPool;

const MIB: u64 = 1 << 20;
const MAX_LAG: &str = "10s";
const MAX_LAG_S: f64 = 10.0;
/// Each host's pool: room for 30 s at 50 MiB/s and the snapshots a refresh pins.
const POOL_BYTES: u64 = 4 << 30;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Writes `rate` bytes a second of random data into `dir` (20 files, overwritten in turn)
/// until `stop`; counts what it wrote in `written`.
fn writer(dir: std::path::PathBuf, rate: u64, stop: Arc<AtomicBool>, written: Arc<AtomicU64>) {
    let chunk = (rate / 10) as usize;
    let data = testkit::random(chunk.max(1));
    let started = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = dir.join(format!("f{}", n % 20));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_data().unwrap();
        written.fetch_add(chunk as u64, Ordering::Relaxed);
        n += 1;
        let due = Duration::from_millis(100 * n);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// The ages, in seconds, of every replica of `volume` with a time, now.
fn ages(lab: &Lab, volume: &str) -> Vec<f64> {
    let out = lab
        .flockerctl(1, &["volume", "inspect", volume])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let now = now_ms();
    v["replicas"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["taken_ms"].as_u64())
                .map(|t| now.saturating_sub(t) as f64 / 1000.0)
                .collect()
        })
        .unwrap_or_default()
}

/// Seconds for raw `zfs send -i | zfs receive` of an increment of `bytes` between two pools.
fn raw_increment(bytes: u64) -> f64 {
    let (Some(a), Some(b)) = (
        TestPool::create_sized(POOL_BYTES),
        TestPool::create_sized(POOL_BYTES),
    ) else {
        return f64::NAN;
    };
    let src = format!("{}/raw", a.name());
    let dst = format!("{}/raw", b.name());
    let dir = tempfile::tempdir().unwrap();
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap();
        assert!(ok.success(), "{cmd}");
    };
    sh(&format!(
        "zfs create -o mountpoint={} {src}",
        dir.path().display()
    ));
    sh(&format!(
        "zfs snapshot {src}@s0 && zfs send {src}@s0 | zfs receive {dst}"
    ));
    let data = testkit::random(bytes as usize);
    std::fs::write(dir.path().join("f"), &data).unwrap();
    sh(&format!("zfs snapshot {src}@s1"));
    let started = Instant::now();
    sh(&format!(
        "zfs send -i {src}@s0 {src}@s1 | zfs receive -F {dst}"
    ));
    let took = started.elapsed().as_secs_f64();
    sh(&format!("zfs set mountpoint=none {src}"));
    took
}

struct Row {
    rate: u64,
    achieved: f64,
    p50: f64,
    p99: f64,
    max: f64,
    cpu_per_mib: f64,
    sent_per_mib: f64,
    raw: f64,
}

/// Bytes the owner's agent pushed for `volume` since `since_ms` (its log's `push finished
/// bytes=N` lines: the snapshot streams sent, before TLS and gRPC framing).
fn pushed_bytes(owner: &Host, volume: &str, since_ms: u64) -> u64 {
    let tag = format!("volume.name={volume} ");
    owner
        .log()
        .lines()
        .filter(|l| l.contains("push finished") && l.contains(&tag))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|t| t.as_millis() as u64 >= since_ms)
        })
        .filter_map(|l| {
            let (_, rest) = l.split_once("bytes=")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// One reschedule of a `mib` MiB volume owned by host-a to `to`: the move's whole time,
/// its downtime (`volume inspect`) and the bytes it sent.
struct Reschedule {
    to: String,
    warm: bool,
    total_s: f64,
    downtime_s: f64,
    sent_mib: f64,
}

/// Creates `name` on host-a with `mib` MiB of random data and, with `warm`, one replica kept
/// with a 10 s max lag; waits until the replica holds it all; then moves it (what a Swarm
/// reschedule does) to the replica's node, or to host-b without one.
async fn reschedule(lab: &Lab, name: &str, mib: u64, warm: bool) -> Reschedule {
    let mut args = vec!["volume", "create", name, "--owner", "host-a"];
    if warm {
        args.extend(["--replicas", "1", "--max-lag", MAX_LAG]);
    }
    lab.ctl(&args);
    let a = &lab.hosts[0];
    testkit::eventually(Duration::from_secs(30), "the owner to mount it", || async {
        (a.mounted(name) == Some(false)).then_some(())
    })
    .await;
    let data = testkit::random(MIB as usize);
    for i in 0..mib {
        std::fs::write(a.path(name).join(format!("f{i}")), &data).unwrap();
    }
    let written_ms = now_ms();
    let to = if warm {
        testkit::eventually(
            Duration::from_secs(600),
            "the replica to hold every write",
            || async {
                let out = lab
                    .flockerctl(1, &["volume", "inspect", name])
                    .output()
                    .ok()?;
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                let r = &v["replicas"][0];
                (r["taken_ms"].as_u64()? > written_ms)
                    .then(|| r["node"].as_str().map(str::to_owned))?
            },
        )
        .await
    } else {
        "host-b".to_owned()
    };
    let to_index = lab.hosts.iter().position(|h| h.name == to).unwrap();
    let started = Instant::now();
    let events = lab.move_ok(name, to_index);
    let total_s = started.elapsed().as_secs_f64();
    let sent = events
        .last()
        .and_then(|e| e["bytes_sent"].as_u64())
        .unwrap_or(0);
    let out = lab
        .flockerctl(1, &["volume", "inspect", name])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let downtime_ms = v["moves"][0]["downtime_ms"].as_u64().unwrap_or(0);
    lab.ctl(&["volume", "set", name, "--no-replication"]);
    Reschedule {
        to,
        warm,
        total_s,
        downtime_s: downtime_ms as f64 / 1000.0,
        sent_mib: sent as f64 / MIB as f64,
    }
}

fn main() {
    let rates: Vec<u64> = std::env::var("REPLICATION_BENCH_RATES")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: u64 = std::env::var("REPLICATION_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let reschedule_mib: u64 = std::env::var("REPLICATION_BENCH_RESCHEDULE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rows, moves) = rt.block_on(async {
        let mut hosts = Vec::new();
        for name in ["host-a", "host-b", "host-c"] {
            let host =
                TestPool::create_sized(POOL_BYTES).and_then(|p| Host::with_pool(name, None, p));
            let Some(host) = host else {
                eprintln!("replication bench skipped: needs root and zfs-fuse");
                return (Vec::new(), Vec::new());
            };
            hosts.push(host);
        }
        let lab = Lab::with_hosts(1, hosts).await;
        let mut rows = Vec::new();
        for &rate in &rates {
            let name = format!("lag-{rate}-{}", std::process::id());
            lab.ctl(&[
                "volume",
                "create",
                &name,
                "--owner",
                "host-a",
                "--replicas",
                "2",
                "--max-lag",
                MAX_LAG,
            ]);
            let a = &lab.hosts[0];
            testkit::eventually(Duration::from_secs(30), "the owner to mount it", || async {
                (a.mounted(&name) == Some(false)).then_some(())
            })
            .await;
            testkit::eventually(Duration::from_secs(60), "both replicas", || async {
                (ages(&lab, &name).len() == 2).then_some(())
            })
            .await;
            let pids: Vec<u32> = lab
                .hosts
                .iter()
                .filter_map(|h| h.agent.as_ref().map(|p| p.id()))
                .collect();
            let cpu_before: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
            let (stop, written) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicU64::new(0)),
            );
            let thread = {
                let (dir, stop, written) = (a.path(&name), stop.clone(), written.clone());
                std::thread::spawn(move || writer(dir, rate * MIB, stop, written))
            };
            let started = Instant::now();
            let started_ms = now_ms();
            let mut samples = Vec::new();
            while started.elapsed() < Duration::from_secs(secs) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                samples.extend(ages(&lab, &name));
            }
            stop.store(true, Ordering::Relaxed);
            thread.join().unwrap();
            let elapsed = started.elapsed().as_secs_f64();
            let cpu: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - cpu_before;
            let written_mib = written.load(Ordering::Relaxed) as f64 / MIB as f64;
            samples.sort_by(f64::total_cmp);
            rows.push(Row {
                rate,
                achieved: written_mib / elapsed,
                p50: percentile(&samples, 0.5),
                p99: percentile(&samples, 0.99),
                max: samples.last().copied().unwrap_or(f64::NAN),
                cpu_per_mib: cpu / written_mib.max(1e-9),
                sent_per_mib: pushed_bytes(a, &name, started_ms) as f64
                    / MIB as f64
                    / written_mib.max(1e-9),
                raw: raw_increment((rate * MIB) * (MAX_LAG_S as u64) / 2),
            });
            lab.ctl(&["volume", "set", &name, "--no-replication"]);
        }
        let mut moves = Vec::new();
        if reschedule_mib > 0 {
            for warm in [false, true] {
                let name = format!(
                    "resched-{}-{}",
                    if warm { "warm" } else { "cold" },
                    std::process::id()
                );
                moves.push(reschedule(&lab, &name, reschedule_mib, warm).await);
            }
        }
        (rows, moves)
    });
    if rows.is_empty() && moves.is_empty() {
        return;
    }
    println!(
        "\nreplica lag, 2 replicas, max lag {MAX_LAG}, {secs} s per rate (zfs-fuse, loopback, debug or release as built)"
    );
    println!(
        "{:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>14} {:>16} {:>22}",
        "rate MiB/s",
        "achieved",
        "max lag",
        "p50 s",
        "p99 s",
        "max s",
        "agent CPU s/MiB",
        "sent MiB/MiB",
        "raw send|recv 5 s, s"
    );
    for r in rows {
        println!(
            "{:>10} {:>10.1} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>14.3} {:>16.2} {:>22.2}",
            r.rate,
            r.achieved,
            MAX_LAG_S,
            r.p50,
            r.p99,
            r.max,
            r.cpu_per_mib,
            r.sent_per_mib,
            r.raw
        );
    }
    if !moves.is_empty() {
        println!(
            "\nreschedule (a move, as Swarm's does) of a {reschedule_mib} MiB volume from host-a"
        );
        println!(
            "{:>22} {:>8} {:>12} {:>12} {:>10}",
            "", "to", "move s", "downtime s", "sent MiB"
        );
        for m in moves {
            println!(
                "{:>22} {:>8} {:>12.2} {:>12.2} {:>10.1}",
                if m.warm {
                    "to a warm replica"
                } else {
                    "without a replica"
                },
                m.to,
                m.total_s,
                m.downtime_s,
                m.sent_mib
            );
        }
    }
}
