//! `cp` between a container and the host, and `export`. Container paths
//! are resolved inside the container's root (`openat2` with
//! `RESOLVE_IN_ROOT`: `..` and absolute symlinks stay inside), and the
//! copy is a tar stream written with `strata-layer` and unpacked with it,
//! never following a symlink on the way.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use strata_layer::{Compression, UnpackOptions, WhiteoutMode, WriteOptions};

use crate::engine::Containers;
use crate::record::ContainerRecord;

/// One side of `cp`: `CONTAINER:PATH` or a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyTarget {
    Host(PathBuf),
    Container { container: String, path: String },
}

impl CopyTarget {
    pub fn parse(s: &str) -> CopyTarget {
        // A host path with a colon must be written ./a:b (as Docker).
        if !s.starts_with('/')
            && !s.starts_with('.')
            && let Some((c, p)) = s.split_once(':')
            && !c.is_empty()
        {
            return CopyTarget::Container {
                container: c.to_string(),
                path: p.to_string(),
            };
        }
        CopyTarget::Host(PathBuf::from(s))
    }
}

fn plain() -> WriteOptions {
    WriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch: None,
    }
}

/// Opens `path` inside the root `root` as an `O_PATH` fd.
fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    )
}

fn split(path: &str) -> (String, String) {
    let t = path.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((p, n)) => (if p.is_empty() { "/".into() } else { p.into() }, n.into()),
        None => (".".into(), t.into()),
    }
}

impl Containers {
    pub fn copy(&self, src: &CopyTarget, dst: &CopyTarget) -> Result<()> {
        match (src, dst) {
            (CopyTarget::Container { container, path }, CopyTarget::Host(host)) => {
                let rec = self.find(container)?;
                self.with_root(&rec, |root| copy_out(root, path, host))
            }
            (CopyTarget::Host(host), CopyTarget::Container { container, path }) => {
                let rec = self.find(container)?;
                self.with_root(&rec, |root| copy_in(host, root, path))
            }
            _ => Err(Error::CopyBetweenContainers),
        }
    }

    fn with_root<T>(&self, rec: &ContainerRecord, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let (root, mounted_now) = self.mount_root(rec)?;
        let r = f(&root);
        if mounted_now {
            let _ = self.snap.unmount(&root);
        }
        r
    }

    /// `export`: the container's whole filesystem as a tar.
    pub fn export<W: Write>(&self, rec: &ContainerRecord, out: W) -> Result<()> {
        self.with_root(rec, |root| {
            strata_layer::write_dir_layer(root, &plain(), out)?;
            Ok(())
        })
    }
}

fn copy_out(root: &Path, path: &str, host: &Path) -> Result<()> {
    let rootfd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let (parent, name) = split(path);
    let contents_only = path.ends_with("/.");
    let pfd = open_in_root(&rootfd, &parent, OFlags::PATH | OFlags::DIRECTORY)
        .ctx(|| format!("Could not find the file {path} in container"))?;
    let (pfd, name) = if contents_only || name == "." || name.is_empty() {
        (open_in_root(&rootfd, path, OFlags::PATH | OFlags::DIRECTORY)?, None)
    } else {
        rustix::fs::statat(&pfd, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("Could not find the file {path} in container"))?;
        (pfd, Some(name))
    };
    // Where on the host, and under which name.
    let host_is_dir = host.is_dir();
    let (dest_dir, as_name) = match (&name, host_is_dir) {
        (Some(n), true) => (host.to_path_buf(), PathBuf::from(n)),
        (_, _) => {
            if host.as_os_str().to_string_lossy().ends_with('/') && !host_is_dir {
                return Err(Error::NoHostDestination(host.to_path_buf()));
            }
            let parent = host
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(Error::NoHostDestination(parent.to_path_buf()));
            }
            (
                parent.to_path_buf(),
                PathBuf::from(host.file_name().ok_or(Error::InvalidDestination)?),
            )
        }
    };
    let dest_fd = rustix::fs::open(
        &dest_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    stream(&pfd, name.as_deref(), &as_name, dest_fd, &dest_dir)
}

fn copy_in(host: &Path, root: &Path, path: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(host).ctx(|| format!("lstat {}", host.display()))?;
    let rootfd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let host_parent = host
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let host_name = host.file_name().map(|n| n.to_os_string());
    let contents_only = host.as_os_str().to_string_lossy().ends_with("/.");
    let src_parent = rustix::fs::open(
        if contents_only { host } else { host_parent },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dest_is_dir = open_in_root(&rootfd, path, OFlags::PATH | OFlags::DIRECTORY).is_ok();
    let (dest_dir, as_name) = if dest_is_dir && !contents_only {
        (
            path.to_string(),
            PathBuf::from(host_name.clone().ok_or(Error::InvalidSource)?),
        )
    } else if dest_is_dir {
        (path.to_string(), PathBuf::new())
    } else {
        if path.ends_with('/') {
            return Err(Error::NoContainerDestination(path.to_string()));
        }
        if !meta.is_dir() && contents_only {
            return Err(Error::SourceNotADirectory(host.to_path_buf()));
        }
        let (p, n) = split(path);
        (p, PathBuf::from(n))
    };
    let dest_fd = open_in_root(&rootfd, &dest_dir, OFlags::RDONLY | OFlags::DIRECTORY)
        .ctx(|| format!("destination directory {dest_dir} does not exist in the container"))?;
    let name = if contents_only {
        None
    } else {
        host_name.as_deref().map(|n| n.to_string_lossy().into_owned())
    };
    stream(&src_parent, name.as_deref(), &as_name, dest_fd, Path::new(&dest_dir))
}

/// Tars `name` of `src` (or each child of `src` when `None`) as `as_name`
/// and unpacks it into `dest`, through a pipe between two threads.
fn stream(src: &OwnedFd, name: Option<&str>, as_name: &Path, dest: OwnedFd, shown: &Path) -> Result<()> {
    let Some(name) = name else {
        let dir = rustix::fs::openat(
            src,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut children = Vec::new();
        for e in rustix::fs::Dir::read_from(&dir)? {
            let n = e?.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                children.push(n);
            }
        }
        for n in children {
            let d = rustix::io::dup(&dest)?;
            stream(src, Some(&n), &as_name.join(&n), d, shown)?;
        }
        return Ok(());
    };
    let (r, w) = std::io::pipe()?;
    // A copy is no image layer: `.wh.` names are plain files, as in Docker.
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Plain,
        ..UnpackOptions::default()
    };
    let shown = shown.to_path_buf();
    let reader = std::thread::spawn(move || strata_layer::unpack_at(r, dest, &shown, &opts));
    let written = strata_layer::write_entry_at(src, OsStr::new(name), as_name, &plain(), w);
    let unpacked = reader.join().map_err(|_| Error::CopyThreadPanicked)?;
    written?;
    unpacked?;
    Ok(())
}
