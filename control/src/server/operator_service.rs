//! The `OperatorApi` gRPC service: what only `flockerctl` calls, running the cluster.
//! [`super::auth::operator`] has already let the caller's role in (operators only, but for
//! `Status`) when a handler runs.

use proto::authz::Authorize;
use proto::control as pb;
use proto::control::operator_api_server::{OperatorApi, OperatorApiServer};
use proto::tls::TlsDir;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::convert;
use crate::member::Member;
use crate::proposal::{Applied, PoolUsage};
use crate::state::{Command, SnapshotSchedule};

/// Serves the `OperatorApi` service for one member.
pub struct OperatorService {
    member: Member,
    agent_tls: TlsDir,
}

impl OperatorService {
    /// The service over `member`, calling agents (for volume usage) with `agent_tls`, behind
    /// its authorization table: the only way to serve it.
    pub fn server(member: Member, agent_tls: TlsDir) -> Authorize<OperatorApiServer<Self>> {
        Authorize::new(
            OperatorApiServer::new(Self { member, agent_tls }),
            super::auth::operator,
        )
    }

    async fn write<R: Applied>(&self, command: Command) -> Result<R, Status> {
        self.member.write(command).await.map_err(to_status)
    }
}

type Reply_<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl OperatorApi for OperatorService {
    type BackupVolumeStream = super::backup::BackupStream;

    async fn backup_volume(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Reply_<Self::BackupVolumeStream> {
        let stream = super::backup::backup(&self.member, &self.agent_tls, req.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn restore_volume(
        &self,
        req: Request<tonic::Streaming<pb::RestoreChunk>>,
    ) -> Reply_<pb::Volume> {
        let v = super::backup::restore(&self.member, &self.agent_tls, req.into_inner()).await?;
        Ok(Response::new(convert::volume(v)))
    }

    async fn volume_usage(&self, _req: Request<pb::Empty>) -> Reply_<pb::VolumeUsageList> {
        Ok(Response::new(
            super::usage::volume_usage(&self.member, &self.agent_tls).await,
        ))
    }

    async fn add_pool(&self, req: Request<pb::AddPoolRequest>) -> Reply_<pb::Pool> {
        let cidr = self
            .write(Command::AddPool {
                cidr: req.into_inner().cidr,
            })
            .await?;
        Ok(Response::new(convert::pool(PoolUsage {
            cidr,
            allocated: 0,
        })))
    }

    async fn set_replication(&self, req: Request<pb::SetReplicationRequest>) -> Reply_<pb::Volume> {
        let r = req.into_inner();
        let cmd = Command::SetReplication {
            name: r.name,
            replication: r.replication.map(convert::replication_from),
        };
        Ok(Response::new(convert::volume(self.write(cmd).await?)))
    }

    async fn set_snapshot_schedule(
        &self,
        req: Request<pb::SetSnapshotScheduleRequest>,
    ) -> Reply_<pb::Volume> {
        let r = req.into_inner();
        let cmd = Command::SetSnapshotSchedule {
            name: r.name,
            schedule: r.schedule.map(|s| SnapshotSchedule {
                every_ms: s.every_ms,
                keep: s.keep,
            }),
        };
        Ok(Response::new(convert::volume(self.write(cmd).await?)))
    }

    async fn promote_volume(&self, req: Request<pb::PromoteVolumeRequest>) -> Reply_<pb::Volume> {
        let r = req.into_inner();
        let cmd = Command::PromoteVolume {
            name: r.name,
            node: r.node,
            force: r.force,
            automatic: false,
            at_ms: crate::server::node_service::now_ms(),
        };
        Ok(Response::new(convert::volume(self.write(cmd).await?)))
    }

    async fn snapshot_volume(
        &self,
        req: Request<pb::SnapshotVolumeRequest>,
    ) -> Reply_<pb::UserSnapshot> {
        let r = req.into_inner();
        let taken =
            super::snapshots::take(&self.member, &self.agent_tls, r.name, r.label, false).await?;
        Ok(Response::new(convert::user_snapshot(taken)))
    }

    async fn clone_volume(&self, req: Request<pb::CloneVolumeRequest>) -> Reply_<pb::Volume> {
        let r = req.into_inner();
        let v = super::snapshots::clone(&self.member, &self.agent_tls, r.name, r.snapshot, r.clone)
            .await?;
        Ok(Response::new(convert::volume(v)))
    }

    async fn delete_snapshot(&self, req: Request<pb::DeleteSnapshotRequest>) -> Reply_<pb::Volume> {
        let r = req.into_inner();
        let v = super::snapshots::delete(&self.member, &self.agent_tls, r.name, r.snapshot).await?;
        Ok(Response::new(convert::volume(v)))
    }

    async fn reclaim_node(&self, req: Request<pb::ReclaimRequest>) -> Reply_<pb::AllocationList> {
        let cmd = Command::ReclaimNode {
            node: req.into_inner().node,
        };
        Ok(Response::new(convert::allocations(self.write(cmd).await?)))
    }

    async fn status(&self, _req: Request<pb::Empty>) -> Reply_<pb::ClusterStatus> {
        Ok(Response::new(
            super::cluster_status::probe(&self.member).await,
        ))
    }

    async fn add_member(&self, req: Request<pb::AddMemberRequest>) -> Reply_<pb::ClusterStatus> {
        let r = req.into_inner();
        self.member
            .add_member(r.id, r.address)
            .await
            .map_err(to_status)?;
        Ok(Response::new(
            super::cluster_status::probe(&self.member).await,
        ))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Reply_<pb::ClusterStatus> {
        let id = req.into_inner().id;
        self.member.remove_member(id).await.map_err(to_status)?;
        Ok(Response::new(
            super::cluster_status::probe(&self.member).await,
        ))
    }
}
