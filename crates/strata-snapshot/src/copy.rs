//! The copying driver: flattens layer directories (overlay form) into one
//! tree, applying whiteouts and opaque directories itself. Every operation is
//! relative to an open directory and never follows a symlink, so a symlink in
//! a lower layer cannot redirect a copy out of the root.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags, Stat, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use strata_layer::{TreeVisitor, walk_tree};

const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

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
    apply_dir(&src, &dst, Path::new(""), &dst, &mut links)?;
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

fn apply_dir(
    src: &OwnedFd,
    dst: &OwnedFd,
    rel: &Path,
    root: &OwnedFd,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    for entry in Dir::read_from(src).ctx(|| format!("reading layer dir /{}", rel.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let child_rel = rel.join(OsStr::from_bytes(name.to_bytes()));
        apply_entry(src, dst, name, &child_rel, root, links).ctx(|| format!("/{}", child_rel.display()))?;
    }
    Ok(())
}

fn apply_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &CStr,
    rel: &Path,
    root: &OwnedFd,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let ft = file_type(&st);
    let existing = lstat_at(dst, name)?;
    if ft == FileType::CharacterDevice && st.st_rdev == 0 {
        // Whiteout: the lower path is deleted.
        if let Some(e) = existing {
            remove_entry(dst, name, &e)?;
        }
        return Ok(());
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
        apply_dir(&s, &d, rel, root, links)?;
        copy_meta_fd(&s, &d, &st)?;
        return Ok(());
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
        return Ok(());
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
    Ok(())
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
    matches!(rustix::fs::fgetxattr(fd, OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
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
        if raw.starts_with(b"trusted.overlay.") {
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
