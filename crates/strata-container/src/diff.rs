//! `diff`: what a container changed, as Docker prints it (`A`, `C`, `D`).
//!
//! Overlay: the upper directory is the change set: 0/0 character devices
//! are deletions, entries that exist in a lower layer are changes, the
//! rest additions (directories that hold changes are themselves `C`).

use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

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
    for l in lowers {
        // A whiteout or a non-directory on the way hides everything below.
        let mut cur = l.clone();
        let mut blocked = false;
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if is_whiteout(&m) => return false,
                Ok(m) if i + 1 == comps.len() => {
                    let _ = m;
                    return true;
                }
                Ok(m) if m.is_dir() => {
                    if is_opaque(&cur) && i + 1 < comps.len() {
                        // Nothing of lower layers below an opaque dir.
                        return std::fs::symlink_metadata(l.join(rel)).is_ok_and(|m| !is_whiteout(&m));
                    }
                }
                Ok(_) => return false,
                Err(_) => {
                    blocked = true;
                    break;
                }
            }
        }
        let _ = blocked;
    }
    false
}

fn is_opaque(p: &Path) -> bool {
    let mut buf = [0u8; 2];
    matches!(rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf), Ok(1) if buf[0] == b'y')
}

impl Containers {
    pub fn diff(&self, rec: &ContainerRecord) -> Result<Vec<Change>> {
        if self.snap.driver() != strata_snapshot::Driver::Overlay {
            bail!(
                "diff needs the overlay storage driver (this store uses {})",
                self.snap.driver().name()
            );
        }
        let upper = self.upper_dir(rec)?;
        let mut lowers = self.lower_dirs(rec)?;
        lowers.reverse();
        let mut out = Vec::new();
        walk(&upper, Path::new(""), &lowers, false, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
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
