//! The plugin's reference counts: which mount IDs hold each volume, persisted to a local
//! JSON file (temp file, fsync, rename) before a call is acknowledged, so the counts
//! survive an agent restart.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("plugin state file {path}: {source} (check the --state-dir directory)")]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub source: std::io::Error,
}

/// Mount IDs by volume name.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountCounts {
    /// The mount IDs Docker gave each volume's active mounts.
    pub mounts: BTreeMap<String, BTreeSet<String>>,
}

/// [`MountCounts`] backed by a file.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    counts: MountCounts,
}

impl StateFile {
    /// Loads `path`, or starts empty if it does not exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        let counts = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MountCounts::default(),
            Err(source) => return Err(StateError { path, source }),
        };
        Ok(Self { path, counts })
    }

    /// The current counts.
    pub fn counts(&self) -> &MountCounts {
        &self.counts
    }

    /// How many mounts hold `volume`.
    pub fn count(&self, volume: &str) -> usize {
        self.counts.mounts.get(volume).map_or(0, BTreeSet::len)
    }

    /// Records mount `id` of `volume` (again is a no-op) and persists.
    pub fn add(&mut self, volume: &str, id: &str) -> Result<(), StateError> {
        let ids = self.counts.mounts.entry(volume.to_owned()).or_default();
        if ids.insert(id.to_owned()) {
            self.save()?;
        }
        Ok(())
    }

    /// Forgets mount `id` of `volume` (an unknown one is not an error) and persists.
    /// Returns how many mounts still hold the volume.
    pub fn remove(&mut self, volume: &str, id: &str) -> Result<usize, StateError> {
        let Some(ids) = self.counts.mounts.get_mut(volume) else {
            return Ok(0);
        };
        let removed = ids.remove(id);
        let left = ids.len();
        if left == 0 {
            self.counts.mounts.remove(volume);
        }
        if removed {
            self.save()?;
        }
        Ok(left)
    }

    fn save(&self) -> Result<(), StateError> {
        write_atomically(
            &self.path,
            &serde_json::to_vec_pretty(&self.counts).expect("plain data"),
        )
        .map_err(|source| StateError {
            path: self.path.clone(),
            source,
        })
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory, fsynced and renamed
/// over the old file, then fsyncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_a_reopen_and_unknown_unmounts_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/mounts.json");
        let mut state = StateFile::open(&path).unwrap();
        state.add("a", "m1").unwrap();
        state.add("a", "m1").unwrap();
        state.add("a", "m2").unwrap();
        state.add("b", "m3").unwrap();
        assert_eq!(state.remove("a", "unknown").unwrap(), 2);
        assert_eq!(state.remove("zz", "m1").unwrap(), 0);
        assert_eq!(state.remove("a", "m1").unwrap(), 1);

        let mut again = StateFile::open(&path).unwrap();
        assert_eq!(again.count("a"), 1);
        assert_eq!(again.count("b"), 1);
        assert_eq!(again.remove("b", "m3").unwrap(), 0);
        assert_eq!(StateFile::open(&path).unwrap().count("b"), 0);
        assert!(!path.with_extension("tmp").exists());
    }
}
