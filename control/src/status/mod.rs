//! The live status page: a read-only web page of the cluster (members and leader, nodes and
//! their heartbeats, volumes, moves under way with their progress and recent ones, address
//! allocations), served over plain HTTP on loopback only, by `flockerctl status --web` (with
//! the user's certificate) and by `flocker-control --status-listen` (with the member's own).
//!
//! One implementation for both: the page takes its data through the gRPC API any client
//! uses (`Status`, the list RPCs and `VolumeUsage`, then the `Watch` stream), keeps it as a
//! [`view::View`], and renders it server-side ([`render`]); `GET /` is the whole page and
//! `GET /events` a stream of server-sent events, one per changed section (its re-rendered
//! HTML), which the page's small inline script swaps in. No file, script or style is loaded
//! from anywhere else.

pub mod changes;
pub mod render;
pub mod view;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foundation::http::{Body, Handler};
use foundation::retry::Backoff;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use proto::tls::TlsDir;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use view::View;

/// How long one event stream lasts: then it ends and the browser reconnects (after
/// [`RETRY`]) and gets every section afresh. This bounds what a missed event can cost, and
/// lets a headless browser, which waits for open requests, finish the page.
pub const EVENT_STREAM_LIFE: Duration = Duration::from_secs(10);
/// How long the browser waits before it reconnects an event stream (`retry:`).
pub const RETRY: Duration = Duration::from_secs(2);
/// How often the members' status (term, leader, applied index) is asked for, and the
/// leader's soft values (nodes' last heartbeats, bytes sent by moves under way: no watched
/// change carries them, `crate::soft`); heartbeat ages are re-rendered as often.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);
/// How often the owners' agents are asked how many bytes the volumes use (a move's total);
/// also at once when a move starts on a volume whose usage is not known yet.
pub const USAGE_EVERY: Duration = Duration::from_secs(10);

/// Where the page's data comes from: control members, tried in order, and the certificate
/// to call them with (a user's, or a member's own control certificate).
#[derive(Clone, Debug)]
pub struct Source {
    /// Members' `HOST:PORT`.
    pub members: Vec<String>,
    /// The client certificate.
    pub tls: TlsDir,
}

/// A listen address off loopback: the page has no authentication of its own.
#[derive(Debug, thiserror::Error)]
#[error(
    "{flag} {addr}: the status page has no authentication of its own, so it listens on a \
     loopback address only (127.0.0.1:PORT or [::1]:PORT); reach it from another machine \
     through an SSH tunnel, or run `flockerctl status --web` there"
)]
pub struct NotLoopback {
    /// The flag that named it.
    pub flag: &'static str,
    /// The address.
    pub addr: SocketAddr,
}

/// `addr` if it is a loopback address, else why not (`flag` names where it came from).
pub fn loopback_only(flag: &'static str, addr: SocketAddr) -> Result<SocketAddr, NotLoopback> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(NotLoopback { flag, addr })
    }
}

/// The sections as last rendered, in page order.
type Rendered = Arc<Vec<(&'static str, String)>>;

/// Serves the page on `listener` from `source` until `shutdown` completes.
pub async fn serve(listener: TcpListener, source: Source, shutdown: impl Future<Output = ()>) {
    let mut waiting = View {
        problem: Some("connecting to the control service".to_owned()),
        ..View::default()
    };
    waiting.now_ms = crate::server::node_service::now_ms();
    let (tx, rx) = watch::channel::<Rendered>(Arc::new(render::sections(&waiting)));
    tokio::select! {
        () = follow(source, tx) => {}
        () = foundation::http::serve("status page", listener, handler(rx), shutdown) => {}
    }
}

fn handler(rx: watch::Receiver<Rendered>) -> Handler {
    Arc::new(move |request: &Request<hyper::body::Incoming>| {
        if !local_host(request) {
            return foundation::http::error(
                StatusCode::FORBIDDEN,
                "the status page answers requests for localhost or a loopback address only\n",
            );
        }
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/") => Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                .header("cache-control", "no-store")
                .header("x-content-type-options", "nosniff")
                .header(
                    "content-security-policy",
                    "default-src 'none'; style-src 'unsafe-inline'; \
                     script-src 'unsafe-inline'; connect-src 'self'",
                )
                .body(foundation::http::full(render::page(&rx.borrow())))
                .expect("a valid response"),
            (&Method::GET, "/events") => Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-store")
                .body(events(rx.clone()))
                .expect("a valid response"),
            _ => foundation::http::error(
                StatusCode::NOT_FOUND,
                "only / (the page) and /events (its updates) are served here\n",
            ),
        }
    })
}

/// Whether the request names this machine (`Host: localhost` or a loopback address), so
/// that a web page elsewhere cannot read the status through DNS rebinding.
fn local_host<B>(request: &Request<B>) -> bool {
    let Some(host) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One event stream: `retry:` and every section at once, then each section that changed,
/// for [`EVENT_STREAM_LIFE`].
fn events(rx: watch::Receiver<Rendered>) -> Body {
    let until = tokio::time::Instant::now() + EVENT_STREAM_LIFE;
    let state = (rx, None::<Rendered>);
    let stream = futures_util::stream::unfold(state, move |(mut rx, sent)| async move {
        loop {
            if sent.is_some() {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    () = tokio::time::sleep_until(until) => return None,
                }
            }
            let now = rx.borrow_and_update().clone();
            let text = sse(sent.as_ref().map(|s| s.as_slice()), &now);
            if !text.is_empty() {
                let frame = Ok::<_, Infallible>(Frame::data(Bytes::from(text)));
                return Some((frame, (rx, Some(now))));
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// The server-sent events that bring a page showing `sent` (nothing yet: `None`) to `now`.
fn sse(sent: Option<&[(&'static str, String)]>, now: &[(&'static str, String)]) -> String {
    let mut text = String::new();
    if sent.is_none() {
        text.push_str(&format!("retry: {}\n\n", RETRY.as_millis()));
    }
    for (i, (id, html)) in now.iter().enumerate() {
        if sent.is_some_and(|s| s.get(i).is_some_and(|(_, old)| old == html)) {
            continue;
        }
        text.push_str("event: ");
        text.push_str(id);
        text.push('\n');
        for line in html.split('\n') {
            text.push_str("data: ");
            text.push_str(&line.replace('\r', ""));
            text.push('\n');
        }
        text.push('\n');
    }
    text
}

/// What changes the view besides watched events.
enum Update {
    Watched(Box<pb::WatchEvent>),
    Status(pb::ClusterStatus),
    Usage(BTreeMap<String, u64>),
    Soft(Vec<pb::Node>, Vec<pb::Migration>),
}

/// Keeps the rendered sections current: lists, watches, polls; on any failure says so on
/// the page, waits and starts again.
async fn follow(source: Source, tx: watch::Sender<Rendered>) {
    let mut view = View::default();
    let mut backoff = Backoff::reconnect();
    loop {
        let problem = session(&source, &mut view, &tx, &mut backoff).await;
        tracing::info!(error = %problem, "status page: lost the control service; retrying");
        view.problem = Some(format!(
            "not live: {problem} (shown as last seen; retrying)"
        ));
        publish(&mut view, &tx);
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

/// One connection's worth of following; returns why it ended.
async fn session(
    source: &Source,
    view: &mut View,
    tx: &watch::Sender<Rendered>,
    backoff: &mut Backoff,
) -> String {
    let channel: Channel = match proto::connect::connect_any(&source.members, &source.tls).await {
        Ok(channel) => channel,
        Err(e) => return e.to_string(),
    };
    let mut node = NodeApiClient::new(channel.clone());
    let operator = OperatorApiClient::new(channel);
    // Watch first, then list: every change after the listing is in the stream.
    let mut watched = match node.watch(pb::WatchRequest {}).await {
        Ok(stream) => stream.into_inner(),
        Err(e) => return format!("watch: {}", e.message()),
    };
    match list(&mut node).await {
        Ok(listed) => *view = listed,
        Err(e) => return format!("listing: {}", e.message()),
    }
    backoff.reset();
    let (updates, mut incoming) = mpsc::channel(16);
    let usage_wanted = Arc::new(Notify::new());
    let mut pollers = JoinSet::new();
    pollers.spawn(poll_status(operator.clone(), updates.clone()));
    pollers.spawn(poll_soft(node.clone(), updates.clone()));
    pollers.spawn(poll_usage(operator, updates, usage_wanted.clone()));
    publish(view, tx);
    loop {
        let update = tokio::select! {
            event = watched.message() => match event {
                Ok(Some(event)) => Update::Watched(Box::new(event)),
                Ok(None) => return "the watch stream ended".to_owned(),
                Err(e) => return format!("watch: {}", e.message()),
            },
            Some(update) = incoming.recv() => update,
        };
        match update {
            Update::Watched(event) => {
                if let Some(pb::watch_event::Object::Migration(m)) = &event.object
                    && !view.usage.contains_key(&m.volume)
                {
                    usage_wanted.notify_one();
                }
                view.apply(*event);
            }
            Update::Status(status) => view.cluster = Some(status),
            Update::Usage(usage) => view.usage = usage,
            Update::Soft(nodes, moves) => view.soften(nodes, moves),
        }
        publish(view, tx);
    }
}

/// Renders `view` now and publishes the sections if any changed.
fn publish(view: &mut View, tx: &watch::Sender<Rendered>) {
    view.now_ms = crate::server::node_service::now_ms();
    let sections = render::sections(view);
    tx.send_if_modified(|current| {
        let changed = **current != sections;
        if changed {
            *current = Arc::new(sections);
        }
        changed
    });
}

/// Nodes, volumes (with each one's moves), leases, pools and allocations, as listed now.
pub async fn list(node: &mut NodeApiClient<Channel>) -> Result<View, tonic::Status> {
    let nodes = node.list_nodes(pb::Empty {}).await?.into_inner().nodes;
    let volumes = node.list_volumes(pb::Empty {}).await?.into_inner().volumes;
    let leases = node.list_leases(pb::Empty {}).await?.into_inner().leases;
    let ips = node.list_ips(pb::Empty {}).await?.into_inner();
    // Only GetVolume gives a volume's moves (those under way and its newest finished ones).
    let names: Vec<String> = volumes.iter().map(|v| v.name.clone()).collect();
    let moves = volume_moves(node.clone(), names).await?;
    let mut view = View {
        nodes: nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
        volumes: volumes.into_iter().map(|v| (v.name.clone(), v)).collect(),
        leases: leases
            .into_iter()
            .map(|l| ((l.volume.clone(), l.container_id.clone()), l))
            .collect(),
        pools: ips.pools.into_iter().map(|p| (p.cidr.clone(), p)).collect(),
        allocations: ips
            .allocations
            .into_iter()
            .map(|a| (a.address.clone(), a))
            .collect(),
        ..View::default()
    };
    view.moves = moves.into_iter().map(|m| (m.id, m)).collect();
    view.settle();
    Ok(view)
}

/// The moves of each of `names` (only GetVolume gives them: those under way and the newest
/// finished ones), asking a few volumes at a time.
async fn volume_moves(
    node: NodeApiClient<Channel>,
    names: Vec<String>,
) -> Result<Vec<pb::Migration>, tonic::Status> {
    let answers: Vec<Result<Vec<pb::Migration>, tonic::Status>> = futures_util::stream::iter(names)
        .map(move |name| {
            let mut node = node.clone();
            async move {
                match node.get_volume(pb::VolumeName { name }).await {
                    Ok(v) => Ok(v.into_inner().moves),
                    Err(e) if e.code() == tonic::Code::NotFound => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut moves = Vec::new();
    for found in answers {
        moves.extend(found?);
    }
    Ok(moves)
}

async fn poll_status(mut operator: OperatorApiClient<Channel>, updates: mpsc::Sender<Update>) {
    let mut every = tokio::time::interval(STATUS_EVERY);
    loop {
        every.tick().await;
        match operator.status(pb::Empty {}).await {
            Ok(status) => {
                if updates
                    .send(Update::Status(status.into_inner()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "status page: Status failed"),
        }
    }
}

/// The nodes, and the moves of the volumes moving, every [`STATUS_EVERY`]: their soft
/// values (last heartbeats, bytes sent) as the leader holds them.
async fn poll_soft(mut node: NodeApiClient<Channel>, updates: mpsc::Sender<Update>) {
    let mut every = tokio::time::interval(STATUS_EVERY);
    loop {
        every.tick().await;
        let listed = async {
            let nodes = node.list_nodes(pb::Empty {}).await?.into_inner().nodes;
            let volumes = node.list_volumes(pb::Empty {}).await?.into_inner().volumes;
            let moving = volumes.into_iter().filter(|v| v.moving.is_some());
            let moves = volume_moves(node.clone(), moving.map(|v| v.name).collect()).await?;
            Ok::<_, tonic::Status>(Update::Soft(nodes, moves))
        };
        match listed.await {
            Ok(update) => {
                if updates.send(update).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "status page: listing soft values failed"),
        }
    }
}

async fn poll_usage(
    mut operator: OperatorApiClient<Channel>,
    updates: mpsc::Sender<Update>,
    wanted: Arc<Notify>,
) {
    let mut every = tokio::time::interval(USAGE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = wanted.notified() => every.reset(),
        }
        match operator.volume_usage(pb::Empty {}).await {
            Ok(list) => {
                let usage = list
                    .into_inner()
                    .volumes
                    .into_iter()
                    .map(|u| (u.volume, u.used_bytes))
                    .collect();
                if updates.send(Update::Usage(usage)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "status page: VolumeUsage failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert!(loopback_only("--listen", "127.0.0.1:9521".parse().unwrap()).is_ok());
        assert!(loopback_only("--listen", "[::1]:9521".parse().unwrap()).is_ok());
        let refused = loopback_only("--status-listen", "0.0.0.0:9520".parse().unwrap());
        let said = refused.unwrap_err().to_string();
        assert!(
            said.starts_with("--status-listen 0.0.0.0:9520: the status page has no authentication"),
            "{said}"
        );
    }

    #[test]
    fn requests_must_name_this_machine() {
        let with_host = |host: &str| {
            Request::builder()
                .uri("/")
                .header("host", host)
                .body(())
                .unwrap()
        };
        for host in [
            "127.0.0.1:9521",
            "localhost:9521",
            "LOCALHOST",
            "[::1]:9521",
            "127.0.0.2",
        ] {
            assert!(local_host(&with_host(host)), "{host}");
        }
        for host in ["evil.example:9521", "10.0.0.1:9521", "[fe80::1]:80"] {
            assert!(!local_host(&with_host(host)), "{host}");
        }
        assert!(!local_host(&Request::builder().uri("/").body(()).unwrap()));
    }

    #[test]
    fn events_carry_every_section_first_then_only_the_changed_ones() {
        let first: Vec<(&'static str, String)> = vec![
            (
                "cluster",
                "<section id=\"cluster\">\n<p>a</p></section>".into(),
            ),
            ("nodes", "<section id=\"nodes\"></section>".into()),
        ];
        let text = sse(None, &first);
        assert_eq!(
            text,
            "retry: 2000\n\nevent: cluster\ndata: <section id=\"cluster\">\ndata: <p>a</p></section>\n\nevent: nodes\ndata: <section id=\"nodes\"></section>\n\n"
        );
        let mut next = first.clone();
        next[1].1 = "<section id=\"nodes\">\r<p>b</p></section>".into();
        assert_eq!(
            sse(Some(&first), &next),
            "event: nodes\ndata: <section id=\"nodes\"><p>b</p></section>\n\n"
        );
        assert_eq!(sse(Some(&next), &next), "");
    }
}
