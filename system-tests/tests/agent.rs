//! A real agent (the agent crate's loops, in this process) registers and heartbeats; when it
//! stops, the leader marks its node down, as `flockerctl node ls` shows. The agent's
//! program tells systemd (`Type=notify`) when it is ready and when it stops, and serves its
//! Prometheus metrics.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use control::ca::Role;
use testkit::cluster::flockerctl;
use testkit::hosts::Host;
use testkit::{Cluster, eventually, free_port};

/// Whether node `name` is up, and its last heartbeat (ms since the epoch, by the clock of
/// the member that took it), as `flockerctl node ls` shows them.
fn node_state(c: &Cluster, name: &str) -> Option<(bool, u64)> {
    let out = flockerctl(c, &["--output", "json", "node", "ls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    nodes
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .and_then(|n| Some((n["up"].as_bool()?, n["last_heartbeat_ms"].as_u64()?)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_goes_down_when_its_agent_stops() {
    let c = Cluster::start(1, &["--node-timeout", "1s"]);
    c.leader(1).await;
    let config = agent::AgentConfig {
        node: "host-a".into(),
        controls: vec![c.addr(1)],
        tls: c.pki.tls(Role::Node, "host-a"),
        address: "host-a:4524".into(),
        storage: "dir:/srv".into(),
        heartbeat: Duration::from_millis(200),
        fence_after: Duration::from_secs(1),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent::run(
        config.clone(),
        agent::cluster::Cluster::of(&config),
        async move {
            let _ = stopped.await;
        },
    ));

    let first = eventually(Duration::from_secs(20), "node to be up", || async {
        node_state(&c, "host-a").and_then(|(up, at)| up.then_some(at))
    })
    .await;
    // Up all along while heartbeats arrive for longer than two node timeouts: they keep
    // it alive.
    eventually(
        Duration::from_secs(20),
        "heartbeats for longer than two node timeouts",
        || async {
            let (up, at) = node_state(&c, "host-a").expect("host-a is registered");
            assert!(up, "host-a was marked down while its agent heartbeats");
            (at >= first + 2500).then_some(())
        },
    )
    .await;

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    eventually(
        Duration::from_secs(20),
        "node to be marked down",
        || async { matches!(node_state(&c, "host-a"), Some((false, _))).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_another_nodes_certificate_stops_with_a_clear_error() {
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let config = agent::AgentConfig {
        node: "host-b".into(),
        controls: vec![c.addr(1)],
        tls: c.pki.tls(Role::Node, "host-a"),
        address: "host-b:4524".into(),
        storage: "dir:/srv".into(),
        heartbeat: Duration::from_millis(200),
        fence_after: Duration::from_secs(1),
    };
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        agent::run(
            config.clone(),
            agent::cluster::Cluster::of(&config),
            std::future::pending(),
        ),
    )
    .await
    .expect("agent should give up")
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot act as node \"host-b\""),
        "{err}"
    );
}

/// What deploy/systemd/flocker-agent.service (`Type=notify`) relies on: `flocker-agent` sends
/// `READY=1` on `$NOTIFY_SOCKET` once its sockets are bound (its Docker proxy takes
/// connections by then), and `STOPPING=1` when asked to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let Some(mut host) = Host::new("notify-a", None) else {
        return;
    };
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    host.env.push(("NOTIFY_SOCKET".into(), path.into()));
    host.start(&c);
    let mut buf = [0u8; 64];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("READY=1 within 60 s ({e}); agent log:\n{}", host.log()));
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "READY=1");
    assert!(
        UnixStream::connect(host.proxy_socket()).is_ok(),
        "ready means the Docker proxy takes connections"
    );
    let pid = host.agent.as_ref().unwrap().id();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "STOPPING=1");
}

/// `GET /metrics` on `port`: the body.
fn metrics_page(port: u16) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// `flocker-agent` with `FLOCKER_AGENT_METRICS_LISTEN` (the variable form of
/// `--metrics-listen`) serves its series; its heartbeats are counted there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_its_metrics_and_counts_its_heartbeats() {
    let Some(mut host) = Host::new("metrics-a", None) else {
        return;
    };
    let c = Cluster::start(1, &[]);
    c.leader(1).await;
    let port = free_port();
    host.env.push((
        "FLOCKER_AGENT_METRICS_LISTEN".into(),
        format!("127.0.0.1:{port}").into(),
    ));
    host.start(&c);
    let counted = |page: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix("flocker_agent_heartbeats_total{result=\"ok\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let beats = eventually(
        Duration::from_secs(30),
        "three heartbeats counted",
        || async { counted(&metrics_page(port)).filter(|n| *n >= 3) },
    )
    .await;
    assert!(beats >= 3);
    let page = metrics_page(port);
    assert!(
        page.contains("# TYPE flocker_agent_attach_seconds histogram"),
        "{page}"
    );
    // A request through the agent's Docker proxy (no dockerd behind it here) is counted.
    let mut docker = UnixStream::connect(host.proxy_socket()).unwrap();
    write!(
        docker,
        "GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = docker.read_to_string(&mut answer);
    let page = metrics_page(port);
    assert!(
        page.lines()
            .any(|l| l.starts_with("flocker_agent_proxy_requests_total{endpoint=\"GET /_ping\"")),
        "{answer}\n{page}"
    );
}
