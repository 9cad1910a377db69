//! Overlay and bind mounts, through the new mount API where it can.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree,
};

/// How an overlay is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountApi {
    /// `fsopen`/`fsconfig("lowerdir+")`/`fsmount`/`move_mount`; falls back to
    /// [`MountApi::Legacy`] by itself when the kernel refuses `lowerdir+`.
    #[default]
    Auto,
    /// `mount(2)` with an option string of short relative paths (numbered
    /// symlinks to the layers), made from a forked child that chdirs to them.
    /// Fits about 500 layers in the kernel's 4 KiB option page.
    Legacy,
}

pub(crate) struct OverlaySpec {
    pub lowers_top_first: Vec<PathBuf>,
    /// (upper, work)
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Where the legacy path makes its numbered symlinks.
    pub link_dir: PathBuf,
    pub readonly: bool,
}

pub(crate) fn mount_overlay(spec: &OverlaySpec, target: &Path, api: MountApi) -> Result<()> {
    if spec.lowers_top_first.is_empty() {
        return Err(Error::Mount("an overlay needs at least one lower directory".into()));
    }
    if api == MountApi::Auto {
        match mount_overlay_new_api(spec, target) {
            Ok(()) => return Ok(()),
            Err(NewApiError::Refused(refused)) => {
                return mount_overlay_legacy(spec, target)
                    .map_err(|e| Error::Mount(format!("{e} (after the new mount API was refused: {refused})")));
            }
            Err(NewApiError::Failed(e)) => return Err(e),
        }
    }
    mount_overlay_legacy(spec, target)
}

enum NewApiError {
    /// The kernel does not take the new API or `lowerdir+` for these paths: try mount(2).
    Refused(Error),
    Failed(Error),
}

/// The messages the kernel left in an fs context (`e overlay: ...` lines).
fn fs_context_log(fd: BorrowedFd<'_>) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
        }
    }
    out.join("; ")
}

fn with_log(fd: BorrowedFd<'_>, e: Errno, what: &str) -> Error {
    let log = fs_context_log(fd);
    if log.is_empty() {
        Error::Mount(format!("{what}: {e}"))
    } else {
        Error::Mount(format!("{what}: {e} (kernel: {log})"))
    }
}

fn mount_overlay_new_api(spec: &OverlaySpec, target: &Path) -> Result<(), NewApiError> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| NewApiError::Refused(Error::Mount(format!("fsopen(overlay): {e}"))))?;
    for lower in &spec.lowers_top_first {
        fsconfig_set_string(&fs, "lowerdir+", lower.as_path()).map_err(|e| {
            NewApiError::Refused(with_log(
                fs.as_fd(),
                e,
                &format!("fsconfig lowerdir+ {}", lower.display()),
            ))
        })?;
    }
    if let Some((upper, work)) = &spec.upper {
        for (key, dir) in [("upperdir", upper), ("workdir", work)] {
            fsconfig_set_string(&fs, key, dir.as_path()).map_err(|e| {
                let err = with_log(fs.as_fd(), e, &format!("fsconfig {key} {}", dir.display()));
                // fsconfig takes strings of at most 256 bytes; mount(2) with
                // a short relative path can still do it.
                if dir.as_os_str().len() >= 256 {
                    NewApiError::Refused(err)
                } else {
                    NewApiError::Failed(err)
                }
            })?;
        }
    }
    // As Docker's overlay2: no inode index, so an upper dir can be mounted
    // again over the same lowers after a copy or a crash. Older kernels may
    // not know the option; that is not an error.
    let _ = fsconfig_set_string(&fs, "index", "off");
    // Upper dirs become layers (tar, or adopted as lower dirs): no redirect
    // or metacopy xattrs in them, whatever the module's defaults (renaming
    // a lower directory then copies it, as in Docker's overlay2).
    // With userxattr "off" (which still follows) is refused: "nofollow".
    let redirect = if strata_rootless::is_rootless() {
        "nofollow"
    } else {
        "off"
    };
    let _ = fsconfig_set_string(&fs, "redirect_dir", redirect);
    let _ = fsconfig_set_string(&fs, "metacopy", "off");
    if strata_rootless::is_rootless() {
        // Markers in user.overlay.* xattrs: trusted.* is the host root's.
        fsconfig_set_flag(&fs, "userxattr")
            .map_err(|e| NewApiError::Refused(with_log(fs.as_fd(), e, "fsconfig userxattr (kernel 5.11+)")))?;
    }
    let _ = fs_context_log(fs.as_fd());
    fsconfig_create(&fs).map_err(|e| NewApiError::Failed(with_log(fs.as_fd(), e, "creating the overlay")))?;
    let attrs = if spec.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| NewApiError::Failed(with_log(fs.as_fd(), e, "fsmount of the overlay")))?;
    move_mount(mnt.as_fd(), "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH).map_err(|e| {
        NewApiError::Failed(Error::Mount(format!(
            "attaching the overlay to {}: {e}",
            target.display()
        )))
    })
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Mount(format!("path {} contains a NUL byte", p.display())))
}

fn mount_overlay_legacy(spec: &OverlaySpec, target: &Path) -> Result<()> {
    let target = fs::canonicalize(target).ctx(|| format!("resolving the mount target {}", target.display()))?;
    let links = &spec.link_dir;
    if links.exists() {
        fs::remove_dir_all(links).ctx(|| format!("removing old {}", links.display()))?;
    }
    fs::create_dir_all(links).ctx(|| format!("creating {}", links.display()))?;
    let mut lower_names = Vec::with_capacity(spec.lowers_top_first.len());
    for (i, lower) in spec.lowers_top_first.iter().enumerate() {
        let abs = fs::canonicalize(lower).ctx(|| format!("resolving layer dir {}", lower.display()))?;
        let name = format!("{i:x}");
        std::os::unix::fs::symlink(&abs, links.join(&name))
            .ctx(|| format!("linking {} in {}", abs.display(), links.display()))?;
        lower_names.push(name);
    }
    let mut data = format!("lowerdir={}", lower_names.join(":"));
    if let Some((upper, work)) = &spec.upper {
        for (dir, name) in [(upper, "u"), (work, "w")] {
            let abs = fs::canonicalize(dir).ctx(|| format!("resolving {}", dir.display()))?;
            std::os::unix::fs::symlink(&abs, links.join(name))
                .ctx(|| format!("linking {} in {}", abs.display(), links.display()))?;
        }
        data.push_str(",upperdir=u,workdir=w");
    }
    if strata_rootless::is_rootless() {
        data.push_str(",index=off,redirect_dir=nofollow,userxattr");
    } else {
        data.push_str(",index=off,redirect_dir=off");
    }
    if data.len() >= 4096 {
        return Err(Error::Mount(format!(
            "{} layers do not fit in the 4 KiB overlay option string even with short paths",
            lower_names.len()
        )));
    }
    let c_links = cstring(links)?;
    let c_target = cstring(&target)?;
    let c_data = CString::new(data).expect("no NUL in generated options");
    let flags = if spec.readonly { libc::MS_RDONLY } else { 0 };
    // The chdir must not move the caller's other threads: do it in a child,
    // which shares the mount namespace, so its mount is ours. Only raw
    // syscalls between fork and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::Mount(format!(
            "fork for the overlay mount: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        unsafe {
            if libc::chdir(c_links.as_ptr()) != 0 {
                libc::_exit(128 + (*libc::__errno_location()).min(126));
            }
            let r = libc::mount(
                c"overlay".as_ptr(),
                c_target.as_ptr(),
                c"overlay".as_ptr(),
                flags,
                c_data.as_ptr().cast(),
            );
            let errno = if r == 0 { 0 } else { *libc::__errno_location() };
            libc::_exit(errno.min(127));
        }
    }
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Mount(format!("waiting for the overlay mount helper: {err}")));
        }
    }
    if !libc::WIFEXITED(status) {
        return Err(Error::Mount(format!(
            "the overlay mount helper died (status {status:#x})"
        )));
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        code @ 128.. => Err(Error::Mount(format!(
            "chdir to {}: {}",
            links.display(),
            std::io::Error::from_raw_os_error(code - 128)
        ))),
        errno => Err(Error::Mount(format!(
            "mount(2) of the overlay on {} ({} lower layers): {}",
            target.display(),
            lower_names.len(),
            std::io::Error::from_raw_os_error(errno)
        ))),
    }
}

/// Bind-mounts `src` on `target` (not recursive), read-only if asked.
pub(crate) fn bind(src: &Path, target: &Path, readonly: bool) -> Result<()> {
    let tree = open_tree(
        CWD,
        src,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .ctx(|| format!("open_tree {}", src.display()))?;
    if readonly {
        set_readonly(&tree).ctx(|| format!("making the bind mount of {} read-only", src.display()))?;
    }
    move_mount(tree.as_fd(), "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .ctx(|| format!("bind-mounting {} on {}", src.display(), target.display()))
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn set_readonly(tree: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts the overlay with the `fuse-overlayfs` program (which stays as
/// the file system's server until the unmount). Lower dirs are passed
/// through the numbered links of the legacy path, so long chains fit.
pub(crate) fn mount_fuse_overlay(spec: &OverlaySpec, target: &Path) -> Result<()> {
    let Some((upper, work)) = &spec.upper else {
        return Err(Error::Mount("fuse-overlayfs needs an upper dir".into()));
    };
    let links = &spec.link_dir;
    if links.exists() {
        fs::remove_dir_all(links).ctx(|| format!("removing old {}", links.display()))?;
    }
    fs::create_dir_all(links).ctx(|| format!("creating {}", links.display()))?;
    let mut names = Vec::with_capacity(spec.lowers_top_first.len());
    for (i, lower) in spec.lowers_top_first.iter().enumerate() {
        let abs = fs::canonicalize(lower).ctx(|| format!("resolving layer dir {}", lower.display()))?;
        let link = links.join(format!("{i:x}"));
        std::os::unix::fs::symlink(&abs, &link).ctx(|| format!("linking {}", link.display()))?;
        names.push(link.display().to_string());
    }
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        names.join(":"),
        upper.display(),
        work.display()
    );
    if spec.readonly {
        opts.push_str(",ro");
    }
    let out = std::process::Command::new("fuse-overlayfs")
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Mount(format!("running fuse-overlayfs: {e} (apt-get install fuse-overlayfs)")))?;
    if !out.status.success() {
        return Err(Error::Mount(format!(
            "fuse-overlayfs on {} failed ({}): {}",
            target.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Unmounts `target`; lazily (MNT_DETACH) when it is busy.
pub(crate) fn unmount(target: &Path) -> Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)
            .ctx(|| format!("unmounting {} (lazily, it was busy)", target.display())),
        Err(e) => Err(Error::Mount(format!("unmounting {}: {e}", target.display()))),
    }
}

/// Whether `path` is the root of a mount (false when it does not exist).
pub(crate) fn is_mount_point(path: &Path) -> Result<bool> {
    match rustix::fs::statx(
        CWD,
        path,
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    ) {
        Ok(r) => {
            if !r.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
                return Err(Error::Mount(
                    "the kernel does not report mount roots (statx STATX_ATTR_MOUNT_ROOT)".into(),
                ));
            }
            Ok(r.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
        }
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::io(format!("statx {}", path.display()), e)),
    }
}
