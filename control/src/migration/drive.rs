//! One move, phase by phase, from its replicated record:
//!
//! 1. **copying**: push rounds while the volume stays in use at the source, each from the
//!    newest snapshot both sides hold; another round while the last one carried more than
//!    the threshold, up to the round limit.
//! 2. **handoff**: wait for the volume's leases to go (or stop their containers, see
//!    [`super::holders`]), record that moment (the start of the users' downtime, kept in
//!    the move's history), final push (the source unmounts first), then `done`, which
//!    commits owner = target and epoch + 1 through Raft.
//! 3. after the commit: record the source as a replica at the final snapshot, mount
//!    read-write on the target (fenced by the new epoch) and read-only on the source, and
//!    apply the retention rule ([`plan`]) on both.
//!
//! A failure before the commit records the move as failed with its clean-up pending,
//! remounts the source read-write (the source stays the owner, its data intact) and removes
//! what the move left: its snapshots on both sides, a staged copy on the target, and the
//! target's copy itself when the target is not a recorded replica. Only when both agents
//! confirm is the clean-up recorded as done; until then every leader retries it (an agent
//! that is down is cleaned when it is back), serialised with any later move of the volume.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use foundation::locks::KeyedLocks;
use tracing::Instrument;

use super::agents::{AgentLink, CleanUp};
use super::{MoveConfig, MoveError, plan};
use crate::member::Member;
use crate::server::node_service::now_ms;
use crate::state::{Command, Migration, Node, Phase};
use proto::tls::TlsDir;

/// How long a clean-up that could not reach an agent waits before the leader tries again.
pub(super) const CLEAN_UP_RETRY: Duration = Duration::from_secs(5);

/// What driving a move needs.
#[derive(Clone)]
pub struct Driver {
    /// This member (the leader).
    pub member: Member,
    /// Its control certificate, for calling agents.
    pub tls: TlsDir,
    /// Pacing.
    pub config: MoveConfig,
    /// One lock per volume: a move and a failed move's clean-up of the same volume never
    /// run at once (the clean-up may remove the target's copy a new move is filling).
    volumes: KeyedLocks<String>,
}

impl Driver {
    /// A driver for this member's moves.
    pub fn new(member: Member, tls: TlsDir, config: MoveConfig) -> Self {
        Self {
            member,
            tls,
            config,
            volumes: KeyedLocks::default(),
        }
    }

    /// Drives migration `id` to `done` or `failed`, or finishes a failed one's clean-up.
    pub async fn run(&self, id: u64) {
        let Some(m) = self.member.sm.read(|s| s.migrations.get(&id).cloned()) else {
            return;
        };
        let span = tracing::info_span!("move", move.id = id, volume.name = %m.volume,
            move.from = %m.from, move.to = %m.to);
        // The request that asked for the move, recorded with it: any leader, also one that
        // resumes the move, joins that request's trace.
        foundation::trace::set_parent(&span, |name| m.trace.get(name).cloned());
        async {
            let _volume = self.lock_volume(&m.volume).await;
            if m.phase.is_terminal() {
                if m.cleanup_pending {
                    self.finish_clean_up(&m).await;
                }
                return;
            }
            let started = Instant::now();
            let driven = self.drive(m.clone()).await;
            let sent = self.member.soft.take_move(id);
            match driven {
                Ok(()) => tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "move done"),
                Err(e) if e.fails_the_move() => {
                    tracing::warn!(error = %e, "move failed; the source keeps the volume");
                    self.record_sent(id, sent).await;
                    let cmd = Command::FailMigration { id, error: e.to_string(), at_ms: Some(now_ms()) };
                    match self.write(cmd).await {
                        Ok(_) => self.finish_clean_up(&m).await,
                        Err(e) => tracing::warn!(error = %e, "recording the failure failed; the next leader retries the move"),
                    }
                }
                Err(e) => tracing::info!(error = %e, "stopped driving the move; the next leader resumes it"),
            }
        }
        .instrument(span)
        .await
    }

    /// Logs the bytes a failing move sent in its unfinished round (`sent`, the leader's soft
    /// count), so that its history shows them: one `AdvanceMigration` repeating its phase,
    /// without a time (it marks no step).
    async fn record_sent(&self, id: u64, sent: Option<u64>) {
        let now = self.member.sm.read(|s| s.migrations.get(&id).cloned());
        let (Some(m), Some(sent)) = (now, sent) else {
            return;
        };
        if m.phase.is_terminal() || sent <= m.bytes_sent {
            return;
        }
        let cmd = Command::AdvanceMigration {
            id,
            phase: m.phase,
            bytes_sent: sent,
            rounds: m.rounds,
            at_ms: None,
        };
        if let Err(e) = self.write(cmd).await {
            tracing::debug!(error = %e, "the failed move's last bytes are not recorded");
        }
    }

    /// Holds `volume`'s lock until the guard drops.
    pub(super) async fn lock_volume(&self, volume: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.volumes.lock(volume).await
    }

    /// Removes failed move `m`'s leftovers and records that, or, when an agent cannot be
    /// reached, waits [`CLEAN_UP_RETRY`] and leaves the clean-up pending for the next scan.
    async fn finish_clean_up(&self, m: &Migration) {
        let volume_exists = self.member.sm.read(|s| s.volumes.contains_key(&m.volume));
        // A deleted volume's copies are destroyed by each agent's reconcile.
        let cleaned = self
            .clean_up_failed(m)
            .instrument(tracing::info_span!("move.clean_up"));
        if volume_exists && !cleaned.await {
            tokio::time::sleep(CLEAN_UP_RETRY).await;
            return;
        }
        if let Err(e) = self.write(Command::MigrationCleanedUp { id: m.id }).await {
            tracing::info!(error = %e, "clean-up done but not recorded; it is repeated");
        }
    }

    pub(super) async fn write(&self, cmd: Command) -> Result<crate::state::Response, MoveError> {
        Ok(self.member.write_local(cmd).await?)
    }

    async fn advance(&self, m: &Migration, phase: Phase) -> Result<(), MoveError> {
        let cmd = Command::AdvanceMigration {
            id: m.id,
            phase,
            bytes_sent: m.bytes_sent,
            rounds: m.rounds,
            at_ms: Some(now_ms()),
        };
        self.write(cmd).await.map(|_| ())
    }

    pub(super) fn node(&self, name: &str) -> Result<Node, MoveError> {
        self.member
            .sm
            .read(|s| s.nodes.get(name).cloned())
            .ok_or_else(|| MoveError::State(format!("node {name} is not registered")))
    }

    async fn drive(&self, mut m: Migration) -> Result<(), MoveError> {
        let mut source = AgentLink::connect(&self.node(&m.from)?, &self.tls).await?;
        let mut target = AgentLink::connect(&self.node(&m.to)?, &self.tls).await?;
        if m.phase == Phase::Copying {
            loop {
                let snapshot = plan::round_snapshot(m.id, m.rounds + 1);
                let round = tracing::info_span!("move.copy_round", round = m.rounds + 1);
                let bytes = async {
                    let bytes = self
                        .push(&mut m, &mut source, &mut target, &snapshot, false)
                        .await?;
                    m.rounds += 1;
                    self.advance(&m, Phase::Copying).await?;
                    Ok::<_, MoveError>(bytes)
                }
                .instrument(round)
                .await?;
                tracing::info!(
                    move.phase = "copying",
                    round = m.rounds,
                    bytes,
                    "copy round done"
                );
                let c = &self.config;
                if !plan::another_round(bytes, m.rounds, c.round_threshold, c.max_rounds) {
                    break;
                }
            }
            m.phase = Phase::Handoff;
            self.advance(&m, Phase::Handoff).await?;
        }
        self.release_holders(&m)
            .instrument(tracing::info_span!("move.wait_for_holders"))
            .await?;
        // No container holds the volume now: recorded as the start of the users' downtime.
        self.advance(&m, Phase::Handoff).await?;
        let epoch = self.epoch(&m.volume)?;
        let last = plan::final_snapshot(m.id);
        let handoff = Instant::now();
        // The source is unmounted before the final snapshot: it holds every write made
        // before now.
        let final_ms = now_ms();
        let committed = async {
            self.push(&mut m, &mut source, &mut target, &last, true)
                .await?;
            m.phase = Phase::Done;
            self.advance(&m, Phase::Done).await
        }
        .instrument(tracing::info_span!("move.final_increment"));
        if let Err(e) = committed.await {
            // Not committed: the source stays the owner and gets its read-write mount back
            // (fenced: refused if the commit did happen after all).
            if let Err(again) = source.mount(&m.volume, true, epoch).await {
                tracing::warn!(error = %again, "cannot remount the source; its agent remounts on restart");
            }
            return Err(e);
        }
        let epoch = self.epoch(&m.volume)?;
        let mounted = target
            .mount(&m.volume, true, epoch)
            .instrument(tracing::info_span!("move.handoff", node.name = %m.to))
            .await;
        tracing::info!(
            move.phase = "handoff",
            downtime_ms = handoff.elapsed().as_millis() as u64,
            "volume handed off"
        );
        self.after_commit(&m, &mut source, &mut target, (&last, final_ms))
            .instrument(tracing::info_span!("move.after_commit"))
            .await;
        mounted
    }

    /// Pushes one snapshot, keeping its progress in the leader's soft state as it goes.
    async fn push(
        &self,
        m: &mut Migration,
        source: &mut AgentLink,
        target: &mut AgentLink,
        snapshot: &str,
        last: bool,
    ) -> Result<u64, MoveError> {
        let target_snaps = target.snapshots(&m.volume).await?;
        if plan::already_sent(&target_snaps, snapshot, last) {
            tracing::info!(snapshot, "the target already holds this round's snapshot");
            return Ok(0);
        }
        let base = self.increment_base(source, target, &m.volume).await?;
        let sent = Arc::new(AtomicU64::new(0));
        let before = m.bytes_sent;
        let pushing = {
            let sent = sent.clone();
            source.push(
                &m.volume,
                &target.node,
                base.as_ref(),
                snapshot,
                last,
                move |b| sent.store(b, Ordering::Relaxed),
            )
        };
        // Progress is the leader's soft state, read through it (`Moves`): the log gets the
        // round's bytes once, at its end.
        let recorder = async {
            let mut tick = tokio::time::interval(self.config.record_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(term) = self.member.leader_term() {
                    let bytes = before + sent.load(Ordering::Relaxed);
                    self.member.soft.progress(term, m.id, bytes);
                }
            }
        };
        let bytes = tokio::select! {
            r = pushing => r?,
            () = recorder => unreachable!("the recorder never ends"),
        };
        m.bytes_sent = before + bytes;
        Ok(bytes)
    }

    fn epoch(&self, volume: &str) -> Result<u64, MoveError> {
        self.member
            .sm
            .read(|s| s.volumes.get(volume).map(|v| v.epoch))
            .ok_or_else(|| MoveError::State(format!("volume {volume} is gone")))
    }

    /// Records the replica, mounts it read-only and applies the retention rule on every
    /// holder. Failures here leave extra snapshots or an unmounted replica, never lost data:
    /// logged only (the next move's clean-up removes the extras).
    async fn after_commit(
        &self,
        m: &Migration,
        source: &mut AgentLink,
        target: &mut AgentLink,
        (last, taken_ms): (&str, u64),
    ) {
        let replica = Command::SetReplica {
            name: m.volume.clone(),
            node: m.from.clone(),
            snapshot: last.to_owned(),
            taken_ms: Some(taken_ms),
        };
        let steps = async {
            self.write(replica).await?;
            source.mount(&m.volume, false, 0).await?;
            let (pinned, others) = self.member.sm.read(|s| {
                let v = s.volumes.get(&m.volume);
                let replicas = v.map(|v| v.replicas.clone()).unwrap_or_default();
                let pinned: Vec<String> = replicas.iter().map(|r| r.snapshot.clone()).collect();
                let others: Vec<String> = replicas
                    .into_iter()
                    .map(|r| r.node)
                    .filter(|n| *n != m.from && *n != m.to)
                    .collect();
                (pinned, others)
            });
            for link in [&mut *source, &mut *target] {
                retain(link, &m.volume, &pinned).await?;
            }
            // The other replicas may hold a snapshot nobody is pinned to any more.
            for node in others {
                let mut link = AgentLink::connect(&self.node(&node)?, &self.tls).await?;
                retain(&mut link, &m.volume, &pinned).await?;
            }
            Ok::<_, MoveError>(())
        };
        if let Err(e) = steps.await {
            tracing::warn!(error = %e, "clean-up after the move is incomplete");
        }
    }

    /// Removes what failed move `m` left: its snapshots on both sides, a staged copy on the
    /// target, and the target's whole copy unless the target is a recorded replica or the
    /// owner. Idempotent. Returns whether both agents confirmed.
    async fn clean_up_failed(&self, m: &Migration) -> bool {
        let (owner, replica_here) = self.member.sm.read(|s| {
            let v = s.volumes.get(&m.volume);
            (
                v.and_then(|v| v.owner.clone()),
                v.is_some_and(|v| v.replicas.iter().any(|r| r.node == m.to)),
            )
        });
        let mut confirmed = true;
        for (node, is_target) in [(&m.from, false), (&m.to, true)] {
            let work = async {
                let mut link = AgentLink::connect(&self.node(node)?, &self.tls).await?;
                let held = link.snapshots(&m.volume).await?;
                let what = CleanUp {
                    snapshots: plan::move_leftovers(&held, m.id),
                    staging: is_target,
                    copy: is_target && !replica_here && owner.as_deref() != Some(node),
                    set_aside_as: None,
                };
                link.clean_up(&m.volume, what).await
            };
            match work.await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(node.name = %node, destroyed = ?gone, "failed move cleaned up")
                }
                Ok(_) => {}
                Err(e) => {
                    confirmed = false;
                    tracing::warn!(node.name = %node, error = %e, "cannot clean up after the failed move yet; retried")
                }
            }
        }
        confirmed
    }
}

/// Destroys the snapshots of `volume` on `link`'s node that the retention rule does not keep.
pub(super) async fn retain(
    link: &mut AgentLink,
    volume: &str,
    pinned: &[String],
) -> Result<(), MoveError> {
    let held = link.snapshots(volume).await?;
    let extra = plan::not_retained(&held, pinned);
    if !extra.is_empty() {
        link.clean_up(volume, CleanUp::snapshots(extra)).await?;
    }
    Ok(())
}
