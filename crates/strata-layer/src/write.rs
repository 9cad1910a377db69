//! Writing a layer tar from a directory tree: sorted entries, normalized
//! headers (numeric owners, no user names, times clamped to
//! `SOURCE_DATE_EPOCH`), hashed and compressed in the same pass.
//!
//! The walk is relative to open directories and never follows a symlink, so
//! a container that swaps a file for a symlink cannot make a host file
//! appear in its layer.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};
use strata_oci::{Algorithm, HashingWriter};

use crate::compress::Encoder;
use crate::unpack::{below, descend, open_beneath, open_dir_at, same_path};
use crate::walk::{TreeVisitor, walk_tree};
use crate::{LayerDigests, LayerError, Result, WriteOptions};

/// Writes the tree under `dir` as a layer (every file as it is).
pub fn write_dir_layer<W: Write>(dir: &Path, opts: &WriteOptions, out: W) -> Result<LayerDigests> {
    write_tree(dir, opts, out, false)
}

/// Writes an overlayfs upper directory as a layer: 0/0 character devices
/// become `.wh.NAME` whiteouts and opaque directories get `.wh..wh..opq`.
pub fn write_overlay_upper_layer<W: Write>(upper: &Path, opts: &WriteOptions, out: W) -> Result<LayerDigests> {
    write_tree(upper, opts, out, true)
}

/// [`write_overlay_upper_layer`] for an upper dir of fuse-overlayfs, which
/// marks every directory it creates opaque: a marker is written only for a
/// directory some lower dir (`lowers`) has, the others hide nothing.
pub fn write_fuse_overlay_upper_layer<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    opts: &WriteOptions,
    out: W,
) -> Result<LayerDigests> {
    let root = open_dir_at(CWD, upper).map_err(|e| LayerError::io(format!("opening {}", upper.display()), e))?;
    let mut lower_fds = Vec::with_capacity(lowers.len());
    for l in lowers {
        lower_fds.push(open_dir_at(CWD, l).map_err(|e| LayerError::io(format!("opening {}", l.display()), e))?);
    }
    finish_tree_with(opts, out, true, upper, Some(lower_fds), |w| {
        w.walk(&root, Path::new(""))
    })
}

/// Whether `rel` exists in one of `lowers`, looked up beneath each without
/// following any symlink.
fn in_any_lower(lowers: &[OwnedFd], rel: &Path) -> bool {
    use rustix::fs::ResolveFlags;
    lowers.iter().any(|l| {
        rustix::fs::openat2(
            l,
            rel,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .is_ok()
    })
}

/// Writes one entry of the directory `parent` (and, for a directory,
/// everything below it) named `as_name` in the tar: what `cp` copies out of
/// a container root, opened without following symlinks.
pub fn write_entry_at<W: Write>(
    parent: &OwnedFd,
    name: &OsStr,
    as_name: &Path,
    opts: &WriteOptions,
    out: W,
) -> Result<LayerDigests> {
    let top = PathBuf::from(name);
    finish_tree(opts, out, false, &top, |w| {
        let cname = CString::new(name.as_bytes()).map_err(|_| w.err(as_name, std::io::Error::other("NUL in name")))?;
        let st =
            rustix::fs::statat(parent, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| w.err(as_name, e))?;
        match w.entry(parent, &cname, as_name, &st)? {
            Some(dir) => w.walk(&dir, as_name),
            None => Ok(()),
        }
    })
}

/// One entry of a change set: a path under the root, written alone (a
/// directory without its children), or a whiteout for a deleted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    Entry(PathBuf),
    Whiteout(PathBuf),
}

/// Writes exactly the listed entries of the tree under `root`, in the
/// order given (parents before children), as a layer: what a container's
/// changes become when there is no overlay upper directory to read.
pub fn write_selected<W: Write>(
    root: &Path,
    entries: &[Selected],
    opts: &WriteOptions,
    out: W,
) -> Result<LayerDigests> {
    let rootfd = open_dir_at(CWD, root).map_err(|e| LayerError::io(format!("opening {}", root.display()), e))?;
    finish_tree(opts, out, false, root, |w| {
        w.recurse = false;
        // The previous entry's directory: a deep tree's next entry is most
        // often below it, reached from there (from the root, a path past
        // PATH_MAX is opened a component at a time: the whole depth).
        let mut last: Option<(PathBuf, OwnedFd)> = None;
        for sel in entries {
            match sel {
                Selected::Entry(p) => {
                    let parent = p.parent().unwrap_or(Path::new(""));
                    let name = p
                        .file_name()
                        .ok_or_else(|| w.err(p, std::io::Error::other("empty path")))?;
                    let near = match &last {
                        Some((lp, fd)) if same_path(lp, parent) => Some(rustix::io::dup(fd)),
                        Some((lp, fd)) => below(parent, lp).map(|rest| descend(fd, rest)),
                        None => None,
                    };
                    let pfd = match near {
                        Some(Ok(fd)) => fd,
                        _ => open_beneath(&rootfd, parent).map_err(|e| w.err(p, e))?,
                    };
                    last = rustix::io::dup(&pfd).ok().map(|fd| (parent.to_path_buf(), fd));
                    let cname = CString::new(name.as_bytes()).map_err(|_| w.err(p, std::io::Error::other("NUL")))?;
                    let st = rustix::fs::statat(&pfd, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| w.err(p, e))?;
                    w.entry(&pfd, &cname, p, &st)?;
                }
                Selected::Whiteout(p) => {
                    let mut wh = b".wh.".to_vec();
                    wh.extend_from_slice(p.file_name().unwrap_or_default().as_bytes());
                    let path = p.parent().unwrap_or(Path::new("")).join(OsStr::from_bytes(&wh));
                    let mut h = tar::Header::new_ustar();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0);
                    h.set_uid(0);
                    h.set_gid(0);
                    h.set_mtime(w.epoch.unwrap_or(0).max(0) as u64);
                    h.set_size(0);
                    w.append(&mut h, path.as_os_str().as_bytes(), None, &[], std::io::empty())?;
                }
            }
        }
        Ok(())
    })
}

fn write_tree<W: Write>(dir: &Path, opts: &WriteOptions, out: W, overlay: bool) -> Result<LayerDigests> {
    let root = open_dir_at(CWD, dir).map_err(|e| LayerError::io(format!("opening {}", dir.display()), e))?;
    finish_tree(opts, out, overlay, dir, |w| w.walk(&root, Path::new("")))
}

fn finish_tree<W: Write>(
    opts: &WriteOptions,
    out: W,
    overlay: bool,
    top: &Path,
    body: impl FnOnce(&mut TreeWriter<HashingWriter<Encoder<W>>>) -> Result<()>,
) -> Result<LayerDigests> {
    finish_tree_with(opts, out, overlay, top, None, body)
}

fn finish_tree_with<W: Write>(
    opts: &WriteOptions,
    out: W,
    overlay: bool,
    top: &Path,
    opaque_only_over: Option<Vec<OwnedFd>>,
    body: impl FnOnce(&mut TreeWriter<HashingWriter<Encoder<W>>>) -> Result<()>,
) -> Result<LayerDigests> {
    let encoder = Encoder::new_unhashed_plain(out, opts.compression, opts.level)?;
    let hashing = HashingWriter::new(encoder, Algorithm::Sha256);
    let mut w = TreeWriter {
        builder: tar::Builder::new(hashing),
        links: HashMap::new(),
        epoch: opts.source_date_epoch,
        overlay,
        top: top.to_path_buf(),
        recurse: true,
        opaque_only_over,
    };
    body(&mut w)?;
    let hashing = w
        .builder
        .into_inner()
        .map_err(|e| LayerError::io("finishing the layer tar", e))?;
    let (encoder, diff_id, diff_size) = hashing.finish();
    encoder.finish_layer(diff_id, diff_size)
}

struct TreeWriter<W: Write> {
    builder: tar::Builder<W>,
    /// First path seen for each multiply-linked inode.
    links: HashMap<(u64, u64), PathBuf>,
    epoch: Option<i64>,
    overlay: bool,
    top: PathBuf,
    /// Whether a directory entry brings its children along.
    recurse: bool,
    /// fuse-overlayfs's upper: the lower dirs an opaque marker must hide
    /// something of (see [`write_fuse_overlay_upper_layer`]).
    opaque_only_over: Option<Vec<OwnedFd>>,
}

impl<W: Write> TreeWriter<W> {
    fn err(&self, rel: &Path, e: impl Into<std::io::Error>) -> LayerError {
        LayerError::io(format!("reading {}", self.top.join(rel).display()), e.into())
    }

    /// Everything below the open directory `dir` (at `rel`), in byte order,
    /// parents first: iterative, so any depth is fine.
    fn walk(&mut self, dir: &OwnedFd, rel: &Path) -> Result<()> {
        walk_tree(dir, rel, true, self)
    }

    /// Writes one entry; returns a directory opened to walk next (when
    /// children come along), for [`TreeWriter::walk`].
    fn entry(&mut self, dirfd: &OwnedFd, name: &CStr, path: &Path, st: &Stat) -> Result<Option<OwnedFd>> {
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Directory {
            let fd = open_dir_at(dirfd, name).map_err(|e| self.err(path, e))?;
            let xattrs = read_xattrs(&fd);
            let opaque = self.overlay
                && is_opaque(&fd)
                && self.opaque_only_over.as_deref().is_none_or(|l| in_any_lower(l, path));
            let mut h = self.header(st, tar::EntryType::Directory);
            let mut dname = path.as_os_str().as_bytes().to_vec();
            dname.push(b'/');
            self.append(&mut h, &dname, None, &xattrs, std::io::empty())?;
            if opaque {
                // As Docker writes it: the directory's permission bits.
                let mut h = self.header(st, tar::EntryType::Regular);
                h.set_mode(st.st_mode & 0o777);
                let marker = path.join(".wh..wh..opq");
                self.append(&mut h, marker.as_os_str().as_bytes(), None, &[], std::io::empty())?;
            }
            return Ok(self.recurse.then_some(fd));
        }
        self.leaf(dirfd, name, path, st, kind).map(|()| None)
    }

    /// Writes an entry that is not a directory.
    fn leaf(&mut self, dirfd: &OwnedFd, name: &CStr, path: &Path, st: &Stat, kind: FileType) -> Result<()> {
        if self.overlay && strata_rootless::is_fuse_overlay_marker(dirfd, name.to_bytes()) {
            return Ok(());
        }
        match kind {
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = self.header(st, tar::EntryType::Link);
                        return self.append(
                            &mut h,
                            path.as_os_str().as_bytes(),
                            Some(first.as_os_str().as_bytes()),
                            &[],
                            std::io::empty(),
                        );
                    }
                    self.links.insert(key, path.to_path_buf());
                }
                let fd = rustix::fs::openat(
                    dirfd,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.err(path, e))?;
                let xattrs = read_xattrs(&fd);
                let file = File::from(fd);
                let mut h = self.header(st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                let size = st.st_size as u64;
                let mut counted = CountingReader {
                    inner: file.take(size),
                    n: 0,
                };
                self.append(&mut h, path.as_os_str().as_bytes(), None, &xattrs, &mut counted)?;
                if counted.n != size {
                    return Err(self.err(path, std::io::Error::other("the file shrank while it was being read")));
                }
                Ok(())
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dirfd, name, Vec::new()).map_err(|e| self.err(path, e))?;
                let mut h = self.header(st, tar::EntryType::Symlink);
                self.append(
                    &mut h,
                    path.as_os_str().as_bytes(),
                    Some(target.as_bytes()),
                    &[],
                    std::io::empty(),
                )
            }
            FileType::CharacterDevice if self.overlay && st.st_rdev == 0 => {
                // Docker and podman keep the whiteout device's permission bits (0).
                let mut h = self.header(st, tar::EntryType::Regular);
                h.set_mode(st.st_mode & 0o777);
                let mut wh = b".wh.".to_vec();
                wh.extend_from_slice(name.to_bytes());
                let p = path.parent().unwrap_or(Path::new("")).join(OsStr::from_bytes(&wh));
                self.append(&mut h, p.as_os_str().as_bytes(), None, &[], std::io::empty())
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let t = if kind == FileType::CharacterDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = self.header(st, t);
                h.set_device_major(rustix::fs::major(st.st_rdev))
                    .map_err(|e| self.err(path, e))?;
                h.set_device_minor(rustix::fs::minor(st.st_rdev))
                    .map_err(|e| self.err(path, e))?;
                self.append(&mut h, path.as_os_str().as_bytes(), None, &[], std::io::empty())
            }
            FileType::Fifo => {
                let mut h = self.header(st, tar::EntryType::Fifo);
                self.append(&mut h, path.as_os_str().as_bytes(), None, &[], std::io::empty())
            }
            // Sockets (and anything else) cannot be carried in a layer.
            _ => Ok(()),
        }
    }

    fn header(&self, st: &Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        let mut mtime = st.st_mtime.max(0);
        if let Some(e) = self.epoch {
            mtime = mtime.min(e.max(0));
        }
        h.set_mtime(mtime as u64);
        h.set_size(0);
        h
    }

    fn append(
        &mut self,
        h: &mut tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
        data: impl Read,
    ) -> Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if !set_ustar_name(h, name) {
            pax.push(("path".into(), name.to_vec()));
        }
        if let Some(l) = link {
            if l.len() <= 100 {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
            } else {
                h.as_old_mut().linkname.copy_from_slice(&l[..100]);
                pax.push(("linkpath".into(), l.to_vec()));
            }
        }
        for (k, v) in xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        let io_err = |e| LayerError::io("writing the layer tar", e);
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io_err)?;
        }
        h.set_cksum();
        self.builder.append(h, data).map_err(io_err)
    }
}

/// Puts a name in the ustar name/prefix fields; false when it does not fit.
fn set_ustar_name(h: &mut tar::Header, name: &[u8]) -> bool {
    let u = h.as_ustar_mut().expect("ustar header");
    if name.len() <= 100 {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    let fits = |i: usize| i <= 155 && name.len() - i - 1 <= 100 && name.len() - i - 1 > 0;
    if let Some(i) = (0..name.len()).filter(|&i| name[i] == b'/').find(|&i| fits(i)) {
        u.prefix[..i].copy_from_slice(&name[..i]);
        let rest = &name[i + 1..];
        u.name[..rest.len()].copy_from_slice(rest);
        return true;
    }
    u.name.copy_from_slice(&name[..100]);
    false
}

impl<W: Write> TreeVisitor for TreeWriter<W> {
    type Error = LayerError;

    fn fail(&self, path: &Path, e: std::io::Error) -> LayerError {
        self.err(path, e)
    }

    fn entry(&mut self, parent: &OwnedFd, name: &CStr, path: &Path) -> Result<Option<OwnedFd>> {
        let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Listed but not there: an overlay whiteout in a directory that
            // only one layer has (the kernel lists it and hides it from
            // lookups), or an entry removed meanwhile. Not in the tree.
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.err(path, std::io::Error::from(e))),
        };
        TreeWriter::entry(self, parent, name, path, &st)
    }
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn is_opaque(fd: &OwnedFd) -> bool {
    strata_rootless::is_opaque_dir(fd)
}

/// Extended attributes worth carrying: not overlay bookkeeping and not the
/// host's SELinux labels.
fn read_xattrs(fd: &OwnedFd) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::flistxattr(fd, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for raw in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else { continue };
        if strata_rootless::is_overlay_xattr(raw) || name == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::fgetxattr(fd, name, &mut value) {
            value.truncate(len);
            out.push((name.to_string(), value));
        }
    }
    out.sort();
    out
}
