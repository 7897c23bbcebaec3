//! The `NodeApi` gRPC service: every call a node certificate may make (agents), which operators
//! may make too. [`super::auth::node`] has already let the caller's role in when a handler
//! runs; handlers of node-confined methods check the nodes the request names and the nodes
//! of the stored objects it changes ([`super::ownership`]), then run the request on the
//! leader ([`Member::write`], [`Member::read`]) and convert its typed reply.

use std::net::Ipv4Addr;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use proto::authz::{Authorize, Caller};
use proto::control as pb;
use proto::control::node_api_server::{NodeApi, NodeApiServer};
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use tonic::{Request, Response, Status};

use super::ownership;
use super::status::to_status;
use crate::convert;
use crate::member::Member;
use crate::proposal::{
    Applied, CheckAllocation, CheckClaim, Ips, Leases, Moves, Nodes, Read, VolumeNamed, Volumes,
};
use crate::raft::ChangeEvent;
use crate::state::Command;

/// Serves the `NodeApi` service for one member.
pub struct NodeService {
    member: Member,
}

impl NodeService {
    /// The service over `member`, behind its authorization table: the only way to serve it.
    pub fn server(member: Member) -> Authorize<NodeApiServer<Self>> {
        Authorize::new(NodeApiServer::new(Self { member }), super::auth::node)
    }

    async fn write<R: Applied>(&self, command: Command) -> Result<R, Status> {
        self.member.write(command).await.map_err(to_status)
    }

    /// Fills in a volume's state from the migrations this member has applied.
    fn with_state(&self, mut v: pb::Volume) -> pb::Volume {
        let moving = self.member.sm.read(|s| {
            s.migrations
                .values()
                .find(|m| m.volume == v.name && !m.phase.is_terminal())
                .map(|m| pb::VolumeMove {
                    to: m.to.clone(),
                    phase: convert::phase(m.phase).into(),
                })
        });
        let state = match (&moving, &v.owner) {
            (Some(_), _) => pb::VolumeState::Moving,
            (None, Some(_)) => pb::VolumeState::Ready,
            (None, None) => pb::VolumeState::NoOwner,
        };
        v.set_state(state);
        v.moving = moving;
        v
    }

    /// A claim or an allocation tried without writing (`dry_run`), as a linearizable read
    /// on the leader's state (a member that just restarted may not know the node yet): a
    /// check before the container exists; the write at its start decides.
    async fn check_address<Q: Read<Reply = Ipv4Addr>>(
        &self,
        query: Q,
        pool: &str,
        node: &str,
    ) -> Reply_<pb::Allocation> {
        let address = self.read(query).await?;
        Ok(Response::new(pb::Allocation {
            address: address.to_string(),
            pool: pool.to_owned(),
            container_id: String::new(),
            container_name: String::new(),
            node: node.to_owned(),
            running: false,
        }))
    }

    async fn read<Q: Read>(&self, query: Q) -> Result<Q::Reply, Status> {
        self.member.read(query).await.map_err(to_status)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Reply_<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl NodeApi for NodeService {
    async fn register_node(&self, req: Request<pb::RegisterNodeRequest>) -> Reply_<pb::Node> {
        Caller::of(&req)?.acts_for(&req.get_ref().name)?;
        let r = req.into_inner();
        let cmd = Command::RegisterNode {
            name: r.name,
            address: r.address,
            storage: r.storage,
            at_ms: now_ms(),
        };
        Ok(Response::new(convert::node(self.write(cmd).await?)))
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Reply_<pb::Node> {
        Caller::of(&req)?.acts_for(&req.get_ref().name)?;
        let r = req.into_inner();
        let node = self.member.heartbeat(r.name, now_ms()).await;
        Ok(Response::new(convert::node(node.map_err(to_status)?)))
    }

    async fn list_nodes(&self, _req: Request<pb::Empty>) -> Reply_<pb::NodeList> {
        let nodes = self.read(Nodes).await?;
        Ok(Response::new(pb::NodeList {
            nodes: nodes.into_iter().map(convert::node).collect(),
        }))
    }

    async fn create_volume(&self, req: Request<pb::CreateVolumeRequest>) -> Reply_<pb::Volume> {
        if let Some(owner) = &req.get_ref().owner {
            Caller::of(&req)?.acts_for(owner)?;
        }
        let r = req.into_inner();
        let cmd = Command::CreateVolume {
            name: r.name,
            size_limit: r.size_limit,
            owner: r.owner,
            metadata: r.metadata.into_iter().collect(),
            at_ms: now_ms(),
            replication: r.replication.map(convert::replication_from),
        };
        Ok(Response::new(convert::volume(self.write(cmd).await?)))
    }

    async fn delete_volume(&self, req: Request<pb::VolumeName>) -> Reply_<pb::Volume> {
        ownership::volume(&self.member, Caller::of(&req)?, &req.get_ref().name).await?;
        let cmd = Command::DeleteVolume {
            name: req.into_inner().name,
        };
        Ok(Response::new(convert::volume(self.write(cmd).await?)))
    }

    async fn get_volume(&self, req: Request<pb::VolumeName>) -> Reply_<pb::Volume> {
        let name = req.into_inner().name;
        let v = self.read(VolumeNamed(name.clone())).await?;
        let mut v = self.with_state(convert::volume(v));
        let moves = self.read(Moves(name)).await?;
        v.moves = moves.into_iter().map(convert::migration).collect();
        Ok(Response::new(v))
    }

    async fn list_volumes(&self, _req: Request<pb::Empty>) -> Reply_<pb::VolumeList> {
        let volumes = self.read(Volumes).await?;
        Ok(Response::new(pb::VolumeList {
            volumes: volumes
                .into_iter()
                .map(|v| self.with_state(convert::volume(v)))
                .collect(),
        }))
    }

    async fn acquire_lease(&self, req: Request<pb::Lease>) -> Reply_<pb::Lease> {
        Caller::of(&req)?.acts_for(&req.get_ref().node)?;
        let lease = convert::lease_from(req.into_inner());
        Ok(Response::new(convert::lease(
            self.write(Command::AcquireLease(lease)).await?,
        )))
    }

    async fn release_lease(&self, req: Request<pb::Lease>) -> Reply_<pb::Lease> {
        let caller = Caller::of(&req)?;
        caller.acts_for(&req.get_ref().node)?;
        let l = req.get_ref();
        ownership::lease(&self.member, caller, &l.volume, &l.container_id).await?;
        let l = req.into_inner();
        let cmd = Command::ReleaseLease {
            volume: l.volume,
            container_id: l.container_id,
        };
        Ok(Response::new(convert::lease(self.write(cmd).await?)))
    }

    async fn list_leases(&self, _req: Request<pb::Empty>) -> Reply_<pb::LeaseList> {
        let leases = self.read(Leases).await?;
        Ok(Response::new(pb::LeaseList {
            leases: leases.into_iter().map(convert::lease).collect(),
        }))
    }

    type MoveVolumeStream = super::move_volume::MoveStream;

    async fn move_volume(
        &self,
        req: Request<pb::MoveVolumeRequest>,
    ) -> Reply_<Self::MoveVolumeStream> {
        // Operators move anything anywhere; an agent may only bring a volume to its own node
        // (for a container about to run there), and may not stop containers elsewhere.
        let caller = Caller::of(&req)?;
        caller.acts_for(&req.get_ref().to)?;
        if req.get_ref().stop_containers && caller.confined_to().is_some() {
            return Err(Status::permission_denied(
                "only operators may stop containers for a move: leave stop_containers unset",
            ));
        }
        let stream = super::move_volume::start(&self.member, req.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn allocate_ip(&self, req: Request<pb::AllocateRequest>) -> Reply_<pb::Allocation> {
        let caller = Caller::of(&req)?;
        caller.acts_for(&req.get_ref().node)?;
        if req.get_ref().dry_run {
            let r = req.into_inner();
            let query = CheckAllocation {
                pool: r.pool.clone(),
                node: r.node.clone(),
            };
            return self.check_address(query, &r.pool, &r.node).await;
        }
        ownership::allocations(&self.member, caller, &req.get_ref().container_id).await?;
        let r = req.into_inner();
        let cmd = Command::AllocateIp {
            pool: r.pool,
            container_id: r.container_id,
            container_name: r.container_name,
            node: r.node,
        };
        Ok(Response::new(convert::allocation(self.write(cmd).await?)))
    }

    async fn claim_ip(&self, req: Request<pb::ClaimRequest>) -> Reply_<pb::Allocation> {
        let caller = Caller::of(&req)?;
        caller.acts_for(&req.get_ref().node)?;
        if req.get_ref().dry_run {
            let r = req.into_inner();
            let query = CheckClaim {
                address: r.address,
                node: r.node.clone(),
            };
            return self.check_address(query, "", &r.node).await;
        }
        ownership::allocations(&self.member, caller, &req.get_ref().container_id).await?;
        let r = req.into_inner();
        let cmd = Command::ClaimIp {
            address: r.address,
            container_id: r.container_id,
            container_name: r.container_name,
            node: r.node,
        };
        Ok(Response::new(convert::allocation(self.write(cmd).await?)))
    }

    async fn container_stopped(&self, req: Request<pb::ContainerId>) -> Reply_<pb::AllocationList> {
        let caller = Caller::of(&req)?;
        ownership::allocations(&self.member, caller, &req.get_ref().container_id).await?;
        let cmd = Command::ContainerStopped {
            container_id: req.into_inner().container_id,
        };
        Ok(Response::new(convert::allocations(self.write(cmd).await?)))
    }

    async fn release_ip(&self, req: Request<pb::ContainerId>) -> Reply_<pb::AllocationList> {
        let caller = Caller::of(&req)?;
        ownership::allocations(&self.member, caller, &req.get_ref().container_id).await?;
        let cmd = Command::ReleaseIp {
            container_id: req.into_inner().container_id,
        };
        Ok(Response::new(convert::allocations(self.write(cmd).await?)))
    }

    async fn list_ips(&self, _req: Request<pb::Empty>) -> Reply_<pb::IpList> {
        let ips = self.read(Ips).await?;
        Ok(Response::new(pb::IpList {
            pools: ips.pools.into_iter().map(convert::pool).collect(),
            allocations: ips
                .allocations
                .into_iter()
                .map(convert::allocation)
                .collect(),
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Reply_<Self::WatchStream> {
        let caller = Caller::of(&req)?;
        tracing::debug!(watch.caller = %caller.identity.name, "watch started");
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
