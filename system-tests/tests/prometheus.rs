//! Debian's real Prometheus scraping a control member and two real agents (zfs-fuse pools,
//! loopback) while a volume moves between them: after the move its query API answers the
//! member's move series and the receiving agent's bytes. Needs root, zfs-fuse and
//! prometheus: skipped with a reason otherwise, failing under `CI=true`.

use std::time::Duration;

use testkit::hosts::Host;
use testkit::move_lab::Lab;
use testkit::prometheus::Prometheus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_a_move_on_the_member_and_the_agents() {
    let ports = [
        testkit::free_port(),
        testkit::free_port(),
        testkit::free_port(),
    ];
    let mut hosts = Vec::new();
    for (name, port) in [("host-a", ports[1]), ("host-b", ports[2])] {
        let Some(mut host) = Host::new(name, None) else {
            return;
        };
        host.env.push((
            "FLOCKER_AGENT_METRICS_LISTEN".into(),
            format!("127.0.0.1:{port}").into(),
        ));
        hosts.push(host);
    }
    let Some(prometheus) = Prometheus::start(&[
        ("flocker-control", ports[0]),
        ("agent-a", ports[1]),
        ("agent-b", ports[2]),
    ]) else {
        return;
    };
    let listen = format!("127.0.0.1:{}", ports[0]);
    let lab = Lab::with_hosts_flags(1, hosts, &["--metrics-listen", &listen]).await;
    lab.create("scraped", 0).await;
    std::fs::write(
        lab.hosts[0].path("scraped").join("blob"),
        testkit::random(4 << 20),
    )
    .unwrap();
    lab.move_ok("scraped", 1);

    let within = Duration::from_secs(60);
    let done = prometheus.value(r#"flocker_moves{phase="done"} >= 1"#, within);
    assert_eq!(done, Some(1.0), "{}", prometheus.log());
    let downtime = prometheus.value("flocker_move_downtime_seconds", within);
    assert!(downtime.is_some_and(|s| s >= 0.0), "{downtime:?}");
    let received = prometheus.value(
        r#"flocker_agent_received_bytes_total{job="agent-b"} > 0"#,
        within,
    );
    assert!(
        received.is_some_and(|b| b >= (4 << 20) as f64),
        "agent-b received {received:?} bytes"
    );
    let up = prometheus.value("sum(up) == 3", within);
    assert_eq!(up, Some(3.0), "all three scraped");
}
