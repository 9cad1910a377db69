//! What a snapshot changed, and its changes as a layer (`commit`).
//!
//! Overlay: the upper directory is the change set: 0/0 character devices
//! are deletions, entries that exist in a lower layer are changes, the
//! rest additions (directories that hold changes are themselves `C`).
//!
//! Copy (`vfs`) driver, which has no upper directory: trees are scanned
//! ([`scan`]) and compared ([`changes`]): the root with its layers (a
//! container's `diff` and `commit`), or a build step's root before and after
//! the step ([`Snapshotter::baseline`]). [`selection`] makes the changes a
//! layer's entries.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io::Write;
use std::ops::Bound;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use strata_layer::{LayerDigests, Selected, TreeVisitor, WriteOptions, walk_tree};

use crate::error::{Ctx, Error, Result};
use crate::{Driver, Kind, Snapshot, Snapshotter};

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
    open_dir(CWD, p).is_ok_and(strata_rootless::is_opaque_dir)
}

/// What an entry of a scanned tree is, for change detection (Docker's
/// rules: directories are compared by mode and owner only; the rest by
/// type, mode, owner, size, modification time, device number, link target
/// and, with [`CompareOptions::inodes`], inode number).
#[derive(Debug, Clone)]
struct Entry {
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

impl Entry {
    /// The entry `name` of the directory `parent`, of status `st`.
    fn at(parent: &OwnedFd, name: &CStr, st: &rustix::fs::Stat) -> Entry {
        let ft = FileType::from_raw_mode(st.st_mode);
        let is_dir = ft == FileType::Directory;
        Entry {
            is_dir,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: if is_dir { 0 } else { st.st_size as u64 },
            mtime: if is_dir {
                (0, 0)
            } else {
                (st.st_mtime, st.st_mtime_nsec as i64)
            },
            ino: if is_dir { 0 } else { st.st_ino },
            rdev: st.st_rdev,
            link: if ft == FileType::Symlink {
                rustix::fs::readlinkat(parent, name, Vec::new())
                    .ok()
                    .map(|t| PathBuf::from(std::ffi::OsStr::from_bytes(t.as_bytes())))
            } else {
                None
            },
        }
    }

    fn same(&self, other: &Entry, opts: CompareOptions) -> bool {
        let Entry {
            is_dir,
            mode,
            uid,
            gid,
            size,
            mtime,
            ino,
            rdev,
            link,
        } = self;
        *is_dir == other.is_dir
            && *mode == other.mode
            && *uid == other.uid
            && *gid == other.gid
            && *size == other.size
            && *mtime == other.mtime
            && (!opts.inodes || *ino == other.ino)
            && *rdev == other.rdev
            && *link == other.link
    }
}

/// A scanned tree: every entry below the root, by path relative to it.
type Scan = BTreeMap<PathBuf, Entry>;

/// How [`changes`] compares an entry present in both scans.
#[derive(Debug, Clone, Copy, Default)]
struct CompareOptions {
    /// Compare the inode numbers of non-directories too, so that a file
    /// replaced by another of equal metadata (`mv`, `ln -f`, `cp -p` over
    /// it) counts as changed. Only for two scans of the same tree (a step
    /// root before and after); a copy of a tree has other inode numbers.
    inodes: bool,
}

fn remove_below(tree: &mut Scan, path: &Path) {
    let below: Vec<PathBuf> = tree
        .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(path))
        .map(|(k, _)| k.clone())
        .collect();
    for k in below {
        tree.remove(&k);
    }
}

/// Every entry under `root` (relative paths), not following links.
fn scan(root: &Path) -> Result<Scan> {
    let mut tree = Scan::new();
    scan_into(root, Path::new(""), &mut tree, false)?;
    Ok(tree)
}

/// The tree that layer directories in overlay form make, laid one over the
/// other (bottom first): whiteouts delete, and a non-directory or an
/// opaque directory hides what was below it.
fn scan_layers(lowers_bottom_first: &[PathBuf]) -> Result<Scan> {
    let mut tree = Scan::new();
    for l in lowers_bottom_first {
        scan_into(l, Path::new(""), &mut tree, true)?;
    }
    Ok(tree)
}

/// Adds the entries under `top` to `tree`. With `layer`, `top` is a layer
/// in overlay form laid over what `tree` holds. Iterative, so a tree of any
/// depth is fine.
fn scan_into(top: &Path, rel: &Path, tree: &mut Scan, layer: bool) -> Result<()> {
    struct Scanner<'a> {
        top: &'a Path,
        tree: &'a mut Scan,
        layer: bool,
    }
    impl TreeVisitor for Scanner<'_> {
        type Error = Error;

        fn fail(&self, path: &Path, e: std::io::Error) -> Error {
            Error::io(format!("reading {}", self.top.join(path).display()), e)
        }

        fn entry(&mut self, parent: &OwnedFd, name: &CStr, r: &Path) -> Result<Option<OwnedFd>> {
            let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io(format!("stat {}", self.top.join(r).display()), e))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            let is_dir = ft == FileType::Directory;
            let fd = if is_dir {
                Some(open_dir(parent, name).map_err(|e| self.fail(r, e.into()))?)
            } else {
                None
            };
            if self.layer {
                if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                    self.tree.remove(r);
                    remove_below(self.tree, r);
                    return Ok(None);
                }
                if !is_dir || fd.as_ref().is_some_and(fd_is_opaque) {
                    remove_below(self.tree, r);
                }
            }
            self.tree.insert(r.to_path_buf(), Entry::at(parent, name, &st));
            Ok(fd)
        }
    }
    let dir = top.join(rel);
    let fd = open_dir(CWD, &dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    walk_tree(&fd, rel, false, &mut Scanner { top, tree, layer })
}

fn open_dir<P: rustix::path::Arg>(parent: impl std::os::fd::AsFd, name: P) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn fd_is_opaque(fd: &OwnedFd) -> bool {
    strata_rootless::is_opaque_dir(fd)
}

/// The changes from `before` to `after`, in path order (parents first):
/// entries new in `after` are added, entries that differ changed; of the
/// entries gone, only the topmost ones (whose parent is still a directory:
/// a non-directory in a directory's place hides what was below it) are
/// deleted; and the directories holding any of these are changed
/// themselves. A directory replaced by another thus has each entry gone
/// from it deleted explicitly.
fn changes(before: &Scan, after: &Scan, opts: CompareOptions) -> Vec<(PathBuf, ChangeKind)> {
    let mut kinds: BTreeMap<PathBuf, ChangeKind> = BTreeMap::new();
    for (p, m) in after {
        match before.get(p) {
            None => {
                kinds.insert(p.clone(), ChangeKind::Added);
            }
            Some(old) if !old.same(m, opts) => {
                kinds.insert(p.clone(), ChangeKind::Changed);
            }
            Some(_) => {}
        }
    }
    for p in before.keys() {
        if after.contains_key(p) {
            continue;
        }
        let topmost = match p.parent() {
            None => true,
            Some(q) if q.as_os_str().is_empty() => true,
            Some(q) => after.get(q).is_some_and(|m| m.is_dir),
        };
        if topmost {
            kinds.insert(p.clone(), ChangeKind::Deleted);
        }
    }
    let listed: Vec<PathBuf> = kinds.keys().cloned().collect();
    for p in listed {
        for a in p.ancestors().skip(1) {
            if a.as_os_str().is_empty() {
                break;
            }
            kinds.entry(a.to_path_buf()).or_insert(ChangeKind::Changed);
        }
    }
    kinds.into_iter().collect()
}

/// The layer entries for `changes` (in the same order, parents first):
/// deletions as whiteouts, the rest as the entries of the tree now.
fn selection(changes: &[(PathBuf, ChangeKind)]) -> Vec<Selected> {
    changes
        .iter()
        .map(|(p, kind)| match kind {
            ChangeKind::Deleted => Selected::Whiteout(p.clone()),
            ChangeKind::Added | ChangeKind::Changed => Selected::Entry(p.clone()),
        })
        .collect()
}

/// The changes of a copy-driver root from the layers it was made of.
/// Inode numbers are not compared: the root is a copy.
fn root_changes(lowers_bottom_first: &[PathBuf], root: &Path) -> Result<Vec<(PathBuf, ChangeKind)>> {
    let lower = scan_layers(lowers_bottom_first)?;
    let now = scan(root)?;
    Ok(changes(&lower, &now, CompareOptions::default()))
}

/// The changes an overlay upper directory holds, in path order (parents
/// first): iterative, so a tree of any depth is fine.
fn walk(upper: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    struct Differ<'a> {
        upper: &'a Path,
        lowers: &'a [PathBuf],
        out: &'a mut Vec<Change>,
        /// For each directory being walked: whether it is new (so is
        /// everything below it).
        all_added: Vec<bool>,
    }
    impl TreeVisitor for Differ<'_> {
        type Error = Error;

        fn fail(&self, path: &Path, e: std::io::Error) -> Error {
            Error::io(format!("reading {}", self.upper.join(path).display()), e)
        }

        fn entry(&mut self, parent: &OwnedFd, name: &CStr, r: &Path) -> Result<Option<OwnedFd>> {
            let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io(format!("stat {}", self.upper.join(r).display()), e))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            let shown = format!("/{}", r.display());
            if strata_rootless::is_fuse_overlay_marker(parent, name.to_bytes()) {
                return Ok(None);
            }
            if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                self.out.push(Change {
                    kind: ChangeKind::Deleted,
                    path: shown,
                });
                return Ok(None);
            }
            let all_added = self.all_added.last().copied().unwrap_or(false);
            let existed = !all_added && in_lowers(self.lowers, r);
            let kind = if existed {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            };
            self.out.push(Change { kind, path: shown });
            if ft != FileType::Directory {
                return Ok(None);
            }
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.fail(r, e.into()))?;
            self.all_added.push(!existed);
            Ok(Some(fd))
        }

        fn leave(&mut self, _: &OwnedFd, _: &CStr, _: &OwnedFd, _: &Path) -> Result<()> {
            self.all_added.pop();
            Ok(())
        }
    }
    let top = rustix::fs::openat(
        CWD,
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("reading {}", upper.display()), e))?;
    let mut d = Differ {
        upper,
        lowers,
        out,
        all_added: Vec::new(),
    };
    walk_tree(&top, Path::new(""), true, &mut d)
}

/// What [`Snapshotter::commit`] compares a snapshot's root with.
#[derive(Debug, Clone)]
pub struct Baseline(BaselineKind);

#[derive(Debug, Clone)]
enum BaselineKind {
    /// The layers the snapshot was prepared from.
    Layers,
    /// The root as it was scanned before (copy driver only).
    Scanned(Scan),
}

impl Baseline {
    /// Changes are what differs from the snapshot's layers (a container:
    /// its root against its image).
    pub fn layers() -> Baseline {
        Baseline(BaselineKind::Layers)
    }
}

/// How [`Snapshotter::commit`] writes a layer.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    pub layer: WriteOptions,
    /// Write nothing (and return `None`) when nothing changed.
    pub skip_if_empty: bool,
}

impl Snapshotter {
    /// The point a later [`Snapshotter::commit`] compares with, taken
    /// before work in an active snapshot (a build step). Overlay keeps the
    /// changes in the upper dir and needs none; the copy driver scans the
    /// root now, so that commit also sees a file replaced by one of equal
    /// metadata (by its inode number).
    pub fn baseline(&self, snap: &Snapshot) -> Result<Baseline> {
        match snap.driver {
            Driver::Overlay | Driver::FuseOverlay => Ok(Baseline::layers()),
            Driver::Copy => Ok(Baseline(BaselineKind::Scanned(scan(&self.upper_dir(snap))?))),
        }
    }

    /// What the snapshot changed, as `docker diff` lists it: absolute paths,
    /// in path order.
    pub fn changes(&self, snap: &Snapshot) -> Result<Vec<Change>> {
        let mut lowers = self.snapshot_lowers(snap);
        let mut out = Vec::new();
        match snap.driver {
            Driver::Overlay | Driver::FuseOverlay => {
                if snap.kind == Kind::View {
                    return Ok(out);
                }
                lowers.reverse();
                walk(&self.upper_dir(snap), &lowers, &mut out)?;
            }
            Driver::Copy => {
                out = root_changes(&lowers, &self.upper_dir(snap))?
                    .into_iter()
                    .map(|(p, kind)| Change {
                        kind,
                        path: format!("/{}", p.display()),
                    })
                    .collect();
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Writes the snapshot's changes since `baseline` to `out` as a layer
    /// tar (compressed as `opts.layer` says) and returns its digests; `None`
    /// when nothing changed and `opts.skip_if_empty`. The one way a root
    /// becomes a layer: build steps and `commit` of a container both come
    /// here. The snapshot stays as it is (it may be mounted by a running
    /// container: the tree is read, not moved); see
    /// [`Snapshotter::adopt_upper`] to keep an overlay upper dir as the
    /// unpacked layer afterwards.
    pub fn commit<W: Write>(
        &self,
        snap: &Snapshot,
        baseline: &Baseline,
        opts: &CommitOptions,
        out: W,
    ) -> Result<Option<LayerDigests>> {
        let upper = self.upper_dir(snap);
        let written = match (snap.driver, &baseline.0) {
            (Driver::Overlay, _) => {
                if opts.skip_if_empty && is_empty_dir(&upper)? {
                    return Ok(None);
                }
                strata_layer::write_overlay_upper_layer(&upper, &opts.layer, out)
            }
            (Driver::FuseOverlay, _) => {
                if opts.skip_if_empty && is_empty_dir(&upper)? {
                    return Ok(None);
                }
                let lowers = self.snapshot_lowers(snap);
                strata_layer::write_fuse_overlay_upper_layer(&upper, &lowers, &opts.layer, out)
            }
            (Driver::Copy, kind) => {
                let changes = match kind {
                    BaselineKind::Layers => root_changes(&self.snapshot_lowers(snap), &upper)?,
                    // The same tree before and after: a file replaced by
                    // one of equal metadata is told apart by its inode.
                    BaselineKind::Scanned(before) => changes(before, &scan(&upper)?, CompareOptions { inodes: true }),
                };
                let selected = selection(&changes);
                if opts.skip_if_empty && selected.is_empty() {
                    return Ok(None);
                }
                strata_layer::write_selected(&upper, &selected, &opts.layer, out)
            }
        };
        written.map(Some).map_err(|source| Error::Commit {
            key: snap.key.clone(),
            source,
        })
    }
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .ctx(|| format!("reading {}", dir.display()))?
        .next()
        .is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: CompareOptions = CompareOptions { inodes: true };

    fn kinds(c: &[(PathBuf, ChangeKind)]) -> Vec<String> {
        c.iter()
            .map(|(p, k)| format!("{} {}", k.letter(), p.display()))
            .collect()
    }

    fn set_mtime(p: &Path, secs: u64) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

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
        let c = selection(&changes(&before, &after, STEP));
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

    #[test]
    fn nothing_below_a_directory_replaced_by_a_file_is_deleted() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("d/sub")).unwrap();
        std::fs::write(r.join("d/sub/f"), "1").unwrap();
        std::fs::write(r.join("d/g"), "1").unwrap();
        let before = scan(r).unwrap();
        std::fs::remove_dir_all(r.join("d")).unwrap();
        std::fs::write(r.join("d"), "file").unwrap();
        let after = scan(r).unwrap();
        let c = changes(&before, &after, STEP);
        assert_eq!(kinds(&c), ["C d"]);
        assert_eq!(selection(&c), [Selected::Entry("d".into())]);
    }

    #[test]
    fn a_replaced_directory_has_its_old_entries_deleted() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("d/sub")).unwrap();
        std::fs::write(r.join("d/sub/f"), "1").unwrap();
        std::fs::write(r.join("d/g"), "1").unwrap();
        let before = scan(r).unwrap();
        std::fs::remove_dir_all(r.join("d")).unwrap();
        std::fs::create_dir_all(r.join("d/sub")).unwrap();
        std::fs::write(r.join("d/h"), "1").unwrap();
        let after = scan(r).unwrap();
        let c = changes(&before, &after, STEP);
        assert_eq!(kinds(&c), ["C d", "D d/g", "A d/h", "C d/sub", "D d/sub/f"]);
    }

    #[test]
    fn a_file_replaced_by_one_of_equal_metadata_differs_by_inode() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::write(r.join("f"), "1").unwrap();
        std::fs::write(r.join("g"), "2").unwrap();
        std::fs::write(r.join("keep"), "3").unwrap();
        for n in ["f", "g"] {
            set_mtime(&r.join(n), 1_000_000);
        }
        let before = scan(r).unwrap();
        std::fs::rename(r.join("g"), r.join("f")).unwrap();
        let after = scan(r).unwrap();
        assert_eq!(kinds(&changes(&before, &after, STEP)), ["C f", "D g"]);
        assert_eq!(kinds(&changes(&before, &after, CompareOptions::default())), ["D g"]);
    }

    #[test]
    fn layers_are_laid_over_each_other() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: whiteouts (0/0 devices) need root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (l0, l1, root) = (d.path().join("l0"), d.path().join("l1"), d.path().join("root"));
        for p in ["l0/a/x", "l0/o/y", "l1/o", "root/a", "root/o/z"] {
            std::fs::create_dir_all(d.path().join(p)).unwrap();
        }
        std::fs::write(l0.join("gone"), "1").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l1.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .unwrap();
        rustix::fs::lsetxattr(
            l1.join("o"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let lower = scan_layers(&[l0, l1]).unwrap();
        assert_eq!(
            lower.keys().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            ["a", "a/x", "o"]
        );
        let c = changes(&lower, &scan(&root).unwrap(), CompareOptions::default());
        assert_eq!(kinds(&c), ["C a", "D a/x", "C o", "A o/z"]);
    }
}
