//! Swarm reschedule benchmark, on the lab (`demos/lab`, three hosts, agents sending at full
//! speed, release binaries built by the lab): a one-task service writes a blob of S MiB to
//! its flocker volume, then a line of the host's uptime every 50 ms; Swarm moves it from
//! node2 to node3 (`service update --constraint-add`). For S = 100 and 1024, two rows:
//!
//! - the old task ignores SIGTERM and runs until its 30 s stop grace ends: the new host
//!   copies the volume while it runs (the two-phase move this system does);
//! - the baseline: the old task exits at once on SIGTERM, so nothing overlaps and the whole
//!   copy happens while the service is down: what a move that starts at `Mount` costs
//!   (this system before it followed `create` events, and Flocker's plugin).
//!
//! Columns: how long the writes paused (last write of the old task to the first of the new
//! one: what the service's users see), the move's bytes and rounds, its downtime as the
//! control service records it (holders gone → move done), and the update → new task's
//! first write. Needs root and the lab's tools. Run with
//! `cargo bench -p system-tests --bench swarm` (`SWARM_BENCH_SIZES=100` for 100 MiB only;
//! `BIN_DIR=target/debug` runs the lab on already built binaries instead of a release build).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SERVICE_PREFIX: &str = "swbench";

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demos/lab")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn must(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        text(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lab(args: &[&str]) -> Output {
    must(
        run(lab_script().to_str().unwrap(), args),
        &format!("demos/lab {args:?}"),
    )
}

/// `docker` at node's dockerd (`agent == false`) or through its agent.
fn docker(node: u32, agent: bool, args: &[&str]) -> Output {
    let socket = if agent { "flocker.sock" } else { "docker.sock" };
    let host = format!("unix:///var/lib/lab/node{node}/{socket}");
    let mut all = vec!["-H", host.as_str()];
    all.extend_from_slice(args);
    run("docker", &all)
}

fn task_on(node: u32, service: &str) -> Option<String> {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let ps = docker(node, false, &["ps", "-q", "--filter", &label]);
    text(&ps).lines().next().map(str::to_owned)
}

fn exec(node: u32, container: &str, command: &str) -> String {
    text(&docker(
        node,
        false,
        &["exec", container, "sh", "-c", command],
    ))
}

fn wait<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Row {
    size_mib: u64,
    stops: &'static str,
    paused: f64,
    bytes: u64,
    rounds: u64,
    move_downtime_ms: Option<u64>,
    update_to_write: f64,
}

fn reschedule(size_mib: u64, graceful: bool) -> Row {
    let service = format!(
        "{SERVICE_PREFIX}-{size_mib}-{}",
        if graceful { "grace" } else { "atonce" }
    );
    let volume = service.clone();
    let trap = if graceful {
        "trap '' TERM"
    } else {
        "trap 'exit 0' TERM"
    };
    let writer = format!(
        "{trap}; [ -f /data/blob ] || head -c {} /dev/urandom > /data/blob; \
         while true; do cut -d' ' -f1 /proc/uptime >> /data/log; sleep 0.05; done",
        size_mib << 20
    );
    let mount = format!("type=volume,source={volume},target=/data,volume-driver=flocker");
    let grace = if graceful { "30s" } else { "10s" };
    must(
        docker(
            1,
            true,
            &[
                "service",
                "create",
                "-d",
                "--name",
                &service,
                "--no-resolve-image",
                "--constraint",
                "node.labels.lab==node2",
                "--stop-grace-period",
                grace,
                "--mount",
                &mount,
                "busybox",
                "sh",
                "-c",
                &writer,
            ],
        ),
        "service create",
    );
    let old = wait(Duration::from_secs(120), "the task on node2", || {
        task_on(2, &service)
    });
    wait(Duration::from_secs(600), "the blob written", || {
        let lines = exec(2, &old, "cat /data/log 2>/dev/null | wc -l");
        (lines.trim().parse::<u32>().unwrap_or(0) > 20).then_some(())
    });
    let updated = Instant::now();
    must(
        docker(
            1,
            true,
            &[
                "service",
                "update",
                "-d",
                "--no-resolve-image",
                "--constraint-rm",
                "node.labels.lab==node2",
                "--constraint-add",
                "node.labels.lab==node3",
                &service,
            ],
        ),
        "service update",
    );
    let new = wait(Duration::from_secs(900), "the task on node3", || {
        task_on(3, &service)
    });
    let count = |c: &str| {
        exec(3, c, "cat /data/log | wc -l")
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    let before = count(&new);
    wait(Duration::from_secs(60), "the new task writing", || {
        (count(&new) > before).then_some(())
    });
    let update_to_write = updated.elapsed().as_secs_f64();
    let stamps: Vec<f64> = exec(3, &new, "cat /data/log")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let paused = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let inspect = lab(&["ctl", "-o", "json", "volume", "inspect", &volume]);
    let json: serde_json::Value = serde_json::from_str(&text(&inspect)).expect("inspect is JSON");
    let last = &json["moves"][0];
    must(docker(1, true, &["service", "rm", &service]), "service rm");
    Row {
        size_mib,
        stops: if graceful {
            "after its 30 s grace (two-phase)"
        } else {
            "at once (= copy at mount)"
        },
        paused,
        bytes: last["bytes_sent"].as_u64().unwrap_or(0),
        rounds: last["rounds"].as_u64().unwrap_or(0),
        move_downtime_ms: last["downtime_ms"].as_u64(),
        update_to_write,
    }
}

fn main() {
    if !testkit::is_root() {
        eprintln!("skipped: the lab needs root");
        return;
    }
    let sizes: Vec<u64> = std::env::var("SWARM_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1024".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes in MiB"))
        .collect();
    lab(&["down"]);
    let up = Command::new(lab_script())
        .args(["up", "3"])
        .env("LAB_POOL_SIZE", "8G")
        .output()
        .expect("demos/lab runs");
    must(up, "demos/lab up");
    lab(&["swarm"]);
    let mut rows = Vec::new();
    for &size in &sizes {
        for graceful in [true, false] {
            rows.push(reschedule(size, graceful));
        }
    }
    lab(&["down"]);
    println!(
        "| volume | old task stops | writes paused | move: bytes, rounds | move downtime | update → first write |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} MiB | {} | {:.2} s | {:.1} MiB, {} | {} | {:.1} s |",
            r.size_mib,
            r.stops,
            r.paused,
            r.bytes as f64 / (1 << 20) as f64,
            r.rounds,
            r.move_downtime_ms
                .map_or("-".to_owned(), |ms| format!("{:.2} s", ms as f64 / 1000.0)),
            r.update_to_write,
        );
    }
}
