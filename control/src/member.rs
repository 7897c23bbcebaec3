//! [`Member`]: one control member. It runs proposals on the leader: locally when it leads,
//! otherwise by forwarding to the leader over the `Raft` service, retrying while an election
//! is under way until the deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use openraft::{BasicNode, ChangeMembers};
use proto::raft::Forwarded;

use crate::proposal::{ExecError, PoolUsage, Proposal, Query, Reply};
use crate::raft::network::Peers;
use crate::raft::{Raft, StateMachineStore};
use crate::state::State;

/// How long to wait between tries while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One control member: its Raft handle, its state machine and its channels to peers.
#[derive(Clone)]
pub struct Member {
    /// This member's id.
    pub id: u64,
    /// openraft.
    pub raft: Raft,
    /// The applied state.
    pub sm: StateMachineStore,
    /// Channels to other members.
    pub peers: Peers,
    /// Deadline for one call (write commit, linearizable read, forwarding).
    pub call_timeout: Duration,
}

fn forward_to<E>(e: &RaftError<u64, E>) -> Option<ExecError>
where
    E: std::error::Error + Clone,
    E: TryInto<openraft::error::ForwardToLeader<u64, BasicNode>>,
{
    match e {
        RaftError::APIError(api) => api.clone().try_into().ok().map(|f| ExecError::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        }),
        RaftError::Fatal(_) => None,
    }
}

impl Member {
    /// Runs `proposal` on the leader, wherever it is, within `call_timeout`.
    #[tracing::instrument(level = "debug", name = "raft.proposal", skip_all, fields(raft.id = self.id))]
    pub async fn execute(&self, proposal: Proposal) -> Result<Reply, ExecError> {
        let deadline = Instant::now() + self.call_timeout;
        let mut last = String::from("no answer");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.no_quorum(last));
            }
            let outcome = match tokio::time::timeout(left, self.execute_local(proposal.clone()))
                .await
            {
                Err(_) => return Err(self.no_quorum("the leader did not commit in time".into())),
                Ok(r) => r,
            };
            match outcome {
                Err(ExecError::NotLeader {
                    leader: Some((id, addr)),
                }) if id != self.id => {
                    match tokio::time::timeout(left, self.forward(&addr, &proposal)).await {
                        Err(_) => {
                            return Err(self.no_quorum(format!(
                                "leader {id} at {addr} did not answer in time"
                            )));
                        }
                        Ok(Ok(r)) => return r,
                        Ok(Err(e)) => last = format!("forwarding to member {id} at {addr}: {e}"),
                    }
                }
                Err(ExecError::NotLeader { .. }) => last = "no leader elected".into(),
                other => return other,
            }
            tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }

    fn no_quorum(&self, detail: String) -> ExecError {
        ExecError::NoQuorum {
            timeout_ms: self.call_timeout.as_millis() as u64,
            detail,
        }
    }

    async fn forward(
        &self,
        addr: &str,
        proposal: &Proposal,
    ) -> Result<Result<Reply, ExecError>, String> {
        let mut client = self.peers.raft_client(addr).map_err(|e| e.to_string())?;
        let data = serde_json::to_vec(proposal).map_err(|e| e.to_string())?;
        let reply = client
            .forward(Forwarded { data })
            .await
            .map_err(|s| s.message().to_owned())?;
        serde_json::from_slice(&reply.into_inner().data).map_err(|e| e.to_string())
    }

    /// Runs `proposal` here; fails with [`ExecError::NotLeader`] unless this member leads.
    pub async fn execute_local(&self, proposal: Proposal) -> Result<Reply, ExecError> {
        match proposal {
            Proposal::Write(command) => match self.raft.client_write(command).await {
                Ok(resp) => Ok(Reply::Applied(resp.data?)),
                Err(e) => Err(forward_to(&e).unwrap_or_else(|| ExecError::Raft(e.to_string()))),
            },
            Proposal::Read(query) => {
                if let Err(e) = self.raft.ensure_linearizable().await {
                    return Err(forward_to(&e).unwrap_or_else(|| ExecError::Raft(e.to_string())));
                }
                Ok(self.sm.read(|s| read(s, query))?)
            }
            Proposal::AddMember { id, address } => self.add_member(id, address).await,
            Proposal::RemoveMember { id } => {
                let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
                self.change(change).await
            }
        }
    }

    async fn add_member(&self, id: u64, address: String) -> Result<Reply, ExecError> {
        let node = BasicNode { addr: address };
        if let Err(e) = self.raft.add_learner(id, node, true).await {
            return Err(forward_to(&e).unwrap_or_else(|| ExecError::Membership(e.to_string())));
        }
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
    }

    async fn change(&self, change: ChangeMembers<u64, BasicNode>) -> Result<Reply, ExecError> {
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(Reply::MembershipChanged),
            Err(e) => Err(forward_to(&e).unwrap_or_else(|| ExecError::Membership(e.to_string()))),
        }
    }

    /// Voting members and learners with their addresses, as this member knows them.
    pub fn membership(&self) -> BTreeMap<u64, (String, bool)> {
        let metrics = self.raft.metrics().borrow().clone();
        let m = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = m.voter_ids().collect();
        m.nodes()
            .map(|(id, n)| (*id, (n.addr.clone(), voters.contains(id))))
            .collect()
    }
}

fn read(s: &State, query: Query) -> Result<Reply, crate::state::CommandError> {
    Ok(match query {
        Query::Nodes => Reply::Nodes(s.nodes.values().cloned().collect()),
        Query::Volumes => Reply::Volumes(s.volumes.values().cloned().collect()),
        Query::Volume(name) => Reply::Volume(
            s.volumes
                .get(&name)
                .cloned()
                .ok_or(crate::state::CommandError::NoSuchVolume { name })?,
        ),
        Query::Leases => Reply::Leases(s.leases.values().cloned().collect()),
        Query::Ips => {
            let pools = s
                .pools
                .iter()
                .map(|p| PoolUsage {
                    cidr: *p,
                    allocated: s.allocations.values().filter(|a| a.pool == *p).count() as u32,
                })
                .collect();
            Reply::Ips(pools, s.allocations.values().cloned().collect())
        }
        Query::CheckClaim { address, node } => Reply::Address(
            s.check_address(crate::state::AddressRequest::Explicit(&address), &node)?,
        ),
        Query::CheckAllocation { pool, node } => {
            Reply::Address(s.check_address(crate::state::AddressRequest::Pool(&pool), &node)?)
        }
    })
}
