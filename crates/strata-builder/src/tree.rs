//! Source trees for COPY and ADD: the build context (read in place, filtered
//! by `.dockerignore`, with a stat-keyed hash index) and the root of another
//! stage or image (a read-only mount).
//!
//! Paths are relative and `/`-separated. Symlinks are resolved by
//! [`resolve`] one component at a time inside the tree, so a link pointing
//! out of the tree (`/etc/passwd`, `../../x`) lands inside it (or nowhere),
//! never outside. Files are opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` from the tree's root, so a path swapped for a link
//! after it was listed is refused rather than followed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Ctx, Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use crate::pattern::{IgnoreRules, clean_rel, glob_match};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(String),
    Other,
}

/// What COPY needs to know of an entry.
#[derive(Debug, Clone)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    /// Owner (uid, gid): as on disk for a stage's or image's root; 0:0 in
    /// the build context (BuildKit resets the context's owners).
    pub owner: (u32, u32),
    /// Device and inode, and the number of links to the inode: files linked
    /// to one inode are copied as hard links of each other (as BuildKit's
    /// copy does). 0 when unknown.
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

/// A tree COPY can read from.
pub trait SourceTree: Sync {
    /// The entry at a symlink-free relative path (`""` is the root), not following a final link.
    fn lstat(&self, rel: &str) -> Result<Option<Meta>>;
    /// Names in a directory, sorted.
    fn list_dir(&self, rel: &str) -> Result<Vec<String>>;
    /// Opens a regular file.
    fn open_file(&self, rel: &str) -> Result<File>;
}

/// Resolves `path` inside `tree`: `..` stops at the top, symlinks are
/// followed inside the tree (absolute targets from its root). Returns the
/// symlink-free path, or `None` when it does not exist (or is ignored).
pub fn resolve(tree: &dyn SourceTree, path: &str, follow_last: bool) -> Result<Option<String>> {
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(c);
        let p = cur.join("/");
        let Some(meta) = tree.lstat(&p)? else {
            return Ok(None);
        };
        match meta.kind {
            Kind::Symlink(target) if !pending.is_empty() || follow_last => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::SymlinkLoop(path.to_string()));
                }
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                for t in target.split('/').rev() {
                    pending.push(t.to_string());
                }
            }
            Kind::Dir | Kind::Symlink(_) => {}
            _ if !pending.iter().all(|s| s.is_empty() || s == ".") => return Ok(None),
            _ => {}
        }
    }
    Ok(Some(cur.join("/")))
}

/// Expands a source that holds wildcards: every entry whose path matches
/// the pattern, component by component, sorted.
pub fn expand_wildcard(tree: &dyn SourceTree, pattern: &str) -> Result<Vec<String>> {
    let pattern = clean_rel(pattern);
    let parts: Vec<&str> = pattern.split('/').collect();
    let mut current: Vec<String> = vec![String::new()];
    for (i, part) in parts.iter().enumerate() {
        let mut next = Vec::new();
        for dir in &current {
            let resolved = if dir.is_empty() {
                Some(String::new())
            } else {
                resolve(tree, dir, true)?
            };
            let Some(resolved) = resolved else { continue };
            match tree.lstat(&resolved)? {
                Some(m) if m.kind == Kind::Dir => {}
                _ => continue,
            }
            if crate::pattern::has_wildcard(part) {
                for name in tree.list_dir(&resolved)? {
                    if glob_match(part, &name).map_err(|e| Error::InvalidPattern {
                        pattern: pattern.clone(),
                        source: Box::new(e),
                    })? {
                        next.push(join(dir, &name));
                    }
                }
            } else {
                let unescaped = part.replace('\\', "");
                let p = join(dir, &unescaped);
                let exists = if i + 1 == parts.len() {
                    tree.lstat(&join(&resolved, &unescaped))?.is_some()
                } else {
                    true
                };
                if exists {
                    next.push(p);
                }
            }
        }
        current = next;
    }
    current.sort();
    current.dedup();
    Ok(current)
}

pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Every entry under `rel` (itself first), depth first, names sorted; paths relative to `rel`.
pub fn walk(tree: &dyn SourceTree, rel: &str) -> Result<Vec<(String, Meta)>> {
    let mut out = Vec::new();
    let Some(top) = tree.lstat(rel)? else {
        return Ok(out);
    };
    let is_dir = top.kind == Kind::Dir;
    out.push((String::new(), top));
    if is_dir {
        walk_into(tree, rel, "", &mut out)?;
    }
    Ok(out)
}

fn walk_into(tree: &dyn SourceTree, base: &str, sub: &str, out: &mut Vec<(String, Meta)>) -> Result<()> {
    for name in tree.list_dir(&join(base, sub))? {
        let s = join(sub, &name);
        let Some(m) = tree.lstat(&join(base, &s))? else {
            continue;
        };
        let is_dir = m.kind == Kind::Dir;
        out.push((s.clone(), m));
        if is_dir {
            walk_into(tree, base, &s, out)?;
        }
    }
    Ok(())
}

fn open_beneath(root: &OwnedFd, rel: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
    let path = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        root,
        path,
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

// st_dev, st_ino and st_nlink are not u64 on every architecture.
#[allow(clippy::unnecessary_cast)]
fn meta_of(st: &rustix::fs::Stat, target: Option<String>) -> Meta {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink(target.unwrap_or_default()),
        _ => Kind::Other,
    };
    Meta {
        kind,
        mode: st.st_mode & 0o7777,
        size: st.st_size as u64,
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        owner: (st.st_uid, st.st_gid),
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        nlink: st.st_nlink as u64,
    }
}

/// sha256 (hex) of what `f` holds; `shown` names it in errors.
pub fn hash_file(mut f: File, shown: &dyn Fn() -> String) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).ctx(|| format!("reading {}", shown()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(strata_oci::digest::to_hex(&h.finalize()))
}

/// A directory on disk (a mounted stage or image root) as a source tree.
pub struct DirTree {
    root: OwnedFd,
    shown: String,
}

impl DirTree {
    pub fn open(path: &Path, shown: String) -> Result<DirTree> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", path.display()))?;
        Ok(DirTree { root, shown })
    }
}

fn split_parent(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", rel),
    }
}

impl DirTree {
    /// sha256 of a regular file's content.
    pub fn file_hash(&self, rel: &str) -> Result<String> {
        hash_file(self.open_file(rel)?, &|| format!("{rel:?} in {}", self.shown))
    }
}

impl SourceTree for DirTree {
    fn lstat(&self, rel: &str) -> Result<Option<Meta>> {
        if rel.is_empty() {
            let st = rustix::fs::fstat(&self.root)?;
            return Ok(Some(meta_of(&st, None)));
        }
        let (parent, name) = split_parent(rel);
        let dir = match open_beneath(&self.root, parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e).ctx(|| format!("opening {parent:?} in {}", self.shown)),
        };
        let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("stat {rel:?} in {}", self.shown)),
        };
        let target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            let t = rustix::fs::readlinkat(&dir, name, Vec::new())?;
            Some(t.to_string_lossy().into_owned())
        } else {
            None
        };
        Ok(Some(meta_of(&st, target)))
    }

    fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        let fd = open_beneath(&self.root, rel, OFlags::RDONLY | OFlags::DIRECTORY)
            .ctx(|| format!("opening {rel:?} in {}", self.shown))?;
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::read_from(&fd)? {
            let ent = ent?;
            let n = ent.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    fn open_file(&self, rel: &str) -> Result<File> {
        let fd = open_beneath(&self.root, rel, OFlags::RDONLY).ctx(|| format!("opening {rel:?} in {}", self.shown))?;
        Ok(File::from(fd))
    }
}

/// One indexed context entry.
#[derive(Debug, Clone)]
struct CtxEntry {
    meta: Meta,
    ino: u64,
    ctime: (i64, i64),
}

/// Saved per context: what a file's stat looked like when it was hashed.
#[derive(Debug, Clone)]
struct IndexEntry {
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    ctime: (i64, i64),
    hash: String,
}

impl IndexEntry {
    /// Whether `e` has the stat this entry was hashed with.
    fn same_stat(&self, e: &CtxEntry) -> bool {
        self.size == e.meta.size && self.mtime == e.meta.mtime && self.ino == e.ino && self.ctime == e.ctime
    }
}

#[derive(Debug, Default)]
struct IndexFile {
    /// When the hashes were taken (Unix seconds): entries changed within a
    /// second of that are hashed again (a write in the same clock tick).
    written: i64,
    entries: BTreeMap<String, IndexEntry>,
}

/// The build context, read in place.
pub struct ContextTree {
    root: PathBuf,
    rootfd: OwnedFd,
    entries: BTreeMap<String, CtxEntry>,
    old: IndexFile,
    hashes: Mutex<HashMap<String, String>>,
    /// Some hash was computed (not taken from the index): the index is written back.
    dirty: std::sync::atomic::AtomicBool,
    index_path: Option<PathBuf>,
    /// Total size of the included regular files.
    pub total_size: u64,
}

impl ContextTree {
    /// Walks `root`, leaving out what `ignore` excludes; `index_path` holds
    /// the hashes of an earlier build of the same context.
    pub fn load(root: &Path, ignore: &IgnoreRules, index_path: Option<PathBuf>) -> Result<ContextTree> {
        let rootfd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening the build context {}", root.display()))?;
        let top = rootfd
            .try_clone()
            .ctx(|| format!("reading the build context: {}", root.display()))?;
        // The index is read while the context is walked.
        let (walked, old) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                index_path
                    .as_ref()
                    .and_then(|p| std::fs::read(p).ok())
                    .and_then(|b| IndexFile::decode(&b))
                    .unwrap_or_default()
            });
            let walked = walk_context(root, top, ignore);
            (walked, reader.join().unwrap_or_default())
        });
        let (entries, total_size) = walked?;
        Ok(ContextTree {
            root: root.to_path_buf(),
            rootfd,
            entries,
            old,
            hashes: Mutex::new(HashMap::new()),
            dirty: std::sync::atomic::AtomicBool::new(false),
            index_path,
            total_size,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// sha256 of a regular file's content, from the index when its stat is unchanged.
    pub fn file_hash(&self, rel: &str) -> Result<String> {
        let e = self
            .entries
            .get(rel)
            .ok_or_else(|| Error::NotInContext(rel.to_string()))?;
        if let Some(old) = self.old.entries.get(rel)
            && old.same_stat(e)
            && e.meta.mtime.0 < self.old.written - 1
            && e.ctime.0 < self.old.written - 1
        {
            // save_index keeps index entries whose stat is unchanged: nothing to remember.
            return Ok(old.hash.clone());
        }
        if let Some(h) = self.hashes.lock().unwrap_or_else(|e| e.into_inner()).get(rel) {
            return Ok(h.clone());
        }
        let hex = hash_file(self.open_file(rel)?, &|| self.root.join(rel).display().to_string())?;
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rel.to_string(), hex.clone());
        Ok(hex)
    }

    /// Writes the index back (hashes known now, plus still-valid old ones).
    pub fn save_index(&self) -> Result<()> {
        let Some(path) = &self.index_path else { return Ok(()) };
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            // Every hash came from the index, which still holds them all.
            return Ok(());
        }
        let hashes = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = IndexFile {
            written: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            entries: BTreeMap::new(),
        };
        for (rel, e) in &self.entries {
            if e.meta.kind != Kind::File {
                continue;
            }
            let hash = match hashes.get(rel) {
                Some(h) => h.clone(),
                None => match self.old.entries.get(rel) {
                    Some(o) if o.same_stat(e) => o.hash.clone(),
                    _ => continue,
                },
            };
            out.entries.insert(
                rel.clone(),
                IndexEntry {
                    size: e.meta.size,
                    mtime: e.meta.mtime,
                    ino: e.ino,
                    ctime: e.ctime,
                    hash,
                },
            );
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, out.encode()).ctx(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).ctx(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// What one walker thread found: entries and the size of the files.
type Walked = (Vec<(String, CtxEntry)>, u64);

/// Walks the context whose root directory `root` is open as `top`: its
/// entries (less what `ignore` excludes) and the total size of its files.
fn walk_context(root: &Path, top: OwnedFd, ignore: &IgnoreRules) -> Result<(BTreeMap<String, CtxEntry>, u64)> {
    // Directories are read by a few threads at once (stat dominates on large contexts).
    let queue = Mutex::new((vec![(top, String::new())], 0usize));
    let cond = std::sync::Condvar::new();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    let results: Vec<Result<Walked>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<Walked> {
                    let mut mine = Vec::new();
                    let mut size = 0u64;
                    loop {
                        let job = {
                            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                            loop {
                                if let Some(j) = q.0.pop() {
                                    q.1 += 1;
                                    break Some(j);
                                }
                                if q.1 == 0 {
                                    break None;
                                }
                                q = cond.wait(q).unwrap_or_else(|e| e.into_inner());
                            }
                        };
                        let Some((dir, rel)) = job else {
                            cond.notify_all();
                            break;
                        };
                        let mut subdirs = Vec::new();
                        let r = walk_context_at(root, &dir, &rel, ignore, &mut mine, &mut size, &mut subdirs);
                        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        q.1 -= 1;
                        if r.is_err() {
                            // Stop everyone: nothing more to hand out.
                            q.0.clear();
                        } else {
                            q.0.extend(subdirs);
                        }
                        drop(q);
                        cond.notify_all();
                        r?;
                    }
                    Ok((mine, size))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::ContextWalkPanicked)))
            .collect()
    });
    let mut all = Vec::new();
    let mut total = 0;
    for r in results {
        let (entries, size) = r?;
        total += size;
        all.extend(entries);
    }
    // Built from a sorted list in one go (far cheaper than inserting one by one).
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok((all.into_iter().collect(), total))
}

/// Reads the directory `dir` (at `rel` in the context), with every stat
/// relative to its open descriptor; subdirectories to walk go to `subdirs`.
fn walk_context_at(
    root: &Path,
    dir: &OwnedFd,
    rel: &str,
    ignore: &IgnoreRules,
    out: &mut Vec<(String, CtxEntry)>,
    total: &mut u64,
    subdirs: &mut Vec<(OwnedFd, String)>,
) -> Result<()> {
    let shown = || root.join(rel).display().to_string();
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir).ctx(|| format!("reading the build context: {}", shown()))? {
        let ent = ent.ctx(|| format!("reading {}", shown()))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(ent.file_name().to_owned());
        }
    }
    for cname in names {
        let name = cname.to_string_lossy().into_owned();
        let path = join(rel, &name);
        let st = rustix::fs::statat(dir, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {}", root.join(&path).display()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let excluded = ignore.excluded(&path);
        if excluded && !(ft == FileType::Directory && ignore.may_reinclude_under(&path)) {
            continue;
        }
        let target = if ft == FileType::Symlink {
            let t = rustix::fs::readlinkat(dir, cname.as_c_str(), Vec::new())
                .ctx(|| format!("readlink {}", root.join(&path).display()))?;
            Some(t.to_string_lossy().into_owned())
        } else {
            None
        };
        if ft == FileType::Directory {
            let sub = rustix::fs::openat(
                dir,
                cname.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("reading the build context: {}", root.join(&path).display()))?;
            subdirs.push((sub, path.clone()));
        }
        if !excluded {
            if ft == FileType::RegularFile {
                *total += st.st_size as u64;
            }
            out.push((
                path,
                CtxEntry {
                    // BuildKit resets the context's owners.
                    meta: Meta {
                        owner: (0, 0),
                        ..meta_of(&st, target)
                    },
                    ino: st.st_ino,
                    ctime: (st.st_ctime, st.st_ctime_nsec as i64),
                },
            ));
        }
    }
    Ok(())
}

impl IndexFile {
    const MAGIC: &'static str = "strata-build-index 2";

    /// A line per file: `size mtime mtime_ns ino ctime ctime_ns hash path`
    /// (plain text, parsed far faster than JSON; paths with a newline are not kept).
    fn encode(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(self.entries.len() * 120);
        let _ = writeln!(s, "{} {}", Self::MAGIC, self.written);
        for (p, e) in &self.entries {
            if p.contains('\n') {
                continue;
            }
            let _ = writeln!(
                s,
                "{} {} {} {} {} {} {} {p}",
                e.size, e.mtime.0, e.mtime.1, e.ino, e.ctime.0, e.ctime.1, e.hash
            );
        }
        s.into_bytes()
    }

    fn decode(b: &[u8]) -> Option<IndexFile> {
        let text = std::str::from_utf8(b).ok()?;
        let mut lines = text.lines();
        let written = lines.next()?.strip_prefix(Self::MAGIC)?.trim().parse().ok()?;
        let mut entries = BTreeMap::new();
        for line in lines {
            let mut it = line.splitn(8, ' ');
            let mut num = || it.next().and_then(|x| x.parse::<i64>().ok());
            let (size, ms, mn, ino, cs, cn) = (num()?, num()?, num()?, num()?, num()?, num()?);
            let hash = it.next()?.to_string();
            let path = it.next()?.to_string();
            entries.insert(
                path,
                IndexEntry {
                    size: size as u64,
                    mtime: (ms, mn),
                    ino: ino as u64,
                    ctime: (cs, cn),
                    hash,
                },
            );
        }
        Some(IndexFile { written, entries })
    }
}

impl SourceTree for ContextTree {
    fn lstat(&self, rel: &str) -> Result<Option<Meta>> {
        if rel.is_empty() {
            let st = rustix::fs::fstat(&self.rootfd)?;
            return Ok(Some(meta_of(&st, None)));
        }
        if let Some(e) = self.entries.get(rel) {
            return Ok(Some(e.meta.clone()));
        }
        // An excluded directory that holds re-included entries still exists.
        let prefix = format!("{rel}/");
        if self
            .entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
        {
            return Ok(Some(Meta {
                kind: Kind::Dir,
                mode: 0o755,
                size: 0,
                mtime: (0, 0),
                owner: (0, 0),
                dev: 0,
                ino: 0,
                nlink: 1,
            }));
        }
        Ok(None)
    }

    fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let mut names = std::collections::BTreeSet::new();
        for (k, _) in self.entries.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else { break };
            names.insert(rest.split('/').next().unwrap_or(rest).to_string());
        }
        Ok(names.into_iter().collect())
    }

    fn open_file(&self, rel: &str) -> Result<File> {
        let fd = open_beneath(&self.rootfd, rel, OFlags::RDONLY)
            .ctx(|| format!("opening {} in the build context", self.root.join(rel).display()))?;
        Ok(File::from(fd))
    }
}
