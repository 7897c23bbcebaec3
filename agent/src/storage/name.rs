//! Typed names for volumes and snapshots, checked before they reach a path or a ZFS dataset
//! name: the cluster's rule, from [`foundation::names`].

pub use foundation::names::{MAX_NAME_LEN, NameError, SnapshotName, VolumeName};

use super::StorageError;

impl From<NameError> for StorageError {
    fn from(e: NameError) -> Self {
        StorageError::InvalidName {
            kind: e.kind.as_str(),
            name: e.name,
            reason: e.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_name_is_a_storage_error_that_says_why() {
        let err = StorageError::from(VolumeName::new("../etc").unwrap_err());
        assert!(matches!(
            err,
            StorageError::InvalidName { kind: "volume", .. }
        ));
        assert!(err.to_string().contains("must start with"), "{err}");
    }
}
