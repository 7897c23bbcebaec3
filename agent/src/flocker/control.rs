//! [`VolumeControl`]: the control service's volume and lease calls the Docker side makes,
//! behind a small trait, so the decisions built on them ([`super::volumes`],
//! [`super::placement`], [`crate::plugin::driver`], [`super::leases`]) get unit tests with an
//! in-memory fake. The real one is the agent's shared connection,
//! [`crate::cluster::Control`]: a call that finds its member unavailable is made again on
//! the first member that answers.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use proto::connect::Unreachable;
use proto::control::{
    CreateVolumeRequest, Empty, Lease, MoveProgress, MoveVolumeRequest, Volume, VolumeName,
};
use tonic::Status;

use crate::cluster::Control;

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No control member answered.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// A member answered with an error; its message is the error's.
    #[error("{}", .0.message())]
    Status(#[from] Status),
}

/// A move's progress, as the control service reports it until the move ends.
pub type MoveStream = Pin<Box<dyn Stream<Item = Result<MoveProgress, Status>> + Send>>;

/// The control service's calls about volumes and leases.
#[async_trait::async_trait]
pub trait VolumeControl: Send + Sync {
    /// `GetVolume`: `NotFound` when the cluster has no such volume.
    async fn get_volume(&self, name: &str) -> Result<Volume, ControlError>;
    /// `CreateVolume` owned by `owner`: `AlreadyExists` when someone was first.
    async fn create_volume(&self, name: &str, owner: &str) -> Result<Volume, ControlError>;
    /// `DeleteVolume`: `NotFound` when there is none.
    async fn delete_volume(&self, name: &str) -> Result<(), ControlError>;
    /// `ListVolumes`: every volume in the cluster.
    async fn list_volumes(&self) -> Result<Vec<Volume>, ControlError>;
    /// `ListLeases`: every lease, on every node.
    async fn list_leases(&self) -> Result<Vec<Lease>, ControlError>;
    /// `AcquireLease`.
    async fn acquire_lease(&self, lease: Lease) -> Result<(), ControlError>;
    /// `ReleaseLease`: `NotFound` when there is no such lease.
    async fn release_lease(&self, lease: Lease) -> Result<(), ControlError>;
    /// `MoveVolume` of `name` to node `to`, without stopping containers: its progress.
    async fn move_volume(&self, name: &str, to: &str) -> Result<MoveStream, ControlError>;
}

#[async_trait::async_trait]
impl VolumeControl for Control {
    async fn get_volume(&self, name: &str) -> Result<Volume, ControlError> {
        let name = VolumeName { name: name.into() };
        Ok(self
            .call(name, |mut c, name| async move { c.get_volume(name).await })
            .await?)
    }

    async fn create_volume(&self, name: &str, owner: &str) -> Result<Volume, ControlError> {
        let request = CreateVolumeRequest {
            name: name.into(),
            owner: Some(owner.into()),
            ..Default::default()
        };
        Ok(self
            .call(request, |mut c, request| async move {
                c.create_volume(request).await
            })
            .await?)
    }

    async fn delete_volume(&self, name: &str) -> Result<(), ControlError> {
        let name = VolumeName { name: name.into() };
        self.call(
            name,
            |mut c, name| async move { c.delete_volume(name).await },
        )
        .await?;
        Ok(())
    }

    async fn list_volumes(&self) -> Result<Vec<Volume>, ControlError> {
        let list = self
            .call(Empty {}, |mut c, empty| async move {
                c.list_volumes(empty).await
            })
            .await?;
        Ok(list.volumes)
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, ControlError> {
        let list = self
            .call(Empty {}, |mut c, empty| async move {
                c.list_leases(empty).await
            })
            .await?;
        Ok(list.leases)
    }

    async fn acquire_lease(&self, lease: Lease) -> Result<(), ControlError> {
        self.call(
            lease,
            |mut c, lease| async move { c.acquire_lease(lease).await },
        )
        .await?;
        Ok(())
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), ControlError> {
        self.call(
            lease,
            |mut c, lease| async move { c.release_lease(lease).await },
        )
        .await?;
        Ok(())
    }

    async fn move_volume(&self, name: &str, to: &str) -> Result<MoveStream, ControlError> {
        let request = MoveVolumeRequest {
            name: name.into(),
            to: to.into(),
            stop_containers: false,
        };
        // Not made again on failure: a second request could start a second move.
        let mut client = self.client().await?;
        match client.move_volume(request).await {
            Ok(progress) => Ok(progress.into_inner().boxed()),
            Err(status) => {
                self.failed(&status);
                Err(status.into())
            }
        }
    }
}

/// An in-memory [`Cluster`] for unit tests: volumes and leases as the test sets them, moves
/// that end as scripted, and every call recorded.
#[cfg(test)]
pub mod fake {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, MutexGuard};

    use proto::control::MovePhase;
    use tonic::Code;

    use super::*;

    /// An in-memory control service.
    #[derive(Default)]
    pub struct FakeControl {
        state: Mutex<State>,
    }

    /// What the fake holds.
    #[derive(Default)]
    pub struct State {
        /// Volumes by name.
        pub volumes: BTreeMap<String, Volume>,
        /// Every lease.
        pub leases: Vec<Lease>,
        /// The calls made, e.g. `create_volume demo`.
        pub calls: Vec<String>,
        /// No member answers.
        pub unreachable: bool,
        /// How the next moves go: the phases reported, each move taking the first list
        /// (a move with none left reports `done` and makes the mover the owner).
        pub moves: Vec<Vec<MoveProgress>>,
        /// Leases on a volume being moved go once the move was asked for this many times
        /// `list_leases` (`None`: they stay).
        pub leases_go_after: Option<usize>,
        /// Moves of a volume owned by this node are refused (`FAILED_PRECONDITION`, as the
        /// control service refuses a move from an owner that is down).
        pub refuse_moves_from: Option<String>,
    }

    /// A volume record `name` owned by `owner`.
    pub fn volume(name: &str, owner: Option<&str>) -> Volume {
        Volume {
            name: name.into(),
            owner: owner.map(Into::into),
            epoch: 1,
            created_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    /// A lease on `volume` held by container `id` on `node`.
    pub fn lease(volume: &str, node: &str, id: &str) -> Lease {
        Lease {
            volume: volume.into(),
            node: node.into(),
            container_id: id.into(),
            ..Default::default()
        }
    }

    /// A move's progress event in `phase`.
    pub fn phase(phase: MovePhase, error: Option<&str>) -> MoveProgress {
        MoveProgress {
            phase: phase.into(),
            error: error.map(Into::into),
            ..Default::default()
        }
    }

    impl FakeControl {
        /// An empty cluster.
        pub fn new() -> Self {
            FakeControl::default()
        }

        /// The fake's state, to set up or check.
        pub fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The calls made so far.
        pub fn calls(&self) -> Vec<String> {
            self.state().calls.clone()
        }

        fn call(&self, call: String) -> Result<MutexGuard<'_, State>, ControlError> {
            let mut state = self.state();
            state.calls.push(call);
            if state.unreachable {
                return Err(Unreachable {
                    failures: vec!["127.0.0.1:1: connection refused".into()],
                }
                .into());
            }
            Ok(state)
        }
    }

    #[async_trait::async_trait]
    impl VolumeControl for FakeControl {
        async fn get_volume(&self, name: &str) -> Result<Volume, ControlError> {
            let state = self.call(format!("get_volume {name}"))?;
            let found = state.volumes.get(name).cloned();
            found.ok_or_else(|| Status::not_found(format!("no volume {name}")).into())
        }

        async fn create_volume(&self, name: &str, owner: &str) -> Result<Volume, ControlError> {
            let mut state = self.call(format!("create_volume {name} {owner}"))?;
            if state.volumes.contains_key(name) {
                return Err(Status::already_exists(format!("volume {name} exists")).into());
            }
            let created = volume(name, Some(owner));
            state.volumes.insert(name.into(), created.clone());
            Ok(created)
        }

        async fn delete_volume(&self, name: &str) -> Result<(), ControlError> {
            let mut state = self.call(format!("delete_volume {name}"))?;
            match state.volumes.remove(name) {
                Some(_) => Ok(()),
                None => Err(Status::not_found(format!("no volume {name}")).into()),
            }
        }

        async fn list_volumes(&self) -> Result<Vec<Volume>, ControlError> {
            let state = self.call("list_volumes".into())?;
            Ok(state.volumes.values().cloned().collect())
        }

        async fn list_leases(&self) -> Result<Vec<Lease>, ControlError> {
            let mut state = self.call("list_leases".into())?;
            if let Some(left) = state.leases_go_after {
                if left == 0 {
                    state.leases.clear();
                } else {
                    state.leases_go_after = Some(left - 1);
                }
            }
            Ok(state.leases.clone())
        }

        async fn acquire_lease(&self, lease: Lease) -> Result<(), ControlError> {
            let call = format!("acquire_lease {} {}", lease.volume, lease.container_id);
            let mut state = self.call(call)?;
            // Keyed by (volume, container), as the control service keys them.
            let key = |l: &Lease| (l.volume.clone(), l.container_id.clone());
            state.leases.retain(|l| key(l) != key(&lease));
            state.leases.push(lease);
            Ok(())
        }

        async fn release_lease(&self, lease: Lease) -> Result<(), ControlError> {
            let call = format!("release_lease {} {}", lease.volume, lease.container_id);
            let mut state = self.call(call)?;
            let before = state.leases.len();
            let key = |l: &Lease| (l.volume.clone(), l.container_id.clone());
            state.leases.retain(|l| key(l) != key(&lease));
            if state.leases.len() == before {
                return Err(Status::new(Code::NotFound, "no such lease").into());
            }
            Ok(())
        }

        async fn move_volume(&self, name: &str, to: &str) -> Result<MoveStream, ControlError> {
            let mut state = self.call(format!("move_volume {name} {to}"))?;
            let owner = state.volumes.get(name).and_then(|v| v.owner.clone());
            if let Some(down) = owner.filter(|o| state.refuse_moves_from.as_ref() == Some(o)) {
                let why = format!("volume {name:?} is on node {down:?}, which is down");
                return Err(Status::failed_precondition(why).into());
            }
            let phases = if state.moves.is_empty() {
                vec![
                    phase(MovePhase::Copying, None),
                    phase(MovePhase::Done, None),
                ]
            } else {
                state.moves.remove(0)
            };
            if phases.iter().any(|p| p.phase() == MovePhase::Done)
                && let Some(v) = state.volumes.get_mut(name)
            {
                v.owner = Some(to.into());
            }
            let items: Vec<Result<MoveProgress, Status>> = phases.into_iter().map(Ok).collect();
            Ok(futures_util::stream::iter(items).boxed())
        }
    }
}
