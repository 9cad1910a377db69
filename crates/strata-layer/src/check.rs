//! What a layer entry may be: clean names, links that stay inside the
//! root, well-formed whiteouts. Shared by the stream check (`recompress`)
//! and `unpack`, so both refuse exactly the same layers.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::compress::read_error;
use crate::guard::{MetadataLimit, TarGuard};
use crate::{LayerError, Result};

pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub const OPAQUE_NAME: &[u8] = b".wh..wh..opq";

/// A cleaned entry name: relative, no `.`/`..`/empty components; empty for
/// the root itself.
pub type EntryName = PathBuf;

/// What a layer entry means beyond its file type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whiteout {
    /// A plain entry.
    None,
    /// `.wh.NAME`: delete `NAME` (the path given) from the layers below.
    Remove(PathBuf),
    /// `.wh..wh..opq`: hide everything below this directory in lower layers.
    Opaque(PathBuf),
    /// Other `.wh..wh.*` names: AUFS bookkeeping, ignored as Docker does.
    AufsMeta,
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Cleans a tar member name. Refuses absolute names, `..` components and
/// NUL bytes; strips `./` and trailing slashes.
pub fn clean_entry_name(raw: &[u8]) -> Result<EntryName> {
    if raw.contains(&0) {
        return Err(LayerError::unsafe_entry(lossy(raw), "name contains a NUL byte"));
    }
    if raw.first() == Some(&b'/') {
        return Err(LayerError::unsafe_entry(
            lossy(raw),
            "absolute path (layer paths must be relative to the root)",
        ));
    }
    clean_components(raw)
}

/// Cleans a hard link target: like a name, but a leading `/` means the root
/// (as tar and Docker read it).
pub fn clean_link_target(name: &Path, raw: &[u8]) -> Result<EntryName> {
    if raw.contains(&0) {
        return Err(LayerError::unsafe_entry(
            name.display().to_string(),
            "hard link target contains a NUL byte",
        ));
    }
    let trimmed = raw.strip_prefix(b"/").unwrap_or(raw);
    clean_components(trimmed).map_err(|_| {
        LayerError::unsafe_entry(
            name.display().to_string(),
            format!("hard link target {:?} leaves the root (contains ..)", lossy(raw)),
        )
    })
}

fn clean_components(raw: &[u8]) -> Result<EntryName> {
    let mut out = PathBuf::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => {
                return Err(LayerError::unsafe_entry(
                    lossy(raw),
                    "path contains a .. component (leaves the root)",
                ));
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Reads the whiteout meaning of a cleaned name.
pub fn classify(path: &Path) -> Result<Whiteout> {
    let Some(base) = path.file_name() else {
        return Ok(Whiteout::None);
    };
    let base = base.as_bytes();
    let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Whiteout::None);
    };
    let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
    if base == OPAQUE_NAME {
        return Ok(Whiteout::Opaque(parent));
    }
    if base.starts_with(b".wh..wh.") {
        return Ok(Whiteout::AufsMeta);
    }
    if target.is_empty() || target == b"." || target == b".." {
        return Err(LayerError::unsafe_entry(
            path.display().to_string(),
            "bogus whiteout (names no file: .wh. must be followed by a file name)",
        ));
    }
    Ok(Whiteout::Remove(parent.join(OsStr::from_bytes(target))))
}

/// Stream-wide rules: nothing may be reached through a symlink that an
/// earlier entry of the same layer planted, and a hard link's target may
/// not go through or later become a symlink.
pub struct Checker {
    symlinks: HashSet<PathBuf>,
    link_targets: HashSet<PathBuf>,
    /// Whether `.wh.` names are whiteouts (image layers) or plain names
    /// (archives copied into a tree: `cp`, `ADD`).
    whiteouts: bool,
    /// Paths through symlinks are followed inside the root by the unpack
    /// ([`crate::UnpackOptions::follow_symlinks`]), not refused here.
    follow_symlinks: bool,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new(true)
    }
}

impl Checker {
    pub fn new(whiteouts: bool) -> Checker {
        Checker {
            symlinks: HashSet::new(),
            link_targets: HashSet::new(),
            whiteouts,
            follow_symlinks: false,
        }
    }

    /// A checker for an unpack that follows symlinks inside its root: an
    /// entry or hard link target through a symlink an earlier entry
    /// planted is let through (the unpack resolves it inside the root).
    pub fn following_symlinks(mut self) -> Checker {
        self.follow_symlinks = true;
        self
    }

    fn through_symlink(&self, path: &Path) -> Option<PathBuf> {
        if self.symlinks.is_empty() || self.follow_symlinks {
            return None;
        }
        path.ancestors()
            .skip(1)
            .find(|a| self.symlinks.contains(*a))
            .map(Path::to_path_buf)
    }

    /// Checks one entry; returns its whiteout meaning.
    pub fn entry(&mut self, path: &Path, kind: tar::EntryType, link: Option<&Path>) -> Result<Whiteout> {
        let show = || path.display().to_string();
        if let Some(s) = self.through_symlink(path) {
            return Err(LayerError::unsafe_entry(
                show(),
                format!(
                    "reached through the symlink {} planted by an earlier entry",
                    s.display()
                ),
            ));
        }
        let w = if self.whiteouts {
            classify(path)?
        } else {
            Whiteout::None
        };
        match &w {
            Whiteout::Remove(target) => {
                self.symlinks.remove(target);
                return Ok(w);
            }
            Whiteout::Opaque(_) | Whiteout::AufsMeta => return Ok(w),
            Whiteout::None => {}
        }
        if kind == tar::EntryType::Symlink {
            if self.link_targets.contains(path) {
                return Err(LayerError::unsafe_entry(
                    show(),
                    "replaces the target of an earlier hard link with a symlink",
                ));
            }
            self.symlinks.insert(path.to_path_buf());
        } else {
            self.symlinks.remove(path);
        }
        if let Some(target) = link {
            if let Some(s) = self.through_symlink(target) {
                return Err(LayerError::unsafe_entry(
                    show(),
                    format!(
                        "hard link target {} goes through the symlink {}",
                        target.display(),
                        s.display()
                    ),
                ));
            }
            if target.as_os_str().is_empty() {
                return Err(LayerError::unsafe_entry(show(), "hard link to the root directory"));
            }
            self.link_targets.insert(target.to_path_buf());
        }
        Ok(w)
    }
}

/// The checked facts about one tar entry.
pub(crate) struct Checked {
    pub path: EntryName,
    pub link: Option<EntryName>,
    pub whiteout: Whiteout,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Applies the per-entry rules to a tar entry.
pub(crate) fn check_entry<R: Read>(checker: &mut Checker, entry: &mut tar::Entry<'_, R>) -> Result<Checked> {
    let path = clean_entry_name(&entry.path_bytes())?;
    let kind = entry.header().entry_type();
    let link = if kind == tar::EntryType::Link {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| LayerError::unsafe_entry(path.display().to_string(), "hard link without a target"))?;
        Some(clean_link_target(&path, &raw)?)
    } else {
        None
    };
    let whiteout = checker.entry(&path, kind, link.as_deref())?;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| tar_error(e, &path))? {
        for ext in exts {
            let ext = ext.map_err(|e| tar_error(e, &path))?;
            if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                if strata_rootless::is_overlay_xattr(name) {
                    return Err(LayerError::unsafe_entry(
                        path.display().to_string(),
                        format!(
                            "sets the overlay xattr {} (reserved for the storage driver)",
                            lossy(name)
                        ),
                    ));
                }
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Checked {
        path,
        link,
        whiteout,
        xattrs,
    })
}

/// Maps an error from the tar reader to a `LayerError`.
pub(crate) fn tar_error(e: io::Error, near: &Path) -> LayerError {
    if let Some(l) = crate::compress::find_error::<MetadataLimit>(&e) {
        return LayerError::TarLimit(l.clone());
    }
    if let Some(d) = crate::compress::find_decompress_error(&e) {
        return LayerError::Compression {
            compression: d.compression,
            message: d.message.clone(),
        };
    }
    let where_ = if near.as_os_str().is_empty() {
        "at the start".to_string()
    } else {
        format!("after entry {}", near.display())
    };
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return LayerError::Truncated(format!("the stream ends inside a header {where_}"));
    }
    LayerError::NotTar(format!("{e} ({where_})"))
}

/// Reads an entry's content into `out`, refusing a stream that ends early.
pub(crate) fn copy_content<R: Read, W: io::Write>(
    entry: &mut tar::Entry<'_, R>,
    path: &Path,
    out: &mut W,
) -> Result<u64> {
    // The size the tar reader goes by: a PAX `size` record overrides the header's.
    let size = entry.size();
    let n = copy_big(entry, out).map_err(|e| content_error(e, path, size))?;
    if n < size {
        return Err(truncated(path, size, Some(n)));
    }
    Ok(n)
}

/// Maps an error met reading the content of the entry `path` (`size`
/// bytes).
pub(crate) fn content_error(e: io::Error, path: &Path, size: u64) -> LayerError {
    match read_error(e, "") {
        LayerError::Truncated(_) => truncated(path, size, None),
        LayerError::Io { source, .. } => tar_error(source, path),
        other => other,
    }
}

pub(crate) fn truncated(path: &Path, size: u64, got: Option<u64>) -> LayerError {
    match got {
        Some(n) => LayerError::Truncated(format!(
            "entry {} claims {size} bytes but the stream ends after {n} (a header that lies about its size?)",
            path.display()
        )),
        None => LayerError::Truncated(format!(
            "entry {} claims {size} bytes but the stream ends early",
            path.display()
        )),
    }
}

/// Reads a tar stream entry by entry, each checked (see [`check_entry`])
/// before `each` gets it; returns the reader, after the end-of-archive
/// marker (see [`drain`]). `.wh.` names are whiteouts when `whiteouts`.
///
/// The only place layer tars are parsed: the stream goes through a
/// [`TarGuard`], so the tar reader never buffers oversized metadata.
pub(crate) fn for_each_entry<R: Read>(
    reader: R,
    mut checker: Checker,
    mut each: impl FnMut(&mut tar::Entry<'_, TarGuard<R>>, &Checked) -> Result<()>,
) -> Result<R> {
    let mut archive = tar::Archive::new(TarGuard::new(reader));
    {
        let mut last = PathBuf::new();
        let entries = archive.entries().map_err(|e| tar_error(e, &last))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error(e, &last))?;
            let checked = check_entry(&mut checker, &mut entry)?;
            each(&mut entry, &checked)?;
            last = checked.path;
        }
    }
    Ok(archive.into_inner().into_inner())
}

/// Reads what follows the end-of-archive marker (padding, the end of a
/// compressed stream), so that hashes cover the whole stream.
pub(crate) fn drain<R: Read>(mut reader: R) -> Result<R> {
    io::copy(&mut reader, &mut io::sink()).map_err(|e| read_error(e, "reading the end of the layer"))?;
    Ok(reader)
}

/// Reads a whole tar stream, checking every entry, then drains what
/// follows the end-of-archive marker; returns the reader.
pub(crate) fn check_stream<R: Read>(reader: R) -> Result<R> {
    let reader = for_each_entry(reader, Checker::new(true), |entry, checked| {
        if entry.header().entry_type() == tar::EntryType::GNUSparse {
            // Read as a file, its holes are zeros (gigabytes from a few
            // bytes of layer): the tar reader skips its stored data instead,
            // and a truncated stream still fails there.
            return Ok(());
        }
        copy_content(entry, &checked.path, &mut io::sink()).map(drop)
    })?;
    drain(reader)
}

/// `io::copy` with a large buffer: file contents move in few syscalls.
fn copy_big<R: Read, W: io::Write>(r: &mut R, w: &mut W) -> io::Result<u64> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        let mut n = 0u64;
        loop {
            let k = match r.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            w.write_all(&buf[..k])?;
            n += k as u64;
        }
    })
}
