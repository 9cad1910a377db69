//! `RUN --mount`: parsing the mount specs and preparing what they mount
//! (cache directories in the store, binds from the context or another
//! stage or image, empty scratch directories, secrets), plus the mount
//! points: created by the builder before the process runs, so that the
//! ones that were not in the image are removed again from the step's
//! changes (BuildKit does the same; an empty `/run/secrets` never lands in
//! a layer).
//!
//! Nothing here names a host path from the Dockerfile: cache ids become
//! hashed directory names under `<store>/build-mounts/cache/`, sources are
//! resolved inside their tree, targets inside the step's root.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::pattern::clean_rel;

/// `return Err(Error::InvalidMount(format!(...)))`: a `--mount` value that does not parse.
macro_rules! invalid_mount {
    ($($arg:tt)*) => {
        return Err(Error::InvalidMount(format!($($arg)*)))
    };
}
use crate::tree::{DirTree, Kind, SourceTree, join, resolve};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount=...` of a RUN.
#[derive(Debug, Clone)]
pub struct RunMount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub sharing: Sharing,
    pub readonly: bool,
    pub required: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    pub env: Option<String>,
}

/// Splits a comma list where fields may be quoted (`"a,b"`), as BuildKit's CSV reader.
fn split_csv(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => quote = Some(c),
            (None, ',') => out.push(std::mem::take(&mut cur)),
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        invalid_mount!("unterminated quote in --mount={s}");
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None => Ok(true),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => invalid_mount!("invalid value for {key}: {v:?}"),
        },
    }
}

/// Parses one `--mount` value (variables already expanded).
pub fn parse(spec: &str) -> Result<RunMount> {
    let fields = split_csv(spec)?;
    let mut kind = MountType::Bind;
    for f in &fields {
        if let Some(t) = f.trim().strip_prefix("type=") {
            kind = match t.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                other => invalid_mount!("unsupported mount type {other:?} (bind, cache, tmpfs, secret or ssh)"),
            };
        }
    }
    let mut m = RunMount {
        kind,
        target: None,
        source: None,
        from: None,
        id: None,
        sharing: Sharing::Shared,
        // Bind, secret and ssh mounts are read-only unless told otherwise.
        readonly: matches!(kind, MountType::Bind | MountType::Secret | MountType::Ssh),
        required: false,
        uid: None,
        gid: None,
        mode: None,
        env: None,
    };
    for f in &fields {
        let f = f.trim();
        if f.is_empty() {
            continue;
        }
        let (k, v) = match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (f.to_ascii_lowercase(), None),
        };
        let val = || {
            v.map(str::to_string)
                .ok_or_else(|| Error::InvalidMount(format!("--mount: {k} needs a value")))
        };
        let num = |what: &str| -> Result<u32> {
            let s = val()?;
            s.parse::<u32>()
                .map_err(|_| Error::InvalidMount(format!("--mount: invalid {what} {s:?}: expected a number")))
        };
        match k.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => m.target = Some(val()?),
            "source" | "src" => m.source = Some(val()?),
            "from" => m.from = Some(val()?),
            "id" => m.id = Some(val()?),
            "sharing" => {
                m.sharing = match val()?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => invalid_mount!("--mount: invalid sharing {other:?} (shared, private or locked)"),
                }
            }
            "readonly" | "ro" => m.readonly = parse_bool(&k, v)?,
            "rw" | "readwrite" => m.readonly = !parse_bool(&k, v)?,
            "required" => m.required = parse_bool(&k, v)?,
            "uid" => m.uid = Some(num("uid")?),
            "gid" => m.gid = Some(num("gid")?),
            "mode" => {
                let s = val()?;
                m.mode = Some(
                    u32::from_str_radix(&s, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            Error::InvalidMount(format!("--mount: invalid mode {s:?}: expected octal such as 0755"))
                        })?,
                );
            }
            "env" => m.env = Some(val()?),
            "size" | "bind-propagation" | "consistency" => {}
            other => invalid_mount!("unexpected key {other:?} in --mount={spec}"),
        }
    }
    if m.kind == MountType::Ssh {
        return Err(Error::Unsupported(
            "RUN --mount=type=ssh is not supported (no SSH agent forwarding in strata build)".into(),
        ));
    }
    if m.kind == MountType::Secret {
        let id = match (&m.id, &m.target) {
            (Some(id), _) => id.clone(),
            (None, Some(t)) => t.rsplit('/').next().unwrap_or("").to_string(),
            (None, None) => invalid_mount!("--mount=type=secret needs an id"),
        };
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            invalid_mount!("invalid secret id {id:?}");
        }
        if m.target.is_none() && m.env.is_none() {
            m.target = Some(format!("/run/secrets/{id}"));
        }
        m.id = Some(id);
    } else if m.target.is_none() {
        invalid_mount!("--mount={spec}: target is required");
    }
    if m.kind == MountType::Cache && m.from.is_some() {
        return Err(Error::Unsupported(
            "--mount=type=cache,from=... is not supported yet".into(),
        ));
    }
    if let Some(e) = &m.env
        && (e.is_empty() || e.contains('='))
    {
        invalid_mount!("invalid environment variable name {e:?} in --mount");
    }
    Ok(m)
}

/// The cache mount's directory name for `id`: a readable part and a hash, never a path.
pub fn cache_dir_name(id: &str) -> String {
    let readable: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let h = strata_oci::Digest::sha256_of(id.as_bytes());
    format!("{}-{}", readable.trim_matches('_'), &h.hex()[..16])
}

/// Where a mount target lands in the step's root: relative, cleaned.
pub fn target_rel(target: &str, workdir: &str) -> Result<String> {
    let abs = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{target}", workdir.trim_end_matches('/'))
    };
    let rel = clean_rel(&abs);
    if rel.is_empty() {
        return Err(Error::MountOnRoot);
    }
    Ok(rel)
}

/// Mount points made by the builder, to be removed from the step's changes afterwards.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Created entries (symlink-free, relative), parents first.
    pub created: Vec<Made>,
    /// Existing directories a new mount point was made in, with how they
    /// were before: overlay copies them up; an unchanged copy is dropped.
    pub parents: Vec<Parent>,
}

/// An entry the builder created, as it was in the changes directory.
#[derive(Debug, Clone)]
pub struct Made {
    pub rel: String,
    pub dir: bool,
    pub dev: u64,
    pub ino: u64,
}

/// A directory of the image a mount point was created in.
#[derive(Debug, Clone)]
pub struct Parent {
    pub rel: String,
    /// (mode, uid, gid) before.
    pub attrs: (u32, u32, u32),
    /// dev/ino of its copy in the changes directory (None: not there).
    pub id: Option<(u64, u64)>,
}

/// Makes the mount point `rel` in `merged` (a directory, or an empty file
/// when `is_file`), resolving symlinks inside the root. Returns its
/// symlink-free path; what it had to create is added to `cleanup`, with
/// its identity in `changes` (the overlay upper dir, or the copy driver's
/// root that `merged` binds), checked again before it is removed.
pub fn make_mount_point(
    merged: &Path,
    changes: &Path,
    rel: &str,
    is_file: bool,
    cleanup: &mut Cleanup,
) -> Result<String> {
    let tree = DirTree::open(merged, "the step's root".into())?;
    let croot = open_root(changes).ctx(|| format!("opening {}", changes.display()))?;
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = String::new();
    let mut creating = false;
    let first_parent = cleanup.parents.len();
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let cand = join(&cur, c);
        if !creating {
            match resolve(&tree, &cand, true)? {
                Some(p) => {
                    let kind = tree.lstat(&p)?.map(|m| m.kind);
                    if !last && kind != Some(Kind::Dir) {
                        return Err(Error::MountPathNotADirectory {
                            target: rel.to_string(),
                            path: p,
                        });
                    }
                    if last && !is_file && kind != Some(Kind::Dir) {
                        return Err(Error::MountDirectoryOnFile(rel.to_string()));
                    }
                    cur = p;
                    continue;
                }
                None => {
                    if let Some(m) = tree.lstat(&cand)?
                        && matches!(m.kind, Kind::Symlink(_))
                    {
                        return Err(Error::MountOnDanglingSymlink {
                            target: rel.to_string(),
                            link: cand,
                        });
                    }
                    // The directory it is created in: remember how it was.
                    // It and its ancestors: overlay copies them up.
                    let mut prefix = String::new();
                    for part in cur.split('/').filter(|c| !c.is_empty()) {
                        prefix = join(&prefix, part);
                        let md = std::fs::symlink_metadata(merged.join(&prefix))
                            .ctx(|| format!("stat /{prefix} in the step's root"))?;
                        cleanup.parents.push(Parent {
                            rel: prefix.clone(),
                            attrs: (md.mode() & 0o7777, md.uid(), md.gid()),
                            id: None,
                        });
                    }
                    creating = true;
                }
            }
        }
        let path = merged.join(&cand);
        if last && is_file {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .ctx(|| format!("creating the mount point /{cand}"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        } else {
            std::fs::create_dir(&path).ctx(|| format!("creating the mount point /{cand}"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        let st = lstat_beneath(&croot, &cand).ctx(|| format!("stat of the mount point /{cand}"))?;
        cleanup.created.push(Made {
            rel: cand.clone(),
            dir: !(last && is_file),
            dev: st.st_dev,
            ino: st.st_ino,
        });
        cur = cand;
    }
    // Copied up by now (overlay): their identity in the changes.
    for p in &mut cleanup.parents[first_parent..] {
        p.id = lstat_beneath(&croot, &p.rel).ok().map(|st| ident(&st));
    }
    Ok(cur)
}

/// Never follows a symlink, not even to a place inside the root: the step
/// may have planted any.
const NO_LINKS: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn open_root(dir: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
}

/// Opens `rel` (relative, "" for the root) under `root` without following any symlink.
fn open_beneath(root: &OwnedFd, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        NO_LINKS,
    )
}

/// `rel`'s parent directory, opened symlink-free, and its last component.
fn open_parent<'r>(root: &OwnedFd, rel: &'r str) -> rustix::io::Result<(OwnedFd, &'r str)> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    Ok((open_beneath(root, parent, OFlags::PATH | OFlags::DIRECTORY)?, name))
}

fn ident(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn lstat_beneath(root: &OwnedFd, rel: &str) -> rustix::io::Result<rustix::fs::Stat> {
    let (pfd, name) = open_parent(root, rel)?;
    rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// Removes the created entry `m` if it is still exactly what the builder
/// made: same type and inode, reached without a symlink, and (a directory)
/// empty, which `rmdir` itself checks. Returns whether it was removed.
fn remove_made(root: &OwnedFd, m: &Made) -> rustix::io::Result<bool> {
    let (pfd, name) = open_parent(root, &m.rel)?;
    let st = rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ident(&st) != (m.dev, m.ino) {
        return Ok(false);
    }
    if m.dir && ft == FileType::Directory {
        // fuse-overlayfs marks a directory it creates opaque, with marker
        // entries inside: its bookkeeping, not content that keeps it.
        if let Ok(dir) = rustix::fs::openat2(
            &pfd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            NO_LINKS,
        ) && strata_rootless::is_fuse_overlay_marker(&dir, b".wh..wh..opq")
        {
            for marker in [".wh..wh..opq", ".wh..opq"] {
                let _ = rustix::fs::unlinkat(&dir, marker, AtFlags::empty());
            }
        }
        rustix::fs::unlinkat(&pfd, name, AtFlags::REMOVEDIR)?;
    } else if !m.dir && ft == FileType::RegularFile && st.st_size == 0 {
        rustix::fs::unlinkat(&pfd, name, AtFlags::empty())?;
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// Removes the copied-up directory `p` if it holds nothing, is the copy
/// seen after the mount point was made and still has its attributes from
/// before, and is not opaque (which would hide the image's content).
fn remove_parent(root: &OwnedFd, p: &Parent) -> rustix::io::Result<bool> {
    let Some(id) = p.id else { return Ok(false) };
    let (pfd, name) = open_parent(root, &p.rel)?;
    let dir = rustix::fs::openat2(
        &pfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        NO_LINKS,
    )?;
    let st = rustix::fs::fstat(&dir)?;
    let same = ident(&st) == id && p.attrs == (st.st_mode & 0o7777, st.st_uid, st.st_gid);
    let opaque = strata_rootless::is_opaque_dir(&dir);
    if !same || opaque {
        return Ok(false);
    }
    // Not empty (or anything else): rmdir refuses, and it stays.
    rustix::fs::unlinkat(&pfd, name, AtFlags::REMOVEDIR)?;
    Ok(true)
}

/// Removes, in `changes` (the overlay upper dir or the copy driver's
/// root), the mount points the builder made when they are still what it
/// made, and (overlay) copied-up parents that hold nothing else and are
/// unchanged. Everything is reached fd-relative without following
/// symlinks: the step may have replaced any parent with a link to a host
/// path (CVE-2024-23652), and what is not exactly as made is left alone.
pub fn remove_mount_points(changes: &Path, cleanup: &Cleanup, overlay: bool) {
    let Ok(root) = open_root(changes) else { return };
    for m in cleanup.created.iter().rev() {
        let _ = remove_made(&root, m);
    }
    if !overlay {
        return;
    }
    let mut seen = BTreeMap::new();
    for p in &cleanup.parents {
        seen.entry(p.rel.clone()).or_insert(p);
    }
    let mut parents: Vec<&Parent> = seen.into_values().collect();
    // Deepest first, so that a parent emptied by a child's removal goes too.
    parents.sort_by_key(|p| std::cmp::Reverse(p.rel.matches('/').count()));
    for p in parents {
        let _ = remove_parent(&root, p);
    }
}

/// A secret given to the build (`--secret id=..,src=..|env=..`).
#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub id: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// Secrets larger than this are refused (as BuildKit).
const MAX_SECRET: u64 = 500 * 1024;

/// Parses `--secret id=NAME[,src=FILE|,env=VAR][,type=file|env]`.
pub fn parse_secret(s: &str) -> Result<SecretSpec> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut typ = None;
    for f in split_csv(s)? {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| invalid_secret(s, "expected key=value fields"))?;
        match k.trim() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" => typ = Some(v.to_string()),
            other => return Err(invalid_secret(s, format!("unexpected key {other:?}"))),
        }
    }
    let id = id.ok_or_else(|| invalid_secret(s, "id is required"))?;
    let source = match (typ.as_deref(), src, env) {
        (_, Some(f), None) => SecretSource::File(PathBuf::from(f)),
        (_, None, Some(e)) => SecretSource::Env(e),
        (Some("file"), None, None) => SecretSource::File(PathBuf::from(&id)),
        (Some("env") | None, None, None) => SecretSource::Env(id.clone()),
        (Some(t), None, None) => return Err(invalid_secret(s, format!("unknown type {t:?}"))),
        (_, Some(_), Some(_)) => return Err(invalid_secret(s, "give src or env, not both")),
    };
    Ok(SecretSpec { id, source })
}

fn invalid_secret(spec: &str, reason: impl Into<String>) -> Error {
    Error::InvalidSecret {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// The secret's value, or None when it is not available.
pub fn read_secret(spec: &SecretSpec) -> Result<Option<Vec<u8>>> {
    match &spec.source {
        SecretSource::Env(v) => Ok(std::env::var_os(v).map(|v| v.into_encoded_bytes())),
        SecretSource::File(p) => {
            let f = match File::open(p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).ctx(|| format!("reading the secret {} ({})", spec.id, p.display())),
            };
            let mut b = Vec::new();
            f.take(MAX_SECRET + 1)
                .read_to_end(&mut b)
                .ctx(|| format!("reading the secret {} ({})", spec.id, p.display()))?;
            if b.len() as u64 > MAX_SECRET {
                return Err(Error::SecretTooLarge {
                    id: spec.id.clone(),
                    max: MAX_SECRET,
                });
            }
            Ok(Some(b))
        }
    }
}

/// A build secret's host copy, read by the runtime: a file `secret`, 0400
/// and the builder's own, in a new 0700 directory in /dev/shm (memory,
/// never a disk or a layer) or else in `fallback` (the store's 0700 tmp).
/// Never chowned to the container's user: other host users must not read it.
pub fn secret_host_copy(fallback: &Path, value: &[u8]) -> Result<(tempfile::TempDir, PathBuf)> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm } else { fallback };
    std::fs::create_dir_all(base).ctx(|| format!("creating {}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("strata-secret-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
        .ctx(|| format!("creating a directory for a secret in {}", base.display()))?;
    // Exactly 0700, whatever the umask.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .ctx(|| "making the secret's directory private")?;
    let path = dir.path().join("secret");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)
        .ctx(|| "writing a secret")?;
    std::io::Write::write_all(&mut f, value).ctx(|| "writing a secret")?;
    f.set_permissions(std::fs::Permissions::from_mode(0o400))
        .ctx(|| "writing a secret")?;
    Ok((dir, path))
}

/// Secrets by id.
pub fn secrets_by_id(list: &[SecretSpec]) -> BTreeMap<String, SecretSpec> {
    list.iter().map(|s| (s.id.clone(), s.clone())).collect()
}

/// An exclusive or shared lock on a cache directory, held while the step runs.
pub struct DirLock(#[allow(dead_code)] File);

/// Locks `path` (a lock file beside the cache directory); `wait`: block, else fail when busy.
pub fn lock(path: &Path, wait: bool) -> Result<Option<DirLock>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx(|| format!("opening {}", path.display()))?;
    let mut op = rustix::fs::FlockOperation::LockExclusive;
    if !wait {
        op = rustix::fs::FlockOperation::NonBlockingLockExclusive;
    }
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(DirLock(f))),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(e).ctx(|| format!("locking {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mounts() {
        let m = parse("type=cache,target=/root/.cache,id=x,sharing=locked,uid=1,gid=2,mode=0700").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.sharing, Sharing::Locked);
        assert_eq!((m.uid, m.gid, m.mode), (Some(1), Some(2), Some(0o700)));
        assert!(!m.readonly);
        let b = parse("target=/src,source=.,rw").unwrap();
        assert_eq!(b.kind, MountType::Bind);
        assert!(!b.readonly);
        assert!(parse("type=bind,source=x").is_err());
        let s = parse("type=secret,id=tok").unwrap();
        assert_eq!(s.target.as_deref(), Some("/run/secrets/tok"));
        assert!(s.readonly);
        assert!(parse("type=secret,id=../x").is_err());
        assert!(parse("type=ssh").is_err());
        assert!(parse("type=cache,target=/x,bogus=1").is_err());
        let e = parse("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(e.target, None);
    }

    #[test]
    fn cache_names_are_not_paths() {
        for id in ["../../etc", "/etc/passwd", "a/b", ""] {
            let n = cache_dir_name(id);
            assert!(!n.contains('/') && !n.starts_with('.'), "{n}");
        }
        assert_ne!(cache_dir_name("a/b"), cache_dir_name("a_b"));
    }

    #[test]
    fn targets_stay_inside() {
        assert_eq!(target_rel("../../x", "/w").unwrap(), "x");
        assert_eq!(target_rel("cache", "/w").unwrap(), "w/cache");
        assert!(target_rel("/..", "/").is_err());
    }

    /// A step's root (also its changes, as with the copy driver) beside a
    /// "host" directory holding what teardown would remove there.
    fn root_and_host() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (root, host) = (t.path().join("root"), t.path().join("host"));
        std::fs::create_dir_all(root.join("usr/share")).unwrap();
        for d in ["c", "share", "z"] {
            std::fs::create_dir_all(host.join(d)).unwrap();
        }
        std::fs::write(host.join("f"), "").unwrap();
        std::fs::write(host.join("keep"), "sentinel").unwrap();
        (t, root, host)
    }

    fn host_intact(host: &Path) {
        for d in ["c", "share", "z"] {
            assert!(host.join(d).is_dir(), "{d} was removed");
        }
        assert!(host.join("f").is_file(), "f was removed");
        assert_eq!(std::fs::read_to_string(host.join("keep")).unwrap(), "sentinel");
    }

    #[test]
    fn teardown_removes_what_it_made() {
        let (_t, root, _) = root_and_host();
        let mut c = Cleanup::default();
        make_mount_point(&root, &root, "a/b/c", false, &mut c).unwrap();
        make_mount_point(&root, &root, "a/b/f", true, &mut c).unwrap();
        make_mount_point(&root, &root, "usr/share/m", false, &mut c).unwrap();
        remove_mount_points(&root, &c, true);
        assert!(!root.join("a").exists());
        // The image's own (empty, unchanged) directories go as overlay copy-ups.
        assert!(!root.join("usr").exists());
    }

    /// CVE-2024-23652: a parent of the mount points swapped for a symlink
    /// (absolute or climbing out) to a host directory.
    #[test]
    fn teardown_does_not_follow_planted_symlinks() {
        let (_t, root, host) = root_and_host();
        let mut c = Cleanup::default();
        make_mount_point(&root, &root, "a/b/c", false, &mut c).unwrap();
        make_mount_point(&root, &root, "a/b/f", true, &mut c).unwrap();
        make_mount_point(&root, &root, "x/y/z", false, &mut c).unwrap();
        make_mount_point(&root, &root, "usr/share/m", false, &mut c).unwrap();
        std::fs::rename(root.join("a/b"), root.join("a/moved")).unwrap();
        std::os::unix::fs::symlink(&host, root.join("a/b")).unwrap();
        std::fs::rename(root.join("x/y"), root.join("x/moved")).unwrap();
        std::os::unix::fs::symlink("../../host", root.join("x/y")).unwrap();
        std::fs::rename(root.join("usr"), root.join("usr-moved")).unwrap();
        std::os::unix::fs::symlink(&host, root.join("usr")).unwrap();
        remove_mount_points(&root, &c, true);
        host_intact(&host);
        // What the step moved is no longer where the builder made it: kept.
        assert!(root.join("a/moved/c").is_dir() && root.join("a/moved/f").is_file());
        assert!(root.join("x/moved/z").is_dir());
    }

    #[test]
    fn teardown_leaves_replaced_entries() {
        let (_t, root, _) = root_and_host();
        let mut c = Cleanup::default();
        make_mount_point(&root, &root, "a/d", false, &mut c).unwrap();
        make_mount_point(&root, &root, "a/f", true, &mut c).unwrap();
        // Other entries (another inode, another type) of the same names.
        // (made before the old one goes, so that its inode is another)
        std::fs::create_dir(root.join("a/d2")).unwrap();
        std::fs::remove_dir(root.join("a/d")).unwrap();
        std::fs::rename(root.join("a/d2"), root.join("a/d")).unwrap();
        std::fs::remove_file(root.join("a/f")).unwrap();
        std::os::unix::fs::symlink("/", root.join("a/f")).unwrap();
        remove_mount_points(&root, &c, false);
        assert!(root.join("a/d").is_dir());
        assert!(root.join("a/f").symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn secrets() {
        let s = parse_secret("id=a,src=/tmp/f").unwrap();
        assert!(matches!(s.source, SecretSource::File(_)));
        let s = parse_secret("id=a,env=B").unwrap();
        assert!(matches!(s.source, SecretSource::Env(ref v) if v == "B"));
        let s = parse_secret("id=A").unwrap();
        assert!(matches!(s.source, SecretSource::Env(ref v) if v == "A"));
        assert!(parse_secret("src=/x").is_err());
    }
}
