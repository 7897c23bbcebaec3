//! Bringing a volume that another node owns to this node, behind [`VolumePlacement`]:
//! [`ControlMove`] asks the control service to move it (`MoveVolume`, the leader's two-phase
//! push) and waits for the move to end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use proto::control::{Lease, MovePhase};
use tonic::Code;

use super::control::{ControlError, VolumeControl};
use super::volumes::VolumeError;
use crate::storage::VolumeName;

/// A boxed future, so the trait stays object-safe.
pub type PlacementFuture<'a> = Pin<Box<dyn Future<Output = Result<(), VolumeError>> + Send + 'a>>;

/// Moves a volume from its owner to this node, or says why it cannot.
pub trait VolumePlacement: Send + Sync {
    /// Makes this node the owner of `volume`, which `owner` holds now with `holders`
    /// (leases of running containers there). Returns once this node owns it.
    fn bring_here<'a>(
        &'a self,
        volume: &'a VolumeName,
        owner: &'a str,
        holders: &'a [Lease],
    ) -> PlacementFuture<'a>;
}

/// How long a volume's leases on its owner may take to go before a move here is refused: a
/// container that just exited there releases its lease when its agent sees the `die` event,
/// a moment after `docker run` returned.
pub const LEASE_GRACE: Duration = Duration::from_secs(5);

/// Placement through the control service: a volume that no container holds on its owner is
/// moved here with `MoveVolume`; one still in use there after [`LEASE_GRACE`] is refused,
/// naming the containers (a move would wait for them, and the Docker client would hang).
#[derive(Clone)]
pub struct ControlMove {
    /// This node's name.
    pub node: String,
    /// The control service.
    pub control: Arc<dyn VolumeControl>,
}

impl ControlMove {
    async fn run(&self, volume: &VolumeName) -> Result<(), VolumeError> {
        let failed = |action: &'static str, message: String, code: Code| VolumeError::Control {
            volume: volume.clone(),
            action,
            message,
            code,
        };
        let mut progress = match self.control.move_volume(volume.as_str(), &self.node).await {
            Ok(progress) => progress,
            Err(ControlError::Unreachable(e)) => {
                return Err(failed(
                    "reach the control service to move",
                    e.to_string(),
                    Code::Unavailable,
                ));
            }
            Err(ControlError::Status(s)) => {
                return Err(failed("move", s.message().to_owned(), s.code()));
            }
        };
        loop {
            match progress.next().await {
                Some(Ok(event)) if event.phase() == MovePhase::Done => {
                    tracing::info!(volume.name = %volume, bytes = event.bytes_sent, rounds = event.rounds, "volume moved here");
                    return Ok(());
                }
                Some(Ok(event)) if event.phase() == MovePhase::Failed => {
                    let why = event.error.unwrap_or_else(|| "no reason given".into());
                    return Err(failed("move", why, Code::Aborted));
                }
                Some(Ok(event)) => {
                    tracing::debug!(volume.name = %volume, phase = ?event.phase(), bytes = event.bytes_sent, "moving here");
                }
                None => {
                    return Err(failed(
                        "move",
                        "the control service ended the progress stream before the move ended; \
                         see `flockerctl volume ls`"
                            .into(),
                        Code::Unavailable,
                    ));
                }
                Some(Err(s)) => {
                    return Err(failed(
                        "follow the move of",
                        s.message().to_owned(),
                        s.code(),
                    ));
                }
            }
        }
    }
}

impl VolumePlacement for ControlMove {
    fn bring_here<'a>(
        &'a self,
        volume: &'a VolumeName,
        owner: &'a str,
        holders: &'a [Lease],
    ) -> PlacementFuture<'a> {
        Box::pin(async move {
            if !holders.is_empty() && !self.leases_go(volume).await {
                return Err(VolumeError::Elsewhere {
                    volume: volume.clone(),
                    owner: owner.to_owned(),
                    node: self.node.clone(),
                    holders: holders.iter().map(|l| l.container_id.clone()).collect(),
                });
            }
            self.run(volume).await
        })
    }
}

impl ControlMove {
    /// Whether every lease on `volume` is released within [`LEASE_GRACE`].
    async fn leases_go(&self, volume: &VolumeName) -> bool {
        let deadline = tokio::time::Instant::now() + LEASE_GRACE;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(leases) = self.control.list_leases().await
                && !leases.iter().any(|l| l.volume == volume.as_str())
            {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flocker::control::fake::{FakeControl, lease, phase, volume};

    fn mover(cluster: &Arc<FakeControl>) -> ControlMove {
        ControlMove {
            node: "n1".into(),
            control: cluster.clone(),
        }
    }

    fn demo() -> VolumeName {
        VolumeName::new("demo").unwrap()
    }

    fn cluster_with_demo_on_n2() -> Arc<FakeControl> {
        let cluster = Arc::new(FakeControl::new());
        let demo = volume("demo", Some("n2"));
        cluster.state().volumes.insert("demo".into(), demo);
        cluster
    }

    fn moves(cluster: &FakeControl) -> Vec<String> {
        let calls = cluster.calls().into_iter();
        calls.filter(|c| c.starts_with("move_volume")).collect()
    }

    #[tokio::test]
    async fn a_volume_nobody_holds_is_moved_here() {
        let cluster = cluster_with_demo_on_n2();
        mover(&cluster)
            .bring_here(&demo(), "n2", &[])
            .await
            .unwrap();
        assert_eq!(moves(&cluster), ["move_volume demo n1"]);
        assert_eq!(cluster.state().volumes["demo"].owner.as_deref(), Some("n1"));
    }

    #[tokio::test(start_paused = true)]
    async fn holders_that_stay_past_the_grace_refuse_the_move_naming_them() {
        let cluster = cluster_with_demo_on_n2();
        let holder = lease("demo", "n2", "c1");
        cluster.state().leases.push(holder.clone());
        let started = tokio::time::Instant::now();
        let error = mover(&cluster)
            .bring_here(&demo(), "n2", &[holder])
            .await
            .unwrap_err();
        match &error {
            VolumeError::Elsewhere { owner, holders, .. } => {
                assert_eq!(
                    (owner.as_str(), holders.as_slice()),
                    ("n2", &["c1".to_owned()][..])
                );
            }
            other => panic!("{other}"),
        }
        assert!(started.elapsed() >= LEASE_GRACE);
        assert!(moves(&cluster).is_empty(), "no move while in use");
    }

    #[tokio::test(start_paused = true)]
    async fn holders_that_go_within_the_grace_let_the_move_go_on() {
        let cluster = cluster_with_demo_on_n2();
        let holder = lease("demo", "n2", "c1");
        {
            let mut state = cluster.state();
            state.leases.push(holder.clone());
            state.leases_go_after = Some(2);
        }
        mover(&cluster)
            .bring_here(&demo(), "n2", &[holder])
            .await
            .unwrap();
        assert_eq!(moves(&cluster), ["move_volume demo n1"]);
    }

    #[tokio::test]
    async fn a_failed_move_says_why_and_one_cut_short_says_where_to_look() {
        let cluster = cluster_with_demo_on_n2();
        cluster.state().moves = vec![
            vec![
                phase(MovePhase::Copying, None),
                phase(MovePhase::Failed, Some("disk full on n1")),
            ],
            vec![phase(MovePhase::Copying, None)],
        ];
        let failed = mover(&cluster).bring_here(&demo(), "n2", &[]).await;
        match failed.unwrap_err() {
            VolumeError::Control { message, code, .. } => {
                assert_eq!((message.as_str(), code), ("disk full on n1", Code::Aborted));
            }
            other => panic!("{other}"),
        }
        let cut = mover(&cluster).bring_here(&demo(), "n2", &[]).await;
        let message = cut.unwrap_err().to_string();
        assert!(message.contains("flockerctl volume ls"), "{message}");
        assert_eq!(cluster.state().volumes["demo"].owner.as_deref(), Some("n2"));
    }

    #[tokio::test]
    async fn an_unreachable_control_service_is_said_so() {
        let cluster = cluster_with_demo_on_n2();
        cluster.state().unreachable = true;
        let error = mover(&cluster).bring_here(&demo(), "n2", &[]).await;
        match error.unwrap_err() {
            VolumeError::Control { action, code, .. } => assert_eq!(
                (action, code),
                ("reach the control service to move", Code::Unavailable)
            ),
            other => panic!("{other}"),
        }
    }
}
