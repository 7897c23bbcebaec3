//! A scratch directory under /tmp that, when dropped (also on panic), lazily unmounts
//! whatever is still mounted below it and then removes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::unique;

pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A new, empty directory `/tmp/<prefix><pid>x<n>`.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self { dir }
    }

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
