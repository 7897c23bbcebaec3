//! Directory trees for the directory backend: scan, copy with metadata, compare two trees
//! and apply single entries. Blocking code: callers run it in `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Files whose mtime is this close to (or after) the base snapshot's time are compared by
/// content, since file-system timestamps are coarse (the "racy git" problem).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// What the comparison of two trees looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The entry's kind.
    pub kind: Kind,
    /// Bytes (files) or 0.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: SystemTime,
}

impl Meta {
    fn of(metadata: &fs::Metadata) -> Option<Self> {
        let kind = if metadata.is_dir() {
            Kind::Dir
        } else if metadata.is_file() {
            Kind::File
        } else if metadata.file_type().is_symlink() {
            Kind::Symlink
        } else {
            return None; // sockets, fifos and devices are not volume data
        };
        // A symlink's own mode and mtime cannot be set portably: they are not compared.
        let plain = kind != Kind::Symlink;
        Some(Self {
            kind,
            size: if kind == Kind::File {
                metadata.len()
            } else {
                0
            },
            mode: if plain {
                metadata.permissions().mode() & 0o7777
            } else {
                0o777
            },
            uid: metadata.uid(),
            gid: metadata.gid(),
            mtime: match metadata.modified() {
                Ok(mtime) if plain => mtime,
                _ => SystemTime::UNIX_EPOCH,
            },
        })
    }
}

/// One difference between two trees, by path relative to the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Remove this path (recursively for a directory).
    Delete(PathBuf),
    /// Write this entry as it is in the newer tree.
    Write(PathBuf, Meta),
}

/// Every entry under `root` (not `root` itself) by relative path, in path order.
pub fn scan(root: &Path) -> io::Result<BTreeMap<PathBuf, Meta>> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(root.join(&dir))? {
            let entry = entry?;
            let rel = dir.join(entry.file_name());
            if let Some(meta) = Meta::of(&entry.metadata()?) {
                if meta.kind == Kind::Dir {
                    pending.push(rel.clone());
                }
                entries.insert(rel, meta);
            }
        }
    }
    Ok(entries)
}

/// What turns tree `base` (absent: empty) into tree `to`: deletions first (children before
/// parents), then writes (parents before children). `base_taken` is when `base` was taken;
/// files that look unchanged but were modified near that time are compared by content.
pub fn diff(
    base: Option<&Path>,
    base_taken: Option<SystemTime>,
    to: &Path,
) -> io::Result<Vec<Change>> {
    let old = match base {
        Some(base) => scan(base)?,
        None => BTreeMap::new(),
    };
    let new = scan(to)?;
    let racy_after = base_taken.map(|t| t.checked_sub(RACY_WINDOW).unwrap_or(t));
    let mut changes: Vec<Change> = old
        .iter()
        .filter(|(path, meta)| new.get(*path).is_none_or(|n| n.kind != meta.kind))
        .map(|(path, _)| Change::Delete(path.clone()))
        .rev()
        .collect();
    let mut written = BTreeSet::new();
    for (path, meta) in &new {
        let unchanged = match old.get(path) {
            None => false,
            Some(was) if was != meta => false,
            Some(_) if meta.kind == Kind::Symlink => {
                fs::read_link(to.join(path))? == fs::read_link(base.expect("old").join(path))?
            }
            Some(_) if meta.kind == Kind::File && racy_after.is_some_and(|t| meta.mtime >= t) => {
                same_content(&base.expect("old").join(path), &to.join(path))?
            }
            Some(_) => true,
        };
        if !unchanged {
            written.insert(path.clone());
        }
    }
    // Writing or deleting inside a directory changes its mtime: send its parents too, so
    // the receiver can set their times back.
    let touched: Vec<PathBuf> = changes
        .iter()
        .map(|c| match c {
            Change::Delete(p) | Change::Write(p, _) => p.clone(),
        })
        .chain(written.iter().cloned())
        .collect();
    for path in touched {
        written.extend(
            path.ancestors()
                .skip(1)
                .filter(|a| new.contains_key(*a))
                .map(Path::to_path_buf),
        );
    }
    changes.extend(written.into_iter().map(|path| {
        let meta = new[&path].clone();
        Change::Write(path, meta)
    }));
    Ok(changes)
}

/// Whether two files hold the same bytes.
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    use std::io::Read;
    let (mut a, mut b) = (
        io::BufReader::new(File::open(a)?),
        io::BufReader::new(File::open(b)?),
    );
    let (mut x, mut y) = ([0u8; 8192], [0u8; 8192]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(b.read(&mut y)? == 0);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// Whether `rel` is a plain relative path (no `..`, no root): safe to join to a root.
pub fn is_safe_relative(rel: &Path) -> bool {
    rel.components().next().is_some() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Removes `path` whatever it is; a missing path is fine.
pub fn delete(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Gives `path` the owner, mode and (except for symlinks) mtime of `meta`.
pub fn set_meta(path: &Path, meta: &Meta) -> io::Result<()> {
    if running_as_root() {
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))?;
    }
    if meta.kind == Kind::Symlink {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))?;
    File::open(path)?.set_modified(meta.mtime)
}

/// Whether this process may give files away (only root may chown).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Copies the entry `rel` (kind per `meta`) from tree `from` into tree `to`, replacing what
/// is there. A directory is made (or kept) without its contents; its metadata is set by
/// [`finish_dirs`] once its children are in place.
pub fn copy_entry(from: &Path, to: &Path, rel: &Path, meta: &Meta) -> io::Result<()> {
    let (src, dst) = (from.join(rel), to.join(rel));
    match meta.kind {
        Kind::Dir => {
            if !fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
                delete(&dst)?;
                fs::create_dir(&dst)?;
            }
            Ok(())
        }
        Kind::File => {
            delete(&dst)?;
            let mut out = File::create(&dst)?;
            io::copy(&mut File::open(&src)?, &mut out)?;
            out.sync_all()?;
            drop(out);
            set_meta(&dst, meta)
        }
        Kind::Symlink => {
            delete(&dst)?;
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
            set_meta(&dst, meta)
        }
    }
}

/// Sets the metadata of the directories among `written`, deepest first (writing into a
/// directory changes its mtime, so this comes last).
pub fn finish_dirs(root: &Path, written: &[(PathBuf, Meta)]) -> io::Result<()> {
    for (rel, meta) in written.iter().rev().filter(|(_, m)| m.kind == Kind::Dir) {
        set_meta(&root.join(rel), meta)?;
    }
    Ok(())
}

/// Applies `changes` computed against the tree `from` to the tree `to`.
pub fn apply_local(from: &Path, to: &Path, changes: &[Change]) -> io::Result<()> {
    let mut written = Vec::new();
    for change in changes {
        match change {
            Change::Delete(rel) => delete(&to.join(rel))?,
            Change::Write(rel, meta) => {
                copy_entry(from, to, rel, meta)?;
                written.push((rel.clone(), meta.clone()));
            }
        }
    }
    finish_dirs(to, &written)
}

/// Copies the tree `from` into the new directory `to`, with owners, modes and mtimes.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    apply_local(from, to, &diff(None, None, from)?)?;
    let root = fs::symlink_metadata(from)?;
    set_meta(to, &Meta::of(&root).expect("a directory"))
}

/// Bytes the tree under `root` occupies on disk (like `du`).
pub fn disk_usage(root: &Path) -> io::Result<u64> {
    Ok(scan(root)?
        .keys()
        .map(|rel| fs::symlink_metadata(root.join(rel)).map_or(0, |m| m.blocks() * 512))
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, body: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
    }

    #[test]
    fn copy_then_diff_is_empty_and_edits_show_up() {
        let dir = tempfile::tempdir().unwrap();
        let (live, snap) = (dir.path().join("live"), dir.path().join("snap"));
        fs::create_dir(&live).unwrap();
        write(&live, "a/b/file", "one");
        write(&live, "gone", "x");
        std::os::unix::fs::symlink("a/b/file", live.join("link")).unwrap();
        let taken = SystemTime::now();
        copy_tree(&live, &snap).unwrap();
        assert_eq!(diff(Some(&snap), Some(taken), &live).unwrap(), vec![]);

        write(&live, "a/b/file", "two"); // same size, same second: found by content
        fs::remove_file(live.join("gone")).unwrap();
        write(&live, "new/deep/file", "n");
        let changes = diff(Some(&snap), Some(taken), &live).unwrap();
        let paths: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Delete(p) => format!("-{}", p.display()),
                Change::Write(p, _) => format!("+{}", p.display()),
            })
            .collect();
        assert!(paths.contains(&"-gone".to_owned()), "{paths:?}");
        assert!(paths.contains(&"+a/b/file".to_owned()), "{paths:?}");
        assert!(paths.contains(&"+new/deep/file".to_owned()), "{paths:?}");
        assert!(!paths.iter().any(|p| p == "+link"), "{paths:?}");

        apply_local(&live, &snap, &changes).unwrap();
        assert_eq!(diff(Some(&snap), None, &live).unwrap(), vec![]);
        assert_eq!(fs::read_to_string(snap.join("a/b/file")).unwrap(), "two");
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(is_safe_relative(Path::new("a/b")));
        for bad in ["", "/etc", "../x", "a/../../x", "./a"] {
            assert!(!is_safe_relative(Path::new(bad)), "{bad}");
        }
    }
}
