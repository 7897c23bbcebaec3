//! Validators that run before a name reaches a path, a dataset or the state.

use super::CommandError;

/// Longest volume or node name.
pub const MAX_NAME_LEN: usize = 63;

/// A volume name matches `[a-z0-9][a-z0-9_.-]{0,62}`.
pub fn validate_volume_name(name: &str) -> Result<(), CommandError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(CommandError::InvalidVolumeName {
            name: name.to_owned(),
        })
    }
}

/// A node name matches `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}` (host names).
pub fn validate_node_name(name: &str) -> Result<(), CommandError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(CommandError::InvalidNodeName {
            name: name.to_owned(),
        })
    }
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
