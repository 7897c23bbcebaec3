//! Typed names for volumes and snapshots, checked before they reach a path or a ZFS dataset
//! name. The rule is the cluster's: `[a-z0-9][a-z0-9_.-]{0,62}`, and never `.` or `..`.

use std::fmt;

use super::StorageError;

/// The longest name allowed (one leading character plus 62 more).
pub const MAX_NAME_LEN: usize = 63;

/// Why `name` is not a valid volume or snapshot name, or `None` when it is.
fn invalid_because(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Some("a name must not be empty"),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return Some("a name must start with a lower-case letter or a digit");
        }
        Some(_) => {}
    }
    if name.len() > MAX_NAME_LEN {
        return Some("a name must be at most 63 characters long");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)) {
        return Some("a name may contain only a-z, 0-9, '_', '.' and '-'");
    }
    None
}

/// A volume's name, valid by construction: safe as a path component and a dataset name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeName(String);

impl VolumeName {
    /// Checks `name` against the naming rule; no side effect happens before this.
    pub fn new(name: &str) -> Result<Self, StorageError> {
        match invalid_because(name) {
            None => Ok(Self(name.to_owned())),
            Some(reason) => Err(StorageError::InvalidName {
                kind: "volume",
                name: name.to_owned(),
                reason,
            }),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot's name (the part after `@` in ZFS), valid by the same rule as volume names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotName(String);

impl SnapshotName {
    /// Checks `name` against the naming rule.
    pub fn new(name: &str) -> Result<Self, StorageError> {
        match invalid_because(name) {
            None => Ok(Self(name.to_owned())),
            Some(reason) => Err(StorageError::InvalidName {
                kind: "snapshot",
                name: name.to_owned(),
                reason,
            }),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_cluster_rule() {
        for good in ["a", "0", "demo", "my-vol_1.2", &"a".repeat(63)] {
            assert!(VolumeName::new(good).is_ok(), "{good:?} should be valid");
        }
    }

    #[test]
    fn refuses_paths_empty_long_and_odd_names() {
        for bad in [
            "",
            "../etc",
            "..",
            ".",
            "a/b",
            "/etc",
            "Demo",
            "-x",
            "_x",
            "a b",
            "a@b",
            "vol\0",
            "é",
            &"a".repeat(64),
        ] {
            let err = VolumeName::new(bad).expect_err(bad);
            assert!(matches!(err, StorageError::InvalidName { .. }), "{bad:?}");
            assert!(SnapshotName::new(bad).is_err(), "{bad:?}");
        }
    }
}
