//! Snapshot schedules (`flockerctl volume set NAME --snapshot-every D --keep N`): the leader
//! takes a user snapshot of the volume on its owner every D (as `volume snapshot` does,
//! marked `scheduled`, named `u-<ms>`) and deletes the oldest scheduled ones beyond N (as
//! `volume snapshot --delete` does: owner, record, replicas). Snapshots taken by hand are
//! never pruned; a scheduled one a clone depends on is kept until the clone goes.

use super::drive::Driver;
use super::replicate::{RETRY_AFTER, move_under_way};
use crate::state::{State, Volume, clones_of};

/// Whether `v`'s schedule has work now: its owner is up, no move of it is under way, and
/// either its newest scheduled snapshot is `every` old (or there is none) or more than
/// `keep` scheduled snapshots are recorded.
pub fn due(v: &Volume, state: &State, now_ms: u64) -> bool {
    if v.snapshot_schedule.is_none() {
        return false;
    }
    state.owner_up(v)
        && (next_due(v, now_ms) || !beyond_keep(v, state).is_empty())
        && !move_under_way(state, &v.name)
}

/// Whether the next scheduled snapshot is due.
fn next_due(v: &Volume, now_ms: u64) -> bool {
    let Some(schedule) = v.snapshot_schedule else {
        return false;
    };
    let newest = v
        .snapshots
        .iter()
        .filter(|s| s.scheduled)
        .map(|s| s.taken_ms)
        .max();
    newest.is_none_or(|t| now_ms.saturating_sub(t) >= schedule.every_ms)
}

/// The scheduled snapshots of `v` past its schedule's `keep`, oldest first, but for those a
/// clone depends on.
pub fn beyond_keep(v: &Volume, state: &State) -> Vec<String> {
    let Some(schedule) = v.snapshot_schedule else {
        return Vec::new();
    };
    let mut scheduled: Vec<_> = v.snapshots.iter().filter(|s| s.scheduled).collect();
    scheduled.sort_by_key(|s| s.taken_ms);
    let excess = scheduled.len().saturating_sub(schedule.keep as usize);
    scheduled
        .into_iter()
        .take(excess)
        .filter(|s| clones_of(state.volumes.values(), &v.name, Some(&s.name)).is_empty())
        .map(|s| s.name.clone())
        .collect()
}

impl Driver {
    /// Takes `name`'s scheduled snapshot if one is due, then deletes those past `keep`; a
    /// failure is logged and retried after [`RETRY_AFTER`].
    pub async fn keep_schedule(&self, name: &str) {
        let span = tracing::info_span!("snapshot_schedule", volume.name = %name);
        let kept = tracing::Instrument::instrument(self.schedule(name), span.clone());
        if let Err(e) = kept.await {
            span.in_scope(|| tracing::warn!(error = %e.message(), "scheduled snapshot not taken or pruned; retried"));
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    async fn schedule(&self, name: &str) -> Result<(), tonic::Status> {
        let now = crate::server::node_service::now_ms();
        let take = self
            .member
            .sm
            .read(|s| s.volumes.get(name).is_some_and(|v| next_due(v, now)));
        if take {
            crate::server::snapshots::take(&self.member, &self.tls, name.to_owned(), None, true)
                .await?;
        }
        let prune = self.member.sm.read(|s| {
            s.volumes
                .get(name)
                .map(|v| beyond_keep(v, s))
                .unwrap_or_default()
        });
        for snapshot in prune {
            crate::server::snapshots::delete(&self.member, &self.tls, name.to_owned(), snapshot)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Node, SnapshotSchedule, UserSnapshot};

    fn snap(name: &str, taken_ms: u64, scheduled: bool) -> UserSnapshot {
        UserSnapshot {
            name: name.into(),
            label: None,
            taken_ms,
            epoch: 1,
            node: "a".into(),
            scheduled,
        }
    }

    fn state_with(v: Volume, up: bool) -> State {
        let mut s = State::default();
        s.nodes.insert(
            "a".into(),
            Node {
                name: "a".into(),
                address: "a:4524".into(),
                storage: "zfs:p".into(),
                last_heartbeat_ms: 0,
                up,
            },
        );
        s.volumes.insert(v.name.clone(), v);
        s
    }

    fn volume(snapshots: Vec<UserSnapshot>) -> Volume {
        Volume {
            name: "db".into(),
            id: 1,
            size_limit: None,
            owner: Some("a".into()),
            epoch: 1,
            replicas: Vec::new(),
            replication: None,
            promotions: Vec::new(),
            snapshots,
            origin: None,
            snapshot_schedule: Some(SnapshotSchedule {
                every_ms: 10_000,
                keep: 2,
            }),
            created_ms: 0,
            metadata: Default::default(),
        }
    }

    #[test]
    fn a_snapshot_is_due_every_interval_and_only_scheduled_ones_are_pruned_past_keep() {
        // None yet: due at once; not while the owner is down, nor without a schedule.
        let v = volume(vec![snap("u-by-hand", 1_000, false)]);
        assert!(due(&v, &state_with(v.clone(), true), 5_000));
        assert!(!due(&v, &state_with(v.clone(), false), 5_000));
        let mut off = v.clone();
        off.snapshot_schedule = None;
        assert!(!due(&off, &state_with(off.clone(), true), 5_000));

        // The newest scheduled one decides; a hand-taken one does not count.
        let v = volume(vec![
            snap("u-1", 10_000, true),
            snap("u-by-hand", 15_000, false),
        ]);
        let s = state_with(v.clone(), true);
        assert!(!due(&v, &s, 19_999));
        assert!(due(&v, &s, 20_000));

        // Past keep = 2: the oldest scheduled ones go, never the hand-taken one.
        let v = volume(vec![
            snap("u-1", 10_000, true),
            snap("u-by-hand", 11_000, false),
            snap("u-2", 20_000, true),
            snap("u-3", 30_000, true),
            snap("u-4", 40_000, true),
        ]);
        let s = state_with(v.clone(), true);
        assert_eq!(
            beyond_keep(&v, &s),
            vec!["u-1".to_owned(), "u-2".to_owned()]
        );
        assert!(due(&v, &s, 41_000), "pruning is work too");
    }

    #[test]
    fn a_scheduled_snapshot_a_clone_depends_on_is_kept() {
        let v = volume(vec![
            snap("u-1", 10_000, true),
            snap("u-2", 20_000, true),
            snap("u-3", 30_000, true),
        ]);
        let mut s = state_with(v.clone(), true);
        let mut clone = volume(Vec::new());
        clone.name = "db-old".into();
        clone.id = 2;
        clone.snapshot_schedule = None;
        clone.origin = Some(crate::state::Origin {
            volume: "db".into(),
            snapshot: "u-1".into(),
        });
        s.volumes.insert(clone.name.clone(), clone);
        assert!(beyond_keep(&v, &s).is_empty());
    }
}
