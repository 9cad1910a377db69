//! Iterative walks of directory trees of any depth, holding a bounded
//! number of directories open.
//!
//! A tree made inside a container may be tens of thousands of levels deep:
//! a recursive walk overflows the stack, and one that keeps each level's
//! directory open runs out of file descriptors. [`walk_tree`] keeps an
//! explicit stack of directories (each one's remaining names), at most
//! [`MAX_OPEN_DIRS`] of them open: the oldest are closed as it goes down,
//! and a closed directory is opened again on the way back up through its
//! child's `..`, checked to be the very directory it left (device and
//! inode), so a tree changed meanwhile is an error and never a walk
//! somewhere else. Every entry is opened relative to its parent without
//! following symlinks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Dir, Mode, OFlags};

/// How many directories a walk holds open at most.
pub const MAX_OPEN_DIRS: usize = 64;

/// What a walk does at each entry.
pub trait TreeVisitor {
    type Error;

    /// An error reading the directory at `path`.
    fn fail(&self, path: &Path, e: io::Error) -> Self::Error;

    /// The entry `name` of the directory `parent`, at `path` (relative to
    /// the walk's top, prefixed as given). Returns the entry opened as a
    /// directory to walk its children next, or None.
    fn entry(&mut self, parent: &OwnedFd, name: &CStr, path: &Path) -> Result<Option<OwnedFd>, Self::Error>;

    /// After the children of `dir` (entry `name` of `parent`, at `path`):
    /// called for every directory [`TreeVisitor::entry`] descended into.
    fn leave(&mut self, parent: &OwnedFd, name: &CStr, dir: &OwnedFd, path: &Path) -> Result<(), Self::Error> {
        let _ = (parent, name, dir, path);
        Ok(())
    }
}

struct Frame {
    fd: Option<OwnedFd>,
    /// Device and inode, to recognize the directory when it is opened again.
    id: (u64, u64),
    name: CString,
    /// Names still to visit, the next last.
    names: Vec<CString>,
}

/// The names in a directory but `.` and `..`, in byte order when `sorted`
/// (else as the directory lists them); returned in reverse, the first last.
fn names_of(fd: &OwnedFd, sorted: bool) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for ent in Dir::read_from(fd)? {
        let ent = ent?;
        let n = ent.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    if sorted {
        names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    } else {
        names.reverse();
    }
    Ok(names)
}

fn id_of(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Walks everything below the directory `top` (shown as `top_path`),
/// parents before children, each directory's entries in byte order when
/// `sorted`. Depth costs neither stack nor more than [`MAX_OPEN_DIRS`]
/// open directories.
pub fn walk_tree<V: TreeVisitor>(top: &OwnedFd, top_path: &Path, sorted: bool, v: &mut V) -> Result<(), V::Error> {
    walk_tree_bounded(top, top_path, sorted, MAX_OPEN_DIRS, v)
}

pub(crate) fn walk_tree_bounded<V: TreeVisitor>(
    top: &OwnedFd,
    top_path: &Path,
    sorted: bool,
    max_open: usize,
    v: &mut V,
) -> Result<(), V::Error> {
    let max_open = max_open.max(2);
    let top_names = names_of(top, sorted).map_err(|e| v.fail(top_path, e))?;
    let mut top_names = top_names;
    // frames[0] stands for `top` (borrowed, always open); the rest own theirs.
    let mut frames: Vec<Frame> = Vec::new();
    // frames[..lowest] are all closed.
    let mut lowest = 0usize;
    let mut open = 0usize;
    // The path of the deepest directory (one buffer: a path per level
    // would hold the square of the depth in memory).
    let mut cur = top_path.to_path_buf();
    loop {
        let next = match frames.last_mut() {
            Some(f) => f.names.pop(),
            None => top_names.pop(),
        };
        if let Some(name) = next {
            let parent = match frames.last() {
                Some(f) => f.fd.as_ref().expect("the deepest directory is open"),
                None => top,
            };
            let path = cur.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
            let Some(child) = v.entry(parent, &name, &path)? else {
                continue;
            };
            let id = id_of(&child).map_err(|e| v.fail(&path, e))?;
            let names = names_of(&child, sorted).map_err(|e| v.fail(&path, e))?;
            frames.push(Frame {
                fd: Some(child),
                id,
                name,
                names,
            });
            cur = path;
            open += 1;
            if open > max_open {
                while frames[lowest].fd.is_none() {
                    lowest += 1;
                }
                frames[lowest].fd = None;
                open -= 1;
                lowest += 1;
            }
            continue;
        }
        let Some(done) = frames.pop() else { return Ok(()) };
        let dir = done.fd.expect("the deepest directory is open");
        let path = cur.clone();
        cur.pop();
        if let Some(parent) = frames.last_mut()
            && parent.fd.is_none()
        {
            let fd = rustix::fs::openat(
                &dir,
                c"..",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
            .map_err(|e| v.fail(&cur, e))?;
            if id_of(&fd).map_err(|e| v.fail(&cur, e))? != parent.id {
                let e = io::Error::other("the directory was moved while it was being read");
                return Err(v.fail(&cur, e));
            }
            parent.fd = Some(fd);
            open += 1;
            lowest = frames.len() - 1;
        }
        lowest = lowest.min(frames.len());
        let parent = match frames.last() {
            Some(f) => f.fd.as_ref().expect("opened again above"),
            None => top,
        };
        v.leave(parent, &done.name, &dir, &path)?;
        drop(dir);
        open -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{AtFlags, CWD};
    use std::path::PathBuf;

    struct Record {
        seen: Vec<String>,
        max_fds: usize,
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    impl TreeVisitor for Record {
        type Error = io::Error;
        fn fail(&self, _: &Path, e: io::Error) -> io::Error {
            e
        }
        fn entry(&mut self, parent: &OwnedFd, name: &CStr, path: &Path) -> io::Result<Option<OwnedFd>> {
            self.seen.push(path.display().to_string());
            self.max_fds = self.max_fds.max(open_fds());
            let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                return Ok(Some(crate::unpack::open_dir_at(parent, name)?));
            }
            Ok(None)
        }
        fn leave(&mut self, parent: &OwnedFd, name: &CStr, _: &OwnedFd, path: &Path) -> io::Result<()> {
            self.seen.push(format!("leave {}", path.display()));
            rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(())
        }
    }

    #[test]
    fn deep_trees_in_order_with_few_open_dirs() {
        let t = tempfile::tempdir().unwrap();
        let top = crate::unpack::open_dir_at(CWD, t.path()).unwrap();
        // 300 levels of `d`, each with a file `f` beside the next level.
        let mut fd = rustix::io::dup(&top).unwrap();
        for _ in 0..300 {
            drop(rustix::fs::openat(&fd, c"f", OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::RUSR).unwrap());
            rustix::fs::mkdirat(&fd, c"d", Mode::RWXU).unwrap();
            fd = crate::unpack::open_dir_at(&fd, c"d").unwrap();
        }
        drop(fd);
        let before = open_fds();
        let mut r = Record {
            seen: Vec::new(),
            max_fds: 0,
        };
        walk_tree_bounded(&top, Path::new("top"), true, 8, &mut r).unwrap();
        assert!(r.max_fds <= before + 9, "{} open at most, {before} before", r.max_fds);
        assert_eq!(open_fds(), before);
        let mut expect = Vec::new();
        let mut p = PathBuf::from("top");
        let mut leaves = Vec::new();
        for _ in 0..300 {
            expect.push(p.join("d").display().to_string());
            p.push("d");
            leaves.push(format!("leave {}", p.display()));
        }
        // Byte order: `d` (and all below it) before `f` at each level.
        let mut fs: Vec<String> = Vec::new();
        let mut q = PathBuf::from("top");
        for _ in 0..300 {
            fs.push(q.join("f").display().to_string());
            q.push("d");
        }
        let mut want = expect.clone();
        for (leave, f) in leaves.into_iter().rev().zip(fs.into_iter().rev()) {
            want.push(leave);
            want.push(f);
        }
        assert_eq!(r.seen, want);
    }
}
