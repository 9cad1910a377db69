//! Device allow-list rules, as Docker gives them to runc: a default list for
//! every container, one rule per `--device`, and allow-all for `--privileged`.

use std::fmt;
use std::path::Path;

use rustix::fs::FileType;

use crate::CgroupError;

/// Which device nodes a rule covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Character devices (`c`).
    Char,
    /// Block devices (`b`).
    Block,
    /// Both (`a`).
    All,
}

/// One allow rule: a kind, a major and minor number (`None` = any), and the
/// access it grants. Everything no rule allows is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Create the node with `mknod`.
    pub mknod: bool,
}

/// Docker's default allow-list: `/dev/null`, `zero`, `full`, `random`,
/// `urandom`, `tty`, `console`, `ptmx` and the pty slaves (`c 136:*`), all
/// `rwm`. Nothing else, not even a blanket `mknod`.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let c = |major, minor| DeviceRule::char_rwm(major, minor);
    vec![
        c(1, Some(3)), // null
        c(1, Some(5)), // zero
        c(1, Some(7)), // full
        c(1, Some(8)), // random
        c(1, Some(9)), // urandom
        c(5, Some(0)), // tty
        c(5, Some(1)), // console
        c(5, Some(2)), // ptmx
        c(136, None),  // pts/*
    ]
}

/// Parses Docker's device permissions: a non-empty subset of `rwm`, each
/// letter at most once. Returns (read, write, mknod).
pub fn parse_permissions(perms: &str) -> Result<(bool, bool, bool), CgroupError> {
    let bad = || CgroupError::InvalidPermissions(perms.to_string());
    let (mut r, mut w, mut m) = (false, false, false);
    if perms.is_empty() {
        return Err(bad());
    }
    for ch in perms.chars() {
        let flag = match ch {
            'r' => &mut r,
            'w' => &mut w,
            'm' => &mut m,
            _ => return Err(bad()),
        };
        if *flag {
            return Err(bad());
        }
        *flag = true;
    }
    Ok((r, w, m))
}

impl DeviceRule {
    const fn char_rwm(major: u32, minor: Option<u32>) -> DeviceRule {
        DeviceRule {
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            read: true,
            write: true,
            mknod: true,
        }
    }

    /// Every device, every access: `--privileged`.
    pub const fn allow_all() -> DeviceRule {
        DeviceRule {
            kind: DeviceKind::All,
            major: None,
            minor: None,
            read: true,
            write: true,
            mknod: true,
        }
    }

    /// A rule from its parts; `perms` is a non-empty subset of `rwm`.
    pub fn new(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        perms: &str,
    ) -> Result<DeviceRule, CgroupError> {
        let (read, write, mknod) = parse_permissions(perms)?;
        Ok(DeviceRule {
            kind,
            major,
            minor,
            read,
            write,
            mknod,
        })
    }

    /// The rule for `--device HOST:...:PERMS`: the kind and major/minor
    /// numbers of the host node `path` (symlinks followed), with `perms`
    /// (a non-empty subset of `rwm`; Docker's default is `rwm`).
    pub fn for_node(path: &Path, perms: &str) -> Result<DeviceRule, CgroupError> {
        let (read, write, mknod) = parse_permissions(perms)?;
        let st = rustix::fs::stat(path).map_err(|e| CgroupError::io("stat", path, e))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => DeviceKind::Char,
            FileType::BlockDevice => DeviceKind::Block,
            _ => return Err(CgroupError::NotADevice(path.to_path_buf())),
        };
        #[allow(clippy::useless_conversion)] // st_rdev's type differs between targets
        let rdev = u64::from(st.st_rdev);
        Ok(DeviceRule {
            kind,
            major: Some(rustix::fs::major(rdev)),
            minor: Some(rustix::fs::minor(rdev)),
            read,
            write,
            mknod,
        })
    }

    /// True for a rule that allows every device every access.
    pub fn is_allow_all(&self) -> bool {
        *self == DeviceRule::allow_all()
    }

    /// True when the rule grants no access at all (it then allows nothing).
    pub fn is_empty(&self) -> bool {
        !(self.read || self.write || self.mknod)
    }

    /// The permissions as Docker and cgroup v1 write them (`rwm`, `r`, ...).
    pub fn permissions(&self) -> String {
        let mut s = String::with_capacity(3);
        for (on, ch) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                s.push(ch);
            }
        }
        s
    }

    /// The lines to write to a v1 `devices.allow`, one per write. `a` alone
    /// is the v1 "allow everything" switch (the kernel ignores what follows
    /// an `a`), so an `All` rule narrower than allow-all becomes a `c` and a
    /// `b` line. An empty rule gives no line.
    pub(crate) fn v1_lines(&self) -> Vec<String> {
        if self.is_empty() {
            return Vec::new();
        }
        if self.is_allow_all() {
            return vec!["a".to_string()];
        }
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let tail = format!("{}:{} {}", num(self.major), num(self.minor), self.permissions());
        match self.kind {
            DeviceKind::Char => vec![format!("c {tail}")],
            DeviceKind::Block => vec![format!("b {tail}")],
            DeviceKind::All => vec![format!("c {tail}"), format!("b {tail}")],
        }
    }
}

impl fmt::Display for DeviceRule {
    /// `c 1:3 rwm`, `b 7:* r`, `a *:* rwm` (the cgroup v1 `devices.list` form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
            DeviceKind::All => 'a',
        };
        write!(f, "{kind} ")?;
        match self.major {
            Some(n) => write!(f, "{n}:")?,
            None => write!(f, "*:")?,
        }
        match self.minor {
            Some(n) => write!(f, "{n} ")?,
            None => write!(f, "* ")?,
        }
        write!(f, "{}", self.permissions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_docker_list() {
        let got: Vec<String> = default_device_rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            got,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
    }

    #[test]
    fn permissions() {
        assert_eq!(parse_permissions("rwm").unwrap(), (true, true, true));
        assert_eq!(parse_permissions("mr").unwrap(), (true, false, true));
        for bad in ["", "rr", "x", "rwmx", "R"] {
            assert!(parse_permissions(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn v1_lines() {
        assert_eq!(DeviceRule::allow_all().v1_lines(), ["a"]);
        let r = DeviceRule::new(DeviceKind::All, Some(7), None, "r").unwrap();
        assert_eq!(r.v1_lines(), ["c 7:* r", "b 7:* r"]);
        let r = DeviceRule::new(DeviceKind::Block, Some(7), Some(0), "rw").unwrap();
        assert_eq!(r.v1_lines(), ["b 7:0 rw"]);
        let mut r = r;
        r.read = false;
        r.write = false;
        assert!(r.v1_lines().is_empty());
    }

    #[test]
    fn for_node() {
        let r = DeviceRule::for_node(Path::new("/dev/null"), "rw").unwrap();
        assert_eq!(r.to_string(), "c 1:3 rw");
        assert!(matches!(
            DeviceRule::for_node(Path::new("/"), "r"),
            Err(CgroupError::NotADevice(_))
        ));
    }
}
