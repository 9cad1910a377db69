//! What runs in the forked children: the container's PID 1 sets up its
//! namespaces and root, then (like an exec'd process) becomes the user's
//! process. Everything here ends in `execve` or `_exit`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use crate::error::{Context, Error, Result};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, OpenTreeFlags, UnmountFlags, fsconfig_create, fsconfig_set_flag,
    fsconfig_set_string, fsmount, fsopen, open_tree,
};

use crate::spec::{DEFAULT_PATH, DeviceMapping, Network, RunSpec, SecretFile, UserSpec};
use crate::sys::{self, IN_ROOT};
use crate::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_RUNTIME_ERROR};

/// The part of a spec that `run` and `exec` share: the process itself.
pub(crate) struct Proc<'a> {
    pub args: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    pub user: &'a UserSpec,
    pub tty: bool,
    pub capabilities: u64,
    pub hostname: Option<&'a str>,
    pub winsize: Option<rustix::termios::Winsize>,
    pub no_new_privileges: bool,
    /// Installed just before capabilities and user are dropped (`None`: unconfined).
    pub seccomp: Option<&'a strata_seccomp::Filter>,
    /// Joined first thing by the container's process.
    pub cgroup: Option<strata_cgroup::JoinHandle<'a>>,
}

impl Proc<'_> {
    /// Moves the calling process into the container's cgroup (before it
    /// opens anything of the container's).
    pub(crate) fn join_cgroup(&self, report: BorrowedFd<'_>) {
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.join(0)
        {
            fail(
                report,
                EXIT_RUNTIME_ERROR,
                &format!("joining the container's cgroup: {e}"),
            );
        }
    }
}

/// Fds the child needs: where to report errors, where to send a pty master,
/// what becomes its stdin/stdout/stderr.
pub(crate) struct ChildFds {
    pub report: OwnedFd,
    pub tty_sock: Option<OwnedFd>,
    pub stdio: [Option<OwnedFd>; 3],
}

/// Reports an error to the caller (through the report pipe) and exits with `code`.
pub(crate) fn fail(report: BorrowedFd<'_>, code: i32, msg: &str) -> ! {
    let line = format!("E{code} {}\n", msg.replace('\n', " "));
    let _ = sys::write_all(report, line.as_bytes());
    sys::exit_now(code)
}

/// Asks for SIGKILL when the parent dies, then checks the parent is still
/// `parent` (0 when the parent is outside our PID namespace).
pub(crate) fn die_with_parent(parent: i32) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    if rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()) != parent {
        // The parent died before we could ask to follow it.
        sys::exit_now(EXIT_RUNTIME_ERROR);
    }
    Ok(())
}

fn apply_stdio(stdio: &[Option<OwnedFd>; 3]) -> io::Result<()> {
    for (i, fd) in stdio.iter().enumerate() {
        if let Some(fd) = fd {
            sys::dup2(fd.as_fd(), i as RawFd)?;
        }
    }
    Ok(())
}

/// PID 1 of a new container: namespaces, mounts, pivot_root, then the process.
pub(crate) fn container_init(spec: &RunSpec, proc_: &Proc<'_>, fds: ChildFds, parent: i32) -> ! {
    let report = fds.report.as_fd();
    sys::reset_signals();
    if let Err(e) = crate::sealed::set_non_dumpable() {
        fail(report, EXIT_RUNTIME_ERROR, &format!("prctl(PR_SET_DUMPABLE): {e}"));
    }
    if let Err(e) = die_with_parent(parent) {
        fail(report, EXIT_RUNTIME_ERROR, &format!("prctl(PR_SET_PDEATHSIG): {e}"));
    }
    proc_.join_cgroup(report);
    if let Err(e) = apply_stdio(&fds.stdio) {
        fail(report, EXIT_RUNTIME_ERROR, &format!("setting up stdio: {e}"));
    }
    if let Err(e) = setup_root(spec) {
        fail(report, EXIT_RUNTIME_ERROR, &e.chain());
    }
    finish_and_exec(proc_, &fds, parent)
}

fn mount_fs(fstype: &str, opts: &[(&str, &str)], flags: &[&str], attrs: MountAttrFlags) -> Result<OwnedFd> {
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).with_context(|| format!("fsopen({fstype})"))?;
    for (k, v) in opts {
        fsconfig_set_string(&fs, *k, *v).with_context(|| format!("{fstype}: option {k}={v}"))?;
    }
    for f in flags {
        fsconfig_set_flag(&fs, *f).with_context(|| format!("{fstype}: option {f}"))?;
    }
    fsconfig_create(&fs).with_context(|| format!("creating a {fstype} filesystem"))?;
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).with_context(|| format!("fsmount({fstype})"))
}

fn bind_host_path(path: &str, recursive: bool) -> Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(CWD, path, flags).with_context(|| format!("open_tree({path})"))
}

const NOSUID_NODEV_NOEXEC: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID
    .union(MountAttrFlags::MOUNT_ATTR_NODEV)
    .union(MountAttrFlags::MOUNT_ATTR_NOEXEC);

const READONLY_PATHS: [&str; 5] = ["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"];
const MASKED_PATHS: [&str; 10] = [
    "proc/asound",
    "proc/acpi",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
];

fn open_in_root(root: BorrowedFd<'_>, path: &str) -> io::Result<Option<OwnedFd>> {
    match rustix::fs::openat2(root, path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn setup_root(spec: &RunSpec) -> Result<()> {
    use rustix::thread::UnshareFlags as U;
    let mut ns = U::NEWNS | U::NEWUTS | U::NEWIPC;
    if let Some(path) = &spec.netns {
        // The network layer made the namespace (veths, addresses, routes) before this.
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .with_context(|| format!("opening the network namespace {}", path.display()))?;
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .with_context(|| format!("joining the network namespace {}", path.display()))?;
    } else if spec.network == Network::None {
        ns |= U::NEWNET;
    }
    // SAFETY: this process is single-threaded (a fork child).
    unsafe { rustix::thread::unshare_unsafe(ns) }.context("unshare(mount, uts, ipc namespaces)")?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::REC | rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .context("making every mount private in the container's namespace")?;
    rustix::mount::mount_bind_recursive(&spec.root, &spec.root)
        .with_context(|| format!("bind-mounting the root {} on itself", spec.root.display()))?;
    let root = rustix::fs::open(
        &spec.root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening the root {}", spec.root.display()))?;
    let root = root.as_fd();
    let privileged = spec.security.privileged;
    if !privileged {
        // Device nodes in the image or made by the container open nothing
        // (the nodes /dev needs are separate bind mounts of the host's).
        sys::mount_setattr(root, libc::MOUNT_ATTR_NODEV, true).context("mounting the root nodev")?;
    }
    if spec.network == Network::None && spec.netns.is_none() {
        sys::loopback_up().context("bringing lo up in the new network namespace")?;
    }

    // /proc, with Docker's read-only and masked paths.
    let proc_fd = sys::mkdir_all_in_root(root, "/proc", None).context("creating /proc")?;
    let proc_mnt = mount_fs("proc", &[], &[], NOSUID_NODEV_NOEXEC)?;
    sys::attach(proc_mnt.as_fd(), proc_fd.as_fd()).context("mounting /proc")?;

    // /dev: a tmpfs with the host's harmless nodes bound in, devpts, shm, mqueue.
    let dev_fd = sys::mkdir_all_in_root(root, "/dev", None).context("creating /dev")?;
    let mut dev_attrs = MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_STRICTATIME;
    if !privileged {
        dev_attrs |= MountAttrFlags::MOUNT_ATTR_NODEV;
    }
    let dev_mnt = mount_fs("tmpfs", &[("mode", "755"), ("size", "65536k")], &[], dev_attrs)?;
    sys::attach(dev_mnt.as_fd(), dev_fd.as_fd()).context("mounting /dev")?;
    let dev = sys::mkdir_all_in_root(root, "/dev", None).context("opening /dev")?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        rustix::fs::openat(
            &dev,
            node,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .with_context(|| format!("creating /dev/{node}"))?;
        let tree = bind_host_path(&format!("/dev/{node}"), false)?;
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            &dev,
            node,
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .with_context(|| format!("binding /dev/{node}"))?;
    }
    for (dir, fstype, opts, attrs) in [
        (
            "pts",
            "devpts",
            // gid 5 (tty) is not mapped in a single-id namespace.
            if strata_rootless::single_id() {
                &[("ptmxmode", "0666"), ("mode", "0620")][..]
            } else {
                &[("ptmxmode", "0666"), ("mode", "0620"), ("gid", "5")][..]
            },
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        ),
        (
            "shm",
            "tmpfs",
            &[("mode", "1777"), ("size", "65536k")][..],
            NOSUID_NODEV_NOEXEC,
        ),
        ("mqueue", "mqueue", &[][..], NOSUID_NODEV_NOEXEC),
    ] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(0o755)).with_context(|| format!("creating /dev/{dir}"))?;
        let flags: &[&str] = if fstype == "devpts" { &["newinstance"] } else { &[] };
        let mnt = mount_fs(fstype, opts, flags, attrs)?;
        let target = sys::mkdir_all_in_root(root, &format!("/dev/{dir}"), None)?;
        sys::attach(mnt.as_fd(), target.as_fd()).with_context(|| format!("mounting /dev/{dir}"))?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &dev, link).with_context(|| format!("creating /dev/{link}"))?;
    }
    // As runc: /dev/core only where the kernel has /proc/kcore (CONFIG_PROC_KCORE).
    if std::path::Path::new("/proc/kcore").exists() {
        rustix::fs::symlinkat("/proc/kcore", &dev, "core").context("creating /dev/core")?;
    }

    if privileged {
        create_host_devices(&dev).context("creating the host's devices in /dev")?;
    }
    for d in &spec.security.devices {
        bind_device(root, d).with_context(|| format!("giving the device {}", d.host.display()))?;
    }

    // /sys, read-only (a new sysfs; the host's, bound read-only, when sysfs
    // refuses); writable with --privileged, as Docker's.
    let sys_fd = sys::mkdir_all_in_root(root, "/sys", None).context("creating /sys")?;
    let sys_ro = if privileged {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let sys_mnt = match mount_fs("sysfs", &[], &[], NOSUID_NODEV_NOEXEC | sys_ro) {
        Ok(m) => m,
        Err(_) => {
            let t = bind_host_path("/sys", true)?;
            if !privileged {
                sys::mount_setattr(t.as_fd(), libc::MOUNT_ATTR_RDONLY, true).context("making /sys read-only")?;
            }
            t
        }
    };
    sys::attach(sys_mnt.as_fd(), sys_fd.as_fd()).context("mounting /sys")?;

    let (readonly_paths, masked_paths): (&[&str], &[&str]) = if privileged {
        (&[], &[])
    } else {
        (&READONLY_PATHS, &MASKED_PATHS)
    };
    for p in readonly_paths {
        if let Some(fd) = open_in_root(root, p).with_context(|| format!("opening /{p}"))? {
            let tree = open_tree(
                &fd,
                "",
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_EMPTY_PATH
                    | OpenTreeFlags::AT_RECURSIVE,
            )
            .with_context(|| format!("open_tree(/{p})"))?;
            sys::mount_setattr(tree.as_fd(), libc::MOUNT_ATTR_RDONLY, true)
                .with_context(|| format!("making /{p} read-only"))?;
            sys::attach(tree.as_fd(), fd.as_fd()).with_context(|| format!("mounting /{p} read-only"))?;
        }
    }
    for p in masked_paths {
        if let Some(fd) = open_in_root(root, p).with_context(|| format!("opening /{p}"))? {
            let is_dir = rustix::fs::fstat(&fd).map(|s| (s.st_mode & libc::S_IFMT) == libc::S_IFDIR)?;
            let mask = if is_dir {
                mount_fs("tmpfs", &[("size", "0")], &[], MountAttrFlags::MOUNT_ATTR_RDONLY)?
            } else {
                bind_host_path("/dev/null", false)?
            };
            sys::attach(mask.as_fd(), fd.as_fd()).with_context(|| format!("masking /{p}"))?;
        }
    }

    // Volumes.
    for m in &spec.mounts {
        let src_is_dir = std::fs::metadata(&m.source)
            .with_context(|| format!("volume source {}", m.source.display()))?
            .is_dir();
        let target = if src_is_dir {
            sys::mkdir_all_in_root(root, &m.destination, None)
        } else {
            sys::touch_in_root(root, &m.destination)
        }
        .with_context(|| format!("creating the mount point {} in the container", m.destination))?;
        let tree = open_tree(
            CWD,
            &m.source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE,
        )
        .with_context(|| format!("open_tree({})", m.source.display()))?;
        let mut attrs = if privileged { 0 } else { libc::MOUNT_ATTR_NODEV };
        if m.readonly {
            attrs |= libc::MOUNT_ATTR_RDONLY;
        }
        if attrs != 0 {
            sys::mount_setattr(tree.as_fd(), attrs, true)
                .with_context(|| format!("setting the mount options of the volume {}", m.destination))?;
        }
        sys::attach(tree.as_fd(), target.as_fd())
            .with_context(|| format!("mounting {} on {}", m.source.display(), m.destination))?;
    }

    for secret in &spec.secrets {
        mount_secret(root, secret).with_context(|| format!("mounting the secret {}", secret.destination))?;
    }

    if !spec.hostname.is_empty() {
        rustix::system::sethostname(spec.hostname.as_bytes()).context("sethostname")?;
    }

    rustix::process::fchdir(root).context("chdir to the root")?;
    rustix::process::pivot_root(".", ".").context("pivot_root")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).context("detaching the old root")?;
    rustix::process::chdir("/").context("chdir /")?;

    if spec.readonly_root {
        let slash = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        sys::mount_setattr(slash.as_fd(), libc::MOUNT_ATTR_RDONLY, false).context("making the root read-only")?;
    }
    Ok(())
}

/// `--device`: the host's node bound on its path in the container (a bind
/// keeps the host mount's `dev` flag; the device cgroup allows it).
fn bind_device(root: BorrowedFd<'_>, d: &DeviceMapping) -> Result<()> {
    let st = rustix::fs::stat(&d.host).with_context(|| format!("stat {}", d.host.display()))?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFCHR && kind != libc::S_IFBLK {
        return Err(Error::NotADevice { path: d.host.clone() });
    }
    let target = sys::touch_in_root(root, &d.container).context("creating the device's mount point")?;
    let tree = bind_host_path(&d.host.to_string_lossy(), false)?;
    sys::attach(tree.as_fd(), target.as_fd()).context("binding the device")?;
    Ok(())
}

/// `--privileged`: every character and block device of the host's `/dev`
/// (not its pts, shm or mqueue) as a node of the same number, mode and owner,
/// as Docker makes them.
fn create_host_devices(dev: &OwnedFd) -> Result<()> {
    fn walk(host: &std::path::Path, rel: &str, dev: &OwnedFd) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(host) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if rel.is_empty() && matches!(name.as_str(), "pts" | "shm" | "mqueue" | "console" | "ptmx") {
                continue;
            }
            let Ok(st) = rustix::fs::lstat(e.path()) else { continue };
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFDIR {
                let _ = rustix::fs::mkdirat(dev, rel_name.as_str(), Mode::from_raw_mode(0o755));
                walk(&e.path(), &rel_name, dev)?;
            } else if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
                let ft = if kind == libc::S_IFCHR {
                    rustix::fs::FileType::CharacterDevice
                } else {
                    rustix::fs::FileType::BlockDevice
                };
                match rustix::fs::mknodat(
                    dev,
                    rel_name.as_str(),
                    ft,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    st.st_rdev,
                ) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e).with_context(|| format!("mknod /dev/{rel_name}")),
                }
                let _ = rustix::fs::chownat(
                    dev,
                    rel_name.as_str(),
                    Some(rustix::fs::Uid::from_raw(st.st_uid)),
                    Some(rustix::fs::Gid::from_raw(st.st_gid)),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                );
            }
        }
        Ok(())
    }
    walk(std::path::Path::new("/dev"), "", dev)
}

/// A secret: a copy of the host file in a tmpfs of this mount namespace
/// only, with the container's owner and mode, bound read-only on its
/// destination. The host file is only read.
fn mount_secret(root: BorrowedFd<'_>, secret: &SecretFile) -> Result<()> {
    let data = std::fs::read(&secret.source).with_context(|| format!("reading {}", secret.source.display()))?;
    let size = (data.len() + 4096).to_string();
    let tmpfs = mount_fs(
        "tmpfs",
        &[("mode", "0700"), ("size", size.as_str())],
        &[],
        NOSUID_NODEV_NOEXEC,
    )?;
    let file = rustix::fs::openat(
        &tmpfs,
        "secret",
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o400),
    )
    .context("creating the secret's copy")?;
    sys::write_all(file.as_fd(), &data).context("writing the secret's copy")?;
    rustix::fs::fchown(
        &file,
        Some(rustix::fs::Uid::from_raw(secret.uid)),
        Some(rustix::fs::Gid::from_raw(secret.gid)),
    )
    .context("setting the secret's owner")?;
    rustix::fs::fchmod(&file, Mode::from_raw_mode(secret.mode & 0o7777)).context("setting the secret's mode")?;
    drop(file);
    let tree = open_tree(
        &tmpfs,
        "secret",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .context("open_tree(secret)")?;
    sys::mount_setattr(tree.as_fd(), libc::MOUNT_ATTR_RDONLY, false).context("making the secret read-only")?;
    let target = sys::touch_in_root(root, &secret.destination).context("creating the secret's mount point")?;
    sys::attach(tree.as_fd(), target.as_fd()).context("binding the secret")?;
    Ok(())
}

pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn set_caps(mask: u64) -> io::Result<()> {
    let mut hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    // No inheritable capabilities, as Docker and BuildKit since CVE-2022-24769.
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn drop_bounding(mask: u64) -> io::Result<()> {
    for cap in 0..=last_cap() {
        if cap < 64 && mask & (1u64 << cap) != 0 {
            continue;
        }
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    Ok(())
}

fn set_user(user: &UserSpec) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = user.additional_gids.clone();
    unsafe {
        // A single-id user namespace denies setgroups: no supplementary
        // groups to set is then no error.
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            let e = io::Error::last_os_error();
            if !(groups.is_empty() && e.raw_os_error() == Some(libc::EPERM)) {
                return Err(e);
            }
        }
        if libc::setgid(user.gid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(user.uid) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn has_env(env: &[String], key: &str) -> bool {
    env.iter().any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
}

/// The last steps, shared by `run` (after the root is set up) and `exec`
/// (after joining the namespaces): pty, session, env, workdir, capabilities,
/// user, fds, then the PATH lookup inside the container and `execve`.
pub(crate) fn finish_and_exec(p: &Proc<'_>, fds: &ChildFds, parent: i32) -> ! {
    let report = fds.report.as_fd();
    let fail125 =
        |what: &str, e: &dyn std::fmt::Display| -> ! { fail(report, EXIT_RUNTIME_ERROR, &format!("{what}: {e}")) };
    let slash = match rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => fail125("opening the container root", &e),
    };
    if p.tty {
        if let Err(e) = setup_tty(p, fds) {
            fail125("allocating a pty", &e.chain());
        }
    } else if let Err(e) = rustix::process::setsid() {
        fail125("setsid", &e);
    }

    let mut env: Vec<String> = p.env.to_vec();
    if !has_env(&env, "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if let Some(h) = p.hostname
        && !has_env(&env, "HOSTNAME")
    {
        env.insert(1.min(env.len()), format!("HOSTNAME={h}"));
    }
    if p.tty && !has_env(&env, "TERM") {
        env.push("TERM=xterm".into());
    }

    let cwd = match sys::mkdir_all_in_root(slash.as_fd(), p.cwd, Some((p.user.uid, p.user.gid))) {
        Ok(fd) => fd,
        Err(e) => fail125(&format!("creating the working directory {:?}", p.cwd), &e),
    };
    if p.no_new_privileges && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        fail125("prctl(PR_SET_NO_NEW_PRIVS)", &io::Error::last_os_error());
    }
    // While CAP_SYS_ADMIN is still held (needed without no_new_privs); what
    // follows (capset, setuid, prctl, execve) is allowed by Docker's profile.
    if let Some(filter) = p.seccomp
        && let Err(e) = filter.install()
    {
        fail125("installing the seccomp filter", &e);
    }
    if let Err(e) = drop_bounding(p.capabilities) {
        fail125("dropping capabilities", &e);
    }
    if let Err(e) = set_user(p.user) {
        fail125(
            &format!(
                "setting user {}:{} (groups {:?})",
                p.user.uid, p.user.gid, p.user.additional_gids
            ),
            &e,
        );
    }
    if p.user.uid == 0
        && let Err(e) = set_caps(p.capabilities)
    {
        fail125("setting capabilities", &e);
    }
    // Looked up as the process's own user, with its own capabilities: the
    // container's /etc/passwd is read with no more privilege than it has.
    if !has_env(&env, "HOME") {
        env.push(format!("HOME={}", crate::user::home_of(slash.as_fd(), p.user.uid)));
    }
    // A change of credentials clears the parent-death signal: set it again.
    if let Err(e) = die_with_parent(parent) {
        fail125("prctl(PR_SET_PDEATHSIG)", &e);
    }
    if let Err(e) = rustix::process::fchdir(&cwd) {
        let code = if e == rustix::io::Errno::ACCESS {
            EXIT_NOT_EXECUTABLE
        } else {
            EXIT_RUNTIME_ERROR
        };
        fail(
            report,
            code,
            &format!("chdir to cwd ({:?}) set in config.json failed: {e}", p.cwd),
        );
    }
    drop(cwd);
    drop(slash);
    if let Err(e) = sys::cloexec_from_3() {
        fail125("close_range", &e);
    }
    let (code, msg) = exec_in_path(p.args, &env);
    fail(report, code, &msg)
}

fn setup_tty(p: &Proc<'_>, fds: &ChildFds) -> Result<()> {
    use rustix::pty::OpenptFlags;
    let sock = fds
        .tty_sock
        .as_ref()
        .ok_or_else(|| Error::Invalid("no channel for the pty".into()))?;
    let master = rustix::fs::open(
        "/dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("opening /dev/pts/ptmx")?;
    rustix::pty::unlockpt(&master).context("unlockpt")?;
    let peer = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .context("opening the pty peer")?;
    if let Some(ws) = p.winsize {
        let _ = rustix::termios::tcsetwinsize(&peer, ws);
    }
    sys::send_fd(sock.as_fd(), master.as_fd()).context("sending the pty master")?;
    drop(master);
    rustix::process::setsid().context("setsid")?;
    rustix::process::ioctl_tiocsctty(&peer).context("TIOCSCTTY")?;
    for i in 0..3 {
        sys::dup2(peer.as_fd(), i)?;
    }
    Ok(())
}

/// `execvp` with Docker's errors; returns only on failure: (exit code, message).
fn exec_in_path(args: &[String], env: &[String]) -> (i32, String) {
    let file = &args[0];
    let to_c = |v: &[String], what: &str| -> Result<Vec<CString>, (i32, String)> {
        v.iter()
            .map(|s| sys::cstring(s, what).map_err(|e| (EXIT_RUNTIME_ERROR, e.to_string())))
            .collect()
    };
    let argv = match to_c(args, "an argument") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let envp = match to_c(env, "an environment variable") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());

    let path = if file.contains('/') {
        match std::fs::metadata(file) {
            Ok(_) => file.clone(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return (
                    EXIT_NOT_FOUND,
                    format!("exec: \"{file}\": stat {file}: no such file or directory"),
                );
            }
            Err(e) => return (EXIT_NOT_EXECUTABLE, format!("exec: \"{file}\": stat {file}: {e}")),
        }
    } else {
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let mut found = None;
        for dir in path_var.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let cand = format!("{dir}/{file}");
            let Ok(md) = std::fs::metadata(&cand) else { continue };
            if md.is_file() && rustix::fs::access(cand.as_str(), rustix::fs::Access::EXEC_OK).is_ok() {
                found = Some(cand);
                break;
            }
        }
        match found {
            Some(p) => p,
            None => {
                return (
                    EXIT_NOT_FOUND,
                    format!("exec: \"{file}\": executable file not found in $PATH"),
                );
            }
        }
    };
    let c_path = match sys::cstring(&path, "the command") {
        Ok(c) => c,
        Err(e) => return (EXIT_RUNTIME_ERROR, e.to_string()),
    };
    unsafe { libc::execve(c_path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) => (EXIT_NOT_FOUND, format!("exec: \"{file}\": no such file or directory")),
        Some(libc::EACCES) | Some(libc::EISDIR) => {
            (EXIT_NOT_EXECUTABLE, format!("exec: \"{file}\": permission denied"))
        }
        Some(libc::ENOEXEC) => (EXIT_NOT_EXECUTABLE, format!("exec: \"{file}\": exec format error")),
        _ => (EXIT_NOT_EXECUTABLE, format!("exec: \"{file}\": {e}")),
    }
}
