//! The retention rule, as one pure function over what the control service recorded and what
//! the pools hold, so that it is easy to adjust if the rule changes:
//!
//! - a volume's dataset exists only on its owner and on its recorded replicas, and on each
//!   of them; no dataset under a pool for a volume that is not recorded, and no staging
//!   dataset (a last component that is not a volume name, e.g. with ':');
//! - every copy holds only snapshots recorded for the replicas (none without replicas), so
//!   no snapshot of an ended move (`m<ID>-r<N>`, `m<ID>-final` not recorded for a replica)
//!   remains anywhere;
//! - each replica holds the snapshot recorded for it, and the owner every replica's (so a
//!   move to any replica holder is incremental);
//! - a **diverged** replica (the copy of an owner that was promoted past: it may hold writes
//!   no other copy has) is exempt from the snapshot rules, though its recorded snapshot is
//!   kept like any replica's, and a copy **set aside**
//!   (`V:diverged-eN`, kept for the operator, docs/volumes.md) is allowed on any host.
//!
//! Only meaningful once no move is in progress.

use std::collections::{BTreeMap, BTreeSet};

/// What the control service recorded for one volume (`flockerctl volume ls --output json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The volume's name.
    pub name: String,
    /// Its owner node, if it has one.
    pub owner: Option<String>,
    /// (node, snapshot) of each replica that is not diverged.
    pub replicas: Vec<(String, String)>,
    /// (node, snapshot) of each diverged replica.
    pub diverged: Vec<(String, String)>,
}

impl Recorded {
    /// Reads one volume of `volume ls --output json` / `volume inspect --output json`.
    pub fn from_json(v: &serde_json::Value) -> Self {
        let all: Vec<&serde_json::Value> = v["replicas"].as_array().into_iter().flatten().collect();
        let copies = |diverged: bool| {
            all.iter()
                .filter(|r| (r["diverged"] == true) == diverged)
                .map(|r| {
                    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                    (text("node"), text("snapshot"))
                })
                .collect()
        };
        let (replicas, diverged) = (copies(false), copies(true));
        Self {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            owner: v["owner"].as_str().map(str::to_owned),
            replicas,
            diverged,
        }
    }
}

/// What one host's pool holds: its datasets and, per dataset, its snapshots.
pub type Pool = BTreeMap<String, BTreeSet<String>>;

/// Parses `zfs list -H -t all -o name -r POOL`: `POOL/V` and `POOL/V@S` lines (the pool's
/// own line is left out), into dataset (the part after `POOL/`) -> snapshots.
pub fn parse_pool(pool: &str, listing: &str) -> Pool {
    let mut out = Pool::new();
    let prefix = format!("{pool}/");
    for line in listing.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('@') {
            Some((dataset, snapshot)) => {
                out.entry(dataset.to_owned())
                    .or_default()
                    .insert(snapshot.to_owned());
            }
            None => {
                out.entry(rest.to_owned()).or_default();
            }
        }
    }
    out
}

/// Whether `name` is a volume name: `[a-z0-9][a-z0-9_.-]{0,62}`.
pub fn is_volume_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 63
        && name.chars().next().is_some_and(ok)
        && name.chars().all(|c| ok(c) || "_.-".contains(c))
}

/// Whether `dataset` is a copy set aside after a promotion: `V:diverged-eN`, or
/// `V:diverged-eN.M` when that name was taken.
pub fn is_set_aside(dataset: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    dataset.split_once(":diverged-e").is_some_and(|(v, e)| {
        let (epoch, nth) = e.split_once('.').unwrap_or((e, "0"));
        is_volume_name(v) && number(epoch) && number(nth)
    })
}

/// Every breach of the retention rule, one message each naming the host, the volume, what
/// was found and what the rule allows; empty when the rule holds. `pools` maps each
/// node's name to its pool.
pub fn violations(recorded: &[Recorded], pools: &BTreeMap<String, Pool>) -> Vec<String> {
    let mut found = Vec::new();
    let by_name: BTreeMap<&str, &Recorded> =
        recorded.iter().map(|v| (v.name.as_str(), v)).collect();
    for (node, pool) in pools {
        for (dataset, snapshots) in pool {
            if is_set_aside(dataset) {
                continue;
            }
            let Some(v) = by_name.get(dataset.as_str()) else {
                let what = if is_volume_name(dataset) {
                    "no such volume is recorded"
                } else {
                    "a staging dataset (not a volume name) left after the move ended"
                };
                found.push(format!(
                    "{node}: dataset {dataset} with snapshots {snapshots:?}: {what}; the rule allows datasets only of recorded volumes"
                ));
                continue;
            };
            found.extend(check_copy(node, v, snapshots));
        }
    }
    for v in recorded {
        let holders = v.owner.iter().chain(v.replicas.iter().map(|(n, _)| n));
        for node in holders {
            let has = pools.get(node).is_some_and(|p| p.contains_key(&v.name));
            if !has && pools.contains_key(node) {
                found.push(format!(
                    "{node}: volume {} has no dataset, but the control service records {node} as its {}",
                    v.name,
                    if v.owner.as_ref() == Some(node) { "owner" } else { "replica" }
                ));
            }
        }
    }
    found
}

/// The breaches of one volume's copy on `node` holding `snapshots`.
fn check_copy(node: &str, v: &Recorded, snapshots: &BTreeSet<String>) -> Option<String> {
    let name = &v.name;
    if v.diverged.iter().any(|(n, _)| n == node) {
        return None;
    }
    let pinned: BTreeSet<String> = v
        .replicas
        .iter()
        .chain(&v.diverged)
        .map(|(_, s)| s.clone())
        .collect();
    let extra: BTreeSet<&String> = snapshots.difference(&pinned).collect();
    let role = if v.owner.as_deref() == Some(node) {
        let missing: BTreeSet<&String> = pinned.difference(snapshots).collect();
        if !missing.is_empty() {
            return Some(format!(
                "{node}: owner of {name} lacks the replicas' snapshots {missing:?} (holds {snapshots:?}): a move back to them would not be incremental"
            ));
        }
        "owner"
    } else if let Some((_, own)) = v.replicas.iter().find(|(n, _)| n == node) {
        if !snapshots.contains(own) {
            return Some(format!(
                "{node}: replica of {name} holds snapshots {snapshots:?} without its recorded {own:?}"
            ));
        }
        "replica"
    } else {
        return Some(format!(
            "{node}: dataset of {name} (snapshots {snapshots:?}) on a node that is neither its owner ({:?}) nor a recorded replica ({:?})",
            v.owner, v.replicas
        ));
    };
    (!extra.is_empty()).then(|| {
        format!(
            "{node}: {role} of {name} holds snapshots {extra:?} the rule does not keep; it keeps only the replicas' {pinned:?} (replicas {:?})",
            v.replicas
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str, owner: &str, replicas: &[(&str, &str)]) -> Recorded {
        Recorded {
            name: name.into(),
            owner: Some(owner.into()),
            replicas: replicas
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            diverged: Vec::new(),
        }
    }

    fn pools(listings: &[(&str, &str)]) -> BTreeMap<String, Pool> {
        listings
            .iter()
            .enumerate()
            .map(|(i, (node, text))| {
                let pool = format!("lab{}", i + 1);
                (
                    node.to_string(),
                    parse_pool(&pool, &text.replace("P", &pool)),
                )
            })
            .collect()
    }

    #[test]
    fn a_diverged_replica_and_a_copy_set_aside_are_allowed_but_nothing_else_of_theirs() {
        let mut v = recorded("v", "node2", &[("node3", "rep-2")]);
        v.diverged.push(("node1".into(), "rep-1".into()));
        let p = pools(&[
            (
                "node1",
                "P/v\nP/v@rep-1\nP/v@rep-x\nP/w:diverged-e3\nP/w:diverged-e3.2\n",
            ),
            ("node2", "P/v\nP/v@rep-1\nP/v@rep-2\n"),
            (
                "node3",
                "P/v\nP/v@rep-1\nP/v@rep-2\nP/v:diverged-e\nP/v:diverged-e2x\n",
            ),
        ]);
        let found = violations(&[v], &p);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found
                .iter()
                .all(|f| f.starts_with("node3: dataset v:diverged-e")),
            "{found:#?}"
        );
        assert!(is_set_aside("v:diverged-e12") && !is_set_aside("v:recv"));
    }

    #[test]
    fn a_volume_with_its_replicas_at_their_snapshots_keeps_the_rule() {
        let v = [recorded("v", "node2", &[("node1", "m1-final")])];
        let p = pools(&[
            ("node1", "P\nP/v\nP/v@m1-final\n"),
            ("node2", "P\nP/v\nP/v@m1-final\n"),
            ("node3", "P\n"),
        ]);
        assert_eq!(violations(&v, &p), Vec::<String>::new());
    }

    #[test]
    fn leftover_snapshots_strays_and_staging_datasets_are_each_named() {
        let v = [recorded("v", "node2", &[("node1", "m2-final")])];
        let p = pools(&[
            ("node1", "P/v\nP/v@m1-final\nP/v@m2-final\n"),
            ("node2", "P/v\nP/v@m2-final\nP/v@m2-r1\n"),
            ("node3", "P/v\nP/v@m1-final\nP/v:recv\nP/gone\n"),
        ]);
        let found = violations(&v, &p);
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0].starts_with("node1: replica of v holds"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("node2: owner of v holds"),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|f| f.contains("no such volume")),
            "{found:#?}"
        );
        assert!(found.iter().any(|f| f.contains("staging")), "{found:#?}");
        assert!(
            found.iter().any(|f| f.contains("neither its owner")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_replica_may_keep_another_replicas_snapshot_but_needs_its_own() {
        let v = [recorded(
            "v",
            "node3",
            &[("node1", "m1-final"), ("node2", "m2-final")],
        )];
        let p = pools(&[
            ("node1", "P/v\nP/v@m1-final\nP/v@m2-final\n"),
            ("node2", "P/v\nP/v@m1-final\n"),
            ("node3", "P/v\nP/v@m1-final\nP/v@m2-final\n"),
        ]);
        let found = violations(&v, &p);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("without its recorded"), "{found:#?}");
    }

    #[test]
    fn a_missing_owner_dataset_is_named() {
        let v = [recorded("v", "node1", &[])];
        let p = pools(&[("node1", "P\n"), ("node2", "P\n")]);
        let found = violations(&v, &p);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("as its owner"), "{found:#?}");
    }

    #[test]
    fn volume_names() {
        assert!(is_volume_name("wv0") && is_volume_name("a.b_c-d"));
        assert!(!is_volume_name("v:recv") && !is_volume_name("-v") && !is_volume_name(""));
    }
}
