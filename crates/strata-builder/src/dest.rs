//! Writing into a build step's root (a mounted snapshot). Every path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` (or [`DestRoot::resolve`]), so
//! symlinks in the image are followed as they would be inside the container
//! (an absolute link target starts at the root) and nothing outside the
//! root can be reached; new entries are created relative to an open parent
//! directory, never through a link.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};

/// Owner, mode and time of something written.
#[derive(Debug, Clone, Copy)]
pub struct Attrs {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: (i64, i64),
}

pub struct DestRoot {
    fd: OwnedFd,
    shown: PathBuf,
}

fn split_parent(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", rel),
    }
}

fn times(mtime: (i64, i64)) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.0,
        tv_nsec: mtime.1 as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl DestRoot {
    pub fn open(path: &Path) -> Result<DestRoot> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", path.display()))?;
        Ok(DestRoot {
            fd,
            shown: path.to_path_buf(),
        })
    }

    fn open_in_root(&self, rel: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
        let path = if rel.is_empty() { "." } else { rel };
        Ok(rustix::fs::openat2(
            &self.fd,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    /// `rel` with every symlink on the way followed inside the root, the
    /// last component's too, dangling ones to where their target would be
    /// (as BuildKit resolves a COPY destination: `/link/` where `/link ->
    /// ../tmp/target` is `tmp/target`); the result has no symlink on its way.
    pub fn resolve(&self, rel: &str) -> Result<String> {
        match strata_layer::resolve_in_root(&self.fd, Path::new(rel)) {
            Ok(p) => Ok(p.to_string_lossy().into_owned()),
            Err(rustix::io::Errno::LOOP) => Err(Error::SymlinkLoop(format!("/{rel}"))),
            Err(e) => Err(e).ctx(|| format!("resolving /{rel} in the build root")),
        }
    }

    /// Whether something other than a directory is at `rel` (its last
    /// component not followed): a directory copied there would not fit.
    pub fn non_dir_at(&self, rel: &str) -> bool {
        let (parent, name) = split_parent(rel);
        if name.is_empty() {
            return false;
        }
        let Ok(pfd) = self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) else {
            return false;
        };
        rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) != FileType::Directory)
    }

    /// Whether `rel` is a directory (symlinks followed inside the root).
    pub fn is_dir(&self, rel: &str) -> bool {
        self.open_in_root(rel, OFlags::PATH | OFlags::DIRECTORY).is_ok()
    }

    /// Opens the directory `rel`, creating it and its missing parents with
    /// `attrs` (the time of new directories is left as is).
    pub fn ensure_dir(&self, rel: &str, attrs: &Attrs) -> Result<OwnedFd> {
        match self.open_in_root(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(Error::FileInTheWay(rel.to_string())),
            Err(e) => return Err(e).ctx(|| format!("opening /{rel} in the build root")),
        }
        if rel.is_empty() {
            return Err(Error::BuildRootGone(self.shown.clone()));
        }
        let (parent, name) = split_parent(rel);
        let pfd = self.ensure_dir(parent, attrs)?;
        let created = match rustix::fs::mkdirat(&pfd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(rustix::io::Errno::EXIST) => false,
            Err(e) => return Err(e).ctx(|| format!("mkdir /{rel}")),
        };
        let fd = rustix::fs::openat(
            &pfd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("mkdir /{rel}: not a directory"))?;
        if created {
            strata_rootless::tolerate_chown(rustix::fs::fchown(
                &fd,
                Some(Uid::from_raw(attrs.uid)),
                Some(Gid::from_raw(attrs.gid)),
            ))
            .ctx(|| format!("chown /{rel}"))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(attrs.mode)).ctx(|| format!("chmod /{rel}"))?;
        }
        Ok(fd)
    }

    /// Makes room for a new non-directory entry `name` in `parent`.
    fn clear_for(&self, pfd: &OwnedFd, name: &str, rel: &str) -> Result<()> {
        match rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(Error::ReplaceDirectory(rel.to_string()))
            }
            Ok(_) => rustix::fs::unlinkat(pfd, name, AtFlags::empty()).ctx(|| format!("removing /{rel}")),
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("stat /{rel}")),
        }
    }

    /// Writes a regular file with `data`; missing parents get `parents`.
    pub fn write_file(&self, rel: &str, data: &mut dyn Read, attrs: &Attrs, parents: &Attrs) -> Result<()> {
        let (parent, name) = split_parent(rel);
        if name.is_empty() {
            return Err(Error::FileAtRoot);
        }
        let pfd = self.ensure_dir(parent, parents)?;
        self.clear_for(&pfd, name, rel)?;
        let fd = rustix::fs::openat(
            &pfd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .ctx(|| format!("creating /{rel}"))?;
        let mut f = File::from(fd);
        std::io::copy(data, &mut f).ctx(|| format!("writing /{rel}"))?;
        strata_rootless::tolerate_chown(rustix::fs::fchown(
            &f,
            Some(Uid::from_raw(attrs.uid)),
            Some(Gid::from_raw(attrs.gid)),
        ))
        .ctx(|| format!("chown /{rel}"))?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(attrs.mode)).ctx(|| format!("chmod /{rel}"))?;
        rustix::fs::futimens(&f, &times(attrs.mtime)).ctx(|| format!("setting the time of /{rel}"))?;
        Ok(())
    }

    /// Creates a symlink (replacing a non-directory).
    pub fn write_symlink(&self, rel: &str, target: &str, attrs: &Attrs, parents: &Attrs) -> Result<()> {
        let (parent, name) = split_parent(rel);
        let pfd = self.ensure_dir(parent, parents)?;
        self.clear_for(&pfd, name, rel)?;
        rustix::fs::symlinkat(target, &pfd, name).ctx(|| format!("creating the symlink /{rel}"))?;
        strata_rootless::tolerate_chown(rustix::fs::chownat(
            &pfd,
            name,
            Some(Uid::from_raw(attrs.uid)),
            Some(Gid::from_raw(attrs.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ))
        .ctx(|| format!("chown /{rel}"))?;
        rustix::fs::utimensat(&pfd, name, &times(attrs.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("setting the time of /{rel}"))?;
        Ok(())
    }

    /// Makes `rel` a hard link of the file `existing` (written earlier by
    /// the same copy), replacing a non-directory; false when the file has
    /// as many links as its filesystem allows (the caller copies it then).
    pub fn write_hardlink(&self, rel: &str, existing: &str, parents: &Attrs) -> Result<bool> {
        let (parent, name) = split_parent(rel);
        let (old_parent, old_name) = split_parent(existing);
        let pfd = self.ensure_dir(parent, parents)?;
        let ofd = self
            .open_in_root(old_parent, OFlags::PATH | OFlags::DIRECTORY)
            .ctx(|| format!("opening /{old_parent}"))?;
        self.clear_for(&pfd, name, rel)?;
        match rustix::fs::linkat(&ofd, old_name, &pfd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::MLINK) => Ok(false),
            Err(e) => Err(e).ctx(|| format!("linking /{rel} to /{existing}")),
        }
    }

    /// Creates (or takes over) a directory copied from a source: owner and mode set.
    pub fn write_dir(&self, rel: &str, attrs: &Attrs, parents: &Attrs) -> Result<()> {
        let fd = self.ensure_dir(rel, parents)?;
        strata_rootless::tolerate_chown(rustix::fs::fchown(
            &fd,
            Some(Uid::from_raw(attrs.uid)),
            Some(Gid::from_raw(attrs.gid)),
        ))
        .ctx(|| format!("chown /{rel}"))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(attrs.mode)).ctx(|| format!("chmod /{rel}"))?;
        Ok(())
    }

    /// Sets a directory's times (after its content was written).
    pub fn set_dir_time(&self, rel: &str, mtime: (i64, i64)) -> Result<()> {
        let fd = self
            .open_in_root(rel, OFlags::RDONLY | OFlags::DIRECTORY)
            .ctx(|| format!("opening /{rel}"))?;
        rustix::fs::futimens(&fd, &times(mtime)).ctx(|| format!("setting the time of /{rel}"))?;
        Ok(())
    }
}
