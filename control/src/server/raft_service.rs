//! The `Raft` gRPC service: openraft's RPCs from peers, forwarded proposals and metrics.
//! Only control certificates may call it (the table is [`super::auth::raft`]). `Forward`
//! carries only what the `NodeApi` and `OperatorApi` services propose: commands that only the leader itself writes
//! (migration phases, replicas, node liveness) are refused, so no certificate can write them
//! over the network.

use proto::authz::Authorize;
use proto::raft::raft_server::{Raft as RaftApi, RaftServer};
use proto::raft::{Forwarded, MemberMetrics, MetricsRequest, RaftPayload, ServerState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::member::Member;
use crate::proposal::Proposal;
use crate::raft::network::MAX_MESSAGE_BYTES;
use crate::state::Command;

/// Serves the `Raft` service for one member.
pub struct RaftService {
    member: Member,
}

impl RaftService {
    /// The service over `member`, behind its authorization table (control members only),
    /// with room for the largest Raft message.
    pub fn server(member: Member) -> Authorize<RaftServer<Self>> {
        let server = RaftServer::new(Self { member })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Authorize::new(server, super::auth::raft)
    }
}

fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(value).map_err(|e| Status::internal(format!("cannot encode reply: {e}")))
}

/// An openraft reply, saying this member's log format ([`crate::batch::LOG_FORMAT`]).
fn reply<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let mut response = Response::new(RaftPayload {
        data: encode(value)?,
    });
    response.metadata_mut().insert(
        crate::batch::LOG_FORMAT_HEADER,
        tonic::metadata::MetadataValue::from(crate::batch::LOG_FORMAT),
    );
    Ok(response)
}

#[tonic::async_trait]
impl RaftApi for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&req.into_inner().data)?;
        reply(&self.member.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&req.into_inner().data)?;
        reply(&self.member.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&req.into_inner().data)?;
        reply(&self.member.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, req: Request<Forwarded>) -> Result<Response<Forwarded>, Status> {
        let proposal: Proposal = decode(&req.into_inner().data)?;
        if let Proposal::Write(cmd) = &proposal
            && !forwardable(cmd)
        {
            return Err(Status::permission_denied(format!(
                "{cmd:?} is written only by the leader itself, never forwarded"
            )));
        }
        let data = self
            .member
            .answer(proposal)
            .await
            .map_err(|e| Status::internal(format!("cannot encode reply: {e}")))?;
        Ok(Response::new(Forwarded { data }))
    }

    async fn metrics(
        &self,
        _req: Request<MetricsRequest>,
    ) -> Result<Response<MemberMetrics>, Status> {
        Ok(Response::new(local_metrics(&self.member)))
    }
}

/// Whether a follower may forward `cmd`: only commands the `NodeApi` and `OperatorApi` services propose. Exhaustive,
/// so a new command is refused until someone decides who may write it.
fn forwardable(cmd: &Command) -> bool {
    match cmd {
        Command::RegisterNode { .. }
        | Command::Heartbeat { .. }
        | Command::CreateVolume { .. }
        | Command::DeleteVolume { .. }
        | Command::AcquireLease(_)
        | Command::ReleaseLease { .. }
        | Command::RecordMigration { .. }
        | Command::AddPool { .. }
        | Command::AllocateIp { .. }
        | Command::ClaimIp { .. }
        | Command::ContainerStopped { .. }
        | Command::ReleaseIp { .. }
        | Command::ReclaimNode { .. }
        | Command::SetReplication { .. }
        | Command::SetSnapshotSchedule { .. }
        | Command::PromoteVolume { .. }
        | Command::RecordSnapshot { .. }
        | Command::ForgetSnapshot { .. }
        | Command::CloneVolume { .. } => true,
        Command::MarkNodeDown { .. }
        | Command::SetOwner { .. }
        | Command::SetReplica { .. }
        | Command::SetMetadata { .. }
        | Command::SetSizeLimit { .. }
        | Command::AdvanceMigration { .. }
        | Command::FailMigration { .. }
        | Command::MigrationCleanedUp { .. }
        | Command::CopyDestroyed { .. }
        | Command::Batch { .. } => false,
    }
}

/// openraft's server state to wire.
fn server_state(s: openraft::ServerState) -> ServerState {
    match s {
        openraft::ServerState::Leader => ServerState::Leader,
        openraft::ServerState::Follower => ServerState::Follower,
        openraft::ServerState::Candidate => ServerState::Candidate,
        openraft::ServerState::Learner => ServerState::Learner,
        openraft::ServerState::Shutdown => ServerState::Shutdown,
    }
}

/// This member's own view of the group.
pub fn local_metrics(member: &Member) -> MemberMetrics {
    let m = member.raft.metrics().borrow().clone();
    MemberMetrics {
        id: m.id,
        state: server_state(m.state).into(),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
    }
}
