//! Pure decisions of a move, tested without a cluster.
//!
//! **Retention rule.** While no move of a volume runs, every copy of it (the owner's and
//! each replica's) holds only the snapshots its replicas were last brought up to (one per
//! replica, recorded in the volume), and each replica holds its own. A copy keeps another
//! replica's snapshot when it has it, so that whichever holder becomes the owner next still
//! shares one with every replica and a move to any replica holder stays incremental; round
//! snapshots, the snapshots of replicas that are gone and a failed move's own snapshots and
//! staged copy are destroyed ([`not_retained`], [`move_leftovers`]).

use proto::agent::Snapshot;

use crate::state::is_user_snapshot;

/// The newest snapshot of `source` (oldest first) that `target` also holds, matched by GUID:
/// a snapshot of the same name with another GUID is another snapshot.
pub fn newest_common<'a>(source: &'a [Snapshot], target: &[Snapshot]) -> Option<&'a Snapshot> {
    source
        .iter()
        .rev()
        .find(|s| target.iter().any(|t| t.guid == s.guid))
}

/// The target's snapshots newer than `base`, which would stop an incremental receive.
pub fn newer_than(target: &[Snapshot], base: Option<&Snapshot>) -> Vec<String> {
    match base.and_then(|b| target.iter().position(|s| s.guid == b.guid)) {
        Some(i) => target[i + 1..].iter().map(|s| s.name.clone()).collect(),
        None => Vec::new(),
    }
}

/// Of `held` (a copy's snapshots, on the owner or a replica), the ones the retention rule
/// does not keep: all but those named in `pinned` (the snapshots the volume's replicas were
/// last brought up to) and the user snapshots, which are never destroyed here (by their
/// name, so also one taken but not yet recorded). Returns the ones to destroy.
pub fn not_retained(held: &[Snapshot], pinned: &[String]) -> Vec<String> {
    held.iter()
        .filter(|s| !pinned.contains(&s.name) && !is_user_snapshot(&s.name))
        .map(|s| s.name.clone())
        .collect()
}

/// The snapshots migration `id` made (its rounds and its final snapshot) among `held`.
pub fn move_leftovers(held: &[Snapshot], id: u64) -> Vec<String> {
    let prefix = format!("m{id}-");
    held.iter()
        .filter(|s| {
            s.name
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest == "final" || rest.starts_with('r'))
        })
        .map(|s| s.name.clone())
        .collect()
}

/// The snapshot of copy round `round` (1-based) of migration `id`.
pub fn round_snapshot(id: u64, round: u32) -> String {
    format!("m{id}-r{round}")
}

/// The final snapshot of migration `id`, taken after the source unmounted the volume.
pub fn final_snapshot(id: u64) -> String {
    format!("m{id}-final")
}

/// Whether pushing `snapshot` can be skipped because `target` already holds it: a copy
/// round that reached the target before the move was driven again (by this leader after an
/// error that did not fail the move, or by a new one) is done, and pushing it again would
/// be `zfs send -i S S`. A final push is never skipped: the source may have been remounted
/// and written after it.
pub fn already_sent(target: &[Snapshot], snapshot: &str, last: bool) -> bool {
    !last && target.iter().any(|s| s.name == snapshot)
}

/// Whether to copy once more before the handoff.
pub fn another_round(last_round_bytes: u64, rounds: u32, threshold: u64, max_rounds: u32) -> bool {
    last_round_bytes > threshold && rounds < max_rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots named `xs`, each with a GUID made from its name (so equal names on two
    /// hosts are the same snapshot unless a test says otherwise).
    fn v(xs: &[&str]) -> Vec<Snapshot> {
        xs.iter()
            .map(|s| Snapshot {
                name: s.to_string(),
                guid: s
                    .bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
            })
            .collect()
    }

    #[test]
    fn newest_common_snapshot_by_guid() {
        let source = v(&["a", "b", "c"]);
        assert_eq!(newest_common(&source, &v(&["a", "b"])).unwrap().name, "b");
        assert_eq!(newest_common(&v(&["a"]), &v(&[])), None);
        assert_eq!(newest_common(&v(&[]), &v(&["a"])), None);
        // Same name, another GUID (a stale copy of an older incarnation): not in common.
        let mut stale = v(&["a", "b"]);
        stale[1].guid = 1;
        assert_eq!(newest_common(&source, &stale).unwrap().name, "a");
    }

    #[test]
    fn target_snapshots_after_the_base() {
        let t = v(&["a", "b", "c"]);
        assert_eq!(newer_than(&t, Some(&t[0])), vec!["b", "c"]);
        assert!(newer_than(&t, Some(&t[2])).is_empty());
        assert!(newer_than(&t, None).is_empty());
    }

    /// The walk of the issue: node1 -> node2 -> node3 -> node1. After each move the owner
    /// keeps what its replicas hold, so the move back to node1 has a common snapshot.
    #[test]
    fn a_volume_that_visits_three_hosts_keeps_a_common_snapshot_with_every_replica() {
        // m1 node1 -> node2: node2 owns, node1 holds m1-final.
        let node2 = v(&["m1-r1", "m1-final"]);
        assert_eq!(not_retained(&node2, &["m1-final".into()]), ["m1-r1"]);
        let node2 = v(&["m1-final"]);
        // m2 node2 -> node3 (full, carrying node2's lineage): node3 owns, replicas node1
        // (m1-final) and node2 (m2-final).
        let node3 = v(&["m1-final", "m2-r1", "m2-final"]);
        let pinned = ["m1-final".to_string(), "m2-final".to_string()];
        assert_eq!(not_retained(&node3, &pinned), ["m2-r1"]);
        let node3 = v(&["m1-final", "m2-final"]);
        assert!(newest_common(&node3, &node2).is_some());
        // m3 node3 -> node1: incremental from m1-final.
        let node1 = v(&["m1-final"]);
        assert_eq!(newest_common(&node3, &node1).unwrap().name, "m1-final");
        // After m3, node3 is a replica at m3-final too: node1 (owner) and node2 keep
        // node2's m2-final and node3's m3-final; m1-final is nobody's any more.
        let pinned = ["m2-final".to_string(), "m3-final".to_string()];
        assert_eq!(
            not_retained(&v(&["m1-final", "m2-final", "m3-final"]), &pinned),
            ["m1-final"]
        );
        // A replica keeps another replica's snapshot it holds, for when it becomes owner.
        assert!(not_retained(&v(&["m2-final", "m3-final"]), &pinned).is_empty());
    }

    /// The retention rule used to destroy every snapshot no replica was pinned to, user
    /// snapshots included: they must survive every move and refresh, recorded or not yet.
    #[test]
    fn the_retention_rule_never_destroys_a_user_snapshot() {
        let held = v(&[
            "u-before-upgrade",
            "m1-final",
            "u-1765000000000",
            "rep-5",
            "m2-r1",
        ]);
        assert_eq!(
            not_retained(&held, &["rep-5".into()]),
            ["m1-final", "m2-r1"]
        );
        assert!(not_retained(&v(&["u-x"]), &[]).is_empty());
        // A move's own leftovers never include one either.
        assert_eq!(move_leftovers(&held, 2), ["m2-r1"]);
    }

    #[test]
    fn a_failed_move_leaves_only_its_own_snapshots_behind() {
        let held = v(&["m1-final", "m4-r1", "m4-r2", "m4-final", "m41-r1", "m4-rx"]);
        assert_eq!(
            move_leftovers(&held, 4),
            ["m4-r1", "m4-r2", "m4-final", "m4-rx"]
        );
    }

    #[test]
    fn a_round_the_target_holds_is_not_sent_again_but_a_final_push_is() {
        let target = v(&["m7-r1"]);
        assert!(already_sent(&target, "m7-r1", false));
        assert!(!already_sent(&target, "m7-r2", false));
        assert!(!already_sent(&v(&["m7-final"]), "m7-final", true));
    }

    #[test]
    fn rounds_stop_when_small_or_many() {
        assert!(another_round(10 << 20, 1, 4 << 20, 5));
        assert!(!another_round(1 << 20, 1, 4 << 20, 5));
        assert!(!another_round(10 << 20, 5, 4 << 20, 5));
    }
}
