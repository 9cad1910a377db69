//! `-u name|uid[:gid|group]` resolved in the image's own /etc/passwd and
//! /etc/group, read inside the root (symlinks resolve inside it).

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::error::{Context, Error, Result};
use rustix::fs::{Mode, OFlags};

use crate::spec::{UserSpec, check_id};
use crate::sys::IN_ROOT;

/// A user as the container will run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub user: UserSpec,
    /// From /etc/passwd, `/` when the user has no entry (for `HOME`).
    pub home: String,
}

const MAX_DB: u64 = 16 << 20;

/// Reads `/etc/<name>` of the root behind `root`; `None` when it does not
/// exist or is not a regular file (a FIFO or device planted by the image
/// must not block or touch the host process that reads it; without
/// `NONBLOCK` opening a FIFO waits for a writer).
pub(crate) fn read_db(root: BorrowedFd<'_>, name: &str) -> Result<Option<String>> {
    read_db_from(root, name, OFlags::NONBLOCK)
}

/// [`read_db`] as the container's own libc reads it: a FIFO blocks. Only
/// for a process already confined in the container (its HOME lookup),
/// where waiting hurts no one but the container.
fn read_db_in_container(root: BorrowedFd<'_>, name: &str) -> Result<Option<String>> {
    read_db_from(root, name, OFlags::empty())
}

fn read_db_from(root: BorrowedFd<'_>, name: &str, extra: OFlags) -> Result<Option<String>> {
    let path = format!("etc/{name}");
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | extra;
    let fd = match rustix::fs::openat2(root, &path, flags, Mode::empty(), IN_ROOT) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening /{path} in the container")),
    };
    if !rustix::fs::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG) {
        return Ok(None);
    }
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(MAX_DB)
        .read_to_string(&mut s)
        .with_context(|| format!("reading /{path} in the container"))?;
    Ok(Some(s))
}

struct Passwd<'a> {
    name: &'a str,
    uid: &'a str,
    gid: &'a str,
    home: &'a str,
}

fn passwd_entries(db: &str) -> impl Iterator<Item = Passwd<'_>> {
    db.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7).then(|| Passwd {
            name: f[0],
            uid: f[2],
            gid: f[3],
            home: f[5],
        })
    })
}

fn parse_id(s: &str, what: &'static str) -> Result<u32> {
    let n: i64 = s.parse().map_err(|source| Error::BadId {
        what,
        value: s.to_string(),
        source,
    })?;
    if !(0..=i32::MAX as i64).contains(&n) {
        return Err(Error::IdOutOfRange { what, id: n });
    }
    Ok(n as u32)
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// Resolves Docker's `--user` value (`""`, `name`, `uid`, `name:group`,
/// `uid:gid`, ...) against the image's `/etc/passwd` and `/etc/group`, read
/// with `openat2(RESOLVE_IN_ROOT)` from `root`. As runc: an unknown numeric
/// uid runs with gid 0 and home `/`; an unknown name is an error;
/// supplementary groups are the groups of /etc/group listing the user's
/// name, unless a group is given (`name:group`: that group only). IDs
/// outside 0..=2147483647 are refused.
pub fn resolve_user(root: &Path, spec: &str) -> Result<ResolvedUser> {
    let dir = std::fs::File::open(root).with_context(|| format!("opening the container root {}", root.display()))?;
    resolve_user_at(dir.as_fd(), spec)
}

pub(crate) fn resolve_user_at(root: BorrowedFd<'_>, spec: &str) -> Result<ResolvedUser> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = read_db(root, "passwd")?;
    let mut uid: u32;
    let mut gid: u32 = 0;
    let mut home = "/".to_string();
    let mut name: Option<String> = None;
    let found = passwd.as_deref().and_then(|db| {
        passwd_entries(db).find(|e| {
            if is_numeric(user_part) {
                e.uid == user_part
            } else {
                e.name == user_part
            }
        })
    });
    match found {
        Some(e) => {
            uid = parse_id(e.uid, "uid").with_context(|| format!("/etc/passwd entry of {:?}", e.name))?;
            gid = parse_id(e.gid, "gid").with_context(|| format!("/etc/passwd entry of {:?}", e.name))?;
            home = if e.home.is_empty() {
                "/".into()
            } else {
                e.home.to_string()
            };
            name = Some(e.name.to_string());
        }
        None if is_numeric(user_part) => uid = parse_id(user_part, "uid")?,
        None => return Err(Error::UnknownUser(user_part.to_string())),
    }
    if is_numeric(user_part) {
        uid = parse_id(user_part, "uid")?;
    }
    let group = read_db(root, "group")?;
    if let Some(g) = group_part {
        if g.is_empty() {
            return Err(Error::Invalid(format!("invalid user {spec:?}: empty group")));
        }
        if is_numeric(g) {
            gid = parse_id(g, "gid")?;
        } else {
            let entry = group.as_deref().and_then(|db| {
                db.lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 3 && f[0] == g)
            });
            match entry {
                Some(f) => gid = parse_id(f[2], "gid").with_context(|| format!("/etc/group entry of {g:?}"))?,
                None => return Err(Error::UnknownGroup(g.to_string())),
            }
        }
    }
    // As runc: the groups of /etc/group listing the user are added only when
    // no group is named (`USER name:group` runs with that group alone).
    let mut additional = Vec::new();
    if let (Some(name), Some(db), None) = (&name, &group, group_part) {
        for f in db.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                let id = parse_id(f[2], "gid").with_context(|| format!("/etc/group entry of {:?}", f[0]))?;
                if id != gid && !additional.contains(&id) {
                    additional.push(id);
                }
            }
        }
    }
    check_id(uid, "uid")?;
    Ok(ResolvedUser {
        user: UserSpec {
            uid,
            gid,
            additional_gids: additional,
        },
        home,
    })
}

/// Home directory of `uid` in the container's /etc/passwd (`/` when unknown).
pub(crate) fn home_of(root: BorrowedFd<'_>, uid: u32) -> String {
    let Ok(Some(db)) = read_db_in_container(root, "passwd") else {
        return "/".into();
    };
    let uid = uid.to_string();
    passwd_entries(&db)
        .find(|e| e.uid == uid)
        .map(|e| e.home.to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}
