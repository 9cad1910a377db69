//! The cgroup handle: create (with device rules), open, join, remove.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::limits::{self, Controller, Limits, Usage};
use crate::{CgroupError, DeviceBackend, DeviceRule, Options, PARENT, bpf, v1};

/// Which hierarchy a leaf of a [`Cgroup`] is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// The cgroup v1 devices controller.
    DevicesV1,
    /// The cgroup2 tree (unified or hybrid).
    Unified,
    /// The cgroup v1 memory controller (resource limits).
    MemoryV1,
    /// The cgroup v1 cpu controller (resource limits).
    CpuV1,
    /// The cgroup v1 pids controller (resource limits).
    PidsV1,
    /// The cgroup v1 cpuacct controller (usage statistics).
    CpuacctV1,
    /// The cgroup v1 blkio controller (usage statistics).
    BlkioV1,
}

impl LeafKind {
    fn of_v1(controller: Controller) -> LeafKind {
        match controller {
            Controller::Memory => LeafKind::MemoryV1,
            Controller::Cpu => LeafKind::CpuV1,
            Controller::Pids => LeafKind::PidsV1,
            Controller::Cpuacct => LeafKind::CpuacctV1,
            Controller::Blkio => LeafKind::BlkioV1,
        }
    }

    fn v1_controller(self) -> Option<Controller> {
        match self {
            LeafKind::MemoryV1 => Some(Controller::Memory),
            LeafKind::CpuV1 => Some(Controller::Cpu),
            LeafKind::PidsV1 => Some(Controller::Pids),
            LeafKind::CpuacctV1 => Some(Controller::Cpuacct),
            LeafKind::BlkioV1 => Some(Controller::Blkio),
            LeafKind::DevicesV1 | LeafKind::Unified => None,
        }
    }
}

/// How one leaf enforces the device rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enforce {
    Nothing,
    V1,
    Bpf,
}

#[derive(Debug)]
struct Leaf {
    kind: LeafKind,
    /// The hierarchy's mount point.
    root: PathBuf,
    /// `<root>/strata/<name>`.
    path: PathBuf,
    /// `<path>/cgroup.procs`, open for writing (close-on-exec).
    procs: OwnedFd,
}

/// Most leaves a cgroup has: one per hierarchy (devices, cgroup2, memory,
/// cpu, pids, cpuacct, blkio).
const MAX_LEAVES: usize = 7;

/// A container's cgroup: `strata/<name>` in one or two hierarchies, with the
/// `cgroup.procs` of each held open so a forked child can join without
/// opening anything. Dropping it closes the fds and leaves the cgroup.
#[derive(Debug)]
pub struct Cgroup {
    name: String,
    leaves: Vec<Leaf>,
}

/// What a forked child needs to join a [`Cgroup`]: the raw `cgroup.procs`
/// fds. [`JoinHandle::join`] only formats a number on the stack and calls
/// `write`, so it is async-signal-safe. The fds are close-on-exec and belong
/// to the `Cgroup`; a child that closes stray fds must join first (or spare
/// [`JoinHandle::fds`]).
#[derive(Clone, Copy, Debug)]
pub struct JoinHandle<'a> {
    fds: [RawFd; MAX_LEAVES],
    len: usize,
    _cgroup: PhantomData<&'a Cgroup>,
}

impl JoinHandle<'_> {
    /// The pre-opened `cgroup.procs` fds, one per hierarchy.
    pub fn fds(&self) -> &[RawFd] {
        &self.fds[..self.len]
    }

    /// Moves process `pid` (0: the calling process) into the cgroup in every
    /// hierarchy. Async-signal-safe: no allocation, no lock.
    pub fn join(&self, pid: i32) -> Result<(), Errno> {
        if pid < 0 {
            return Err(Errno::INVAL);
        }
        let mut buf = [0u8; 12];
        let text = format_pid(pid, &mut buf);
        for &fd in self.fds() {
            // SAFETY: the fd belongs to the Cgroup this handle borrows (or to
            // the forked copy of it).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            if rustix::io::write(fd, text)? != text.len() {
                return Err(Errno::IO);
            }
        }
        Ok(())
    }
}

/// `pid` in decimal, in the tail of `buf`.
fn format_pid(pid: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut n = pid.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Checks that `name` can be a cgroup of strata's: 1 to 128 characters of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit, with no `..` (so no
/// `/`, no `.`/`..`, nothing that clashes with a `cgroup.*` file).
pub fn validate_name(name: &str) -> Result<(), CgroupError> {
    let bad = |reason| {
        Err(CgroupError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return bad("must be 1 to 128 characters");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    if name.contains("..") {
        return bad("must not contain \"..\"");
    }
    Ok(())
}

/// The leaves a new cgroup gets under `opts`, and how each enforces devices.
fn plan(opts: &Options) -> Result<Vec<(LeafKind, &Path, Enforce)>, CgroupError> {
    let v1 = opts.hierarchy.devices_v1();
    let v2 = opts.hierarchy.unified();
    let unsupported = |what: &str| Err(CgroupError::Unsupported(what.to_string()));
    Ok(match (opts.devices, v1, v2) {
        (DeviceBackend::Auto | DeviceBackend::V1, Some(v1), v2) => {
            let mut plan = vec![(LeafKind::DevicesV1, v1, Enforce::V1)];
            plan.extend(v2.map(|v2| (LeafKind::Unified, v2, Enforce::Nothing)));
            plan
        }
        (DeviceBackend::Auto | DeviceBackend::Bpf, _, Some(v2)) => vec![(LeafKind::Unified, v2, Enforce::Bpf)],
        (DeviceBackend::V1, None, _) => return unsupported("the host has no cgroup v1 devices controller"),
        (_, _, None) => return unsupported("the host has no cgroup2 file system for a BPF device filter"),
    })
}

/// Every hierarchy a cgroup of strata's can have a leaf in, each mount point once.
fn roots(opts: &Options) -> Vec<(LeafKind, &Path)> {
    let mut out: Vec<(LeafKind, &Path)> = Vec::new();
    let all = [
        (LeafKind::DevicesV1, opts.hierarchy.devices_v1()),
        (LeafKind::Unified, opts.hierarchy.unified()),
        (LeafKind::MemoryV1, opts.v1.get(Controller::Memory)),
        (LeafKind::CpuV1, opts.v1.get(Controller::Cpu)),
        (LeafKind::PidsV1, opts.v1.get(Controller::Pids)),
        (LeafKind::CpuacctV1, opts.v1.get(Controller::Cpuacct)),
        (LeafKind::BlkioV1, opts.v1.get(Controller::Blkio)),
    ];
    for (kind, root) in all {
        if let Some(root) = root
            && !out.iter().any(|(_, r)| *r == root)
        {
            out.push((kind, root));
        }
    }
    out
}

fn is_errno(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

fn open_procs(dir: &Path) -> Result<OwnedFd, CgroupError> {
    let file = dir.join("cgroup.procs");
    rustix::fs::open(&file, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| CgroupError::io("open", file, e))
}

/// mkdir `<root>/strata/<name>`, enforce the rules there, open cgroup.procs.
fn create_leaf(
    kind: LeafKind,
    root: &Path,
    name: &str,
    enforce: Enforce,
    rules: &[DeviceRule],
) -> Result<Leaf, CgroupError> {
    let parent = root.join(PARENT);
    match DirBuilder::new().create(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(CgroupError::io("mkdir", parent, e)),
    }
    let path = parent.join(name);
    match DirBuilder::new().create(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(CgroupError::Exists(path)),
        Err(e) => return Err(CgroupError::io("mkdir", path, e)),
    }
    let setup = || -> Result<OwnedFd, CgroupError> {
        match enforce {
            Enforce::Nothing => {}
            Enforce::V1 => v1::apply_rules(&path, rules)?,
            Enforce::Bpf => {
                let dir = rustix::fs::open(
                    &path,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CgroupError::io("open", &path, e))?;
                let prog = bpf::load_device_program(rules)?;
                bpf::attach_device_program(&dir, &prog).map_err(|source| CgroupError::BpfAttach {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        open_procs(&path)
    };
    match setup() {
        Ok(procs) => Ok(Leaf {
            kind,
            root: root.to_path_buf(),
            path,
            procs,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir(&path);
            Err(e)
        }
    }
}

/// rmdir a cgroup leaf, retrying EBUSY for a moment (a process killed just
/// before may still be on its way out). A leaf already gone is fine.
fn rmdir_leaf(path: &Path) -> Result<(), CgroupError> {
    let mut delay = Duration::from_millis(5);
    for attempt in 0.. {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if is_errno(&e, Errno::BUSY) => {
                if attempt == 5 {
                    return Err(CgroupError::Busy(path.to_path_buf()));
                }
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(CgroupError::io("rmdir", path, e)),
        }
    }
    unreachable!()
}

fn read_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let file = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&file).map_err(|e| CgroupError::io("read", &file, e))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

fn write_pid(file: &Path, pid: i32) -> Result<(), CgroupError> {
    std::fs::write(file, pid.to_string()).map_err(|source| CgroupError::Join {
        pid,
        path: file.to_path_buf(),
        source,
    })
}

impl Cgroup {
    /// Creates `strata/<name>` on the detected host layout with the device
    /// allow-list `rules` (see [`Cgroup::create_with`]).
    pub fn create(name: &str, rules: &[DeviceRule]) -> Result<Cgroup, CgroupError> {
        Cgroup::create_with(&Options::detect()?, name, rules)
    }

    /// Creates `strata/<name>` in each hierarchy `opts` uses and enforces
    /// `rules` (only they are allowed; `[DeviceRule::allow_all()]` for
    /// `--privileged`). Fails with [`CgroupError::Exists`] if the cgroup is
    /// there already; on any failure, leaves made by this call are removed.
    pub fn create_with(opts: &Options, name: &str, rules: &[DeviceRule]) -> Result<Cgroup, CgroupError> {
        Cgroup::create_with_limits(opts, name, rules, &Limits::default())
    }

    /// [`Cgroup::create_with`] plus resource `limits`: each controller they
    /// need gets a leaf in its v1 hierarchy when the host mounts one, else
    /// the limits go into the cgroup2 leaf (the controllers enabled for
    /// `strata`'s children first). A controller the host has in neither
    /// gives [`CgroupError::Unsupported`]. Limits are written before any
    /// process joins.
    pub fn create_with_limits(
        opts: &Options,
        name: &str,
        rules: &[DeviceRule],
        limits: &Limits,
    ) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        let mut plan = plan(opts)?;
        // (controller, index in plan, v2?)
        let mut apply: Vec<(Controller, usize, bool)> = Vec::new();
        let mut v2_controllers = Vec::new();
        let needed = limits.controllers();
        // A leaf only accounting wants may fail to be made: it is skipped.
        let mut required = vec![true; plan.len()];
        for c in Controller::ALL {
            // Accounting leaves no v1 memory or cpu cgroup: that would take
            // the process out of the caller's (and its memory limit) for
            // nothing but numbers.
            let v1_moves = matches!(c, Controller::Memory | Controller::Cpu) && opts.v1.get(c).is_some();
            if !needed.contains(&c) && (!limits.accounting || v1_moves) {
                continue;
            }
            if let Some(root) = opts.v1.get(c) {
                let i = match plan.iter().position(|(_, r, _)| *r == root) {
                    Some(i) => i,
                    None => {
                        plan.push((LeafKind::of_v1(c), root, Enforce::Nothing));
                        required.push(false);
                        plan.len() - 1
                    }
                };
                required[i] |= needed.contains(&c);
                apply.push((c, i, false));
            } else if let Some(u) = opts.hierarchy.unified()
                && limits::v2_has(u, c)
            {
                let i = match plan.iter().position(|(k, _, _)| *k == LeafKind::Unified) {
                    Some(i) => i,
                    None => {
                        plan.push((LeafKind::Unified, u, Enforce::Nothing));
                        required.push(false);
                        plan.len() - 1
                    }
                };
                required[i] |= needed.contains(&c);
                v2_controllers.push(c);
                apply.push((c, i, true));
            } else if needed.contains(&c) {
                return Err(CgroupError::Unsupported(format!(
                    "the host has no {} cgroup controller (cgroup v1 or v2) for the limits asked",
                    c.name()
                )));
            }
        }
        if let (false, Some(u)) = (v2_controllers.is_empty(), opts.hierarchy.unified()) {
            let parent = u.join(PARENT);
            match DirBuilder::new().create(&parent) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::io("mkdir", parent, e)),
            }
            // Those only accounting wants are best effort.
            let (strict, extra): (Vec<Controller>, Vec<Controller>) =
                v2_controllers.iter().partition(|c| needed.contains(c));
            limits::enable_v2(u, &strict)?;
            for c in extra {
                let _ = limits::enable_v2(u, &[c]);
            }
        }
        let mut leaves: Vec<Option<Leaf>> = Vec::new();
        let cleanup = |leaves: Vec<Option<Leaf>>| {
            for leaf in leaves.into_iter().flatten() {
                let _ = std::fs::remove_dir(&leaf.path);
            }
        };
        for (i, (kind, root, enforce)) in plan.into_iter().enumerate() {
            match create_leaf(kind, root, name, enforce, rules) {
                Ok(leaf) => leaves.push(Some(leaf)),
                Err(_) if !required[i] => leaves.push(None),
                Err(e) => {
                    cleanup(leaves);
                    return Err(e);
                }
            }
        }
        for (c, i, v2) in apply {
            let Some(leaf) = &leaves[i] else { continue };
            let dir = &leaf.path;
            let r = if v2 {
                limits.apply_v2(c, dir)
            } else {
                limits.apply_v1(c, dir)
            };
            if let Err(e) = r {
                cleanup(leaves);
                return Err(e);
            }
        }
        Ok(Cgroup {
            name: name.to_string(),
            leaves: leaves.into_iter().flatten().collect(),
        })
    }

    /// Opens the existing cgroup `strata/<name>` (to join it, as `exec`
    /// does, or to remove it) on the detected host layout.
    pub fn open(name: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::open_with(&Options::detect()?, name)
    }

    /// Opens `strata/<name>` in whichever of `opts`'s hierarchies have it
    /// (the backend it was created with does not matter); fails with
    /// [`CgroupError::NotFound`] when none has.
    pub fn open_with(opts: &Options, name: &str) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        let mut leaves: Vec<Leaf> = Vec::new();
        for (kind, root) in roots(opts) {
            let path = root.join(PARENT).join(name);
            if !path.is_dir() || leaves.iter().any(|l| l.root == root) {
                continue;
            }
            let procs = open_procs(&path)?;
            leaves.push(Leaf {
                kind,
                root: root.to_path_buf(),
                path,
                procs,
            });
        }
        if leaves.is_empty() {
            return Err(CgroupError::NotFound(name.to_string()));
        }
        Ok(Cgroup {
            name: name.to_string(),
            leaves,
        })
    }

    /// The name given to `create` or `open`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cgroup's directories, with the hierarchy each is in.
    pub fn paths(&self) -> Vec<(LeafKind, &Path)> {
        self.leaves.iter().map(|l| (l.kind, l.path.as_path())).collect()
    }

    /// Moves process `pid` (0: the caller) into the cgroup in every
    /// hierarchy. For a forked child use [`Cgroup::join_handle`], taken
    /// before the fork.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let handle = self.join_handle();
        for (leaf, &fd) in self.leaves.iter().zip(handle.fds()) {
            let mut fds = [-1; MAX_LEAVES];
            fds[0] = fd;
            let one = JoinHandle {
                fds,
                len: 1,
                _cgroup: PhantomData,
            };
            one.join(pid).map_err(|e| CgroupError::Join {
                pid,
                path: leaf.path.join("cgroup.procs"),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    /// The raw fds a forked child joins with (see [`JoinHandle`]).
    pub fn join_handle(&self) -> JoinHandle<'_> {
        let mut fds = [-1; MAX_LEAVES];
        for (slot, leaf) in fds.iter_mut().zip(&self.leaves) {
            *slot = leaf.procs.as_raw_fd();
        }
        JoinHandle {
            fds,
            len: self.leaves.len(),
            _cgroup: PhantomData,
        }
    }

    /// How many processes of the cgroup the kernel's OOM killer killed (its
    /// memory leaf: v1 `memory.oom_control`, v2 `memory.events`); `None`
    /// when the cgroup has no memory controller.
    pub fn oom_kills(&self) -> Option<u64> {
        self.leaves
            .iter()
            .filter(|l| matches!(l.kind, LeafKind::MemoryV1 | LeafKind::Unified))
            .filter_map(|l| limits::oom_kills(&l.path))
            .reduce(|a, b| a + b)
    }

    /// What the cgroup's processes have used so far, from every leaf (v1
    /// controllers first, the cgroup2 leaf for the rest).
    pub fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        for leaf in &self.leaves {
            if let Some(c) = leaf.kind.v1_controller() {
                usage.read_v1(c, &leaf.path);
            }
        }
        if let Some(leaf) = self.leaves.iter().find(|l| l.kind == LeafKind::Unified) {
            usage.read_v2(&leaf.path);
        }
        usage
    }

    /// The processes in the cgroup (of its first hierarchy, v1 devices when
    /// it has that), as pids of the caller's PID namespace.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        read_pids(&self.leaves[0].path)
    }

    /// Removes the cgroup from every hierarchy. If the caller is inside, it
    /// is first moved to the `strata` parent (or to the hierarchy's root
    /// when the parent cannot hold processes, as a cgroup2 parent with
    /// controllers enabled for its children cannot). Other processes still
    /// inside give [`CgroupError::Busy`] after a short wait; the caller can
    /// retry with `Cgroup::open(name)?.remove()` or leave it to
    /// [`Cgroup::remove_stale`]. Every leaf is tried; the first error is
    /// returned.
    pub fn remove(self) -> Result<(), CgroupError> {
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let mut first = None;
        for leaf in self.leaves {
            drop(leaf.procs);
            let result = (|| {
                if read_pids(&leaf.path)?.contains(&me) {
                    let parent = leaf.root.join(PARENT).join("cgroup.procs");
                    if write_pid(&parent, me).is_err() {
                        write_pid(&leaf.root.join("cgroup.procs"), me)?;
                    }
                }
                rmdir_leaf(&leaf.path)
            })();
            if let Err(e) = result {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// [`Cgroup::remove_stale_with`] on the detected host layout.
    pub fn remove_stale(is_alive: impl Fn(&str) -> bool) -> Result<Vec<String>, CgroupError> {
        Cgroup::remove_stale_with(&Options::detect()?, is_alive)
    }

    /// Leftover cleanup after a crash: rmdirs every `strata/<name>` (in
    /// every hierarchy of `opts`) whose name `is_alive` says is dead and
    /// that is empty. A cgroup that still has processes or child cgroups is
    /// left alone. Returns the names removed from some hierarchy, sorted.
    pub fn remove_stale_with(opts: &Options, is_alive: impl Fn(&str) -> bool) -> Result<Vec<String>, CgroupError> {
        let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
        let mut removed = Vec::new();
        for (_, root) in roots(opts) {
            let parent = root.join(PARENT);
            let entries = match std::fs::read_dir(&parent) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CgroupError::io("read directory", parent, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| CgroupError::io("read directory", &parent, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if validate_name(&name).is_err() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let alive = *verdicts.entry(name.clone()).or_insert_with(|| is_alive(&name));
                if alive {
                    continue;
                }
                let path = entry.path();
                match std::fs::remove_dir(&path) {
                    Ok(()) => removed.push(name),
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            || is_errno(&e, Errno::BUSY)
                            || is_errno(&e, Errno::NOTEMPTY) => {}
                    Err(e) => return Err(CgroupError::io("rmdir", path, e)),
                }
            }
        }
        removed.sort();
        removed.dedup();
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["abc", "0123abcdef", "my_ctr.1-2"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a..b",
            "-x",
            ".hidden",
            "a b",
            "a\nb",
            &"x".repeat(129),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pid_text() {
        let mut buf = [0; 12];
        assert_eq!(format_pid(0, &mut buf), b"0");
        assert_eq!(format_pid(1234567, &mut buf), b"1234567");
        assert_eq!(format_pid(i32::MAX, &mut buf), b"2147483647");
    }
}
