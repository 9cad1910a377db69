//! strata-rootless: strata as an ordinary user, as Podman does it.
//!
//! A command that needs privileges (unpacking owners, mounting overlays,
//! running containers) first [`enter`]s a user namespace in which the user
//! is root: container uid 0 is the user, container uid N is the N-th id of
//! the user's `/etc/subuid` ranges (mapped with shadow-utils' setuid
//! `newuidmap`/`newgidmap`), so an image's files keep their owners on disk
//! as the shifted host ids and read back unshifted inside. Without ranges
//! the namespace maps only the user's own id ("single-id mode": chown to
//! other ids is ignored, as containers-storage's `ignore_chown_errors`).
//!
//! One namespace serves every command on a store: a small pause process,
//! created by the first command, holds the user and mount namespaces, and
//! later commands join them with `setns`, so overlay mounts of detached
//! containers made by one command are seen by the next (`exec`, `cp`,
//! `commit`, `rm`). Its pid and start time are kept in the store
//! (`rootless.pid`), checked before joining so a reused pid is never joined.
//!
//! Everything below the CLI asks [`privileged`] (real root: host bridges,
//! nftables, cgroups, binfmt_misc, device nodes) or [`is_rootless`] (inside
//! such a namespace) instead of looking at the effective uid, which is 0 in
//! both cases.

mod pause;
mod subids;

use std::sync::OnceLock;

pub use pause::{Entered, enter, stop_pause};
pub use subids::{SubordinateRange, id_map, subordinate_ranges, user_name};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating a user namespace: {0}")]
    Unshare(std::io::Error),
    #[error("{tool} for process {pid} failed ({status}): {stderr}")]
    IdMapTool {
        tool: &'static str,
        pid: i32,
        status: String,
        stderr: String,
    },
    #[error("running {tool}: {source} (Debian's uidmap package provides it)")]
    IdMapToolMissing { tool: &'static str, source: std::io::Error },
    #[error("writing the id map of process {pid}: {source}")]
    IdMap { pid: i32, source: std::io::Error },
    #[error("joining the user namespace of process {pid}: {source}")]
    Join { pid: i32, source: std::io::Error },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// How this process relates to the host's privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Root in the initial user namespace.
    Root,
    /// Inside a user namespace that maps more than one id.
    Rootless,
    /// Inside a user namespace that maps one id only (no subordinate ids).
    RootlessSingleId,
    /// An ordinary user that has not entered a namespace.
    User,
}

/// This process's [`Privilege`], from `/proc/self/uid_map` (kept once
/// known to be root or in a namespace: only [`enter`] changes it, and only
/// from `User`).
pub fn privilege() -> Privilege {
    static P: OnceLock<Privilege> = OnceLock::new();
    if let Some(p) = P.get() {
        return *p;
    }
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let p = classify(&map, rustix::process::geteuid().is_root());
    if p != Privilege::User {
        let _ = P.set(p);
    }
    p
}

fn classify(uid_map: &str, euid_root: bool) -> Privilege {
    let lines: Vec<Vec<u64>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .filter(|f: &Vec<u64>| f.len() == 3)
        .collect();
    let initial = lines.len() == 1 && lines[0] == [0, 0, 4_294_967_295];
    match (initial || lines.is_empty(), euid_root) {
        (true, true) => Privilege::Root,
        (true, false) => Privilege::User,
        (false, _) if lines.iter().map(|l| l[2]).sum::<u64>() <= 1 => Privilege::RootlessSingleId,
        (false, _) => Privilege::Rootless,
    }
}

/// Root on the host: may make bridges, nftables rules, cgroups, device
/// nodes and binfmt_misc entries.
pub fn privileged() -> bool {
    privilege() == Privilege::Root
}

/// Inside strata's (or any) user namespace rather than the host's.
pub fn is_rootless() -> bool {
    matches!(privilege(), Privilege::Rootless | Privilege::RootlessSingleId)
}

/// Rootless with only the user's own id mapped: owners other than root
/// cannot be written.
pub fn single_id() -> bool {
    privilege() == Privilege::RootlessSingleId
}

/// The user's directory for sockets and namespace files, 0700:
/// `$XDG_RUNTIME_DIR/strata`, else `/tmp/strata-<uid>` (the host uid, also
/// inside the namespace). Created if missing; never another user's (a
/// `/tmp` name someone else made first is passed over for
/// `~/.cache/strata-runtime`).
pub fn runtime_dir() -> std::path::PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mine = |dir: &std::path::Path| {
        if std::fs::create_dir(dir).is_ok() {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == rustix::process::getuid().as_raw() && m.mode() & 0o077 == 0)
    };
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = std::path::PathBuf::from(d).join("strata");
        let _ = std::fs::create_dir_all(&dir);
        return dir;
    }
    let tmp = std::path::PathBuf::from(format!("/tmp/strata-{}", host_uid()));
    if mine(&tmp) {
        return tmp;
    }
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let dir = home.join(".cache/strata-runtime");
    let _ = std::fs::create_dir_all(home.join(".cache"));
    mine(&dir);
    dir
}

/// The host uid of this process: the outside id that uid 0 maps to in a
/// rootless namespace, else the real uid.
pub fn host_uid() -> u32 {
    let uid = rustix::process::getuid().as_raw();
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() == 3 && f[0] <= uid && uid - f[0] < f[2]).then(|| f[1] + (uid - f[0]))
        })
        .next()
        .unwrap_or(uid)
}

/// A chown's outcome, with EINVAL (the id is not mapped) taken as success
/// in single-id mode: files keep the user's id, as containers-storage's
/// `ignore_chown_errors`.
pub fn tolerate_chown(r: rustix::io::Result<()>) -> rustix::io::Result<()> {
    match r {
        Err(rustix::io::Errno::INVAL) if single_id() => Ok(()),
        other => other,
    }
}

/// The xattr overlayfs reads an opaque directory from: in the `trusted.`
/// namespace as root, in `user.` inside a user namespace (where strata
/// mounts overlays with `userxattr`, as Podman does).
pub fn overlay_opaque_xattr() -> &'static std::ffi::CStr {
    if is_rootless() {
        c"user.overlay.opaque"
    } else {
        c"trusted.overlay.opaque"
    }
}

/// Whether the directory `fd` is opaque in an upper or layer dir: the
/// kernel's marker of this mode, or (rootless) fuse-overlayfs's own
/// `user.fuseoverlayfs.opaque`.
pub fn is_opaque_dir<Fd: std::os::fd::AsFd>(fd: Fd) -> bool {
    let set = |name: &std::ffi::CStr| {
        let mut buf = [0u8; 4];
        matches!(rustix::fs::fgetxattr(&fd, name, &mut buf[..]), Ok(1) if buf[0] == b'y')
    };
    set(overlay_opaque_xattr()) || (is_rootless() && set(c"user.fuseoverlayfs.opaque"))
}

/// The entries fuse-overlayfs writes beside its opaque xattr in an upper
/// directory (`.wh..wh..opq`, and a `.wh..opq` whiteout device): its
/// bookkeeping, not the container's files. `parent` is their directory.
pub fn is_fuse_overlay_marker<Fd: std::os::fd::AsFd>(parent: Fd, name: &[u8]) -> bool {
    if !(is_rootless() && (name == b".wh..wh..opq" || name == b".wh..opq")) {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(rustix::fs::fgetxattr(&parent, c"user.fuseoverlayfs.opaque", &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// An overlayfs bookkeeping xattr (either namespace): never carried into a
/// layer, never taken from one.
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"user.fuseoverlayfs.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_uid_map() {
        let host = "         0          0 4294967295\n";
        assert_eq!(classify(host, true), Privilege::Root);
        assert_eq!(classify(host, false), Privilege::User);
        let ns = "         0       1001          1\n         1     100000      65536\n";
        assert_eq!(classify(ns, true), Privilege::Rootless);
        assert_eq!(classify("0 1001 1\n", true), Privilege::RootlessSingleId);
        assert_eq!(classify("", true), Privilege::Root);
    }
}
