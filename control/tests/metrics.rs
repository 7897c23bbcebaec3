//! `flocker-control --metrics-listen`: a Prometheus text page on `GET /metrics` whose series
//! follow the cluster (Raft term and leadership, commits, volumes), read here as a scraper
//! would, over plain HTTP, and scraped by a real Prometheus (Debian's `prometheus`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use testkit::cluster::flockerctl;
use testkit::prometheus::Prometheus;
use testkit::{Cluster, free_port};

/// `GET path` on `port`: the status line and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the metrics port answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample named exactly `series` (with its labels, if any).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_page_follows_the_cluster() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let c = Cluster::start(1, &["--metrics-listen", &listen]);
    c.leader(1).await;
    let created = flockerctl(&c, &["volume", "create", "metrics-demo"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let (status, page) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    for (series, at_least) in [
        ("flocker_raft_term", 1.0),
        ("flocker_raft_is_leader", 1.0),
        ("flocker_raft_applied_index", 2.0),
        ("flocker_raft_leader_changes_total", 1.0),
        ("flocker_raft_commit_seconds_count", 1.0),
        ("flocker_volumes", 1.0),
        ("flocker_move_copy_seconds", 0.0),
        ("flocker_replica_age_max_seconds", 0.0),
        ("flocker_replicas_over_lag", 0.0),
    ] {
        let value = sample(&page, series).unwrap_or_else(|| panic!("{series} in:\n{page}"));
        assert!(value >= at_least, "{series} = {value}, want >= {at_least}");
    }
    assert_eq!(
        sample(&page, "flocker_nodes{state=\"up\"}"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "flocker_moves{phase=\"done\"}"),
        Some(0.0),
        "{page}"
    );
    assert!(
        page.contains("# TYPE flocker_raft_commit_seconds histogram"),
        "{page}"
    );
    assert!(page.ends_with("# EOF\n"), "the OpenMetrics end marker");
    // A second volume is a second commit, seen at the next scrape.
    let commits = sample(&page, "flocker_raft_commit_seconds_count").unwrap();
    flockerctl(&c, &["volume", "create", "metrics-demo-2"]);
    let (_, page) = get(port, "/metrics");
    assert_eq!(sample(&page, "flocker_volumes"), Some(2.0));
    assert!(sample(&page, "flocker_raft_commit_seconds_count").unwrap() > commits);
    let (status, _) = get(port, "/other");
    assert!(status.contains("404"), "{status}");
}

/// Debian's Prometheus scrapes a member every second; its query API then answers the
/// member's series (`up` is 1, the member leads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_a_member() {
    let port = free_port();
    let Some(prometheus) = Prometheus::start(&[("flocker-control", port)]) else {
        return;
    };
    let c = Cluster::start(1, &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    c.leader(1).await;
    let leading = prometheus.value("flocker_raft_is_leader", Duration::from_secs(60));
    assert_eq!(
        leading,
        Some(1.0),
        "Prometheus has the member's series within 60 s; its log:\n{}",
        prometheus.log()
    );
    let leader = prometheus.query("flocker_raft_is_leader");
    assert!(leader.contains(r#""job":"flocker-control""#), "{leader}");
    assert_eq!(prometheus.value("up", Duration::from_secs(10)), Some(1.0));
}
