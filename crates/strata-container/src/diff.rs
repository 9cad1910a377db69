//! `diff`: what a container changed, as Docker prints it (`A`, `C`, `D`).
//!
//! Overlay: the upper directory is the change set: 0/0 character devices
//! are deletions, entries that exist in a lower layer are changes, the
//! rest additions (directories that hold changes are themselves `C`).

use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;
use std::ops::Bound;

use anyhow::Result;

use crate::engine::Containers;
use crate::record::ContainerRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute, as seen in the container.
    pub path: String,
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether `rel` exists in the merged view of the lower layers (top first).
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    let comps: Vec<_> = rel.components().collect();
    for l in lowers {
        // A whiteout or a non-directory on the way hides everything below.
        let mut cur = l.clone();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if is_whiteout(&m) => return false,
                Ok(_) if i + 1 == comps.len() => return true,
                Ok(m) if m.is_dir() => {
                    if is_opaque(&cur) {
                        // Nothing of lower layers below an opaque dir.
                        return std::fs::symlink_metadata(l.join(rel)).is_ok_and(|m| !is_whiteout(&m));
                    }
                }
                Ok(_) => return false,
                // Not in this layer: look in the next one down.
                Err(_) => break,
            }
        }
    }
    false
}

fn is_opaque(p: &Path) -> bool {
    let mut buf = [0u8; 2];
    matches!(rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf), Ok(1) if buf[0] == b'y')
}

impl Containers {
    pub fn diff(&self, rec: &ContainerRecord) -> Result<Vec<Change>> {
        let mut lowers = self.lower_dirs(rec)?;
        let mut out = Vec::new();
        match self.snap.driver() {
            strata_snapshot::Driver::Overlay => {
                let upper = self.upper_dir(rec)?;
                lowers.reverse();
                walk(&upper, Path::new(""), &lowers, false, &mut out)?;
            }
            strata_snapshot::Driver::Copy => {
                let rootfs = self.snap.snapshot_dir(&rec.id).join("rootfs");
                out = tree_changes(&lowers, &rootfs)?;
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// What a file is, for change detection (Docker's rules: directories are
/// compared by mode and owner only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    is_dir: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    rdev: u64,
    link: Option<PathBuf>,
}

impl Meta {
    fn of(path: &Path, m: &std::fs::Metadata) -> Meta {
        Meta {
            is_dir: m.is_dir(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: if m.is_dir() { 0 } else { m.size() },
            mtime: if m.is_dir() {
                (0, 0)
            } else {
                (m.mtime(), m.mtime_nsec())
            },
            rdev: m.rdev(),
            link: if m.file_type().is_symlink() {
                std::fs::read_link(path).ok()
            } else {
                None
            },
        }
    }
}

type Tree = BTreeMap<PathBuf, Meta>;

fn remove_below(tree: &mut Tree, path: &Path) {
    let below: Vec<PathBuf> = tree
        .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(path))
        .map(|(k, _)| k.clone())
        .collect();
    for k in below {
        tree.remove(&k);
    }
}

/// Adds the entries under `top` to `tree`. With `layer`, `top` is a layer
/// in overlay form laid over what `tree` holds: whiteouts delete, and a
/// non-directory or an opaque directory hides what was below it.
fn scan(top: &Path, rel: &Path, tree: &mut Tree, layer: bool) -> Result<()> {
    for e in std::fs::read_dir(top.join(rel))? {
        let r = rel.join(e?.file_name());
        let full = top.join(&r);
        let m = std::fs::symlink_metadata(&full)?;
        if layer {
            if is_whiteout(&m) {
                tree.remove(&r);
                remove_below(tree, &r);
                continue;
            }
            if !m.is_dir() || is_opaque(&full) {
                remove_below(tree, &r);
            }
        }
        tree.insert(r.clone(), Meta::of(&full, &m));
        if m.is_dir() {
            scan(top, &r, tree, layer)?;
        }
    }
    Ok(())
}

/// Changes between the flattened lower layers and a full root (copy driver).
pub(crate) fn tree_changes(lowers_bottom_first: &[PathBuf], root: &Path) -> Result<Vec<Change>> {
    let mut lower = Tree::new();
    for l in lowers_bottom_first {
        scan(l, Path::new(""), &mut lower, true)?;
    }
    let mut now = Tree::new();
    scan(root, Path::new(""), &mut now, false)?;
    let mut kinds: BTreeMap<PathBuf, ChangeKind> = BTreeMap::new();
    for (p, m) in &now {
        match lower.get(p) {
            None => {
                kinds.insert(p.clone(), ChangeKind::Added);
            }
            Some(old) if old != m => {
                kinds.insert(p.clone(), ChangeKind::Changed);
            }
            _ => {}
        }
    }
    for p in lower.keys() {
        let parent_kept = p
            .parent()
            .is_none_or(|q| q.as_os_str().is_empty() || now.contains_key(q));
        if !now.contains_key(p) && parent_kept {
            kinds.insert(p.clone(), ChangeKind::Deleted);
        }
    }
    // Directories holding a change are changed themselves.
    let changed: Vec<PathBuf> = kinds.keys().cloned().collect();
    for p in changed {
        for a in p.ancestors().skip(1) {
            if a.as_os_str().is_empty() {
                break;
            }
            kinds.entry(a.to_path_buf()).or_insert(ChangeKind::Changed);
        }
    }
    Ok(kinds
        .into_iter()
        .map(|(p, kind)| Change {
            kind,
            path: format!("/{}", p.display()),
        })
        .collect())
}

fn walk(upper: &Path, rel: &Path, lowers: &[PathBuf], all_added: bool, out: &mut Vec<Change>) -> Result<()> {
    let dir = upper.join(rel);
    let mut names: Vec<OsString> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let m = std::fs::symlink_metadata(upper.join(&r))?;
        let shown = format!("/{}", r.display());
        if is_whiteout(&m) {
            out.push(Change {
                kind: ChangeKind::Deleted,
                path: shown,
            });
            continue;
        }
        let existed = !all_added && in_lowers(lowers, &r);
        let kind = if existed {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        out.push(Change { kind, path: shown });
        if m.is_dir() {
            walk(upper, &r, lowers, !existed, out)?;
        }
    }
    Ok(())
}
