//! Liveness as the leader's soft state, against three real members over mutual TLS: agents'
//! heartbeats write nothing to the Raft log; a node is marked down by one logged entry and
//! up again by one; a leader killed with SIGKILL leaves its successor marking no heartbeating
//! node down, and a node that stopped is still marked down in time; a heartbeat forwarded the
//! way an older follower forwards it (`Write(Heartbeat)`) is taken as a soft one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::raft::Forwarded;
use proto::raft::raft_client::RaftClient;
use serde_json::Value;
use testkit::Cluster;
use testkit::cluster::{Role, register};
use testkit::eventually;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The members' node timeout.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How often the test's agents beat (agents beat every 2 s; faster here).
const BEAT_EVERY: Duration = Duration::from_millis(500);

fn start() -> Cluster {
    Cluster::start(3, &["--node-timeout", "2s"])
}

/// An agent's heartbeats to one member, on a task, until dropped; counts acknowledged ones.
struct Beating {
    task: JoinHandle<()>,
    acked: Arc<AtomicU64>,
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers `name` (through member 1) and beats as it through member `via`.
async fn agent(c: &Cluster, name: &str, via: u64) -> Beating {
    let tls = c.pki.tls(Role::Node, name);
    let mut first: NodeApiClient<Channel> = c.connect(1, &tls).await;
    first.register_node(register(name)).await.unwrap();
    beat(c, name, via).await
}

/// Beats as `name` through member `via` every [`BEAT_EVERY`].
async fn beat(c: &Cluster, name: &str, via: u64) -> Beating {
    let mut client: NodeApiClient<Channel> = c.connect(via, &c.pki.tls(Role::Node, name)).await;
    let acked = Arc::new(AtomicU64::new(0));
    let count = acked.clone();
    let name = name.to_owned();
    let task = tokio::spawn(async move {
        loop {
            let beat = pb::HeartbeatRequest { name: name.clone() };
            if client.heartbeat(beat).await.is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(BEAT_EVERY).await;
        }
    });
    Beating { task, acked }
}

/// The leader's last log index (its applied index: everything applied is committed), asked
/// through member `via`.
async fn log_index(c: &Cluster, via: u64) -> u64 {
    c.status_with_leader(via).await.commit_index
}

/// Every node as listed through member `via` (a linearizable read on the leader).
async fn nodes(c: &Cluster, via: u64) -> BTreeMap<String, pb::Node> {
    let mut user = c.client(via).await;
    let listed = user.list_nodes(pb::Empty {}).await.unwrap().into_inner();
    listed
        .nodes
        .into_iter()
        .map(|n| (n.name.clone(), n))
        .collect()
}

fn now_ms() -> u64 {
    control::server::node_service::now_ms()
}

/// Waits until `node`, listed through `via`, is up (or down) and returns the log index then.
async fn wait_up(c: &Cluster, via: u64, node: &str, up: bool, within: Duration) -> u64 {
    eventually(within, &format!("{node} up={up}"), || async {
        (nodes(c, via).await[node].up == up).then_some(())
    })
    .await;
    log_index(c, via).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_write_nothing_and_a_node_goes_down_and_up_in_one_entry_each() {
    let c = start();
    let leader = c.leader(1).await;
    let follower = if leader == 1 { 2 } else { 1 };
    // Through the leader and through both followers.
    let a = agent(&c, "a", 1).await;
    let b = agent(&c, "b", 2).await;
    let mut n3 = Some(agent(&c, "c", 3).await);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let before = log_index(&c, follower).await;
    let acked_before: u64 = [&a, &b, n3.as_ref().unwrap()]
        .iter()
        .map(|x| x.acked.load(Ordering::Relaxed))
        .sum();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = log_index(&c, follower).await;
    let acked: u64 = [&a, &b, n3.as_ref().unwrap()]
        .iter()
        .map(|x| x.acked.load(Ordering::Relaxed))
        .sum::<u64>()
        - acked_before;
    eprintln!("10 s of heartbeats: {acked} acknowledged, log {before} -> {after}");
    assert!(
        acked >= 30,
        "the agents' heartbeats were acknowledged: {acked}"
    );
    assert_eq!(
        after, before,
        "heartbeats of nodes up wrote to the Raft log"
    );
    // Through a follower, the list shows the heartbeats the leader saw.
    let listed = nodes(&c, follower).await;
    for name in ["a", "b", "c"] {
        let age = now_ms().saturating_sub(listed[name].last_heartbeat_ms);
        assert!(listed[name].up && age < 1_500, "{name}: {:?}", listed[name]);
    }

    // c stops: one logged entry marks it down, after the timeout.
    let stopped = Instant::now();
    n3 = None;
    let down = wait_up(&c, follower, "c", false, TIMEOUT * 4).await;
    // Its last heartbeat was at most BEAT_EVERY before it stopped.
    assert!(
        stopped.elapsed() >= TIMEOUT - BEAT_EVERY,
        "marked down early"
    );
    assert_eq!(down, after + 1, "marking c down took one entry");
    let c_down = nodes(&c, follower).await["c"].clone();
    let since = now_ms().saturating_sub(c_down.last_heartbeat_ms);
    assert!(
        since >= TIMEOUT.as_millis() as u64,
        "a down node shows its last heartbeat: {c_down:?}"
    );
    // c beats again: one logged entry brings it up, then nothing more.
    let back = beat(&c, "c", 3).await;
    let up = wait_up(&c, follower, "c", true, Duration::from_secs(10)).await;
    assert_eq!(up, down + 1, "bringing c back took one entry");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(log_index(&c, follower).await, up);
    assert!(nodes(&c, follower).await.values().all(|n| n.up));
    drop((a, b, n3, back));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_marks_no_heartbeating_node_down_and_a_stopped_one_in_time() {
    let mut c = start();
    let leader = c.leader(1).await;
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (s1, s2) = (survivors[0], survivors[1]);
    // Heartbeats through the followers, which forward them to whichever member leads.
    let a = agent(&c, "a", s1).await;
    let b = agent(&c, "b", s2).await;
    let stopping = agent(&c, "c", s1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(nodes(&c, s1).await.values().all(|n| n.up));

    drop(stopping);
    let stopped = Instant::now();
    c.kill(leader);
    let new_leader = c.leader(s1).await;
    assert_ne!(new_leader, leader);
    // c is marked down within the timeout after the new leader took over, plus slack;
    // a and b, beating through the change, never are (watched for three timeouts after).
    let deadline = stopped + TIMEOUT * 2 + Duration::from_secs(8);
    let mut c_down_at = None;
    while Instant::now() < deadline || c_down_at.is_none_or(|t: Instant| t.elapsed() < TIMEOUT * 3)
    {
        assert!(
            Instant::now() < deadline + TIMEOUT * 3,
            "c was not marked down in time"
        );
        let listed = nodes(&c, s2).await;
        assert!(
            listed["a"].up && listed["b"].up,
            "a node beating was marked down: {listed:?}"
        );
        if !listed["c"].up && c_down_at.is_none() {
            c_down_at = Some(Instant::now());
            eprintln!("c down {:?} after it stopped", stopped.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The new leader's list, through a follower, shows the heartbeats it saw.
    let listed = nodes(&c, if s1 == new_leader { s2 } else { s1 }).await;
    for name in ["a", "b"] {
        let age = now_ms().saturating_sub(listed[name].last_heartbeat_ms);
        assert!(age < 1_500, "{name}: {:?}", listed[name]);
    }
    let down_after = c_down_at.unwrap().duration_since(stopped);
    assert!(
        down_after >= TIMEOUT - BEAT_EVERY,
        "c marked down too early: {down_after:?}"
    );
    assert!(a.acked.load(Ordering::Relaxed) > 0 && b.acked.load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_forwarded_by_an_older_follower_is_soft_on_the_leader() {
    let c = start();
    let leader = c.leader(1).await;
    let mut user = c.client(leader).await;
    user.register_node(register("old-a")).await.unwrap();
    let channel: Channel = c.connect(leader, &c.pki.tls(Role::Control, "m9")).await;
    let mut raft = RaftClient::new(channel);
    // Exactly what a follower of the previous version sends for an agent's heartbeat.
    let forwarded = |name: &str| Forwarded {
        data: format!(r#"{{"Write":{{"op":"heartbeat","name":"{name}","at_ms":1}}}}"#).into_bytes(),
    };
    let before = log_index(&c, leader).await;
    let sent = now_ms();
    let reply = raft.forward(forwarded("old-a")).await.unwrap().into_inner();
    let answer: Value = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(answer["Ok"]["kind"], "node", "{answer}");
    assert_eq!(answer["Ok"]["name"], "old-a", "{answer}");
    assert_eq!(answer["Ok"]["up"], true, "{answer}");
    assert!(
        answer["Ok"]["last_heartbeat_ms"].as_u64() >= Some(sent),
        "{answer}"
    );
    assert_eq!(
        log_index(&c, leader).await,
        before,
        "a forwarded heartbeat was logged"
    );
    let seen = nodes(&c, leader).await["old-a"].last_heartbeat_ms;
    assert!(
        seen >= sent,
        "the leader's list shows the forwarded heartbeat"
    );

    // It beats no more: marked down (one entry); a forwarded heartbeat brings it up (one).
    let down = wait_up(&c, leader, "old-a", false, TIMEOUT * 4).await;
    let reply = raft.forward(forwarded("old-a")).await.unwrap().into_inner();
    let answer: Value = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(answer["Ok"]["up"], true, "{answer}");
    assert!(nodes(&c, leader).await["old-a"].up);
    assert_eq!(log_index(&c, leader).await, down + 1);
    // An unknown node is refused as before.
    let reply = raft
        .forward(forwarded("nobody"))
        .await
        .unwrap()
        .into_inner();
    let answer: Value = serde_json::from_slice(&reply.data).unwrap();
    assert!(answer.get("Err").is_some(), "{answer}");
}
