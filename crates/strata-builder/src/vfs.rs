//! Step changes with the copy (`vfs`) storage driver, which has no upper
//! directory: the root is scanned before and after the step and the
//! entries that differ (Docker's rules: directories by mode and owner,
//! the rest by type, mode, owner, size, time, link target) become the
//! layer, deletions as whiteouts.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use strata_layer::Selected;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    is_dir: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    rdev: u64,
    link: Option<PathBuf>,
}

pub type Scan = BTreeMap<PathBuf, Entry>;

/// Every entry under `root` (relative paths), not following links.
pub fn scan(root: &Path) -> Result<Scan> {
    let mut out = Scan::new();
    scan_into(root, Path::new(""), &mut out)?;
    Ok(out)
}

fn scan_into(root: &Path, rel: &Path, out: &mut Scan) -> Result<()> {
    let dir = root.join(rel);
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let r = rel.join(e.file_name());
        let full = root.join(&r);
        let m = std::fs::symlink_metadata(&full).with_context(|| format!("stat {}", full.display()))?;
        let is_dir = m.is_dir();
        out.insert(
            r.clone(),
            Entry {
                is_dir,
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                size: if is_dir { 0 } else { m.size() },
                mtime: if is_dir { (0, 0) } else { (m.mtime(), m.mtime_nsec()) },
                ino: if is_dir { 0 } else { m.ino() },
                rdev: m.rdev(),
                link: if m.file_type().is_symlink() {
                    std::fs::read_link(&full).ok()
                } else {
                    None
                },
            },
        );
        if is_dir {
            scan_into(root, &r, out)?;
        }
    }
    Ok(())
}

/// The layer entries for going from `before` to `after`: changed and added
/// entries with their parent directories, parents first; deletions (only
/// the topmost deleted path) as whiteouts.
pub fn changes(before: &Scan, after: &Scan) -> Vec<Selected> {
    let mut keep: BTreeMap<PathBuf, bool> = BTreeMap::new(); // path → is a whiteout
    // An entry kept (a whiteout or not) takes its parent directories along.
    let mut keep_with_parents = |p: &Path, whiteout: bool| {
        keep.insert(p.to_path_buf(), whiteout);
        for parent in p.ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            keep.entry(parent.to_path_buf()).or_insert(false);
        }
    };
    for (p, m) in after {
        if before.get(p) != Some(m) {
            keep_with_parents(p, false);
        }
    }
    for p in before.keys() {
        if after.contains_key(p) {
            continue;
        }
        // Only the topmost deleted entry: one whose parent is still a directory.
        let topmost = match p.parent() {
            None => true,
            Some(q) if q.as_os_str().is_empty() => true,
            Some(q) => after.get(q).is_some_and(|m| m.is_dir),
        };
        if topmost {
            keep_with_parents(p, true);
        }
    }
    keep.into_iter()
        .map(|(p, wh)| if wh { Selected::Whiteout(p) } else { Selected::Entry(p) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_changes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/f"), "1").unwrap();
        std::fs::write(r.join("keep"), "1").unwrap();
        std::fs::create_dir_all(r.join("gone/deep")).unwrap();
        let before = scan(r).unwrap();
        std::fs::write(r.join("a/b/new"), "2").unwrap();
        std::fs::remove_dir_all(r.join("gone")).unwrap();
        let after = scan(r).unwrap();
        let c = changes(&before, &after);
        assert_eq!(
            c,
            vec![
                Selected::Entry("a".into()),
                Selected::Entry("a/b".into()),
                Selected::Entry("a/b/new".into()),
                Selected::Whiteout("gone".into()),
            ]
        );
    }
}
