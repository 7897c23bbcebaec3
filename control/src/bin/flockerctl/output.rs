//! Aligned human tables or JSON for scripts.

use control::convert::phase_word;
use proto::control as pb;
use serde_json::Value;

/// How to print results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON document.
    Json,
}

/// Prints rows under headers with columns padded to the widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints `Key:  value` lines with the values aligned, for one object in detail.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    for (key, value) in pairs {
        println!("{:<width$}  {value}", format!("{key}:"));
    }
}

/// Prints a JSON value.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialise")
    );
}

/// `-` for a missing value.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Human-readable bytes: `12.3 MiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A member's state as printed: `leader`, `follower`, `candidate`, `learner`, `shutdown` or
/// `unreachable`.
pub fn member_state(s: pb::MemberState) -> &'static str {
    match s {
        pb::MemberState::Unspecified => "unknown",
        pb::MemberState::Leader => "leader",
        pb::MemberState::Follower => "follower",
        pb::MemberState::Candidate => "candidate",
        pb::MemberState::Learner => "learner",
        pb::MemberState::Shutdown => "shutdown",
        pb::MemberState::Unreachable => "unreachable",
    }
}

/// A volume's state as printed: `ready`, `moving to NODE (PHASE)` or `no owner`.
pub fn volume_state(v: &pb::Volume) -> String {
    match (v.state(), &v.moving) {
        (pb::VolumeState::Moving, Some(m)) => {
            format!("moving to {} ({})", m.to, phase_word(m.phase()))
        }
        (pb::VolumeState::Moving, None) => "moving".to_owned(),
        (pb::VolumeState::Ready, _) => "ready".to_owned(),
        (pb::VolumeState::NoOwner, _) => "no owner".to_owned(),
        (pb::VolumeState::Unspecified, _) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_print_as_words() {
        let mut v = pb::Volume::default();
        v.set_state(pb::VolumeState::Ready);
        assert_eq!(volume_state(&v), "ready");
        v.set_state(pb::VolumeState::NoOwner);
        assert_eq!(volume_state(&v), "no owner");
        v.set_state(pb::VolumeState::Moving);
        v.moving = Some(pb::VolumeMove {
            to: "n2".into(),
            phase: pb::MovePhase::Handoff.into(),
        });
        assert_eq!(volume_state(&v), "moving to n2 (handoff)");
        assert_eq!(member_state(pb::MemberState::Leader), "leader");
        assert_eq!(member_state(pb::MemberState::Unreachable), "unreachable");
    }
}
