//! [`Member`]: one control member. It runs calls on the leader ([`Member::write`],
//! [`Member::read`], membership changes), each with its own reply type: locally when it
//! leads, otherwise by forwarding to the leader over the `Raft` service, retrying while an
//! election is under way until the deadline. Heartbeats ([`Member::heartbeat`]) run on the
//! leader too, but update its soft state ([`crate::soft`]) and write nothing unless the node
//! is recorded down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use openraft::{BasicNode, ChangeMembers};
use proto::raft::Forwarded;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::proposal::{
    Applied, CheckAllocation, CheckClaim, DryRun, ExecError, Ips, Leases, Moves, Nodes, Proposal,
    Query, Read, SnapshotSite, VolumeNamed, Volumes, applied,
};
use crate::raft::network::Peers;
use crate::raft::{Raft, StateMachineStore};
use crate::server::node_service::now_ms;
use crate::soft::Soft;
use crate::state::{Command, Node, Response};

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
    /// The member's Prometheus metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Group commit of the writes it proposes as leader.
    pub batcher: crate::batch::Batcher,
    /// What it holds only while it leads: heartbeats seen, bytes sent by moves.
    pub soft: std::sync::Arc<Soft>,
}

/// A Raft error as the caller reads it: [`ExecError::NotLeader`] naming the leader when
/// there is one, else what failed.
pub(crate) fn raft_error<E>(e: &RaftError<u64, E>) -> ExecError
where
    E: std::error::Error + Clone,
    E: TryInto<openraft::error::ForwardToLeader<u64, BasicNode>>,
{
    forward_to(e).unwrap_or_else(|| ExecError::Raft(e.to_string()))
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
    /// Commits `command` on the leader, wherever it is, within `call_timeout`, and returns
    /// its typed reply.
    pub async fn write<R: Applied>(&self, command: Command) -> Result<R, ExecError> {
        let proposal = Proposal::Write(command.clone());
        let response = self
            .on_leader(proposal, || self.write_local(command.clone()))
            .await?;
        applied(response)
    }

    /// Takes a heartbeat of node `name` (sent at `at_ms`) on the leader, wherever it is, within
    /// `call_timeout`, and returns the node as the leader now sees it. The leader confirms
    /// with a quorum that it still leads (no log write), so an acknowledged heartbeat means
    /// the agent reached the majority's side; it logs `Heartbeat` only for a node recorded
    /// down (or unknown: refused as before). Forwarded as `Write(Heartbeat)`, the form every
    /// version sends and takes.
    pub async fn heartbeat(&self, name: String, at_ms: u64) -> Result<Node, ExecError> {
        let proposal = Proposal::Write(Command::Heartbeat {
            name: name.clone(),
            at_ms,
        });
        let response = self
            .on_leader(proposal, || self.beat_local(name.clone()))
            .await?;
        applied(response)
    }

    /// Runs `query` on the leader's state, wherever the leader is, within `call_timeout`.
    pub async fn read<Q: Read>(&self, query: Q) -> Result<Q::Reply, ExecError> {
        let proposal = Proposal::Read(query.clone().into());
        self.on_leader(proposal, || self.read_local(query.clone()))
            .await
    }

    /// Adds a voting member at `address`, through the leader.
    pub async fn add_member(&self, id: u64, address: String) -> Result<(), ExecError> {
        let proposal = Proposal::AddMember {
            id,
            address: address.clone(),
        };
        self.on_leader(proposal, || self.add_member_local(id, address.clone()))
            .await
    }

    /// Removes a voting member, through the leader.
    pub async fn remove_member(&self, id: u64) -> Result<(), ExecError> {
        self.on_leader(Proposal::RemoveMember { id }, || {
            self.remove_member_local(id)
        })
        .await
    }

    /// Runs `local` here when this member leads, otherwise forwards `proposal` (the same
    /// call) to the leader and reads its answer as `T`, retrying while an election is under
    /// way, within `call_timeout`.
    #[tracing::instrument(level = "debug", name = "raft.proposal", skip_all, fields(raft.id = self.id))]
    async fn on_leader<T, F, Fut>(&self, proposal: Proposal, local: F) -> Result<T, ExecError>
    where
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ExecError>>,
    {
        let deadline = Instant::now() + self.call_timeout;
        let mut last = String::from("no answer");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.no_quorum(last));
            }
            let outcome = match tokio::time::timeout(left, local()).await {
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

    async fn forward<T: DeserializeOwned>(
        &self,
        addr: &str,
        proposal: &Proposal,
    ) -> Result<Result<T, ExecError>, String> {
        let mut client = self.peers.raft_client(addr).map_err(|e| e.to_string())?;
        let data = serde_json::to_vec(proposal).map_err(|e| e.to_string())?;
        let reply = client
            .forward(Forwarded { data })
            .await
            .map_err(|s| s.message().to_owned())?;
        serde_json::from_slice(&reply.into_inner().data).map_err(|e| e.to_string())
    }

    /// Runs a proposal forwarded by another member here and encodes its answer as that
    /// member reads it (`Result<R, ExecError>`, see [`crate::proposal`]); the answer is
    /// [`ExecError::NotLeader`] unless this member leads.
    pub async fn answer(&self, proposal: Proposal) -> serde_json::Result<Vec<u8>> {
        fn encode<T: Serialize>(r: Result<T, ExecError>) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(&r)
        }
        match proposal {
            // A heartbeat is soft on the leader, also one forwarded by a follower of an older
            // version, which forwards every heartbeat as this write.
            Proposal::Write(Command::Heartbeat { name, .. }) => encode(self.beat_local(name).await),
            Proposal::Write(command) => encode(self.write_local(command).await),
            Proposal::Read(query) => match query {
                Query::Nodes => encode(self.read_local(Nodes).await),
                Query::Volumes => encode(self.read_local(Volumes).await),
                Query::Volume(name) => encode(self.read_local(VolumeNamed(name)).await),
                Query::Moves(volume) => encode(self.read_local(Moves(volume)).await),
                Query::Leases => encode(self.read_local(Leases).await),
                Query::Ips => encode(self.read_local(Ips).await),
                Query::CheckClaim { address, node } => {
                    encode(self.read_local(CheckClaim { address, node }).await)
                }
                Query::CheckAllocation { pool, node } => {
                    encode(self.read_local(CheckAllocation { pool, node }).await)
                }
                Query::SnapshotSite(volume) => encode(self.read_local(SnapshotSite(volume)).await),
                Query::DryRun(command) => encode(self.read_local(DryRun(command)).await),
            },
            Proposal::AddMember { id, address } => encode(self.add_member_local(id, address).await),
            Proposal::RemoveMember { id } => encode(self.remove_member_local(id).await),
        }
    }

    /// Commits `command` here (with the writes proposed meanwhile, [`crate::batch`]) and
    /// returns what applying it returned; fails with [`ExecError::NotLeader`] unless this
    /// member leads. For the leader's own writes (liveness, moves), which are never
    /// forwarded. Fails with [`ExecError::NoQuorum`] when
    /// the write is not committed within `call_timeout` (no majority can store it, e.g. the
    /// followers' disks are full): it may still commit later, as any write whose answer was
    /// lost, but no caller waits on it forever.
    pub async fn write_local(&self, command: Command) -> Result<Response, ExecError> {
        let written = tokio::time::timeout(self.call_timeout, self.batcher.write(command));
        written
            .await
            .unwrap_or_else(|_| Err(self.no_quorum("the leader did not commit in time".into())))
    }

    /// A linearizable read on this member, the leader, with its soft values laid over the
    /// replicated ones: the one place reads get them.
    async fn read_local<Q: Read>(&self, query: Q) -> Result<Q::Reply, ExecError> {
        let term = self.confirm_leader().await?;
        let mut reply = self.sm.read(|s| query.read(s))?;
        Q::soften(&mut reply, &self.soft, term, now_ms());
        Ok(reply)
    }

    /// Confirms with a quorum that this member leads and waits until it has applied what
    /// was committed before (openraft's read index); returns its term.
    async fn confirm_leader(&self) -> Result<u64, ExecError> {
        if let Err(e) = self.raft.ensure_linearizable().await {
            return Err(raft_error(&e));
        }
        Ok(self.raft.metrics().borrow().current_term)
    }

    /// The term this member leads in, if it believes it leads (not confirmed with a quorum).
    pub fn leader_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics().borrow().clone();
        (metrics.current_leader == Some(self.id)).then_some(metrics.current_term)
    }

    /// A heartbeat of `name` here, the leader, at the leader's clock (so liveness is judged
    /// on one clock): recorded in the soft state when the node is up (and logged too while
    /// an older member, which judges from logged heartbeats, is in the cluster), logged (`Heartbeat`,
    /// after the node's recorded time, so that a mark-down judged earlier no longer matches)
    /// when it is down or unknown. Under the node's judging lock, so the liveness watch
    /// never marks a node down after its heartbeat was acknowledged.
    async fn beat_local(&self, name: String) -> Result<Response, ExecError> {
        let _judging = self.soft.judging(&name).await;
        let term = self.confirm_leader().await?;
        let now = now_ms();
        let node = self.sm.read(|s| s.nodes.get(&name).cloned());
        let at_ms = match node {
            Some(mut node) if node.up => {
                self.soft.beat(term, &name, now);
                if !self.peers.formats.others_current(&self.raft, self.id) {
                    // An older member judges liveness from logged heartbeats: while one is
                    // in the cluster (a rolling upgrade), they are logged as it logged them.
                    let logged = Command::Heartbeat {
                        name,
                        at_ms: now.max(node.last_heartbeat_ms),
                    };
                    return self.write_local(logged).await;
                }
                node.last_heartbeat_ms = now.max(node.last_heartbeat_ms);
                return Ok(Response::Node(node));
            }
            Some(node) => now.max(node.last_heartbeat_ms + 1),
            None => now,
        };
        let logged = Command::Heartbeat {
            name: name.clone(),
            at_ms,
        };
        let response = self.write_local(logged).await?;
        self.soft.beat(term, &name, at_ms);
        Ok(response)
    }

    async fn add_member_local(&self, id: u64, address: String) -> Result<(), ExecError> {
        let node = BasicNode { addr: address };
        if let Err(e) = self.raft.add_learner(id, node, true).await {
            return Err(forward_to(&e).unwrap_or_else(|| ExecError::Membership(e.to_string())));
        }
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
    }

    async fn remove_member_local(&self, id: u64) -> Result<(), ExecError> {
        self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
            .await
    }

    async fn change(&self, change: ChangeMembers<u64, BasicNode>) -> Result<(), ExecError> {
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(()),
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
