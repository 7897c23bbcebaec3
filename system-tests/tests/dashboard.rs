//! deploy/grafana/flocker-dashboard.json asks only for series the daemons serve: every
//! `flocker_*` name in its queries is on a member's `/metrics` page (a real member,
//! scraped) or on the agent's (rendered by the agent's own code).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use testkit::{Cluster, free_port};

/// The sample names a page's `# TYPE` lines promise: a counter's `_total`, a histogram's
/// `_bucket`, `_count` and `_sum`, a gauge's own name.
fn sample_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_count", "_sum"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn scrape(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics answer");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_series_the_daemons_serve() {
    let port = free_port();
    let c = Cluster::start(1, &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    c.leader(1).await;
    // Per-pool series exist once there is a pool.
    let pool = testkit::cluster::flockerctl(&c, &["ip", "add-pool", "10.99.0.0/24"]);
    assert!(pool.status.success(), "{pool:?}");
    let mut served = sample_names(&scrape(port));
    // The proxy's families have no series until a request and a hook call are counted.
    let proxy = &proxy::metrics::METRICS;
    proxy.request(
        "GET",
        "/v1.41/containers/json",
        200,
        Duration::from_millis(1),
    );
    proxy.hook("flocker", "pre", Duration::from_millis(1), Some("fail"));
    served.extend(sample_names(&agent::metrics::METRICS.render()));
    assert!(served.contains("flocker_raft_term"), "{served:?}");
    assert!(
        served.contains("flocker_agent_heartbeats_total"),
        "{served:?}"
    );

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/flocker-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut asked = 0;
    for panel in panels {
        let targets = panel["targets"].as_array().expect("every panel queries");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let names = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("flocker_"));
            for name in names {
                asked += 1;
                assert!(
                    served.contains(name),
                    "panel {}: {name} is not served (served: {served:?})",
                    panel["title"]
                );
            }
        }
    }
    assert!(asked >= 20, "the dashboard asks for the series it shows");
}
