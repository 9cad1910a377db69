//! Unpacking a layer into a directory.
//!
//! Every operation is relative to a directory opened from the root without
//! following symlinks (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`,
//! or a component-by-component `O_NOFOLLOW` walk). A path that would pass
//! through a symlink, whether planted by this layer or an earlier one, is
//! refused rather than followed, so no entry can reach outside the root.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use strata_oci::Digest;

use crate::check::{Checked, Checker, Whiteout, copy_content, drain, for_each_entry, tar_error};
use crate::compress::{PlainStream, decompress_on_thread};
use crate::sparse::write_sparse;
use crate::{LayerError, Result};

/// How whiteouts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Into a flat root: `.wh.NAME` deletes NAME, an opaque marker empties
    /// its directory of everything lower layers put there.
    Apply,
    /// Into an empty overlayfs layer directory: `.wh.NAME` becomes a 0/0
    /// character device, an opaque marker sets `trusted.overlay.opaque=y`.
    Overlay,
    /// Not a layer but an archive copied into a tree (`cp`, `ADD`): names
    /// starting with `.wh.` are ordinary names, written as they are, and
    /// delete nothing (as Docker's `cp` and `ADD`).
    Plain,
}

/// The default [`UnpackOptions::max_unpacked_size`]: 1 TiB, far above any
/// real layer, yet a bound on what a small layer of sparse files (or a
/// compression bomb) may claim.
pub const DEFAULT_MAX_UNPACKED_SIZE: u64 = 1 << 40;

#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutMode,
    /// Set owners from the layer (needs root).
    pub chown: bool,
    /// Create device nodes (needs root); skipped and counted otherwise.
    pub devices: bool,
    /// Overlay mode: the unpacked lower layers, top-most first, so that a
    /// path through a symlink planted by an earlier layer is refused.
    pub lowers: Vec<PathBuf>,
    /// The most bytes the layer's files may add up to, by apparent size (a
    /// sparse file counts in full, though its holes take no disk); more is
    /// [`LayerError::UnpackedTooLarge`]. Default [`DEFAULT_MAX_UNPACKED_SIZE`].
    pub max_unpacked_size: u64,
    /// Symlinks already in the root (or written earlier by this archive)
    /// on an entry's way are followed, resolved inside the root as by a
    /// process chrooted there ([`crate::resolve_in_root`]: an absolute
    /// target starts at the root, `..` stops there), instead of refused.
    /// For an archive a build step unpacks into its own root (`ADD`, as
    /// BuildKit's chrooted untar); never for a layer. An entry's own name
    /// is not followed: a symlink there is replaced. Default false.
    pub follow_symlinks: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        // In a rootless namespace owners are written (shifted by the id
        // map) unless only one id is mapped; device nodes need real root.
        let root = rustix::process::geteuid().is_root();
        UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            chown: root && !strata_rootless::single_id(),
            devices: strata_rootless::privileged(),
            lowers: Vec::new(),
            max_unpacked_size: DEFAULT_MAX_UNPACKED_SIZE,
            follow_symlinks: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnpackReport {
    pub diff_id: Digest,
    pub diff_size: u64,
    pub entries: u64,
    pub skipped_devices: u64,
    /// Directories the layer needed but did not contain (created 0755): in
    /// overlay form, each must not stand where a lower layer has a symlink
    /// (see [`check_lowers`] when the lowers were not at hand).
    pub implicit_dirs: Vec<PathBuf>,
}

/// Unpacks a layer (plain, gzip or zstd) into `root`, an existing
/// directory, computing its diff ID on the way.
pub fn unpack<R: Read + Send>(input: R, root: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
    let rootfd = open_dir_at(CWD, root).map_err(|e| LayerError::io(format!("opening {}", root.display()), e))?;
    unpack_at(input, rootfd, root, opts)
}

/// [`unpack`] into an already opened directory (e.g. one resolved inside a
/// container root); `shown` names it in errors.
///
/// A compressed layer is decompressed on a thread of its own, so that
/// decompression and the file creation of the unpack overlap (for one big
/// layer, each is about half the work).
pub fn unpack_at<R: Read + Send>(
    input: R,
    rootfd: OwnedFd,
    shown: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    std::thread::scope(|s| {
        let reader = decompress_on_thread(s, BufReader::with_capacity(256 * 1024, input))?;
        unpack_plain(reader, rootfd, shown, opts)
    })
}

fn unpack_plain<R: Read>(
    hashing: PlainStream<R>,
    rootfd: OwnedFd,
    shown: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let root = shown;
    let lowers = opts
        .lowers
        .iter()
        .map(|l| open_dir_at(CWD, l).map_err(|e| LayerError::io(format!("opening layer {}", l.display()), e)))
        .collect::<Result<Vec<_>>>()?;
    let root_setgid = rustix::fs::fstat(&rootfd).is_ok_and(|st| st.st_mode & 0o2000 != 0);
    let mut u = Unpacker {
        root_setgid,
        creator: (rustix::process::geteuid(), rustix::process::getegid()),
        umask: current_umask(),
        root: rootfd,
        top: root.to_path_buf(),
        opts,
        lowers,
        cache: None,
        keys: PathKeys::new(),
        written: HashSet::new(),
        dir_times: Vec::new(),
        dir_index: HashMap::new(),
        entries: 0,
        skipped_devices: 0,
        implicit_dirs: Vec::new(),
        unpacked: 0,
    };
    let mut checker = Checker::new(opts.whiteouts != WhiteoutMode::Plain);
    if opts.follow_symlinks {
        checker = checker.following_symlinks();
    }
    let hashing = for_each_entry(hashing, checker, |entry, checked| {
        u.apply(entry, checked)?;
        u.entries += 1;
        Ok(())
    })?;
    u.finish()?;
    let (diff_id, diff_size) = drain(hashing)?.finish()?;
    Ok(UnpackReport {
        diff_id,
        diff_size,
        entries: u.entries,
        skipped_devices: u.skipped_devices,
        implicit_dirs: u.implicit_dirs,
    })
}

/// Opens a directory for reading, not following a symlink.
pub(crate) fn open_dir_at<Fd: AsFd>(dirfd: Fd, path: impl rustix::path::Arg) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dirfd,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn open_path_at<Fd: AsFd>(dirfd: Fd, path: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dirfd,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `rel` under `root` as a directory (`O_PATH`) without following
/// any symlink; `root` itself when `rel` is empty.
pub(crate) fn open_beneath(root: &OwnedFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        return open_path_at(root, c".");
    }
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // No openat2, or a path longer than PATH_MAX (a deep tree): one
        // component at a time, none followed if a symlink (names are
        // cleaned: no `..`).
        Err(Errno::NOSYS | Errno::NAMETOOLONG) => descend(root, rel),
        r => r,
    }
}

/// Whether two cleaned relative paths (no `.`, no `//`, no trailing `/`)
/// are the same: compared as bytes, which for a deep tree's long paths
/// is much cheaper than component by component.
pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    a.as_os_str().as_bytes() == b.as_os_str().as_bytes()
}

/// What is left of the cleaned path `rel` below its ancestor `dir`.
pub(crate) fn below<'a>(rel: &'a Path, dir: &Path) -> Option<&'a Path> {
    let (r, d) = (rel.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    match r.strip_prefix(d)? {
        [b'/', rest @ ..] if !rest.is_empty() => Some(Path::new(OsStr::from_bytes(rest))),
        _ => None,
    }
}

/// Opens `rel` under `dir` one component at a time as `O_PATH`
/// directories, following no symlink.
pub(crate) fn descend(dir: &OwnedFd, rel: &Path) -> rustix::io::Result<OwnedFd> {
    let mut fd = open_path_at(dir, c".")?;
    for c in rel.components() {
        if !matches!(c, std::path::Component::Normal(_)) {
            return Err(Errno::INVAL);
        }
        fd = open_path_at(&fd, c.as_os_str())?;
    }
    Ok(fd)
}

fn file_type_at<Fd: AsFd>(dirfd: Fd, name: &OsStr) -> rustix::io::Result<Option<FileType>> {
    match rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dirfd`, recursively, never following symlinks.
fn remove_all<Fd: AsFd>(dirfd: Fd, name: &OsStr) -> rustix::io::Result<()> {
    match file_type_at(&dirfd, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let fd = open_dir_at(&dirfd, name).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            crate::walk::walk_tree(&fd, Path::new(""), false, &mut Remover)?;
            drop(fd);
            rustix::fs::unlinkat(dirfd, name, AtFlags::REMOVEDIR)
        }
        Some(_) => rustix::fs::unlinkat(dirfd, name, AtFlags::empty()),
    }
}

/// Removes what a walk visits: at any depth, with a bounded number of open
/// directories.
struct Remover;

impl crate::walk::TreeVisitor for Remover {
    type Error = Errno;

    fn fail(&self, _: &Path, e: std::io::Error) -> Errno {
        Errno::from_io_error(&e).unwrap_or(Errno::IO)
    }

    fn entry(&mut self, parent: &OwnedFd, name: &CStr, _: &Path) -> rustix::io::Result<Option<OwnedFd>> {
        match file_type_at(parent, OsStr::from_bytes(name.to_bytes()))? {
            None => Ok(None),
            Some(FileType::Directory) => Ok(Some(
                open_dir_at(parent, name).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?,
            )),
            Some(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()).map(|()| None),
        }
    }

    fn leave(&mut self, parent: &OwnedFd, name: &CStr, _: &OwnedFd, _: &Path) -> rustix::io::Result<()> {
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
    }
}

/// Removes every child of a directory for which `keep` is false.
fn empty_dir(fd: &OwnedFd, keep: impl Fn(&OsStr) -> bool) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    let dir = Dir::read_from(fd)?;
    for ent in dir {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        let n = OsStr::from_bytes(&n);
        if !keep(n) {
            remove_all(fd, n)?;
        }
    }
    Ok(())
}

fn ts(secs: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

struct Unpacker<'o> {
    root: OwnedFd,
    top: PathBuf,
    opts: &'o UnpackOptions,
    lowers: Vec<OwnedFd>,
    /// The directory of the previous entry (consecutive entries usually share it).
    cache: Option<(PathBuf, OwnedFd, bool)>,
    /// Whether the root has the set-group-ID bit (new files then take its group).
    root_setgid: bool,
    /// Who owns the files this process creates, and its umask.
    creator: (Uid, Gid),
    umask: u32,
    keys: PathKeys,
    /// Paths this layer wrote (their keys): an opaque marker keeps them.
    written: HashSet<u128>,
    /// Directory times are set last: writing children changes them.
    /// Directories written (each named relative to an earlier one, so a
    /// deep tree's paths do not take the square of its depth in memory).
    dir_times: Vec<DirTime>,
    /// The index in `dir_times` of each directory's key.
    dir_index: HashMap<u128, u32>,
    entries: u64,
    skipped_devices: u64,
    implicit_dirs: Vec<PathBuf>,
    /// Apparent bytes of the files written so far (see `max_unpacked_size`).
    unpacked: u64,
}

/// Paths as keys: 128 bits of two hashes with random keys (a set of whole
/// paths of a deep tree would hold the square of its depth in memory).
struct PathKeys(std::hash::RandomState, std::hash::RandomState);

impl PathKeys {
    fn new() -> PathKeys {
        PathKeys(std::hash::RandomState::new(), std::hash::RandomState::new())
    }

    fn key(&self, p: &Path) -> u128 {
        use std::hash::BuildHasher;
        let b = p.as_os_str().as_bytes();
        (u128::from(self.0.hash_one(b)) << 64) | u128::from(self.1.hash_one(b))
    }
}

/// A directory whose time is set at the end.
struct DirTime {
    /// The earlier directory holding it, with its name; else `name` is its
    /// whole path.
    parent: Option<u32>,
    name: Box<[u8]>,
    mtime: u64,
    /// Device and inode, to recognize it when reached through `..`.
    id: (u64, u64),
}

/// Refuses directories a layer created implicitly where one of `lowers`
/// (unpacked layers in overlay form, top-most first) has a symlink: the
/// layer's entries below would have been reached through it.
pub fn check_lowers(lowers: &[PathBuf], implicit_dirs: &[PathBuf]) -> Result<()> {
    let fds = lowers
        .iter()
        .map(|l| open_dir_at(CWD, l).map_err(|e| LayerError::io(format!("opening layer {}", l.display()), e)))
        .collect::<Result<Vec<_>>>()?;
    for d in implicit_dirs {
        check_against(&fds, d)?;
    }
    Ok(())
}

fn check_against(lowers: &[OwnedFd], path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new(""));
    let name = path.file_name().unwrap_or_default();
    for lower in lowers {
        let Ok(pfd) = open_beneath(lower, parent) else { continue };
        match file_type_at(&pfd, name) {
            Ok(Some(FileType::Symlink)) => {
                return Err(LayerError::unsafe_entry(
                    path.display().to_string(),
                    format!(
                        "reached through the symlink {} planted by an earlier layer",
                        path.display()
                    ),
                ));
            }
            Ok(Some(_)) => return Ok(()),
            _ => continue,
        }
    }
    Ok(())
}

impl Unpacker<'_> {
    fn fail(&self, path: &Path, what: &str, e: impl std::fmt::Display) -> LayerError {
        LayerError::Unpack {
            path: self.top.join(path),
            message: format!("{what}: {e}"),
        }
    }

    /// The directory `rel` (relative to the root) as an `O_PATH` fd; created
    /// (with missing parents, 0755) when `create`, else `None` if missing.
    fn dir(&mut self, rel: &Path, create: bool) -> Result<Option<BorrowedFd<'_>>> {
        if rel.as_os_str().is_empty() {
            return Ok(Some(self.root.as_fd()));
        }
        if self.cache.as_ref().is_some_and(|(p, _, _)| same_path(p, rel)) {
            return Ok(self.cache.as_ref().map(|(_, fd, _)| fd.as_fd()));
        }
        // A deep tree comes parents first: its next directory is most often
        // below the last one, opened from there (not from the root, whose
        // path may pass PATH_MAX and costs the whole depth each time).
        let below_cache = match &self.cache {
            Some((p, fd, _)) => below(rel, p).map(|rest| descend(fd, rest)),
            None => None,
        };
        let opened = match below_cache {
            Some(Ok(fd)) => Ok(fd),
            _ if self.opts.follow_symlinks => self.open_following(rel),
            _ => open_beneath(&self.root, rel),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create && self.opts.follow_symlinks => {
                let resolved = crate::resolve_in_root(&self.root, rel)
                    .map_err(|e| self.fail(rel, "resolving symlinks on the way", e))?;
                self.create_dirs(&resolved)?
            }
            Err(Errno::NOENT) if create => self.create_dirs(rel)?,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR | Errno::XDEV) if !self.opts.follow_symlinks => {
                return Err(self.explain_walk(rel));
            }
            Err(e) => return Err(self.fail(rel, "opening the directory", e)),
        };
        let setgid = rustix::fs::fstat(&fd).is_ok_and(|st| st.st_mode & 0o2000 != 0);
        self.cache = Some((rel.to_path_buf(), fd, setgid));
        Ok(self.cache.as_ref().map(|(_, fd, _)| fd.as_fd()))
    }

    /// Follow mode: the directory `rel` with symlinks on the way followed
    /// inside the root.
    fn open_following(&self, rel: &Path) -> rustix::io::Result<OwnedFd> {
        match rustix::fs::openat2(
            &self.root,
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            // No openat2, or past PATH_MAX: resolved here, then walked without following.
            Err(Errno::NOSYS | Errno::NAMETOOLONG) => descend(&self.root, &crate::resolve_in_root(&self.root, rel)?),
            r => r,
        }
    }

    /// Says which component of `rel` stopped the walk.
    fn explain_walk(&self, rel: &Path) -> LayerError {
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            let parent = cur.parent().unwrap_or(Path::new(""));
            let Ok(pfd) = open_beneath(&self.root, parent) else {
                break;
            };
            match file_type_at(&pfd, c.as_os_str()) {
                Ok(Some(FileType::Symlink)) => {
                    return LayerError::unsafe_entry(
                        rel.display().to_string(),
                        format!(
                            "reached through the symlink {} (from this or an earlier layer)",
                            cur.display()
                        ),
                    );
                }
                Ok(Some(FileType::Directory)) => continue,
                Ok(Some(_)) => {
                    return self.fail(
                        rel,
                        "cannot create entries under",
                        format!("{} is not a directory", cur.display()),
                    );
                }
                _ => break,
            }
        }
        self.fail(rel, "opening the directory", "not a directory or a symlink on the way")
    }

    fn create_dirs(&mut self, rel: &Path) -> Result<OwnedFd> {
        let mut fd = open_path_at(&self.root, c".").map_err(|e| self.fail(rel, "opening the root", e))?;
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            let name = c.as_os_str();
            match open_path_at(&fd, name) {
                Ok(next) => fd = next,
                Err(Errno::NOENT) => {
                    self.check_lowers(&cur)?;
                    match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.fail(&cur, "creating the directory", e)),
                    }
                    self.written.insert(self.keys.key(&cur));
                    self.implicit_dirs.push(cur.clone());
                    fd = open_path_at(&fd, name).map_err(|e| self.fail(&cur, "opening the directory", e))?;
                }
                Err(_) => return Err(self.explain_walk(rel)),
            }
        }
        Ok(fd)
    }

    /// In overlay mode, a directory this layer creates implicitly must not
    /// stand where a lower layer has a symlink: that entry would have been
    /// reached through the symlink in the merged view.
    /// The set-group-ID bit of a directory just returned by `dir`.
    fn cache_setgid(&self, rel: &Path) -> bool {
        if rel.as_os_str().is_empty() {
            return self.root_setgid;
        }
        self.cache.as_ref().is_some_and(|(p, _, sg)| same_path(p, rel) && *sg)
    }

    fn check_lowers(&self, path: &Path) -> Result<()> {
        check_against(&self.lowers, path)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, c: &Checked) -> Result<()> {
        match &c.whiteout {
            Whiteout::AufsMeta => return Ok(()),
            Whiteout::Remove(target) => return self.whiteout(target),
            Whiteout::Opaque(dir) => return self.opaque(dir),
            Whiteout::None => {}
        }
        let path = &c.path;
        let kind = entry.header().entry_type();
        if path.as_os_str().is_empty() {
            // The root itself ("./"): its attributes belong to whoever made the root.
            return Ok(());
        }
        let (parent, name) = (
            path.parent().unwrap_or(Path::new("")),
            path.file_name().unwrap_or_default(),
        );
        let hdr = entry.header().clone();
        // Empty numeric fields read as 0, as Go's archive/tar (Docker) reads them.
        let old = hdr.as_old();
        let mode = numeric(hdr.mode().map(u64::from), &old.mode, path)? as u32 & 0o7777;
        let mtime = numeric(hdr.mtime(), &old.mtime, path)?;
        let ids = if self.opts.chown {
            let uid = numeric(hdr.uid(), &old.uid, path)?;
            let gid = numeric(hdr.gid(), &old.gid, path)?;
            if uid >= u32::MAX as u64 || gid >= u32::MAX as u64 {
                return Err(LayerError::unsafe_entry(
                    path.display().to_string(),
                    format!("owner {uid}:{gid} out of range"),
                ));
            }
            Some((Uid::from_raw(uid as u32), Gid::from_raw(gid as u32)))
        } else {
            None
        };
        self.written.insert(self.keys.key(path));
        match kind {
            tar::EntryType::Directory => {
                let existing = {
                    let pfd = self.dir(parent, true)?.expect("created");
                    file_type_at(pfd, name)
                };
                match existing {
                    Ok(Some(FileType::Directory)) => {}
                    Ok(other) => {
                        if other.is_some() {
                            self.remove(parent, name)?;
                        }
                        let pfd = self.dir(parent, true)?.expect("created");
                        rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(0o700))
                            .map_err(|e| self.fail(path, "creating the directory", e))?;
                    }
                    Err(e) => return Err(self.fail(path, "inspecting", e)),
                }
                let pfd = self.dir(parent, true)?.expect("created");
                let fd = open_dir_at(pfd, name).map_err(|e| self.fail(path, "opening the directory", e))?;
                self.set_meta(&fd, path, ids, Some(mode), &c.xattrs)?;
                let st = rustix::fs::fstat(&fd).map_err(|e| self.fail(path, "inspecting", e))?;
                self.push_dir_time(path, mtime, (st.st_dev, st.st_ino));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                // The size the tar reader will yield: a sparse file's apparent size.
                let total = self.unpacked.saturating_add(entry.size());
                if total > self.opts.max_unpacked_size {
                    return Err(LayerError::UnpackedTooLarge {
                        root: self.top.clone(),
                        entry: path.display().to_string(),
                        total,
                        cap: self.opts.max_unpacked_size,
                    });
                }
                self.unpacked = total;
                // Most files are new and owned by us: created with their
                // mode and owner at once, they need no chown/chmod after.
                self.dir(parent, true)?;
                let parent_setgid = self.cache_setgid(parent);
                let as_created = !parent_setgid && ids.is_none_or(|ids| ids == self.creator) && mode & self.umask == 0;
                let create_mode = Mode::from_raw_mode(if as_created { mode } else { 0o600 });
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let pfd = self.dir(parent, true)?.expect("created");
                let fd = match rustix::fs::openat(pfd, name, flags, create_mode) {
                    Err(Errno::EXIST) => {
                        self.replace(parent, name)?;
                        let pfd = self.dir(parent, true)?.expect("created");
                        rustix::fs::openat(pfd, name, flags, create_mode)
                    }
                    r => r,
                }
                .map_err(|e| self.fail(path, "creating the file", e))?;
                let mut file = File::from(fd);
                if kind == tar::EntryType::GNUSparse {
                    let size = entry.size();
                    write_sparse(entry, path, size, &file, |e| self.fail(path, "writing the file", e))?;
                } else {
                    copy_content(entry, path, &mut file)?;
                }
                if as_created {
                    self.set_meta(&file, path, None, None, &c.xattrs)?;
                } else {
                    self.set_meta(&file, path, ids, Some(mode), &c.xattrs)?;
                }
                rustix::fs::futimens(&file, &ts(mtime)).map_err(|e| self.fail(path, "setting times", e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::unsafe_entry(path.display().to_string(), "symlink without a target"))?;
                if target.contains(&0) {
                    return Err(LayerError::unsafe_entry(
                        path.display().to_string(),
                        "symlink target contains a NUL byte",
                    ));
                }
                self.replace(parent, name)?;
                let pfd = self.dir(parent, true)?.expect("created");
                rustix::fs::symlinkat(OsStr::from_bytes(&target), pfd, name)
                    .map_err(|e| self.fail(path, "creating the symlink", e))?;
                if let Some((u, g)) = ids {
                    let pfd = self.dir(parent, true)?.expect("created");
                    rustix::fs::chownat(pfd, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.fail(path, "setting the owner", e))?;
                }
                let pfd = self.dir(parent, true)?.expect("created");
                rustix::fs::utimensat(pfd, name, &ts(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.fail(path, "setting times", e))?;
            }
            tar::EntryType::Link => {
                let target = c.link.as_ref().expect("checked");
                let (tparent, tname) = (
                    target.parent().unwrap_or(Path::new("")),
                    target.file_name().unwrap_or_default(),
                );
                let tfd = match self.dir(tparent, false)? {
                    Some(fd) => fd
                        .try_clone_to_owned()
                        .map_err(|e| self.fail(path, "opening the link target", e))?,
                    None => return Err(self.missing_link(path, target)),
                };
                match file_type_at(&tfd, tname) {
                    Ok(Some(FileType::Directory)) => {
                        return Err(LayerError::unsafe_entry(
                            path.display().to_string(),
                            format!("hard link to the directory {}", target.display()),
                        ));
                    }
                    Ok(Some(_)) => {}
                    _ => return Err(self.missing_link(path, target)),
                }
                if target != path {
                    self.replace(parent, name)?;
                    let pfd = self.dir(parent, true)?.expect("created");
                    rustix::fs::linkat(&tfd, tname, pfd, name, AtFlags::empty())
                        .map_err(|e| self.fail(path, "creating the hard link", e))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if kind != tar::EntryType::Fifo && !self.opts.devices {
                    self.skipped_devices += 1;
                    return Ok(());
                }
                let (ft, dev) = match kind {
                    tar::EntryType::Char | tar::EntryType::Block => {
                        let major = hdr.device_major().ok().flatten().unwrap_or(0);
                        let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                    _ => (FileType::Fifo, 0),
                };
                self.replace(parent, name)?;
                let pfd = self.dir(parent, true)?.expect("created");
                rustix::fs::mknodat(pfd, name, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| self.fail(path, "creating the node", e))?;
                let pfd = self.dir(parent, true)?.expect("created");
                let r = (|| {
                    if let Some((u, g)) = ids {
                        rustix::fs::chownat(pfd, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)?;
                    }
                    rustix::fs::chmodat(pfd, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
                    rustix::fs::utimensat(pfd, name, &ts(mtime), AtFlags::SYMLINK_NOFOLLOW)
                })();
                r.map_err(|e| self.fail(path, "setting owner, mode and times", e))?;
            }
            // pax global headers and other metadata-only entries.
            _ => {}
        }
        Ok(())
    }

    fn missing_link(&self, path: &Path, target: &Path) -> LayerError {
        LayerError::unsafe_entry(
            path.display().to_string(),
            format!(
                "hard link target {} does not exist (links may only point at files already in the root)",
                target.display()
            ),
        )
    }

    /// Removes whatever is at parent/name so a new entry can take its place.
    fn replace(&mut self, parent: &Path, name: &OsStr) -> Result<()> {
        let pfd = self.dir(parent, true)?.expect("created");
        match file_type_at(pfd, name) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => self.remove(parent, name),
            Err(e) => Err(self.fail(&parent.join(name), "inspecting", e)),
        }
    }

    fn remove(&mut self, parent: &Path, name: &OsStr) -> Result<()> {
        let r = match self.dir(parent, false)? {
            Some(pfd) => remove_all(pfd, name),
            None => Ok(()),
        };
        // The cached directory may be the one just removed (or, following
        // symlinks, one reached through it).
        if self.opts.follow_symlinks
            || self
                .cache
                .as_ref()
                .is_some_and(|(p, _, _)| p.starts_with(parent.join(name)))
        {
            self.cache = None;
        }
        r.map_err(|e| self.fail(&parent.join(name), "removing", e))
    }

    fn whiteout(&mut self, target: &Path) -> Result<()> {
        let (parent, name) = (
            target.parent().unwrap_or(Path::new("")),
            target.file_name().unwrap_or_default(),
        );
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                if self.dir(parent, false)?.is_some() {
                    self.remove(parent, name)?;
                }
                self.written.remove(&self.keys.key(target));
            }
            WhiteoutMode::Overlay => {
                self.replace(parent, name)?;
                let pfd = self.dir(parent, true)?.expect("created");
                rustix::fs::mknodat(
                    pfd,
                    name,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| self.fail(target, "creating the overlay whiteout (a 0/0 device; needs root)", e))?;
            }
            // Plain mode classifies no name as a whiteout.
            WhiteoutMode::Plain => return Err(self.fail(target, "whiteout", "whiteouts are plain names here")),
        }
        Ok(())
    }

    fn opaque(&mut self, dir: &Path) -> Result<()> {
        let fd = if dir.as_os_str().is_empty() {
            open_dir_at(&self.root, c".").map_err(|e| self.fail(dir, "opening", e))?
        } else {
            let (parent, name) = (
                dir.parent().unwrap_or(Path::new("")),
                dir.file_name().unwrap_or_default(),
            );
            let create = self.opts.whiteouts == WhiteoutMode::Overlay;
            let Some(pfd) = self.dir(parent, create)? else {
                return Ok(());
            };
            match file_type_at(pfd, name) {
                Ok(Some(FileType::Directory)) => {}
                Ok(None) if create => {
                    rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(0o755))
                        .map_err(|e| self.fail(dir, "creating the directory", e))?;
                    self.written.insert(self.keys.key(dir));
                }
                Ok(None) => return Ok(()),
                Ok(Some(FileType::Symlink)) => {
                    return Err(LayerError::unsafe_entry(
                        dir.join(".wh..wh..opq").display().to_string(),
                        format!("opaque marker inside {}, which is a symlink", dir.display()),
                    ));
                }
                Ok(Some(_)) => return Err(self.fail(dir, "opaque marker", "not a directory")),
                Err(e) => return Err(self.fail(dir, "inspecting", e)),
            }
            let pfd = self.dir(parent, false)?.expect("exists");
            open_dir_at(pfd, name).map_err(|e| self.fail(dir, "opening", e))?
        };
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let xattr = strata_rootless::overlay_opaque_xattr();
                rustix::fs::fsetxattr(&fd, xattr, b"y", XattrFlags::empty()).map_err(|e| {
                    let what = format!("marking the directory opaque ({})", xattr.to_string_lossy());
                    self.fail(dir, &what, e)
                })
            }
            WhiteoutMode::Plain => Err(self.fail(dir, "opaque marker", "whiteouts are plain names here")),
            WhiteoutMode::Apply => {
                let (written, keys) = (&self.written, &self.keys);
                let r = empty_dir(&fd, |n| written.contains(&keys.key(&dir.join(n))));
                self.cache = None;
                r.map_err(|e| self.fail(dir, "emptying the opaque directory", e))
            }
        }
    }

    fn set_meta<Fd: AsFd>(
        &self,
        fd: Fd,
        path: &Path,
        ids: Option<(Uid, Gid)>,
        mode: Option<u32>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        if let Some((u, g)) = ids {
            rustix::fs::fchown(&fd, Some(u), Some(g)).map_err(|e| self.fail(path, "setting the owner", e))?;
        }
        // After chown, which clears set-id bits.
        if let Some(mode) = mode {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| self.fail(path, "setting the mode", e))?;
        }
        for (k, v) in xattrs {
            match rustix::fs::fsetxattr(&fd, OsStr::from_bytes(k), v, XattrFlags::empty()) {
                Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
                Err(e) => return Err(self.fail(path, &format!("setting xattr {}", String::from_utf8_lossy(k)), e)),
            }
        }
        Ok(())
    }

    fn push_dir_time(&mut self, path: &Path, mtime: u64, id: (u64, u64)) {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let (parent, name) = match parent.and_then(|p| self.dir_index.get(&self.keys.key(p))) {
            Some(&i) => (Some(i), path.file_name().unwrap_or_default().as_bytes()),
            None => (None, path.as_os_str().as_bytes()),
        };
        let i = self.dir_times.len() as u32;
        self.dir_times.push(DirTime {
            parent,
            name: name.into(),
            mtime,
            id,
        });
        self.dir_index.insert(self.keys.key(path), i);
    }

    /// The path of `dir_times[i]`.
    fn dir_time_path(&self, mut i: u32) -> PathBuf {
        let mut names = Vec::new();
        loop {
            let d = &self.dir_times[i as usize];
            names.push(OsStr::from_bytes(&d.name));
            match d.parent {
                Some(p) => i = p,
                None => break,
            }
        }
        names.iter().rev().collect()
    }

    fn finish(&mut self) -> Result<()> {
        // The last directory done, open: a deep tree's directories come
        // here deepest first, each the parent of the last, reached through
        // its `..` (checked to be the directory written) rather than from
        // the root (whose path may pass PATH_MAX and costs the whole depth).
        let mut last: Option<(u32, OwnedFd)> = None;
        for i in (0..self.dir_times.len() as u32).rev() {
            let (mtime, id) = {
                let d = &self.dir_times[i as usize];
                (d.mtime, d.id)
            };
            if let Some((j, fd)) = &last
                && self.dir_times[*j as usize].parent == Some(i)
                && let Ok(up) = rustix::fs::openat(
                    fd,
                    c"..",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                && rustix::fs::fstat(&up).is_ok_and(|st| (st.st_dev, st.st_ino) == id)
            {
                rustix::fs::futimens(&up, &ts(mtime))
                    .map_err(|e| self.fail(&self.dir_time_path(i), "setting times", e))?;
                last = Some((i, up));
                continue;
            }
            let path = self.dir_time_path(i);
            let (parent, name) = (
                path.parent().unwrap_or(Path::new("")),
                path.file_name().unwrap_or_default(),
            );
            let Some(pfd) = self.dir(parent, false)? else { continue };
            match rustix::fs::utimensat(pfd, name, &ts(mtime), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(self.fail(&path, "setting times", e)),
            }
            last = open_dir_at(pfd, name)
                .ok()
                .filter(|fd| rustix::fs::fstat(fd).is_ok_and(|st| (st.st_dev, st.st_ino) == id))
                .map(|fd| (i, fd));
        }
        self.dir_times.clear();
        self.dir_index.clear();
        Ok(())
    }
}

/// The process umask, read without changing it (umask(2) would race with
/// other threads): from /proc/self/status, or the common 022.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

/// A numeric header field; an empty one (all NUL or spaces) is 0.
fn numeric(parsed: std::io::Result<u64>, raw: &[u8], path: &Path) -> Result<u64> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(tar_error(e, path)),
    }
}
