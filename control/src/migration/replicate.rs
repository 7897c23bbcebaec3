//! Keeping a volume's replicas fresh under its [`Replication`] policy, driven by the leader
//! like moves are (and serialised with them by the same per-volume lock).
//!
//! **Which nodes.** [`chosen`]: the volume's recorded replicas whose nodes are up (newest
//! data first, a diverged former owner's copy last), then other
//! nodes that are up, with the owner's kind of storage, holding the fewest copies of any
//! volume (owned or replicated), by name; `copies` of them at most. A replica whose node goes
//! down drops out of the choice, so another node is filled in its place; its copy stays
//! recorded (and its snapshot retained on the owner), so it catches up incrementally if it
//! is chosen again.
//!
//! **When.** [`due`]: a chosen node whose copy is missing, or whose data is at least half the
//! max lag old: the other half is the time the increment takes, so while the owner and the
//! replica are up, no replica's data gets older than the max lag unless an increment takes
//! longer than half of it (it is then as old as that increment takes; `volume ls` shows it).
//!
//! **How.** One snapshot on the owner (`rep-<ms>`, its time the replica's `taken_ms`), an
//! increment from the newest snapshot both hold (a full stream, staged beside any copy, when
//! they share none) to each due node, [`Command::SetReplica`] for each, then the retention
//! rule of [`super::plan`] on the owner and those nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::agents::{AgentLink, CleanUp};
use super::drive::{Driver, retain};
use super::{MoveError, plan};
use crate::server::node_service::now_ms;
use crate::state::{Command, Node, Replication, State, Volume};

/// How long a volume whose refresh failed waits before the leader tries again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The nodes that should hold `v`'s fresh copies (see the module's doc), best first.
pub fn chosen(v: &Volume, policy: Replication, state: &State) -> Vec<String> {
    let Some(owner) = v.owner.as_deref().and_then(|o| state.nodes.get(o)) else {
        return Vec::new();
    };
    let eligible = |n: &Node| n.up && n.name != owner.name && same_kind(n, owner);
    let mut recorded: Vec<&crate::state::Replica> = v
        .replicas
        .iter()
        .filter(|r| state.nodes.get(&r.node).is_some_and(eligible))
        .collect();
    // Fresh copies first (newest data first), a diverged old owner's copy last.
    recorded.sort_by_key(|r| (r.diverged, std::cmp::Reverse(r.taken_ms)));
    let mut picked: Vec<String> = recorded.iter().map(|r| r.node.clone()).collect();
    if picked.len() >= policy.copies as usize {
        // The usual case: the recorded copies fill the policy, no other node is weighed.
        picked.truncate(policy.copies as usize);
        return picked;
    }
    let load = copies_held(state);
    let mut others: Vec<&Node> = state
        .nodes
        .values()
        .filter(|n| eligible(n) && !picked.contains(&n.name))
        .collect();
    others.sort_by_key(|n| (load.get(n.name.as_str()).copied().unwrap_or(0), &n.name));
    picked.extend(others.into_iter().map(|n| n.name.clone()));
    picked.truncate(policy.copies as usize);
    picked
}

/// Of `chosen`, the nodes whose copy of `v` is missing or at least half `policy`'s max lag
/// old at `now_ms`.
pub fn due(v: &Volume, policy: Replication, chosen: &[String], now_ms: u64) -> Vec<String> {
    let refresh_at = policy.max_lag_ms / 2;
    chosen
        .iter()
        .filter(|node| {
            let taken = v
                .replicas
                .iter()
                .find(|r| r.node == **node && !r.snapshot.is_empty() && !r.diverged)
                .and_then(|r| r.taken_ms);
            taken.is_none_or(|t| now_ms.saturating_sub(t) >= refresh_at)
        })
        .cloned()
        .collect()
}

/// Whether the leader should refresh `v`'s replicas now: it has a policy and an owner that
/// is up, no move of it is under way, and a chosen node is [`due`].
pub fn needs_refresh(v: &Volume, state: &State, now_ms: u64) -> bool {
    let Some(policy) = v.replication else {
        return false;
    };
    // Cheapest first: the leader asks this of every volume at every scan, and a refresh is
    // due only every half max lag.
    state.owner_up(v)
        && !due(v, policy, &chosen(v, policy, state), now_ms).is_empty()
        && !move_under_way(state, &v.name)
}

/// Whether a move of `volume` is under way.
pub fn move_under_way(state: &State, volume: &str) -> bool {
    state
        .migrations
        .values()
        .any(|m| m.volume == volume && !m.phase.is_terminal())
}

/// Under `v`'s policy with `promote_after`: the replica to promote now, if the owner has been
/// down that long (by its last heartbeat), no move is under way, and a usable replica's node
/// is up: the one with the newest data.
pub fn automatic_promotion(v: &Volume, state: &State, now_ms: u64) -> Option<String> {
    let after = v.replication?.promote_after_ms?;
    let owner = state.nodes.get(v.owner.as_deref()?)?;
    if owner.up
        || now_ms.saturating_sub(owner.last_heartbeat_ms) < after
        || move_under_way(state, &v.name)
    {
        return None;
    }
    v.replicas
        .iter()
        .filter(|r| !r.snapshot.is_empty() && !r.diverged)
        .filter(|r| state.is_up(&r.node))
        .max_by_key(|r| (r.taken_ms, std::cmp::Reverse(r.node.clone())))
        .map(|r| r.node.clone())
}

/// The snapshot a refresh taken at `now_ms` makes on the owner.
pub fn snapshot_name(now_ms: u64) -> String {
    format!("rep-{now_ms}")
}

/// Copies held on each node: volumes it owns and replicas it keeps.
fn copies_held(state: &State) -> BTreeMap<&str, usize> {
    let mut load = BTreeMap::new();
    for v in state.volumes.values() {
        let holders = v.owner.iter().chain(v.replicas.iter().map(|r| &r.node));
        for node in holders {
            *load.entry(node.as_str()).or_insert(0) += 1;
        }
    }
    load
}

/// Streams go between backends of one kind (`zfs:…` to `zfs:…`).
fn same_kind(a: &Node, b: &Node) -> bool {
    storage_kind(&a.storage) == storage_kind(&b.storage)
}

/// The kind of a node's storage (`zfs` of `zfs:tank/flocker`): only that kind can receive its
/// streams.
pub fn storage_kind(storage: &str) -> &str {
    storage.split(':').next().unwrap_or_default()
}

/// Where a new volume made from streams of storage `kind` goes when no node is named: the up
/// node of that kind holding the fewest copies of any volume, by name.
pub fn least_loaded(state: &State, kind: &str) -> Option<String> {
    let load = copies_held(state);
    state
        .nodes
        .values()
        .filter(|n| n.up && storage_kind(&n.storage) == kind)
        .min_by_key(|n| (load.get(n.name.as_str()).copied().unwrap_or(0), &n.name))
        .map(|n| n.name.clone())
}

impl Driver {
    /// Brings `name`'s due replicas up to a new snapshot of its owner; a failure is logged
    /// and retried after [`RETRY_AFTER`].
    pub async fn refresh_replicas(&self, name: &str) {
        let span = tracing::info_span!("replicate", volume.name = %name);
        let _volume = self.lock_volume(name).await;
        let refreshed = tracing::Instrument::instrument(self.refresh(name), span.clone());
        if let Err(e) = refreshed.await {
            span.in_scope(|| tracing::warn!(error = %e, "replicas not refreshed; retried"));
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    async fn refresh(&self, name: &str) -> Result<(), MoveError> {
        let now = now_ms();
        let Some((owner, targets)) = self.member.sm.read(|s| {
            let v = s.volumes.get(name)?;
            if !needs_refresh(v, s, now) {
                return None;
            }
            let policy = v.replication?;
            let owner = s.nodes.get(v.owner.as_deref()?)?.clone();
            let due = due(v, policy, &chosen(v, policy, s), now);
            let targets: Vec<Node> = due.iter().filter_map(|n| s.nodes.get(n).cloned()).collect();
            Some((owner, targets))
        }) else {
            return Ok(());
        };
        let snapshot = snapshot_name(now);
        let mut source = AgentLink::connect(&owner, &self.tls).await?;
        let mut refreshed = Vec::new();
        let mut failure = None;
        for node in targets {
            let sent = async {
                let mut target = AgentLink::connect(&node, &self.tls).await?;
                let base = self.increment_base(&mut source, &mut target, name).await?;
                let bytes = source
                    .push(name, &node, base.as_ref(), &snapshot, false, |_| {})
                    .await?;
                if base.is_none() {
                    // A new copy (or one that replaced a diverged or unrelated one) is not
                    // mounted by its agent until told.
                    target.mount(name, false, 0).await?;
                }
                self.write(Command::SetReplica {
                    name: name.to_owned(),
                    node: node.name.clone(),
                    snapshot: snapshot.clone(),
                    taken_ms: Some(now),
                })
                .await?;
                tracing::info!(node.name = %node.name, bytes, snapshot, full = base.is_none(), "replica refreshed");
                Ok::<_, MoveError>(target)
            };
            match sent.await {
                Ok(target) => refreshed.push(target),
                // The others are still worth refreshing.
                Err(e) => failure = Some(e),
            }
        }
        let pinned: Vec<String> = self.member.sm.read(|s| {
            s.volumes.get(name).map_or_else(Vec::new, |v| {
                v.replicas.iter().map(|r| r.snapshot.clone()).collect()
            })
        });
        for link in std::iter::once(&mut source).chain(refreshed.iter_mut()) {
            retain(link, name, &pinned).await?;
        }
        failure.map_or(Ok(()), Err)
    }
}

/// The label a diverged copy of `v` on `node` is set aside under: `diverged-e<E>`, E the
/// last epoch at which `node` owned the volume; `None` unless that copy is diverged.
pub fn set_aside_label(v: &Volume, node: &str) -> Option<String> {
    v.replicas.iter().find(|r| r.node == node && r.diverged)?;
    let last_owned = v
        .promotions
        .iter()
        .rev()
        .find(|p| p.from == node)
        .map_or(v.epoch, |p| p.epoch.saturating_sub(1));
    Some(format!("diverged-e{last_owned}"))
}

impl Driver {
    /// Promotes `node`'s replica of `name` under the policy's `promote_after` (the command
    /// checks again that the owner is down); a refusal is logged.
    pub async fn promote_automatically(&self, name: &str, node: &str) {
        let cmd = Command::PromoteVolume {
            name: name.to_owned(),
            node: node.to_owned(),
            force: false,
            automatic: true,
            at_ms: now_ms(),
        };
        match self.write(cmd).await {
            Ok(_) => {
                tracing::warn!(volume.name = %name, node.name = %node, "owner down past the policy's promote_after: replica promoted")
            }
            Err(e) => {
                tracing::warn!(volume.name = %name, node.name = %node, error = %e, "automatic promotion refused");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

impl Driver {
    /// The base of an increment of `volume` from `source` to `target`: the newest snapshot
    /// both hold, after removing the target's snapshots newer than it (they would stop the
    /// receive); `None` (a full stream, received beside the target's copy and swapped in)
    /// when they share none. A diverged copy on the target is set aside first under
    /// [`set_aside_label`], never overwritten, and the target recorded at once as a replica
    /// holding no snapshot yet: a copy is set aside once, whatever fails later (a second
    /// round of the same move, a retry, a refresh must not take the copy received since for
    /// the diverged one).
    pub(super) async fn increment_base(
        &self,
        source: &mut AgentLink,
        target: &mut AgentLink,
        volume: &str,
    ) -> Result<Option<proto::agent::Snapshot>, MoveError> {
        let node = target.node.name.clone();
        let label = self
            .member
            .sm
            .read(|s| set_aside_label(s.volumes.get(volume)?, &node));
        if let Some(label) = label {
            let what = CleanUp {
                set_aside_as: Some(label),
                ..CleanUp::default()
            };
            let kept = target.clean_up(volume, what).await?;
            tracing::warn!(node.name = %node, ?kept, "the former owner's copy is set aside");
            self.write(Command::SetReplica {
                name: volume.to_owned(),
                node,
                snapshot: String::new(),
                taken_ms: None,
            })
            .await?;
        }
        let source_snaps = source.snapshots(volume).await?;
        let target_snaps = target.snapshots(volume).await?;
        let base = plan::newest_common(&source_snaps, &target_snaps).cloned();
        let stale = plan::newer_than(&target_snaps, base.as_ref());
        if !stale.is_empty() {
            target.clean_up(volume, CleanUp::snapshots(stale)).await?;
        }
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Replica;

    fn node(name: &str, up: bool, storage: &str) -> Node {
        Node {
            name: name.into(),
            address: format!("{name}:4524"),
            storage: storage.into(),
            last_heartbeat_ms: 0,
            up,
        }
    }

    fn volume(name: &str, owner: &str, replicas: &[(&str, Option<u64>)]) -> Volume {
        Volume {
            name: name.into(),
            id: 1,
            size_limit: None,
            owner: Some(owner.into()),
            epoch: 1,
            replicas: replicas
                .iter()
                .map(|(n, t)| Replica {
                    node: (*n).into(),
                    snapshot: "rep-1".into(),
                    taken_ms: *t,
                    diverged: false,
                })
                .collect(),
            replication: Some(policy(2)),
            promotions: Vec::new(),
            snapshots: Vec::new(),
            origin: None,
            snapshot_schedule: None,
            created_ms: 0,
            metadata: Default::default(),
        }
    }

    fn policy(copies: u32) -> Replication {
        Replication {
            copies,
            max_lag_ms: 10_000,
            promote_after_ms: None,
        }
    }

    fn state(nodes: &[Node], volumes: &[Volume]) -> State {
        let mut s = State::default();
        for n in nodes {
            s.nodes.insert(n.name.clone(), n.clone());
        }
        for v in volumes {
            s.volumes.insert(v.name.clone(), v.clone());
        }
        s
    }

    #[test]
    fn recorded_replicas_that_are_up_come_first_then_the_least_loaded_nodes() {
        let nodes = [
            node("a", true, "zfs:p"),
            node("b", true, "zfs:p"),
            node("c", true, "zfs:p"),
            node("d", true, "zfs:p"),
        ];
        // b owns another volume: c and d hold nothing, so c (by name) is picked after d,
        // the recorded replica.
        let db = volume("db", "a", &[("d", Some(1))]);
        let other = volume("other", "b", &[]);
        let s = state(&nodes, &[db.clone(), other]);
        assert_eq!(chosen(&db, policy(2), &s), ["d", "c"]);
        assert_eq!(chosen(&db, policy(1), &s), ["d"]);
        assert_eq!(
            chosen(&db, policy(8), &s),
            ["d", "c", "b"],
            "never the owner"
        );
    }

    #[test]
    fn a_replica_whose_node_is_down_is_replaced_and_other_storage_kinds_are_skipped() {
        let nodes = [
            node("a", true, "zfs:p"),
            node("b", false, "zfs:p"),
            node("c", true, "dir:/srv"),
            node("d", true, "zfs:q"),
        ];
        let db = volume("db", "a", &[("b", Some(1))]);
        let s = state(&nodes, std::slice::from_ref(&db));
        assert_eq!(chosen(&db, policy(2), &s), ["d"]);
    }

    #[test]
    fn a_copy_is_due_when_missing_or_half_the_lag_old() {
        let db = volume("db", "a", &[("b", Some(100_000)), ("c", Some(104_000))]);
        let chosen = ["b".to_owned(), "c".to_owned(), "d".to_owned()];
        // max lag 10 s: refreshed from 5 s of age on.
        assert_eq!(due(&db, policy(3), &chosen, 105_000), ["b", "d"]);
        assert_eq!(due(&db, policy(3), &chosen, 104_999), ["d"]);
        let mut left_by_a_move = db.clone();
        left_by_a_move.replicas[0].snapshot.clear();
        assert_eq!(
            due(&left_by_a_move, policy(3), &chosen, 100_001),
            ["b", "d"]
        );
    }

    #[test]
    fn the_freshest_replica_is_promoted_once_the_owner_is_down_long_enough() {
        let mut a = node("a", false, "zfs:p");
        a.last_heartbeat_ms = 100_000;
        let nodes = [
            a,
            node("b", true, "zfs:p"),
            node("c", true, "zfs:p"),
            node("d", false, "zfs:p"),
        ];
        let mut db = volume(
            "db",
            "a",
            &[("b", Some(1_000)), ("c", Some(2_000)), ("d", Some(3_000))],
        );
        let s = state(&nodes, std::slice::from_ref(&db));
        assert_eq!(
            automatic_promotion(&db, &s, 200_000),
            None,
            "no promote_after"
        );
        db.replication = Some(Replication {
            promote_after_ms: Some(30_000),
            ..policy(2)
        });
        assert_eq!(
            automatic_promotion(&db, &s, 129_999),
            None,
            "not down long enough"
        );
        // d is fresher but down; c is the freshest that is up.
        assert_eq!(automatic_promotion(&db, &s, 130_000).as_deref(), Some("c"));
        db.replicas[1].diverged = true;
        assert_eq!(automatic_promotion(&db, &s, 130_000).as_deref(), Some("b"));
        let mut owner_up = s.clone();
        owner_up.nodes.get_mut("a").unwrap().up = true;
        assert_eq!(automatic_promotion(&db, &owner_up, 130_000), None);
    }

    #[test]
    fn a_diverged_copy_is_set_aside_under_the_last_epoch_its_node_owned() {
        let mut db = volume("db", "b", &[("a", None), ("c", Some(1))]);
        db.epoch = 5;
        assert_eq!(set_aside_label(&db, "a"), None, "not diverged");
        db.replicas[0].diverged = true;
        db.promotions.push(crate::state::Promotion {
            at_ms: 1,
            from: "a".into(),
            to: "b".into(),
            epoch: 4,
            snapshot: "rep-1".into(),
            taken_ms: Some(1),
            forced: false,
            automatic: true,
        });
        assert_eq!(set_aside_label(&db, "a").as_deref(), Some("diverged-e3"));
        assert_eq!(set_aside_label(&db, "c"), None);
    }

    #[test]
    fn nothing_is_refreshed_without_a_policy_an_owner_that_is_up_or_during_a_move() {
        let nodes = [node("a", true, "zfs:p"), node("b", true, "zfs:p")];
        let db = volume("db", "a", &[]);
        let mut s = state(&nodes, std::slice::from_ref(&db));
        assert!(needs_refresh(&db, &s, 1_000));
        let mut no_policy = db.clone();
        no_policy.replication = None;
        assert!(!needs_refresh(&no_policy, &s, 1_000));
        s.migrations.insert(
            1,
            crate::state::Migration {
                id: 1,
                volume: "db".into(),
                from: "a".into(),
                to: "b".into(),
                phase: crate::state::Phase::Copying,
                bytes_sent: 0,
                rounds: 0,
                error: None,
                stop_containers: false,
                cleanup_pending: false,
                started_ms: None,
                handoff_ms: None,
                ended_ms: None,
                trace: Default::default(),
            },
        );
        assert!(!needs_refresh(&db, &s, 1_000), "a move is under way");
        s.migrations.clear();
        s.nodes.get_mut("a").unwrap().up = false;
        assert!(!needs_refresh(&db, &s, 1_000), "the owner is down");
    }
}
