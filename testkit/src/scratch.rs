//! A scratch directory under /tmp that, when dropped (also on panic), lazily unmounts
//! whatever is still mounted below it and then removes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::unique_dir;

/// A directory of the test's own, removed with everything mounted below it on drop.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A new, empty directory (see [`unique_dir`]).
    pub fn new(prefix: &str) -> Self {
        Self {
            dir: unique_dir(prefix),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {0}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.display()
            ))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
