//! Validators that run before a name reaches the state: the cluster's rules, from
//! [`foundation::names`], as [`CommandError`]s.

use foundation::names::{NameKind, check};

use super::CommandError;

/// A volume name matches `[a-z0-9][a-z0-9_.-]{0,62}`.
pub fn validate_volume_name(name: &str) -> Result<(), CommandError> {
    check(NameKind::Volume, name).map_err(|_| CommandError::InvalidVolumeName {
        name: name.to_owned(),
    })
}

/// A node name matches `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}` (host names).
pub fn validate_node_name(name: &str) -> Result<(), CommandError> {
    check(NameKind::Node, name).map_err(|_| CommandError::InvalidNodeName {
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names() {
        for ok in ["a", "db1", "0", "a.b_c-d", &"a".repeat(63)] {
            assert!(validate_volume_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "-a",
            ".a",
            "_a",
            "a/b",
            "../etc",
            "a b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(validate_volume_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_names() {
        assert!(validate_node_name("Host-1.example").is_ok());
        assert!(validate_node_name("").is_err());
        assert!(validate_node_name("a/b").is_err());
    }
}
