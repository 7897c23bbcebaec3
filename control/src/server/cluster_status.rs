//! `cluster status`: every member's own metrics, asked concurrently with a short deadline, so
//! the answer also says who is up.

use proto::control as pb;
use proto::raft::{MetricsRequest, ServerState};

use std::time::Duration;

use super::raft_service::local_metrics;
use crate::member::Member;

/// How long `cluster status` waits for each member to answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A member's own Raft role as the status reports it.
fn member_state(s: ServerState) -> pb::MemberState {
    match s {
        ServerState::Unspecified => pb::MemberState::Unspecified,
        ServerState::Leader => pb::MemberState::Leader,
        ServerState::Follower => pb::MemberState::Follower,
        ServerState::Candidate => pb::MemberState::Candidate,
        ServerState::Learner => pb::MemberState::Learner,
        ServerState::Shutdown => pb::MemberState::Shutdown,
    }
}

/// Probes every member known to `member` and assembles the status.
pub async fn probe(member: &Member) -> pb::ClusterStatus {
    let membership = member.membership();
    let probes = membership.iter().map(|(id, (addr, voter))| {
        let (id, addr, voter) = (*id, addr.clone(), *voter);
        async move {
            let metrics = if id == member.id {
                Some(local_metrics(member))
            } else {
                match member.peers.raft_client(&addr) {
                    Ok(mut c) => tokio::time::timeout(PROBE_TIMEOUT, c.metrics(MetricsRequest {}))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(tonic::Response::into_inner),
                    Err(_) => None,
                }
            };
            (id, addr, voter, metrics)
        }
    });
    let answers = futures_util::future::join_all(probes).await;
    let mut status = pb::ClusterStatus::default();
    for (id, address, voter, m) in answers {
        let mut row = pb::Member {
            id,
            address,
            voter,
            ..Default::default()
        };
        if let Some(m) = m {
            row.up = true;
            row.set_state(member_state(m.state()));
            row.term = m.term;
            row.last_log_index = m.last_log_index;
            row.last_applied = m.last_applied;
            row.snapshot_index = m.snapshot_index;
            if m.term >= status.term {
                status.term = m.term;
                status.leader = m.leader;
            }
            if m.leader == Some(m.id) {
                status.commit_index = m.last_applied.unwrap_or(0);
            }
        } else {
            row.set_state(pb::MemberState::Unreachable);
        }
        status.members.push(row);
    }
    status
}
