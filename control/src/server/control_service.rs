//! The `Control` gRPC service: agents (node certificates) and `flockerctl` (user
//! certificates). Each call authorises the caller, turns the request into a proposal, runs it
//! on the leader through [`Member::execute`] and converts the reply.

use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::control as pb;
use proto::control::control_server::Control;
use proto::tls::TlsDir;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

use super::auth::{self, Caller};
use super::status::to_status;
use crate::convert;
use crate::member::Member;
use crate::proposal::{Proposal, Query, Reply};
use crate::raft::ChangeEvent;
use crate::state::{self, Command, Phase};

/// How long `cluster status` waits for each member to answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the `Control` service for one member.
pub struct ControlService {
    member: Member,
    agent_tls: TlsDir,
}

impl ControlService {
    /// A service over `member`, calling agents (for volume usage) with `agent_tls`.
    pub fn new(member: Member, agent_tls: TlsDir) -> Self {
        Self { member, agent_tls }
    }

    async fn write(&self, command: Command) -> Result<state::Response, Status> {
        match self
            .member
            .execute(Proposal::Write(command))
            .await
            .map_err(to_status)?
        {
            Reply::Applied(r) => Ok(r),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    /// Fills in a volume's state from the migrations this member has applied.
    fn with_state(&self, mut v: pb::Volume) -> pb::Volume {
        let moving = self.member.sm.read(|s| {
            s.migrations
                .values()
                .find(|m| m.volume == v.name && !m.phase.is_terminal())
                .map(|m| format!("moving to {} ({})", m.to, m.phase.as_str()))
        });
        v.state = match (moving, &v.owner) {
            (Some(m), _) => m,
            (None, Some(_)) => "ready".into(),
            (None, None) => "no owner".into(),
        };
        v
    }

    async fn read(&self, query: Query) -> Result<Reply, Status> {
        self.member
            .execute(Proposal::Read(query))
            .await
            .map_err(to_status)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn who<T>(req: &Request<T>) -> Result<Caller, Status> {
    auth::caller(req)
}

type Reply_<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Control for ControlService {
    async fn register_node(&self, req: Request<pb::RegisterNodeRequest>) -> Reply_<pb::Node> {
        let caller = who(&req)?;
        let r = req.into_inner();
        caller.require_node(&r.name)?;
        let cmd = Command::RegisterNode {
            name: r.name,
            address: r.address,
            storage: r.storage,
            at_ms: now_ms(),
        };
        Ok(Response::new(convert::node_reply(self.write(cmd).await?)?))
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Reply_<pb::Node> {
        let caller = who(&req)?;
        let r = req.into_inner();
        caller.require_node(&r.name)?;
        let cmd = Command::Heartbeat {
            name: r.name,
            at_ms: now_ms(),
        };
        Ok(Response::new(convert::node_reply(self.write(cmd).await?)?))
    }

    async fn list_nodes(&self, req: Request<pb::Empty>) -> Reply_<pb::NodeList> {
        who(&req)?;
        match self.read(Query::Nodes).await? {
            Reply::Nodes(n) => Ok(Response::new(pb::NodeList {
                nodes: n.into_iter().map(convert::node).collect(),
            })),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn create_volume(&self, req: Request<pb::CreateVolumeRequest>) -> Reply_<pb::Volume> {
        let caller = who(&req)?;
        let r = req.into_inner();
        if let Some(owner) = &r.owner {
            caller.require_node(owner)?;
        }
        let cmd = Command::CreateVolume {
            name: r.name,
            size_limit: r.size_limit,
            owner: r.owner,
            metadata: r.metadata.into_iter().collect(),
            at_ms: now_ms(),
        };
        Ok(Response::new(convert::volume_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn delete_volume(&self, req: Request<pb::VolumeName>) -> Reply_<pb::Volume> {
        who(&req)?;
        let cmd = Command::DeleteVolume {
            name: req.into_inner().name,
        };
        Ok(Response::new(convert::volume_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn get_volume(&self, req: Request<pb::VolumeName>) -> Reply_<pb::Volume> {
        who(&req)?;
        match self.read(Query::Volume(req.into_inner().name)).await? {
            Reply::Volume(v) => Ok(Response::new(self.with_state(convert::volume(v)))),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn list_volumes(&self, req: Request<pb::Empty>) -> Reply_<pb::VolumeList> {
        who(&req)?;
        match self.read(Query::Volumes).await? {
            Reply::Volumes(v) => Ok(Response::new(pb::VolumeList {
                volumes: v
                    .into_iter()
                    .map(|v| self.with_state(convert::volume(v)))
                    .collect(),
            })),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn volume_usage(&self, req: Request<pb::Empty>) -> Reply_<pb::VolumeUsageList> {
        who(&req)?;
        Ok(Response::new(
            super::usage::volume_usage(&self.member, &self.agent_tls).await,
        ))
    }

    async fn set_volume_owner(&self, req: Request<pb::SetOwnerRequest>) -> Reply_<pb::Volume> {
        who(&req)?.require_operator()?;
        let r = req.into_inner();
        let cmd = Command::SetOwner {
            name: r.name,
            owner: r.owner,
        };
        Ok(Response::new(convert::volume_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn acquire_lease(&self, req: Request<pb::Lease>) -> Reply_<pb::Lease> {
        let caller = who(&req)?;
        let lease = convert::lease_from(req.into_inner());
        caller.require_node(&lease.node)?;
        Ok(Response::new(convert::lease_reply(
            self.write(Command::AcquireLease(lease)).await?,
        )?))
    }

    async fn release_lease(&self, req: Request<pb::Lease>) -> Reply_<pb::Lease> {
        let caller = who(&req)?;
        let l = req.into_inner();
        caller.require_node(&l.node)?;
        let cmd = Command::ReleaseLease {
            volume: l.volume,
            container_id: l.container_id,
        };
        Ok(Response::new(convert::lease_reply(self.write(cmd).await?)?))
    }

    async fn list_leases(&self, req: Request<pb::Empty>) -> Reply_<pb::LeaseList> {
        who(&req)?;
        match self.read(Query::Leases).await? {
            Reply::Leases(l) => Ok(Response::new(pb::LeaseList {
                leases: l.into_iter().map(convert::lease).collect(),
            })),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn record_migration(
        &self,
        req: Request<pb::RecordMigrationRequest>,
    ) -> Reply_<pb::Migration> {
        let caller = who(&req)?;
        let r = req.into_inner();
        if r.stop_containers {
            caller.require_operator()?;
        }
        let cmd = Command::RecordMigration {
            volume: r.volume,
            to: r.to,
            stop_containers: r.stop_containers,
        };
        Ok(Response::new(convert::migration_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn advance_migration(
        &self,
        req: Request<pb::AdvanceMigrationRequest>,
    ) -> Reply_<pb::Migration> {
        who(&req)?;
        let r = req.into_inner();
        let phase = Phase::parse(&r.phase).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown phase {:?}: use copying, handoff or done",
                r.phase
            ))
        })?;
        let cmd = Command::AdvanceMigration {
            id: r.id,
            phase,
            bytes_sent: r.bytes_sent,
            rounds: r.rounds,
        };
        Ok(Response::new(convert::migration_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn fail_migration(
        &self,
        req: Request<pb::FailMigrationRequest>,
    ) -> Reply_<pb::Migration> {
        who(&req)?;
        let r = req.into_inner();
        let cmd = Command::FailMigration {
            id: r.id,
            error: r.error,
        };
        Ok(Response::new(convert::migration_reply(
            self.write(cmd).await?,
        )?))
    }

    type MoveVolumeStream = super::move_volume::MoveStream;

    async fn move_volume(
        &self,
        req: Request<pb::MoveVolumeRequest>,
    ) -> Reply_<Self::MoveVolumeStream> {
        // Operators move anything anywhere; an agent may only bring a volume to its own node
        // (for a container about to run there), and may not stop containers elsewhere.
        let caller = who(&req)?;
        caller.require_node(&req.get_ref().to)?;
        if req.get_ref().stop_containers {
            caller.require_operator()?;
        }
        let stream = super::move_volume::start(&self.member, req.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn add_pool(&self, req: Request<pb::AddPoolRequest>) -> Reply_<pb::Pool> {
        who(&req)?.require_operator()?;
        match self
            .write(Command::AddPool {
                cidr: req.into_inner().cidr,
            })
            .await?
        {
            state::Response::Pool(cidr) => {
                Ok(Response::new(convert::pool(crate::proposal::PoolUsage {
                    cidr,
                    allocated: 0,
                })))
            }
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn allocate_ip(&self, req: Request<pb::AllocateRequest>) -> Reply_<pb::Allocation> {
        let caller = who(&req)?;
        let r = req.into_inner();
        caller.require_node(&r.node)?;
        let cmd = Command::AllocateIp {
            pool: r.pool,
            container_id: r.container_id,
            container_name: r.container_name,
            node: r.node,
        };
        Ok(Response::new(convert::allocation_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn claim_ip(&self, req: Request<pb::ClaimRequest>) -> Reply_<pb::Allocation> {
        let caller = who(&req)?;
        let r = req.into_inner();
        caller.require_node(&r.node)?;
        let cmd = Command::ClaimIp {
            address: r.address,
            container_id: r.container_id,
            container_name: r.container_name,
            node: r.node,
        };
        Ok(Response::new(convert::allocation_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn container_stopped(&self, req: Request<pb::ContainerId>) -> Reply_<pb::AllocationList> {
        who(&req)?;
        let cmd = Command::ContainerStopped {
            container_id: req.into_inner().container_id,
        };
        Ok(Response::new(convert::allocations_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn release_ip(&self, req: Request<pb::ContainerId>) -> Reply_<pb::AllocationList> {
        who(&req)?;
        let cmd = Command::ReleaseIp {
            container_id: req.into_inner().container_id,
        };
        Ok(Response::new(convert::allocations_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn reclaim_node(&self, req: Request<pb::ReclaimRequest>) -> Reply_<pb::AllocationList> {
        who(&req)?.require_operator()?;
        let cmd = Command::ReclaimNode {
            node: req.into_inner().node,
        };
        Ok(Response::new(convert::allocations_reply(
            self.write(cmd).await?,
        )?))
    }

    async fn list_ips(&self, req: Request<pb::Empty>) -> Reply_<pb::IpList> {
        who(&req)?;
        match self.read(Query::Ips).await? {
            Reply::Ips(pools, allocations) => Ok(Response::new(pb::IpList {
                pools: pools.into_iter().map(convert::pool).collect(),
                allocations: allocations.into_iter().map(convert::allocation).collect(),
            })),
            other => Err(Status::internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn status(&self, req: Request<pb::Empty>) -> Reply_<pb::ClusterStatus> {
        who(&req)?;
        Ok(Response::new(
            super::cluster_status::probe(&self.member).await,
        ))
    }

    async fn add_member(&self, req: Request<pb::AddMemberRequest>) -> Reply_<pb::ClusterStatus> {
        who(&req)?.require_operator()?;
        let r = req.into_inner();
        self.member
            .execute(Proposal::AddMember {
                id: r.id,
                address: r.address,
            })
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
        who(&req)?.require_operator()?;
        let id = req.into_inner().id;
        self.member
            .execute(Proposal::RemoveMember { id })
            .await
            .map_err(to_status)?;
        Ok(Response::new(
            super::cluster_status::probe(&self.member).await,
        ))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Reply_<Self::WatchStream> {
        let caller = who(&req)?;
        tracing::debug!(watch.caller = %caller.name, "watch started");
        let stream =
            BroadcastStream::new(self.member.sm.subscribe()).filter_map(|item| match item {
                Ok(ChangeEvent {
                    change: Some(change),
                    index,
                }) => convert::watch_event(index, change).map(Ok),
                Ok(ChangeEvent { change: None, .. }) => Some(Err(Status::data_loss(
                    "this member installed a snapshot from the leader: list the state again and re-watch",
                ))),
                Err(_) => Some(Err(Status::data_loss(
                    "watcher fell behind the change stream: list the state again and re-watch",
                ))),
            });
        Ok(Response::new(Box::pin(stream)))
    }
}
