//! The copying driver: flattens layer directories (overlay form) into one
//! tree, applying whiteouts and opaque directories itself. Every operation is
//! relative to an open directory and never follows a symlink, so a symlink in
//! a lower layer cannot redirect a copy out of the root.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use strata_layer::{TreeVisitor, walk_tree};

fn open_dir<Fd: AsFd, P: rustix::path::Arg>(dirfd: Fd, path: P) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dirfd,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Applies one layer directory in overlay form (`layer`) on top of the tree
/// at `root`: a 0/0 character device deletes the path below it, a directory
/// with `trusted.overlay.opaque=y` hides everything below it, anything else
/// replaces what was there (directories merge). Ownership, modes, xattrs
/// (except `trusted.overlay.*`), timestamps and hard links within the layer
/// are kept.
pub fn apply_layer_dir(layer: &Path, root: &Path) -> Result<()> {
    let src = open_dir(CWD, layer).ctx(|| format!("opening layer dir {}", layer.display()))?;
    let dst = open_dir(CWD, root).ctx(|| format!("opening root {}", root.display()))?;
    let mut links = HashMap::new();
    apply_dir(&src, &dst, &mut links)?;
    let st = rustix::fs::fstat(&src)?;
    copy_meta_fd(&src, &dst, &st).ctx(|| format!("setting the attributes of {}", root.display()))
}

fn lstat_at<Fd: AsFd>(dirfd: Fd, name: &CStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Applies everything below the layer directory `src` to the root `root`:
/// iterative (the layer is walked with [`walk_tree`]; the root's matching
/// directories are a stack of their own, as bounded: closed ones are opened
/// again through `..`, checked), so a layer of any depth is fine.
fn apply_dir(src: &OwnedFd, root: &OwnedFd, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    struct Applier<'a> {
        root: &'a OwnedFd,
        links: &'a mut HashMap<(u64, u64), PathBuf>,
        /// The root's directories matching the layer's being walked (below
        /// the root): open or closed, device and inode, the layer's status.
        dst: Vec<(Option<OwnedFd>, (u64, u64), Stat)>,
        open: usize,
        /// `dst[..lowest]` are all closed.
        lowest: usize,
    }
    impl TreeVisitor for Applier<'_> {
        type Error = Error;

        fn fail(&self, path: &Path, e: io::Error) -> Error {
            Error::io(format!("reading layer dir /{}", path.display()), e)
        }

        fn entry(&mut self, src: &OwnedFd, name: &CStr, rel: &Path) -> Result<Option<OwnedFd>> {
            let dst = match self.dst.last() {
                Some((fd, _, _)) => fd.as_ref().expect("the deepest directory is open"),
                None => self.root,
            };
            let Some((s, d, st)) =
                apply_entry(src, dst, name, rel, self.root, self.links).ctx(|| format!("/{}", rel.display()))?
            else {
                return Ok(None);
            };
            let id = {
                let dst = rustix::fs::fstat(&d)?;
                (dst.st_dev, dst.st_ino)
            };
            self.dst.push((Some(d), id, st));
            self.open += 1;
            if self.open > strata_layer::MAX_OPEN_DIRS {
                while self.dst[self.lowest].0.is_none() {
                    self.lowest += 1;
                }
                self.dst[self.lowest].0 = None;
                self.lowest += 1;
                self.open -= 1;
            }
            Ok(Some(s))
        }

        fn leave(&mut self, _: &OwnedFd, _: &CStr, s: &OwnedFd, rel: &Path) -> Result<()> {
            let (d, _, st) = self.dst.pop().expect("entered");
            let d = d.expect("the deepest directory is open");
            copy_meta_fd(s, &d, &st).ctx(|| format!("/{}", rel.display()))?;
            if let Some((parent @ None, id, _)) = self.dst.last_mut() {
                let up = open_dir(&d, c"..").ctx(|| format!("/{}", rel.display()))?;
                let st = rustix::fs::fstat(&up)?;
                if (st.st_dev, st.st_ino) != *id {
                    return Err(Error::io(
                        format!("/{}", rel.display()),
                        io::Error::other("the root changed while the layer was being applied"),
                    ));
                }
                *parent = Some(up);
                self.open += 1;
                self.lowest = self.dst.len() - 1;
            }
            self.lowest = self.lowest.min(self.dst.len());
            self.open -= 1;
            Ok(())
        }
    }
    let mut a = Applier {
        root,
        links,
        dst: Vec::new(),
        open: 0,
        lowest: 0,
    };
    walk_tree(src, Path::new(""), false, &mut a)
}

/// Applies the entry `name` of the layer directory `src` to the root's
/// directory `dst`; for a directory, returns it opened in both (and its
/// status) to apply its children and then its attributes.
fn apply_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &CStr,
    rel: &Path,
    root: &OwnedFd,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<Option<(OwnedFd, OwnedFd, Stat)>> {
    let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let ft = file_type(&st);
    let existing = lstat_at(dst, name)?;
    if ft == FileType::CharacterDevice && st.st_rdev == 0 {
        // Whiteout: the lower path is deleted.
        if let Some(e) = existing {
            remove_entry(dst, name, &e)?;
        }
        return Ok(None);
    }
    if ft == FileType::Directory {
        let s = open_dir(src, name)?;
        let opaque = is_opaque(&s);
        match existing {
            Some(e) if file_type(&e) == FileType::Directory => {
                if opaque {
                    clear_dir(&open_dir(dst, name)?, e.st_dev)?;
                }
            }
            Some(e) => {
                remove_entry(dst, name, &e)?;
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
            }
            None => rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?,
        }
        let d = open_dir(dst, name)?;
        return Ok(Some((s, d, st)));
    }
    if let Some(e) = existing {
        remove_entry(dst, name, &e)?;
    }
    let key = (st.st_dev, st.st_ino);
    if st.st_nlink > 1
        && let Some(first) = links.get(&key)
    {
        rustix::fs::linkat(root, first.as_path(), dst, name, AtFlags::empty())
            .ctx(|| format!("hard-linking to /{}", first.display()))?;
        return Ok(None);
    }
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    match ft {
        FileType::RegularFile => {
            let s = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let d = rustix::fs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut sf = File::from(s);
            let mut df = File::from(d);
            io::copy(&mut sf, &mut df).ctx(|| "copying file contents")?;
            copy_meta_fd(&sf, &df, &st)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
            rustix::fs::chownat(
                dst,
                name,
                Some(rustix::fs::Uid::from_raw(st.st_uid)),
                Some(rustix::fs::Gid::from_raw(st.st_gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            rustix::fs::utimensat(dst, name, &timestamps(&st), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice | FileType::Socket => {
            rustix::fs::mknodat(dst, name, ft, mode, st.st_rdev)?;
            rustix::fs::chownat(
                dst,
                name,
                Some(rustix::fs::Uid::from_raw(st.st_uid)),
                Some(rustix::fs::Gid::from_raw(st.st_gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            rustix::fs::chmodat(dst, name, mode, AtFlags::empty())?;
            rustix::fs::utimensat(dst, name, &timestamps(&st), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        other => return Err(Error::UnsupportedFileType(format!("{other:?}"))),
    }
    if st.st_nlink > 1 {
        links.insert(key, rel.to_path_buf());
    }
    Ok(None)
}

fn timestamps(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

fn is_opaque<Fd: AsFd>(fd: Fd) -> bool {
    let mut buf = [0u8; 8];
    matches!(rustix::fs::fgetxattr(fd, strata_rootless::overlay_opaque_xattr(), &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// Owner, then xattrs (a chown clears `security.capability`), then mode
/// (a chown clears set-id bits), then times.
fn copy_meta_fd<S: AsFd, D: AsFd>(src: S, dst: D, st: &Stat) -> Result<()> {
    rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )
    .ctx(|| "chown")?;
    copy_xattrs(&src, &dst)?;
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777)).ctx(|| "chmod")?;
    rustix::fs::futimens(&dst, &timestamps(st)).ctx(|| "setting times")?;
    Ok(())
}

fn copy_xattrs<S: AsFd, D: AsFd>(src: S, dst: D) -> Result<()> {
    let size = match rustix::fs::flistxattr(&src, &mut [0u8; 0][..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(Error::io("listing xattrs", e)),
    };
    if size == 0 {
        return Ok(());
    }
    let mut names = vec![0u8; size];
    let n = rustix::fs::flistxattr(&src, &mut names[..]).ctx(|| "listing xattrs")?;
    for raw in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if strata_rootless::is_overlay_xattr(raw) {
            continue;
        }
        let name = std::ffi::CString::new(raw).expect("split on NUL");
        let len = rustix::fs::fgetxattr(&src, name.as_c_str(), &mut [0u8; 0][..])
            .ctx(|| format!("reading xattr {}", name.to_string_lossy()))?;
        let mut value = vec![0u8; len];
        let len = rustix::fs::fgetxattr(&src, name.as_c_str(), &mut value[..])
            .ctx(|| format!("reading xattr {}", name.to_string_lossy()))?;
        rustix::fs::fsetxattr(&dst, name.as_c_str(), &value[..len], XattrFlags::empty())
            .ctx(|| format!("setting xattr {}", name.to_string_lossy()))?;
    }
    Ok(())
}

/// Removes one entry of `dir` (recursively for a directory).
fn remove_entry(dir: &OwnedFd, name: &CStr, st: &Stat) -> Result<()> {
    if file_type(st) == FileType::Directory {
        let d = open_dir(dir, name)?;
        let parent_dev = rustix::fs::fstat(dir)?.st_dev;
        if st.st_dev != parent_dev {
            return Err(Error::MountPointInTree(name.to_string_lossy().into_owned()));
        }
        clear_dir(&d, st.st_dev)?;
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Empties a directory, never crossing into another filesystem: at any
/// depth (iterative, a bounded number of open directories), every entry
/// removed relative to its open parent.
fn clear_dir(dir: &OwnedFd, dev: u64) -> Result<()> {
    struct Remover {
        dev: u64,
    }
    impl TreeVisitor for Remover {
        type Error = Error;

        fn fail(&self, path: &Path, e: io::Error) -> Error {
            Error::io(format!("removing {}", path.display()), e)
        }

        fn entry(&mut self, parent: &OwnedFd, name: &CStr, path: &Path) -> Result<Option<OwnedFd>> {
            let Some(st) = lstat_at(parent, name).map_err(|e| self.fail(path, e))? else {
                return Ok(None);
            };
            if file_type(&st) != FileType::Directory {
                rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| self.fail(path, e.into()))?;
                return Ok(None);
            }
            if st.st_dev != self.dev {
                return Err(Error::MountPointInTree(path.display().to_string()));
            }
            Ok(Some(open_dir(parent, name).map_err(|e| self.fail(path, e))?))
        }

        fn leave(&mut self, parent: &OwnedFd, name: &CStr, _: &OwnedFd, path: &Path) -> Result<()> {
            rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| self.fail(path, e.into()))
        }
    }
    walk_tree(dir, Path::new(""), false, &mut Remover { dev })
}

/// Removes a whole tree at `path` (a file or directory); fails rather than
/// descend into a mount point.
pub(crate) fn remove_tree_at(path: &Path) -> Result<()> {
    let st = match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if file_type(&st) != FileType::Directory {
        std::fs::remove_file(path)?;
        return Ok(());
    }
    let d = open_dir(CWD, path)?;
    clear_dir(&d, st.st_dev)?;
    drop(d);
    std::fs::remove_dir(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` of `d` below `top`, each holding a file `f`; the deepest
    /// directory gets `mode`.
    fn deep(top: &Path, levels: usize, mode: u32) {
        std::fs::create_dir_all(top).unwrap();
        let mut fd = open_dir(CWD, top).unwrap();
        for _ in 0..levels {
            rustix::fs::mkdirat(&fd, c"d", Mode::from_raw_mode(0o755)).unwrap();
            drop(rustix::fs::openat(&fd, c"f", OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::RUSR).unwrap());
            fd = open_dir(&fd, c"d").unwrap();
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).unwrap();
    }

    fn depth(top: &Path) -> (usize, u32) {
        let mut fd = open_dir(CWD, top).unwrap();
        let mut n = 0;
        while let Ok(next) = open_dir(&fd, c"d") {
            assert!(lstat_at(&fd, c"f").unwrap().is_some());
            fd = next;
            n += 1;
        }
        (n, rustix::fs::fstat(&fd).unwrap().st_mode & 0o7777)
    }

    #[test]
    fn deep_layers_apply_and_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let levels = strata_layer::MAX_OPEN_DIRS * 4;
        deep(&t.path().join("layer"), levels, 0o711);
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        apply_layer_dir(&t.path().join("layer"), &root).unwrap();
        assert_eq!(depth(&root), (levels, 0o711));
        // Over a tree already there: merged, attributes set again.
        deep(&t.path().join("layer2"), levels, 0o700);
        apply_layer_dir(&t.path().join("layer2"), &root).unwrap();
        assert_eq!(depth(&root), (levels, 0o700));
        for d in ["layer", "layer2", "root"] {
            remove_tree_at(&t.path().join(d)).unwrap();
            assert!(!t.path().join(d).exists());
        }
    }
}
