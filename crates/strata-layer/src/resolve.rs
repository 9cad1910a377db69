//! Resolving a path inside a root as a process chrooted there would: every
//! symlink on the way (the last component too, dangling ones included) is
//! followed, an absolute target starting again at the root and `..` never
//! climbing above it. The result names the same place with no symlink on
//! the way, so it can be opened or created without following any (see
//! [`crate::UnpackOptions::follow_symlinks`]; a build step writing into its
//! own root resolves its destination so). Nothing outside the root is
//! reached: each component is looked up relative to a directory opened
//! inside it, never through a path.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Symlinks followed before a resolution gives up (the kernel's 40).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// The symlink-free path of `rel` inside the directory `root` (relative,
/// without `.`, `..` or empty components; empty for the root itself).
/// Components that do not exist are kept as written (`..` after them is
/// taken lexically), so a dangling link resolves to where its target would
/// be. Fails with `ELOOP` past [`MAX_SYMLINK_HOPS`] links.
pub fn resolve_in_root(root: &OwnedFd, rel: &Path) -> rustix::io::Result<PathBuf> {
    // What is left to walk, last component first.
    let mut pending: Vec<OsString> = components(rel.as_os_str().as_bytes()).rev().collect();
    // The resolved components; the first `existing` are directories, the
    // last of them open as `cur` (None: the root). One descriptor at a
    // time, whatever the depth: `..` of a resolved directory is its parent.
    let mut done: Vec<OsString> = Vec::new();
    let mut existing = 0;
    let mut cur: Option<OwnedFd> = None;
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == "." {
            continue;
        }
        if c == ".." {
            if done.is_empty() {
                continue;
            }
            if existing == done.len() {
                existing -= 1;
                cur = match (existing, &cur) {
                    (0, _) | (_, None) => None,
                    (_, Some(fd)) => Some(open_dir_path(fd, OsStr::new(".."))?),
                };
            }
            done.pop();
            continue;
        }
        // Below something missing: nothing more to look up.
        if existing < done.len() {
            done.push(c);
            continue;
        }
        let dir = cur.as_ref().unwrap_or(root);
        match rustix::fs::statat(dir, c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    cur = Some(open_dir_path(dir, &c)?);
                    existing += 1;
                    done.push(c);
                }
                FileType::Symlink => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(Errno::LOOP);
                    }
                    let target = rustix::fs::readlinkat(dir, c.as_os_str(), Vec::new())?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        done.clear();
                        existing = 0;
                        cur = None;
                    }
                    pending.extend(components(target).rev());
                }
                // A file: what comes after it cannot exist.
                _ => done.push(c),
            },
            Err(Errno::NOENT) => done.push(c),
            Err(e) => return Err(e),
        }
    }
    Ok(done.iter().collect())
}

fn open_dir_path(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn components(p: &[u8]) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    p.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsStr::from_bytes(c).to_os_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn open(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn links_are_followed_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("tmp")).unwrap();
        std::fs::create_dir_all(r.join("srv/sub")).unwrap();
        symlink("../tmp/target", r.join("link")).unwrap();
        symlink("/srv", r.join("abs")).unwrap();
        symlink("../../../../etc", r.join("up")).unwrap();
        symlink("/nowhere/deep", r.join("dangling")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        std::fs::write(r.join("file"), "").unwrap();
        let fd = open(r);
        let res = |p: &str| resolve_in_root(&fd, Path::new(p)).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(res("link").unwrap(), "tmp/target");
        assert_eq!(res("link/foo").unwrap(), "tmp/target/foo");
        assert_eq!(res("abs/sub/x").unwrap(), "srv/sub/x");
        assert_eq!(res("up/passwd").unwrap(), "etc/passwd");
        assert_eq!(res("dangling/x").unwrap(), "nowhere/deep/x");
        assert_eq!(res("../../srv/./sub/../x").unwrap(), "srv/x");
        assert_eq!(res("file/x").unwrap(), "file/x");
        assert_eq!(res("").unwrap(), "");
        assert_eq!(res("loop1/x").unwrap_err(), Errno::LOOP);
        // `..` after a followed link climbs from where the link led.
        std::fs::create_dir_all(r.join("srv/sub/deeper")).unwrap();
        symlink("/srv/sub/deeper", r.join("deep")).unwrap();
        assert_eq!(res("deep/../../x").unwrap(), "srv/x");
        assert_eq!(res("deep/../../../../../x").unwrap(), "x");
        assert_eq!(res("link/../srv/sub").unwrap(), "tmp/srv/sub");
    }

    #[test]
    fn a_path_past_path_max_resolves_with_one_descriptor_at_a_time() {
        let t = tempfile::tempdir().unwrap();
        let fd = open(t.path());
        let mut d = rustix::fs::openat(&fd, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let depth = 3000;
        for _ in 0..depth {
            rustix::fs::mkdirat(&d, "ab", Mode::from_raw_mode(0o755)).unwrap();
            d = open_dir_path(&d, OsStr::new("ab")).unwrap();
        }
        rustix::fs::symlinkat("/top", &d, "up").unwrap();
        rustix::fs::mkdirat(&fd, "top", Mode::from_raw_mode(0o755)).unwrap();
        let deep = vec!["ab"; depth].join("/");
        assert!(deep.len() > 4096);
        let got = resolve_in_root(&fd, Path::new(&format!("{deep}/x/../up/y"))).unwrap();
        assert_eq!(got, Path::new("top/y"));
        let got = resolve_in_root(&fd, Path::new(&format!("{deep}/new"))).unwrap();
        assert_eq!(got, Path::new(&format!("{deep}/new")));
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            if name.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            } else {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
            }
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpack_follows_symlinks_inside_the_root_only_when_asked() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("srv")).unwrap();
        std::fs::create_dir_all(r.join("var")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        symlink("/srv", r.join("var/svc")).unwrap();
        // Absolute and climbing targets stay inside the root.
        symlink(t.path().join("outside"), r.join("host")).unwrap();
        symlink("../../../..", r.join("up")).unwrap();
        let tar = tar_of(&[
            ("var/svc/conf", b"c"),
            ("var/svc/sub/f", b"f"),
            ("host/x", b"x"),
            ("up/y", b"y"),
            ("made/", b""),
            ("made/link-to", b"l"),
        ]);
        let refused = crate::unpack(&tar[..], &r, &crate::UnpackOptions::default()).unwrap_err();
        assert!(refused.to_string().contains("symlink"), "{refused}");
        let opts = crate::UnpackOptions {
            whiteouts: crate::WhiteoutMode::Plain,
            follow_symlinks: true,
            ..Default::default()
        };
        crate::unpack(&tar[..], &r, &opts).unwrap();
        assert_eq!(std::fs::read(r.join("srv/conf")).unwrap(), b"c");
        assert_eq!(std::fs::read(r.join("srv/sub/f")).unwrap(), b"f");
        assert!(std::fs::symlink_metadata(r.join("var/svc")).unwrap().is_symlink());
        let host_path = t.path().join("outside").strip_prefix("/").unwrap().to_path_buf();
        assert_eq!(std::fs::read(r.join(host_path).join("x")).unwrap(), b"x");
        assert!(!t.path().join("outside/x").exists());
        assert_eq!(std::fs::read(r.join("y")).unwrap(), b"y");
        // Symlinks the archive itself plants are followed too, inside the root.
        let tar = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "planted", "/srv").unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(2);
            b.append_data(&mut h, "planted/p", &b"p\n"[..]).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, "hard", "planted/p").unwrap();
            b.into_inner().unwrap()
        };
        crate::unpack(&tar[..], &r, &opts).unwrap();
        assert_eq!(std::fs::read(r.join("srv/p")).unwrap(), b"p\n");
        assert_eq!(std::fs::read(r.join("hard")).unwrap(), b"p\n");
        assert!(crate::unpack(&tar[..], &r, &crate::UnpackOptions::default()).is_err());
        // An entry's own name is replaced, not followed.
        let tar = tar_of(&[("var/svc", b"now a file")]);
        crate::unpack(&tar[..], &r, &opts).unwrap();
        assert_eq!(std::fs::read(r.join("var/svc")).unwrap(), b"now a file");
        assert_eq!(std::fs::read(r.join("srv/conf")).unwrap(), b"c");
    }
}
