//! Names, checked once before they reach a path, a dataset, a certificate or the replicated
//! state. Volumes and snapshots: `[a-z0-9][a-z0-9_.-]{0,62}` (safe as a path component and a
//! ZFS dataset or snapshot name, never `.` or `..`). Nodes: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`
//! (host names).

use std::fmt;

/// The longest name allowed (one leading character plus 62 more).
pub const MAX_NAME_LEN: usize = 63;

/// What a name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A volume: lower case.
    Volume,
    /// A snapshot of a volume: lower case.
    Snapshot,
    /// A node (a host name): either case.
    Node,
}

impl NameKind {
    /// `volume`, `snapshot` or `node`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Volume => "volume",
            NameKind::Snapshot => "snapshot",
            NameKind::Node => "node",
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that breaks its rule, and which part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    /// What it was to name.
    pub kind: NameKind,
    /// The name as given.
    pub name: String,
    /// Which part of the rule it broke, as advice.
    pub reason: &'static str,
}

/// Checks `name` against the rule for `kind`.
pub fn check(kind: NameKind, name: &str) -> Result<(), NameError> {
    let upper_ok = kind == NameKind::Node;
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || upper_ok && c.is_ascii_uppercase()
    };
    let fail = |reason| {
        Err(NameError {
            kind,
            name: name.to_owned(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return fail("a name must not be empty"),
        Some(c) if !allowed(c) => {
            return fail(if upper_ok {
                "a name must start with a letter or a digit"
            } else {
                "a name must start with a lower-case letter or a digit"
            });
        }
        Some(_) => {}
    }
    if name.len() > MAX_NAME_LEN {
        return fail("a name must be at most 63 characters long");
    }
    if !chars.all(|c| allowed(c) || "_.-".contains(c)) {
        return fail(if upper_ok {
            "a name may contain only letters, digits, '_', '.' and '-'"
        } else {
            "a name may contain only a-z, 0-9, '_', '.' and '-'"
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Checks `name` against the rule; nothing happens before this.
            pub fn new(name: &str) -> Result<Self, NameError> {
                check($kind, name).map(|()| Self(name.to_owned()))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A volume's name, valid by construction.
    VolumeName,
    NameKind::Volume
);
name_type!(
    /// A snapshot's name (the part after `@` in ZFS), valid by construction.
    SnapshotName,
    NameKind::Snapshot
);
name_type!(
    /// A node's name, valid by construction.
    NodeName,
    NameKind::Node
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_and_snapshot_names_follow_the_lower_case_rule() {
        for good in ["a", "0", "demo", "my-vol_1.2", &"a".repeat(63)] {
            assert!(VolumeName::new(good).is_ok(), "{good:?}");
            assert!(SnapshotName::new(good).is_ok(), "{good:?}");
        }
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
            assert_eq!(err.kind, NameKind::Volume);
            assert!(err.to_string().contains("invalid volume name"), "{err}");
            assert!(SnapshotName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_names_are_host_names() {
        for good in ["Host-1.example", "node1", "a", &"N".repeat(63)] {
            assert!(NodeName::new(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a/b", "-a", ".a", "a b", "a:1", &"a".repeat(64)] {
            assert!(NodeName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_refusal_says_what_to_change() {
        let err = VolumeName::new("Demo").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid volume name \"Demo\": a name must start with a lower-case letter or a digit"
        );
        let err = NodeName::new("a b").unwrap_err();
        assert!(err.reason.contains("letters, digits"), "{err}");
    }
}
