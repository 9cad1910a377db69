//! COPY and ADD: choosing the sources (wildcards, symlinks resolved inside
//! the source tree), hashing them for the cache key, and copying them into
//! the step's root with BuildKit's rules: each source is copied in turn
//! (a wildcard that matches nothing copies nothing); a directory source
//! copies its contents; a destination ending in `/` is a directory; a file
//! copied onto an existing directory lands inside it, else at the
//! destination (the last of several wins); the destination's symlinks are
//! followed inside the root;
//! owners are root (or `--chown`), modes are kept (or `--chmod`), times are
//! kept, hard links within a copied directory stay links; a directory's
//! contents go to a destination made as root (or `--chown`) 0755; ADD
//! unpacks local tar archives (plain, gzip, bzip2, xz, zstd: told by their
//! first bytes, as BuildKit does, not by their names).

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;

use crate::error::{Error, Result};
use sha2::{Digest as _, Sha256};

use crate::dest::{Attrs, DestRoot};

mod archive;
use crate::pattern::{IgnoreRules, clean_rel, has_wildcard};
use crate::tree::{Kind, Meta, SourceTree, join, resolve, walk};
use archive::{archive_reader, is_archive};

/// One selected source.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The name it is copied as (the last component of the path as matched).
    pub name: String,
    /// Its symlink-free path in the tree.
    pub rel: String,
    pub meta: Meta,
    /// The directory it was named in (below a `/./` pivot), for `COPY --parents`.
    pub parent: String,
}

/// Resolves the sources as written (already expanded) in `tree`.
pub fn select(tree: &dyn SourceTree, sources: &[String]) -> Result<Vec<Selected>> {
    let mut out = Vec::new();
    for s in sources {
        let pivot = s.split_once("/./").map(|(p, _)| clean_rel(p)).unwrap_or_default();
        let cleaned = clean_rel(s);
        let matched = if has_wildcard(s) {
            // The directory a wildcard is matched in must exist; a wildcard
            // that matches nothing in it selects nothing, whether or not
            // other sources are named (BuildKit's AllowEmptyWildcard).
            let dir: Vec<&str> = cleaned.split('/').take_while(|c| !has_wildcard(c)).collect();
            if !dir.is_empty() && resolve(tree, &dir.join("/"), true)?.is_none() {
                return Err(Error::SourceNotFound(dir.join("/")));
            }
            crate::tree::expand_wildcard(tree, &cleaned)?
        } else {
            vec![cleaned.clone()]
        };
        for m in matched {
            let Some(rel) = resolve(tree, &m, true)? else {
                return Err(Error::SourceNotFound(m));
            };
            let Some(meta) = tree.lstat(&rel)? else {
                return Err(Error::SourceNotFound(m));
            };
            let name = m.rsplit('/').next().unwrap_or("").to_string();
            let dir = m.rsplit_once('/').map(|x| x.0).unwrap_or("");
            let parent = if pivot.is_empty() {
                dir.to_string()
            } else if dir == pivot {
                String::new()
            } else {
                dir.strip_prefix(&format!("{pivot}/")).unwrap_or(dir).to_string()
            };
            out.push(Selected {
                name,
                rel,
                meta,
                parent,
            });
        }
    }
    Ok(out)
}

/// `--exclude`: drops the selected sources whose name matches.
pub fn drop_excluded(selected: Vec<Selected>, rules: Option<&IgnoreRules>) -> Vec<Selected> {
    match rules {
        None => selected,
        Some(r) => selected
            .into_iter()
            .filter(|s| s.meta.kind == Kind::Dir || !r.excluded(&s.name))
            .collect(),
    }
}

/// A source tree with the entries below `base` that `--exclude` patterns
/// match (relative to `base`) left out.
struct Excluding<'a> {
    inner: &'a dyn SourceTree,
    base: &'a str,
    rules: &'a IgnoreRules,
}

impl Excluding<'_> {
    fn hidden(&self, rel: &str, is_dir: bool) -> bool {
        let sub = if self.base.is_empty() {
            rel
        } else if let Some(s) = rel.strip_prefix(self.base).and_then(|s| s.strip_prefix('/')) {
            s
        } else {
            return false;
        };
        !sub.is_empty() && self.rules.excluded(sub) && !(is_dir && self.rules.may_reinclude_under(sub))
    }
}

impl SourceTree for Excluding<'_> {
    fn lstat(&self, rel: &str) -> Result<Option<Meta>> {
        let m = self.inner.lstat(rel)?;
        Ok(m.filter(|m| !self.hidden(rel, m.kind == Kind::Dir)))
    }
    fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for n in self.inner.list_dir(rel)? {
            if self.lstat(&join(rel, &n))?.is_some() {
                out.push(n);
            }
        }
        Ok(out)
    }
    fn open_file(&self, rel: &str) -> Result<std::fs::File> {
        self.inner.open_file(rel)
    }
}

/// The tree a selected source is read from: `tree`, less what `exclude` matches.
fn view<'a>(tree: &'a dyn SourceTree, base: &'a str, exclude: Option<&'a IgnoreRules>) -> Box<dyn SourceTree + 'a> {
    match exclude {
        Some(rules) if !rules.is_empty() => Box::new(Excluding {
            inner: tree,
            base,
            rules,
        }),
        _ => Box::new(Plain(tree)),
    }
}

struct Plain<'a>(&'a dyn SourceTree);

impl SourceTree for Plain<'_> {
    fn lstat(&self, rel: &str) -> Result<Option<Meta>> {
        self.0.lstat(rel)
    }
    fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        self.0.list_dir(rel)
    }
    fn open_file(&self, rel: &str) -> Result<std::fs::File> {
        self.0.open_file(rel)
    }
}

/// The content digest of the selection (names, types, modes, contents or
/// link targets, and owners when `owners` (they are kept); not times) and a
/// per-file summary for explaining cache misses (capped).
pub fn content_digest(
    tree: &dyn SourceTree,
    selected: &[Selected],
    file_hash: &dyn Fn(&str) -> Result<String>,
    exclude: Option<&IgnoreRules>,
    want_files: bool,
    owners: bool,
) -> Result<(String, BTreeMap<String, String>)> {
    const MAX_LISTED: usize = 20_000;
    let mut h = Sha256::new();
    let mut files = BTreeMap::new();
    for sel in selected {
        h.update(format!("source\0{}\0{}\n", sel.name, sel.rel).as_bytes());
        let t = view(tree, &sel.rel, exclude);
        // Which files are hard links of an earlier one (they are copied as links).
        let mut links: HashMap<(u64, u64), String> = HashMap::new();
        for (sub, meta) in walk(t.as_ref(), &sel.rel)? {
            let full = join(&sel.rel, &sub);
            if meta.kind == Kind::File && meta.nlink > 1 && meta.ino != 0 {
                match links.get(&(meta.dev, meta.ino)) {
                    Some(first) => h.update(format!("{sub}\0link\0{first}\n").as_bytes()),
                    None => {
                        links.insert((meta.dev, meta.ino), sub.clone());
                    }
                }
            }
            let (kind, content) = match &meta.kind {
                Kind::Dir => ("dir", String::new()),
                Kind::File => ("file", file_hash(&full)?),
                Kind::Symlink(t) => ("symlink", t.clone()),
                Kind::Other => continue,
            };
            h.update(sub.as_bytes());
            h.update(b"\0");
            h.update(kind.as_bytes());
            h.update(format!("\0{:o}\0", meta.mode).as_bytes());
            let owner = if owners {
                format!(":{}:{}", meta.owner.0, meta.owner.1)
            } else {
                String::new()
            };
            if owners {
                h.update(owner.as_bytes());
                h.update(b"\0");
            }
            h.update(content.as_bytes());
            h.update(b"\n");
            if want_files && kind != "dir" && files.len() < MAX_LISTED {
                files.insert(
                    if full.is_empty() { ".".into() } else { full },
                    format!("{kind}:{:o}{owner}:{}", meta.mode, &content[..content.len().min(16)]),
                );
            }
        }
    }
    Ok((strata_oci::digest::to_hex(&h.finalize()), files))
}

/// How the copied entries are owned and moded.
#[derive(Debug, Clone, Copy)]
pub struct CopyAttrs {
    pub uid: u32,
    pub gid: u32,
    pub chmod: Option<u32>,
    /// ADD: unpack local archives.
    pub unpack: bool,
    /// Copied entries keep their owner (`COPY --from` without `--chown`, as
    /// in BuildKit); otherwise they get `uid:gid`.
    pub keep_owner: bool,
}

impl CopyAttrs {
    /// The directories a copy creates on the way to its destination belong
    /// to the --chown owner, else root (BuildKit's MkdirAll).
    fn parents(&self) -> Attrs {
        Attrs {
            uid: self.uid,
            gid: self.gid,
            mode: 0o755,
            mtime: (0, 0),
        }
    }
}

/// How the sources are laid out at the destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout<'a> {
    /// `COPY --parents`: keep each source's directories.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Option<&'a IgnoreRules>,
}

/// The destination as written (expanded), made absolute against the workdir: a relative
/// path without the leading `/`, and whether it names a directory (trailing `/`).
pub fn dest_path(dest: &str, workdir: &str) -> (String, bool) {
    let is_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let abs = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", workdir.trim_end_matches('/'))
    };
    (clean_rel(&abs), is_dir)
}

/// Copies the selection into `root` at `dest`, each source in turn as
/// BuildKit copies them (one copy per source, so several sources to a
/// destination without `/` need no directory there: a file lands at the
/// destination, the next replacing it, a directory's contents go into
/// it). The destination is resolved inside the root first, symlinks
/// followed (dangling ones too: `/link/` where `/link -> ../tmp/target`
/// makes `/tmp/target`).
pub fn copy_into(
    tree: &dyn SourceTree,
    selected: &[Selected],
    root: &DestRoot,
    dest: &str,
    dest_is_dir: bool,
    a: &CopyAttrs,
    layout: Layout<'_>,
) -> Result<()> {
    let parents = a.parents();
    let attrs = |m: &Meta| Attrs {
        uid: if a.keep_owner { m.owner.0 } else { a.uid },
        gid: if a.keep_owner { m.owner.1 } else { a.gid },
        // --chmod sets the permission bits; set-id and sticky bits stay the source's (BuildKit).
        mode: a.chmod.map_or(m.mode, |c| m.mode & 0o7000 | c),
        mtime: m.mtime,
    };
    for sel in selected {
        let tree_view = view(tree, &sel.rel, layout.exclude);
        let tree = tree_view.as_ref();
        let base_dest = if layout.parents {
            join(dest, &sel.parent)
        } else {
            dest.to_string()
        };
        match &sel.meta.kind {
            Kind::Dir => {
                let dir_dest = if layout.parents {
                    join(&base_dest, &sel.name)
                } else {
                    base_dest
                };
                let dest = root.resolve(&dir_dest)?;
                let dest = dest.as_str();
                let mut dirs: Vec<(String, (i64, i64))> = Vec::new();
                // The destination a directory's contents go to is made as
                // BuildKit makes it: the --chown owner (else root), 0755, its
                // time the copy's, not the source directory's owner, mode and
                // time, whatever --chmod says.
                if !root.is_dir(dest) {
                    if root.non_dir_at(dest) {
                        return Err(Error::CopyToNonDirectory(dest.to_string()));
                    }
                    root.write_dir(dest, &parents, &parents)?;
                }
                // Files linked to one inode stay links of each other (BuildKit's
                // copy keeps hard links within each source it copies).
                let mut links: HashMap<(u64, u64), String> = HashMap::new();
                for (sub, meta) in walk(tree, &sel.rel)?.into_iter().skip(1) {
                    let target = join(dest, &sub);
                    let key =
                        (meta.kind == Kind::File && meta.nlink > 1 && meta.ino != 0).then_some((meta.dev, meta.ino));
                    if let Some(first) = key.and_then(|k| links.get(&k))
                        && root.write_hardlink(&target, first, &parents)?
                    {
                        continue;
                    }
                    // A directory of the tree is not written through a
                    // symlink (or over a file) at the destination (BuildKit).
                    if meta.kind == Kind::Dir && root.non_dir_at(&target) {
                        return Err(Error::CopyToNonDirectory(target));
                    }
                    copy_entry(
                        tree,
                        &join(&sel.rel, &sub),
                        &meta,
                        root,
                        &target,
                        &attrs(&meta),
                        &parents,
                    )?;
                    if let Some(k) = key {
                        links.entry(k).or_insert(target);
                    } else if meta.kind == Kind::Dir {
                        dirs.push((target, meta.mtime));
                    }
                }
                for (d, t) in dirs.iter().rev() {
                    root.set_dir_time(d, *t)?;
                }
            }
            Kind::File if a.unpack && is_archive(tree, &sel.rel)? => {
                let dest = root.resolve(&base_dest)?;
                let fd = root.ensure_dir(&dest, &parents)?;
                let f = tree.open_file(&sel.rel)?;
                // A local archive is no image layer: `.wh.` names in it are
                // plain files, and symlinks already in the root are followed
                // inside the destination directory (BuildKit untars chrooted
                // there).
                let opts = strata_layer::UnpackOptions {
                    whiteouts: strata_layer::WhiteoutMode::Plain,
                    follow_symlinks: true,
                    ..strata_layer::UnpackOptions::default()
                };
                strata_layer::unpack_at(
                    archive_reader(BufReader::with_capacity(1 << 20, f))?,
                    fd,
                    std::path::Path::new(&format!("/{dest}")),
                    &opts,
                )
                .map_err(|source| Error::UnpackArchive {
                    name: sel.name.clone(),
                    dest: dest.to_string(),
                    source: Box::new(source),
                })?;
            }
            _ => {
                let dest = root.resolve(&base_dest)?;
                let target = if dest_is_dir || layout.parents || root.is_dir(&dest) {
                    join(&dest, &sel.name)
                } else {
                    dest
                };
                if target.is_empty() {
                    return Err(Error::CopyOntoRoot(sel.name.clone()));
                }
                copy_entry(tree, &sel.rel, &sel.meta, root, &target, &attrs(&sel.meta), &parents)?;
            }
        }
    }
    Ok(())
}

fn copy_entry(
    tree: &dyn SourceTree,
    rel: &str,
    meta: &Meta,
    root: &DestRoot,
    target: &str,
    attrs: &Attrs,
    parents: &Attrs,
) -> Result<()> {
    match &meta.kind {
        Kind::Dir => root.write_dir(target, attrs, parents),
        Kind::File => {
            let mut f = tree.open_file(rel)?;
            root.write_file(target, &mut f, attrs, parents)
        }
        Kind::Symlink(t) => root.write_symlink(target, t, attrs, parents),
        Kind::Other => Ok(()),
    }
}

/// Writes a heredoc source (`COPY <<EOF /dest`).
pub fn write_inline(
    root: &DestRoot,
    name: &str,
    content: &str,
    dest: &str,
    dest_is_dir: bool,
    a: &CopyAttrs,
    mtime: i64,
) -> Result<()> {
    let dest = root.resolve(dest)?;
    let target = if dest_is_dir || root.is_dir(&dest) {
        join(&dest, name)
    } else {
        dest
    };
    let attrs = Attrs {
        uid: a.uid,
        gid: a.gid,
        mode: a.chmod.unwrap_or(0o644),
        mtime: (mtime, 0),
    };
    root.write_file(&target, &mut content.as_bytes(), &attrs, &a.parents())
}

/// Parses `--chmod` (octal): its permission bits. BuildKit takes the number
/// as a Go `os.FileMode`, whose set-id and sticky bits are elsewhere, so
/// `4755` sets 0755 (a copied entry keeps its own set-id and sticky bits).
pub fn parse_chmod(s: &str) -> Result<u32> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m & 0o777),
        _ => Err(Error::InvalidChmod(s.to_string())),
    }
}
