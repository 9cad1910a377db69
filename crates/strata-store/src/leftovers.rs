//! Work files a process left behind: temporary blobs and directories in
//! `tmp/`, staging and removal directories in `layers/` and `containers/`.
//!
//! The rule: every such entry strata makes carries the id of the process
//! that made it in its name (`tmp/blob-<pid>-…`, `tmp/.overlay-probe-<pid>-…`, `tmp/build-<pid>-…`,
//! `layers/.staging-<chain>-<pid>`, `layers/.removing-<chain>-<pid>-…`,
//! `layers/<chain>.removing-<pid>`, `containers/.staging-<key>-<pid>-…`,
//! `containers/.removing-<key>-<pid>-…`). An entry whose maker is no longer
//! running is garbage: [`Store::open`](crate::Store::open) removes those, so
//! a process killed at any moment leaves nothing for long. A pid that was
//! reused does not keep an entry alive: a process that started after the
//! entry was last modified cannot have made it.
//!
//! Entries without a pid in their name (the builder's scratch directories)
//! are only known to be garbage while the store's exclusive lock is held,
//! since every process that makes them holds the shared lock meanwhile;
//! `strata system check` judges them so.
//!
//! Nothing is removed that has a mount point inside it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Store;

/// Where a leftover lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftoverArea {
    /// `tmp/`
    Tmp,
    /// `layers/` (a dot-entry, or `<chain>.removing-<pid>`)
    Layers,
    /// `containers/` (a dot-entry)
    Containers,
}

/// A work entry and whether the process that made it still runs.
#[derive(Debug, Clone)]
pub struct WorkEntry {
    pub path: PathBuf,
    pub area: LeftoverArea,
    /// The maker's pid, when the name tells it.
    pub pid: Option<u32>,
    /// The maker is running (always false when `pid` is None).
    pub alive: bool,
}

impl WorkEntry {
    /// Garbage whoever looks: its maker is known and gone.
    pub fn is_dead(&self) -> bool {
        self.pid.is_some() && !self.alive
    }
}

/// Whether `name` in `area` is a work entry by the naming rules above
/// (everything in `tmp/` is).
pub fn is_work_name(area: LeftoverArea, name: &str) -> bool {
    match area {
        LeftoverArea::Tmp => true,
        LeftoverArea::Layers => name.starts_with(".staging-") || name.contains(".removing-"),
        LeftoverArea::Containers => name.starts_with(".staging-") || name.starts_with(".removing-"),
    }
}

/// The pid in a work entry's name, by the naming rules above.
fn creator_pid(area: LeftoverArea, name: &str) -> Option<u32> {
    let digits = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    // The pid is the `n`th '-'-separated field from the end (0 = last).
    let from_end = |s: &str, n: usize| -> Option<u32> { s.rsplit('-').nth(n).and_then(digits) };
    match area {
        LeftoverArea::Tmp => {
            let rest = name
                .strip_prefix("blob-")
                .or_else(|| name.strip_prefix(".overlay-probe-"))
                .or_else(|| name.strip_prefix("build-"))?;
            digits(rest.split('-').next()?)
        }
        LeftoverArea::Layers => {
            if let Some(rest) = name.strip_prefix(".staging-") {
                from_end(rest, 0)
            } else if let Some(rest) = name.strip_prefix(".removing-") {
                from_end(rest, 1)
            } else if let Some((_, pid)) = name.split_once(".removing-") {
                digits(pid)
            } else {
                None
            }
        }
        LeftoverArea::Containers => {
            let rest = name
                .strip_prefix(".staging-")
                .or_else(|| name.strip_prefix(".removing-"))?;
            from_end(rest, 1)
        }
    }
}

/// Whether the process `pid` runs and could have made something last
/// modified at `mtime` (it started before then).
pub(crate) fn process_made(pid: u32, mtime: SystemTime) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == std::process::id() {
        return true;
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) if !Path::new("/proc/self/stat").exists() => {
            // No procfs: ask the kernel whether the pid exists at all.
            return match rustix::process::Pid::from_raw(pid as i32) {
                Some(p) => !matches!(rustix::process::test_kill_process(p), Err(rustix::io::Errno::SRCH)),
                None => false,
            };
        }
        Err(_) => return false,
    };
    // Fields after the command name (which may hold spaces and parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return true;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3); field 22 is the start time.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return false;
    }
    let Some(start_ticks) = fields.get(19).and_then(|s| s.parse::<u64>().ok()) else {
        return true;
    };
    let Some(boot) = boot_time() else { return true };
    // USER_HZ is 100 on every Linux architecture strata runs on.
    let started = boot + Duration::from_millis(start_ticks * 10);
    // The boot time has a one second resolution: allow for it.
    started <= mtime + Duration::from_secs(2)
}

fn boot_time() -> Option<SystemTime> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = s.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Mount points (in this process's mount namespace) at or below `path`.
pub fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let base = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|m| m.starts_with(&base))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the unpacked layer `layers/<hex>` at `dir`: refused while
/// something is mounted in it; renamed aside first (a work name, so a crash
/// midway leaves a leftover the next process removes, never a half layer
/// under its real name).
pub fn remove_layer_dir(dir: &Path, chain: &strata_oci::Digest) -> std::io::Result<()> {
    if let Some(m) = mounts_under(dir).first() {
        return Err(std::io::Error::other(format!("{} is mounted on", m.display())));
    }
    let aside = dir.with_file_name(format!(".removing-{}-{}-0", chain.hex(), std::process::id()));
    std::fs::rename(dir, &aside)?;
    remove_work_entry(&aside)
}

/// Removes a file or a tree strata made, unless something is mounted in it.
pub fn remove_work_entry(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
    }
    if let Some(m) = mounts_under(path).first() {
        return Err(std::io::Error::other(format!(
            "{} is mounted on; unmount it first",
            m.display()
        )));
    }
    match remove_tree(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// A killed process's overlay probe (`tmp/.overlay-probe-<pid>-…`) may
/// still have its empty overlay mounted on `merged`: strata's own mount of
/// nothing, detached so the entry can go.
fn unmount_dead_probe(path: &Path) {
    let is_probe = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".overlay-probe-"));
    let merged = path.join("merged");
    if is_probe && mounts_under(path).contains(&merged) {
        let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
    }
}

/// How many directories [`walk_below`] holds open at most.
const MAX_OPEN_DIRS: usize = 64;

/// Walks everything below the open directory `top`, at any depth:
/// iterative (an explicit stack, not the call stack), holding at most
/// [`MAX_OPEN_DIRS`] directories open (a closed one is opened again
/// through its child's `..` and checked to be the same directory), every
/// entry reached relative to its open parent, never following a symlink.
/// `entry(parent, name, status)` says whether to descend into a directory
/// (`parent` is open at `name` for it then); `leave(parent, name)` follows
/// the children of each directory descended into.
pub(crate) fn walk_below(
    top: rustix::fd::OwnedFd,
    mut entry: impl FnMut(&rustix::fd::OwnedFd, &std::ffi::CStr, &rustix::fs::Stat) -> std::io::Result<bool>,
    mut leave: impl FnMut(&rustix::fd::OwnedFd, &std::ffi::CStr) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Dir, Mode, OFlags};
    use std::ffi::CString;
    use std::os::fd::OwnedFd;

    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let names_of = |fd: &OwnedFd| -> std::io::Result<Vec<CString>> {
        let mut names = Vec::new();
        for ent in Dir::read_from(fd)? {
            let ent = ent?;
            let n = ent.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
        Ok(names)
    };
    let id_of = |fd: &OwnedFd| -> std::io::Result<(u64, u64)> {
        let st = rustix::fs::fstat(fd)?;
        Ok((st.st_dev, st.st_ino))
    };
    struct Frame {
        fd: Option<OwnedFd>,
        id: (u64, u64),
        name: CString,
        names: Vec<CString>,
    }

    let mut frames = vec![Frame {
        id: id_of(&top)?,
        names: names_of(&top)?,
        fd: Some(top),
        name: CString::default(),
    }];
    // frames[..lowest] are all closed; frames[0] never is.
    let mut lowest = 1;
    let mut open = 1;
    while let Some(f) = frames.last_mut() {
        let parent = f.fd.as_ref().expect("the deepest directory is open");
        if let Some(name) = f.names.pop() {
            let st = match rustix::fs::statat(parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if !entry(parent, &name, &st)? {
                continue;
            }
            let fd = rustix::fs::openat(parent, &name, dir_flags, Mode::empty())?;
            frames.push(Frame {
                id: id_of(&fd)?,
                names: names_of(&fd)?,
                fd: Some(fd),
                name,
            });
            open += 1;
            if open > MAX_OPEN_DIRS {
                while frames[lowest].fd.is_none() {
                    lowest += 1;
                }
                frames[lowest].fd = None;
                open -= 1;
                lowest += 1;
            }
            continue;
        }
        let done = frames.pop().expect("a frame");
        let Some(p) = frames.last_mut() else { break };
        let dir = done.fd.expect("the deepest directory is open");
        if p.fd.is_none() {
            let fd = rustix::fs::openat(&dir, c"..", dir_flags, Mode::empty())?;
            if id_of(&fd)? != p.id {
                return Err(std::io::Error::other(
                    "a directory was moved while the tree was being walked",
                ));
            }
            p.fd = Some(fd);
            open += 1;
            lowest = frames.len() - 1;
        }
        drop(dir);
        open -= 1;
        lowest = lowest.min(frames.len()).max(1);
        let parent = frames.last().and_then(|f| f.fd.as_ref()).expect("open");
        leave(parent, &done.name)?;
    }
    Ok(())
}

/// Removes the directory `path` and everything below it, at any depth
/// ([`walk_below`]), each entry with `unlinkat` relative to its parent.
/// Directories without write permission (layer content may have them) are
/// made writable first when not root.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

    let fix_modes = !rustix::process::geteuid().is_root();
    let st = rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return std::fs::remove_file(path);
    }
    if fix_modes && st.st_mode & 0o700 != 0o700 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode((st.st_mode | 0o700) & 0o7777))?;
    }
    let top = rustix::fs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dev = st.st_dev;
    walk_below(
        top,
        |parent, name, st| {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(false),
                    Err(e) => Err(e.into()),
                };
            }
            if st.st_dev != dev {
                return Err(std::io::Error::other(format!(
                    "{} holds a mount point; unmount it first",
                    path.display()
                )));
            }
            if fix_modes && st.st_mode & 0o700 != 0o700 {
                rustix::fs::chmodat(
                    parent,
                    name,
                    Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777),
                    AtFlags::empty(),
                )?;
            }
            Ok(true)
        },
        |parent, name| Ok(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?),
    )?;
    std::fs::remove_dir(path)
}

impl Store {
    /// Every work entry in `tmp/`, `layers/` and `containers/` (see the
    /// module documentation), with whether its maker still runs.
    pub fn work_entries(&self) -> Vec<WorkEntry> {
        let mut out = Vec::new();
        for (area, dir) in [
            (LeftoverArea::Tmp, self.tmp_dir()),
            (LeftoverArea::Layers, self.layers_dir()),
            (LeftoverArea::Containers, self.containers_dir()),
        ] {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !is_work_name(area, &name) {
                    continue;
                }
                let pid = creator_pid(area, &name);
                let mtime = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                let alive = pid.is_some_and(|p| process_made(p, mtime));
                out.push(WorkEntry {
                    path: e.path(),
                    area,
                    pid,
                    alive,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// The journals of named blobs, `named-blobs/<pid>` (see `deletions`),
    /// with whether their process still runs.
    pub(crate) fn named_journals(&self) -> Vec<WorkEntry> {
        let Ok(rd) = std::fs::read_dir(self.root.join(crate::deletions::NAMED_DIR)) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let mtime = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                Some(WorkEntry {
                    path: e.path(),
                    area: LeftoverArea::Tmp,
                    pid: Some(pid),
                    alive: process_made(pid, mtime),
                })
            })
            .collect()
    }

    /// Removes the work entries whose maker is gone (a process killed
    /// midway); returns what was removed. Errors are ignored: what cannot be
    /// removed now is tried again next time and reported by the check.
    pub fn remove_dead_work(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for e in self.work_entries() {
            if e.is_dead() && e.area == LeftoverArea::Tmp {
                unmount_dead_probe(&e.path);
            }
            if e.is_dead() && remove_work_entry(&e.path).is_ok() {
                removed.push(e.path);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_tree_deeper_than_the_fd_bound_and_path_max() {
        use rustix::fs::{CWD, Mode, OFlags};
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("w");
        std::fs::create_dir(&top).unwrap();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = rustix::fs::openat(CWD, &top, flags, Mode::empty()).unwrap();
        let name = "n".repeat(200);
        for i in 0..(MAX_OPEN_DIRS * 3) {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::RWXU).unwrap();
            drop(rustix::fs::openat(&fd, "f", OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::RUSR).unwrap());
            rustix::fs::symlinkat("/", &fd, "up").unwrap();
            let next = rustix::fs::openat(&fd, name.as_str(), flags, Mode::empty()).unwrap();
            if i % 7 == 0 {
                // Read-only directories too.
                rustix::fs::chmodat(
                    &fd,
                    name.as_str(),
                    Mode::from_raw_mode(0o500),
                    rustix::fs::AtFlags::empty(),
                )
                .unwrap();
            }
            fd = next;
        }
        drop(fd);
        remove_work_entry(&top).unwrap();
        assert!(!top.exists());
        remove_work_entry(&top).unwrap();
    }

    #[test]
    fn pids_in_names() {
        use LeftoverArea::*;
        assert_eq!(creator_pid(Tmp, "blob-123-AbC9x"), Some(123));
        assert_eq!(creator_pid(Tmp, ".overlay-probe-77-1a2b"), Some(77));
        assert_eq!(creator_pid(Tmp, "blob-XyZ"), None);
        assert_eq!(creator_pid(Tmp, "heredoc-abc"), None);
        let hex = "a".repeat(64);
        assert_eq!(creator_pid(Layers, &format!(".staging-{hex}-42")), Some(42));
        assert_eq!(creator_pid(Layers, &format!(".removing-{hex}-42-1234")), Some(42));
        assert_eq!(creator_pid(Layers, &format!("{hex}.removing-42")), Some(42));
        assert_eq!(creator_pid(Layers, &hex), None);
        assert_eq!(creator_pid(Containers, ".staging-my-key-9-ff"), Some(9));
        assert_eq!(creator_pid(Containers, ".removing-k-10-12"), Some(10));
    }

    #[test]
    fn liveness() {
        let now = SystemTime::now();
        assert!(process_made(std::process::id(), now));
        // pid 1 started long before now, and after the epoch.
        assert!(process_made(1, now));
        assert!(!process_made(1, UNIX_EPOCH));
        assert!(!process_made(0, now));
    }

    #[test]
    fn dead_work_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A child that has exited: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(store.tmp_dir().join(format!("blob-{dead}-xyz")), b"x").unwrap();
        std::fs::write(store.tmp_dir().join(format!("blob-{}-xyz", std::process::id())), b"x").unwrap();
        std::fs::create_dir_all(
            store
                .layers_dir()
                .join(format!(".staging-{}-{dead}/a/b", "c".repeat(64))),
        )
        .unwrap();
        let removed = store.remove_dead_work();
        assert_eq!(removed.len(), 2, "{removed:?}");
        let left: Vec<_> = store.work_entries().into_iter().map(|e| (e.pid, e.alive)).collect();
        assert_eq!(left, vec![(Some(std::process::id()), true)]);
    }
}
