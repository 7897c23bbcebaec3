//! The `Raft` gRPC service: openraft's RPCs from peers, forwarded proposals and metrics.
//! Only control certificates may call it.

use proto::raft::raft_server::Raft as RaftApi;
use proto::raft::{Forwarded, MemberMetrics, MetricsRequest, RaftPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::auth;
use crate::member::Member;
use crate::proposal::Proposal;

/// Serves the `Raft` service for one member.
pub struct RaftService {
    member: Member,
}

impl RaftService {
    /// A service over `member`.
    pub fn new(member: Member) -> Self {
        Self { member }
    }
}

fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(value).map_err(|e| Status::internal(format!("cannot encode reply: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    Ok(Response::new(RaftPayload {
        data: encode(value)?,
    }))
}

#[tonic::async_trait]
impl RaftApi for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        auth::caller(&req)?.require_control()?;
        let rpc = decode(&req.into_inner().data)?;
        reply(&self.member.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        auth::caller(&req)?.require_control()?;
        let rpc = decode(&req.into_inner().data)?;
        reply(&self.member.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        auth::caller(&req)?.require_control()?;
        let rpc = decode(&req.into_inner().data)?;
        reply(&self.member.raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, req: Request<Forwarded>) -> Result<Response<Forwarded>, Status> {
        auth::caller(&req)?.require_control()?;
        let proposal: Proposal = decode(&req.into_inner().data)?;
        let result = self.member.execute_local(proposal).await;
        Ok(Response::new(Forwarded {
            data: encode(&result)?,
        }))
    }

    async fn metrics(
        &self,
        req: Request<MetricsRequest>,
    ) -> Result<Response<MemberMetrics>, Status> {
        auth::caller(&req)?.require_control()?;
        Ok(Response::new(local_metrics(&self.member)))
    }
}

/// This member's own view of the group.
pub fn local_metrics(member: &Member) -> MemberMetrics {
    let m = member.raft.metrics().borrow().clone();
    MemberMetrics {
        id: m.id,
        state: format!("{:?}", m.state).to_lowercase(),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
    }
}
