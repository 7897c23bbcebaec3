//! What the installed ZFS can do, read from its own usage text and the pool version, so the
//! backend works with kernel OpenZFS and with zfs-fuse (pool version 23) alike.

use std::collections::BTreeSet;
use std::process::Stdio;

use tokio::process::Command;

use crate::storage::process::command_line;
use crate::storage::{Result, StorageError};

/// Features of the `zfs` tool and pool that the backend may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZfsFeatures {
    /// The pool's on-disk version; `None` for feature-flag pools (OpenZFS, "5000").
    pub pool_version: Option<u32>,
    /// `zfs receive -s`: an interrupted receive keeps a resume token.
    pub resumable_receive: bool,
    /// `zfs receive -u`: receive without mounting.
    pub receive_no_mount: bool,
    /// `zfs receive -o`: set properties while receiving.
    pub receive_properties: bool,
    /// `zfs send -c`: send compressed blocks as they are on disk.
    pub send_compressed: bool,
    /// `zfs send -L`: send large blocks.
    pub send_large_blocks: bool,
    /// `zfs send -e`: embedded-data blocks.
    pub send_embedded: bool,
}

impl ZfsFeatures {
    /// Asks the installed `zfs` (usage of `send` and `receive`) and `zpool` (the version of
    /// `pool`).
    pub async fn detect(pool: &str) -> Result<Self> {
        let send = flags_in_usage(&usage(&["send"]).await?);
        let receive = flags_in_usage(&usage(&["receive"]).await?);
        // zfs-fuse's `zpool get` has no -H: read the table's last row, third column.
        let version =
            crate::storage::process::run(None, "zpool", &["get", "version", pool]).await?;
        Ok(Self {
            pool_version: pool_version(&version),
            resumable_receive: receive.contains(&'s'),
            receive_no_mount: receive.contains(&'u'),
            receive_properties: receive.contains(&'o'),
            send_compressed: send.contains(&'c'),
            send_large_blocks: send.contains(&'L'),
            send_embedded: send.contains(&'e'),
        })
    }
}

/// The version in `zpool get version POOL` output; `None` for feature-flag pools (`-`).
pub fn pool_version(table: &str) -> Option<u32> {
    table
        .lines()
        .last()?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// The usage text `zfs <args>` prints when called without its required arguments.
async fn usage(args: &[&str]) -> Result<String> {
    let out = Command::new("zfs")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| StorageError::Unavailable {
            command: command_line("zfs", args),
            stderr: e.to_string(),
        })?;
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    if !text.contains("usage") {
        return Err(StorageError::Unavailable {
            command: command_line("zfs", args),
            stderr: text,
        });
    }
    Ok(text)
}

/// Every single-letter option in a usage text: the letters of `[-abc]` groups and of
/// `[-o value]` forms.
pub fn flags_in_usage(text: &str) -> BTreeSet<char> {
    let mut flags = BTreeSet::new();
    for (i, _) in text.match_indices("[-") {
        let letters: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        flags.extend(letters.chars());
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZFS_FUSE_RECEIVE: &str = "missing snapshot argument\nusage:\n\
        \treceive [-vnF] <filesystem|volume|snapshot>\n\treceive [-vnF] -d <filesystem>\n";
    const OPENZFS_RECEIVE: &str = "usage:\n\treceive [-vMnsuF] [-o <property>=<value>] ... \
        [-x <property>] ... <filesystem|volume|snapshot>\n\treceive [-vMnsuF] [-x <property>] \
        ... [-o <property>=<value>] ... [-d | -e] <filesystem>\n\treceive -A <filesystem|volume>\n";
    const OPENZFS_SEND: &str = "usage:\n\tsend [-DLPbcehnpsVvw] [-i|-I snapshot]\n\t     \
        [-R [-X dataset[,dataset]...]]     <snapshot>\n";

    #[test]
    fn pool_version_from_the_table() {
        let fuse = "NAME  PROPERTY  VALUE    SOURCE\ntank  version   23       default\n";
        assert_eq!(pool_version(fuse), Some(23));
        let openzfs = "NAME  PROPERTY  VALUE    SOURCE\ntank  version   -        default\n";
        assert_eq!(pool_version(openzfs), None);
    }

    #[test]
    fn zfs_fuse_has_no_resume_and_no_receive_options() {
        let flags = flags_in_usage(ZFS_FUSE_RECEIVE);
        assert_eq!(flags, BTreeSet::from(['F', 'n', 'v']));
    }

    #[test]
    fn openzfs_has_resume_no_mount_and_properties() {
        let flags = flags_in_usage(OPENZFS_RECEIVE);
        for flag in ['s', 'u', 'o', 'x', 'F'] {
            assert!(flags.contains(&flag), "{flag}");
        }
        let send = flags_in_usage(OPENZFS_SEND);
        for flag in ['c', 'L', 'e', 'w', 'R'] {
            assert!(send.contains(&flag), "{flag}");
        }
        // `[-i|-I snapshot]` is an option with a value, not a group of flags.
        assert!(send.contains(&'i'));
    }
}
