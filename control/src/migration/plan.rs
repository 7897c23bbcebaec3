//! Pure decisions of a move, tested without a cluster.

/// The newest snapshot of `source` (oldest first) that `target` also holds.
pub fn newest_common<'a>(source: &'a [String], target: &[String]) -> Option<&'a String> {
    source.iter().rev().find(|s| target.contains(s))
}

/// The target's snapshots newer than `base`, which would stop an incremental receive.
pub fn newer_than<'a>(target: &'a [String], base: Option<&String>) -> Vec<&'a String> {
    match base.and_then(|b| target.iter().position(|s| s == b)) {
        Some(i) => target[i + 1..].iter().collect(),
        None => Vec::new(),
    }
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
pub fn already_sent(target: &[String], snapshot: &str, last: bool) -> bool {
    !last && target.iter().any(|s| s == snapshot)
}

/// Whether to copy once more before the handoff.
pub fn another_round(last_round_bytes: u64, rounds: u32, threshold: u64, max_rounds: u32) -> bool {
    last_round_bytes > threshold && rounds < max_rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn newest_common_snapshot() {
        assert_eq!(
            newest_common(&v(&["a", "b", "c"]), &v(&["a", "b"])),
            Some(&"b".to_string())
        );
        assert_eq!(newest_common(&v(&["a"]), &v(&[])), None);
        assert_eq!(newest_common(&v(&[]), &v(&["a"])), None);
    }

    #[test]
    fn target_snapshots_after_the_base() {
        let t = v(&["a", "b", "c"]);
        assert_eq!(newer_than(&t, Some(&"a".into())), vec!["b", "c"]);
        assert!(newer_than(&t, Some(&"c".into())).is_empty());
        assert!(newer_than(&t, None).is_empty());
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
