//! Bringing a volume that another node owns to this node, behind [`VolumePlacement`]:
//! [`ControlMove`] asks the control service to move it (`MoveVolume`, the leader's two-phase
//! push) and waits for the move to end.
//!
//! Swarm calls the plugin's `Create` on the new node seconds before it stops the old task,
//! and `Mount` once it has: [`VolumePlacement::warm_up`] starts the move at `Create` (copy
//! rounds while the old task still writes; the leader's handoff waits for its lease to go),
//! and `Mount` ([`Patience::Handoff`]) follows that move to its end, so the downtime is the
//! final increment, not the copy.
//!
//! A move refused because the owner is down waits, under a policy that promotes a replica
//! (`promote_after`), for the promotion, then moves from the new owner (nothing to move
//! when the replica promoted is this node's).

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

/// How long bringing a volume here may wait for the containers that hold it on its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// A `docker run -v /flocker/...`: refused when they still hold it after
    /// [`LEASE_GRACE`], naming them (the Docker client would hang otherwise).
    Brief,
    /// The volume plugin's `Mount` (Swarm stops the old task itself before it mounts): the
    /// move goes ahead and its handoff waits for them, up to the control service's
    /// `--lease-wait`.
    Handoff,
}

/// Moves a volume from its owner to this node, or says why it cannot.
pub trait VolumePlacement: Send + Sync {
    /// Makes this node the owner of `volume`, which `owner` holds now with `holders`
    /// (leases of running containers there), waiting for them as `patience` says. A move
    /// here already under way is followed to its end. Returns once this node owns it.
    fn bring_here<'a>(
        &'a self,
        volume: &'a VolumeName,
        owner: &'a str,
        holders: &'a [Lease],
        patience: Patience,
    ) -> PlacementFuture<'a>;

    /// Starts moving `volume` here and returns at once: the copy rounds run while it is in
    /// use on its owner, and the handoff waits for its holders to let go.
    fn warm_up(&self, volume: &VolumeName);
}

/// How long [`ControlMove`] follows a move here that is under way, within Docker's
/// 2-minute limit on a plugin call.
pub const MOVE_WAIT: Duration = Duration::from_secs(110);

/// How long a volume's leases on its owner may take to go before a move here is refused: a
/// container that just exited there releases its lease when its agent sees the `die` event,
/// a moment after `docker run` returned.
pub const LEASE_GRACE: Duration = Duration::from_secs(5);

/// How much longer than the policy's `promote_after` a move here waits for the promotion:
/// the leader's scan and the time to mark the owner down.
pub const PROMOTION_SLACK: Duration = Duration::from_secs(15);

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
        patience: Patience,
    ) -> PlacementFuture<'a> {
        Box::pin(async move {
            if self.follow_move_here(volume).await {
                return Ok(());
            }
            if patience == Patience::Brief && !holders.is_empty() && !self.leases_go(volume).await {
                return Err(VolumeError::Elsewhere {
                    volume: volume.clone(),
                    owner: owner.to_owned(),
                    node: self.node.clone(),
                    holders: holders.iter().map(|l| l.container_id.clone()).collect(),
                });
            }
            match self.run(volume).await {
                Err(
                    refused @ VolumeError::Control {
                        code: Code::FailedPrecondition,
                        ..
                    },
                ) => {
                    // The owner may be down: under a policy that promotes a replica, the
                    // volume gets a new owner soon, and the move can go from there.
                    match self.wait_for_promotion(volume, owner).await {
                        Some(new_owner) if new_owner == self.node => Ok(()),
                        Some(_) => self.run(volume).await,
                        None => Err(refused),
                    }
                }
                done => done,
            }
        })
    }

    fn warm_up(&self, volume: &VolumeName) {
        let (mover, volume) = (self.clone(), volume.clone());
        tracing::info!(volume.name = %volume, "moving the volume here ahead of its mount");
        tokio::spawn(async move {
            match mover.run(&volume).await {
                Ok(()) => {}
                Err(e) => tracing::info!(volume.name = %volume, error = %e,
                    "the move started ahead of the mount did not end here; the mount will move it"),
            }
        });
    }
}

impl ControlMove {
    /// Follows a move of `volume` to this node that is under way (started by
    /// [`VolumePlacement::warm_up`]) for up to [`MOVE_WAIT`]; whether this node owns the
    /// volume (at its end, or already). `false` at once when no move here is under way.
    async fn follow_move_here(&self, volume: &VolumeName) -> bool {
        let deadline = tokio::time::Instant::now() + MOVE_WAIT;
        let mut followed = false;
        loop {
            let Ok(record) = self.control.get_volume(volume.as_str()).await else {
                return false;
            };
            if record.owner.as_deref() == Some(self.node.as_str()) {
                if followed {
                    tracing::info!(volume.name = %volume, "the move under way ended: the volume is here");
                }
                return true;
            }
            let moving_here = record.moving.as_ref().is_some_and(|m| m.to == self.node);
            if !moving_here || tokio::time::Instant::now() >= deadline {
                return false;
            }
            if !followed {
                tracing::info!(volume.name = %volume, "a move here is under way; waiting for its handoff");
                followed = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// When `volume`'s policy promotes a replica once its owner has been down long enough
    /// (`promote_after`): waits, up to that time plus [`PROMOTION_SLACK`] and within
    /// [`MOVE_WAIT`], for an owner other than `owner`, and returns it. `None` at once without
    /// such a policy, or when no promotion came in time.
    async fn wait_for_promotion(&self, volume: &VolumeName, owner: &str) -> Option<String> {
        let record = self.control.get_volume(volume.as_str()).await.ok()?;
        let after = Duration::from_millis(record.replication?.promote_after_ms?);
        let wait = (after + PROMOTION_SLACK).min(MOVE_WAIT);
        tracing::warn!(volume.name = %volume, node.name = %owner, ?wait,
            "the volume cannot be moved from its owner; its policy promotes a replica when the owner is down: waiting for it");
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Ok(record) = self.control.get_volume(volume.as_str()).await else {
                continue;
            };
            if let Some(new_owner) = record.owner.filter(|o| o != owner) {
                let promotion = record.promotions.last();
                tracing::warn!(volume.name = %volume, node.name = %new_owner,
                    data_as_of_ms = promotion.and_then(|p| p.taken_ms),
                    "a replica was promoted; the volume's data is that replica's snapshot");
                return Some(new_owner);
            }
        }
        None
    }

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
    use proto::control::VolumeMove;

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

    fn demo_on_dead_n2_promoting_after(ms: u64) -> Arc<FakeControl> {
        let cluster = cluster_with_demo_on_n2();
        let mut state = cluster.state();
        state.volumes.get_mut("demo").unwrap().replication = Some(proto::control::Replication {
            copies: 1,
            max_lag_ms: 1_000,
            promote_after_ms: Some(ms),
        });
        state.refuse_moves_from = Some("n2".into());
        drop(state);
        cluster
    }

    fn promote(cluster: &Arc<FakeControl>, to: &'static str, after: Duration) {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cluster.state().volumes.get_mut("demo").unwrap().owner = Some(to.into());
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_owner_under_a_promoting_policy_is_waited_for_then_moved_from_the_new_one() {
        let cluster = demo_on_dead_n2_promoting_after(10_000);
        promote(&cluster, "n3", Duration::from_secs(12));
        mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Handoff)
            .await
            .unwrap();
        assert_eq!(
            moves(&cluster),
            ["move_volume demo n1", "move_volume demo n1"]
        );
        assert_eq!(cluster.state().volumes["demo"].owner.as_deref(), Some("n1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_promotion_of_this_nodes_replica_needs_no_move() {
        let cluster = demo_on_dead_n2_promoting_after(10_000);
        promote(&cluster, "n1", Duration::from_secs(11));
        mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Brief)
            .await
            .unwrap();
        assert_eq!(moves(&cluster), ["move_volume demo n1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_promoting_policy_a_refused_move_fails_at_once() {
        let cluster = demo_on_dead_n2_promoting_after(10_000);
        cluster.state().volumes.get_mut("demo").unwrap().replication = None;
        let started = tokio::time::Instant::now();
        let err = mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Handoff)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is down"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // With the policy but no promotion in time: refused after the wait.
        let cluster = demo_on_dead_n2_promoting_after(10_000);
        let started = tokio::time::Instant::now();
        assert!(
            mover(&cluster)
                .bring_here(&demo(), "n2", &[], Patience::Handoff)
                .await
                .is_err()
        );
        assert!(
            started.elapsed() >= Duration::from_secs(25),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_volume_nobody_holds_is_moved_here() {
        let cluster = cluster_with_demo_on_n2();
        mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Brief)
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
            .bring_here(&demo(), "n2", &[holder], Patience::Brief)
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
            .bring_here(&demo(), "n2", &[holder], Patience::Brief)
            .await
            .unwrap();
        assert_eq!(moves(&cluster), ["move_volume demo n1"]);
    }

    /// Swarm's Mount comes after it stopped the old task: the move goes ahead, and the
    /// leader's handoff waits for the holders, instead of a refusal after the grace.
    #[tokio::test(start_paused = true)]
    async fn a_mount_moves_a_volume_still_held_and_lets_the_handoff_wait() {
        let cluster = cluster_with_demo_on_n2();
        let holder = lease("demo", "n2", "c1");
        cluster.state().leases.push(holder.clone());
        mover(&cluster)
            .bring_here(&demo(), "n2", &[holder], Patience::Handoff)
            .await
            .unwrap();
        assert_eq!(moves(&cluster), ["move_volume demo n1"]);
    }

    /// A move here started at Create (warm-up) is followed to its end by the Mount: no
    /// second move, and the Mount returns once this node owns the volume.
    #[tokio::test(start_paused = true)]
    async fn a_mount_follows_the_move_here_under_way_instead_of_starting_another() {
        let cluster = cluster_with_demo_on_n2();
        cluster.state().volumes.get_mut("demo").unwrap().moving = Some(VolumeMove {
            to: "n1".into(),
            phase: MovePhase::Copying.into(),
        });
        let handoff = tokio::spawn({
            let cluster = cluster.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(11)).await;
                let mut state = cluster.state();
                let demo = state.volumes.get_mut("demo").unwrap();
                demo.owner = Some("n1".into());
                demo.moving = None;
            }
        });
        let started = tokio::time::Instant::now();
        mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Handoff)
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(11),
            "returned before the handoff"
        );
        assert!(moves(&cluster).is_empty(), "a second move was started");
        handoff.await.unwrap();
    }

    #[tokio::test]
    async fn warm_up_starts_the_move_here_without_waiting_for_it() {
        let cluster = cluster_with_demo_on_n2();
        mover(&cluster).warm_up(&demo());
        for _ in 0..100 {
            if !moves(&cluster).is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
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
        let failed = mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Brief)
            .await;
        match failed.unwrap_err() {
            VolumeError::Control { message, code, .. } => {
                assert_eq!((message.as_str(), code), ("disk full on n1", Code::Aborted));
            }
            other => panic!("{other}"),
        }
        let cut = mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Brief)
            .await;
        let message = cut.unwrap_err().to_string();
        assert!(message.contains("flockerctl volume ls"), "{message}");
        assert_eq!(cluster.state().volumes["demo"].owner.as_deref(), Some("n2"));
    }

    #[tokio::test]
    async fn an_unreachable_control_service_is_said_so() {
        let cluster = cluster_with_demo_on_n2();
        cluster.state().unreachable = true;
        let error = mover(&cluster)
            .bring_here(&demo(), "n2", &[], Patience::Brief)
            .await;
        match error.unwrap_err() {
            VolumeError::Control { action, code, .. } => assert_eq!(
                (action, code),
                ("reach the control service to move", Code::Unavailable)
            ),
            other => panic!("{other}"),
        }
    }
}
