//! The per-layer file index and the merged view of a layer stack.
//!
//! A [`LayerIndex`] is what one pass over a layer tar records: every entry's
//! path, type, size and mode, with whiteouts (`.wh.NAME`) and opaque markers
//! (`.wh..wh..opq`) kept as entries of their own. A [`MergedIndex`] applies the
//! layers bottom first as a container runtime would (later layers override,
//! whiteouts and opaque directories delete what lower layers had) and keeps,
//! for each surviving path, the layer it came from and the layers that wrote
//! it since it last appeared. Both serve the SBOM and `image analyze`.

use std::collections::BTreeMap;

use serde::Serialize;

/// What a layer entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink {
        target: String,
    },
    /// A hard link to `target` (a path in this layer or below, normalized).
    Hardlink {
        target: String,
    },
    CharDevice,
    BlockDevice,
    Fifo,
    /// `.wh.NAME`: the entry's path (without the prefix) is deleted.
    Whiteout,
    /// `.wh..wh..opq`: the entry's path is the directory whose lower contents are hidden.
    Opaque,
}

/// One entry of a layer tar. Paths are relative to the root, without a
/// leading `/` or `./` and without a trailing `/` (`usr/bin/env`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// Every entry of one layer, in tar order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerIndex {
    pub entries: Vec<Entry>,
}

impl LayerIndex {
    /// Sum of the regular files' sizes (what the layer adds, uncompressed).
    pub fn content_size(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum()
    }
}

/// A path of the final filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedEntry {
    /// The layer whose entry is visible.
    pub layer: usize,
    /// Index of that entry in its layer's [`LayerIndex::entries`].
    pub entry: usize,
    /// Layers that wrote this path since it was last absent, ascending; the
    /// last one is `layer`. A path written in layer 1, deleted in 2 and
    /// written again in 4 has `[4]`.
    pub history: Vec<usize>,
    /// The target when the visible entry is a symlink.
    pub symlink: Option<String>,
}

/// The union of a layer stack, as a container sees it.
#[derive(Clone, Debug, Default)]
pub struct MergedIndex {
    paths: BTreeMap<String, MergedEntry>,
}

/// How many symlinks [`MergedIndex::resolve`] follows before giving up
/// (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Why a path could not be resolved in the merged view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    NotFound,
    /// More than [`MAX_SYMLINK_HOPS`] links: a loop or a very long chain.
    TooManyLinks,
}

impl MergedIndex {
    /// Applies `layers` bottom first.
    pub fn build<'a>(layers: impl IntoIterator<Item = &'a LayerIndex>) -> Self {
        let mut paths: BTreeMap<String, MergedEntry> = BTreeMap::new();
        for (layer, index) in layers.into_iter().enumerate() {
            for (i, e) in index.entries.iter().enumerate() {
                match &e.kind {
                    EntryKind::Whiteout => {
                        if paths.get(&e.path).is_some_and(|m| m.layer < layer) {
                            paths.remove(&e.path);
                        }
                        remove_below(&mut paths, &e.path, layer);
                    }
                    EntryKind::Opaque => remove_below(&mut paths, &e.path, layer),
                    kind => {
                        if *kind != EntryKind::Dir {
                            // A file replacing a directory takes its contents with it.
                            remove_below(&mut paths, &e.path, layer);
                        }
                        let symlink = match kind {
                            EntryKind::Symlink { target } => Some(target.clone()),
                            _ => None,
                        };
                        let m = paths.entry(e.path.clone()).or_insert_with(|| MergedEntry {
                            layer,
                            entry: i,
                            history: Vec::new(),
                            symlink: None,
                        });
                        m.layer = layer;
                        m.entry = i;
                        m.symlink = symlink;
                        if m.history.last() != Some(&layer) {
                            m.history.push(layer);
                        }
                    }
                }
            }
        }
        MergedIndex { paths }
    }

    pub fn get(&self, path: &str) -> Option<&MergedEntry> {
        self.paths.get(path)
    }

    /// Surviving paths in byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MergedEntry)> {
        self.paths.iter().map(|(p, m)| (p.as_str(), m))
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Follows symlinks (in any component) inside the merged view, as the
    /// kernel would inside a chroot: absolute targets start at the root and
    /// `..` never climbs above it. Nothing outside the index is consulted.
    pub fn resolve(&self, path: &str) -> Result<String, ResolveError> {
        let mut hops = 0;
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = path
            .split('/')
            .rev()
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        while let Some(comp) = todo.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(comp);
            let here = done.join("/");
            // A component missing from the index is a directory the tar left implicit.
            if let Some(target) = self.paths.get(&here).and_then(|m| m.symlink.as_ref()) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ResolveError::TooManyLinks);
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(target.split('/').rev().filter(|c| !c.is_empty()).map(str::to_owned));
            }
        }
        let out = done.join("/");
        if self.paths.contains_key(&out) {
            Ok(out)
        } else {
            Err(ResolveError::NotFound)
        }
    }
}

/// Removes everything strictly below `dir` that came from a layer under `layer`.
fn remove_below(paths: &mut BTreeMap<String, MergedEntry>, dir: &str, layer: usize) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = paths
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(_, m)| m.layer < layer)
        .map(|(p, _)| p.clone())
        .collect();
    for p in doomed {
        paths.remove(&p);
    }
}

/// Normalizes a tar path: no leading `/` or `./`, no `.` components, no
/// trailing `/`. `None` for the root itself and for paths with `..`.
pub fn normalize(raw: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    if out.is_empty() { None } else { Some(out.join("/")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            size: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn layer(entries: Vec<Entry>) -> LayerIndex {
        LayerIndex { entries }
    }

    #[test]
    fn whiteouts_opaque_and_history() {
        let l0 = layer(vec![
            e("a", EntryKind::Dir),
            e("a/x", EntryKind::File),
            e("a/y", EntryKind::File),
            e("b", EntryKind::Dir),
            e("b/z", EntryKind::File),
            e("c", EntryKind::File),
        ]);
        let l1 = layer(vec![
            e("a/x", EntryKind::Whiteout),
            e("b", EntryKind::Opaque),
            e("b/new", EntryKind::File),
            e("c", EntryKind::File),
        ]);
        let l2 = layer(vec![
            e("a", EntryKind::Whiteout),
            e("c", EntryKind::File),
            e("a-b", EntryKind::File),
        ]);
        let m = MergedIndex::build([&l0, &l1]);
        assert!(m.get("a/x").is_none());
        assert_eq!(m.get("a/y").unwrap().layer, 0);
        assert!(m.get("b/z").is_none());
        assert_eq!(m.get("b/new").unwrap().layer, 1);
        assert_eq!(m.get("c").unwrap().history, vec![0, 1]);
        let m = MergedIndex::build([&l0, &l1, &l2]);
        assert!(m.get("a").is_none() && m.get("a/y").is_none());
        assert_eq!(m.get("c").unwrap().history, vec![0, 1, 2]);
        assert!(m.get("a-b").is_some());
    }

    #[test]
    fn resolve_follows_links_inside_the_index_and_stops_on_loops() {
        let l0 = layer(vec![
            e("etc", EntryKind::Dir),
            e("usr/lib/os-release", EntryKind::File),
            e(
                "etc/os-release",
                EntryKind::Symlink {
                    target: "../usr/lib/os-release".into(),
                },
            ),
            e(
                "lib",
                EntryKind::Symlink {
                    target: "/usr/lib".into(),
                },
            ),
            e("loop1", EntryKind::Symlink { target: "loop2".into() }),
            e(
                "loop2",
                EntryKind::Symlink {
                    target: "/loop1".into(),
                },
            ),
            e(
                "up",
                EntryKind::Symlink {
                    target: "../../../../usr".into(),
                },
            ),
        ]);
        let m = MergedIndex::build([&l0]);
        assert_eq!(m.resolve("etc/os-release").unwrap(), "usr/lib/os-release");
        assert_eq!(m.resolve("lib/os-release").unwrap(), "usr/lib/os-release");
        assert_eq!(m.resolve("up/lib/os-release").unwrap(), "usr/lib/os-release");
        assert_eq!(m.resolve("loop1/x"), Err(ResolveError::TooManyLinks));
        assert_eq!(m.resolve("nope"), Err(ResolveError::NotFound));
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("./usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(normalize("/etc//passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(normalize("./"), None);
        assert_eq!(normalize("a/../../etc"), None);
    }
}
