//! `oci-archive:FILE[:REF]`: a tar of an OCI image layout, as skopeo, podman
//! and `strata save --format oci` write it.
//!
//! As a source, the archive (plain, gzip or zstd: sniffed) is unpacked once
//! into a private temporary directory, as skopeo does, and served from there
//! as a [`Layout`]. Unpacking checks every entry: no absolute names, no `..`,
//! regular files only under `blobs/`, every `blobs/<alg>/<hex>` hashed
//! against its name; links elsewhere are kept as names inside the archive
//! and never made on disk (a link can point nowhere outside).
//!
//! As a sink, each verified blob is written straight into the tar, a
//! temporary file beside FILE ([`crate::tar_out`]); [`Sink::finish`] adds
//! `oci-layout` and `index.json` and renames it onto FILE: a failed copy
//! leaves FILE as it was (or absent).
//!
//! [`Unpacked`] is shared with `docker_archive`.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use strata_oci::media::Compression;
use strata_oci::{Algorithm, Descriptor, Digest, Index, Reference, media};

use crate::archive::{ArchiveInput, Output, Target};
use crate::layout::{Layout, REF_NAME};
use crate::tar_out::TarOut;
use crate::write_behind::WriteBehind;
use crate::{BlobRole, BlobStream, Result, Sink, Source, TransferError};

/// The annotation containerd and Docker 25+ use for an image's full name.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Links followed before giving up (a loop of links).
const MAX_LINK_HOPS: usize = 16;

/// An image finished into an archive being written, with its names.
type Named = (Descriptor, Vec<String>);

/// An OCI archive, opened to read ([`OciArchive::open`]) or to write ([`OciArchive::create`]).
pub struct OciArchive {
    path: PathBuf,
    /// Reading: the unpacked archive as a layout.
    layout: Option<Layout>,
    /// The unpacked archive; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// Writing: where the archive goes, the images finished so far and the tar.
    out: Option<(Output<Named>, TarOut)>,
    /// Names in `index.json` as `docker save` writes them (see [`OciArchive::docker_names`]).
    docker_names: bool,
}

impl OciArchive {
    /// Unpacks the archive at `path` into a private directory under the
    /// system's temporary directory (`TMPDIR`) and serves it from there.
    pub async fn open(path: &Path) -> Result<OciArchive> {
        OciArchive::open_in(path, &std::env::temp_dir()).await
    }

    /// [`OciArchive::open`], unpacking under `tmp`.
    pub async fn open_in(path: &Path, tmp: &Path) -> Result<OciArchive> {
        let (input, tmp) = (ArchiveInput::File(path.to_path_buf()), tmp.to_path_buf());
        blocking(move || OciArchive::from_unpacked(Unpacked::read(input, &tmp)?)).await
    }

    /// An unpacked archive that must be an OCI layout.
    pub(crate) fn from_unpacked(unpacked: Unpacked) -> Result<OciArchive> {
        for f in ["oci-layout", "index.json"] {
            if !unpacked.files.contains_key(f) {
                return Err(TransferError::Invalid(format!(
                    "{} is not an OCI archive: it has no {f}{}",
                    unpacked.archive.display(),
                    if unpacked.files.contains_key("manifest.json") {
                        " (it looks like a docker-archive)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let layout = Layout::open(unpacked.dir.path())?;
        Ok(OciArchive {
            path: unpacked.archive,
            layout: Some(layout),
            _dir: Some(unpacked.dir),
            out: None,
            docker_names: false,
        })
    }

    /// An archive to write at `path` (replaced at [`Sink::finish`] if it
    /// exists); the layout is staged under the system's temporary directory.
    pub fn create(path: &Path) -> Result<OciArchive> {
        OciArchive::create_in(path, &std::env::temp_dir())
    }

    /// [`OciArchive::create`], staging under `tmp`.
    pub fn create_in(path: &Path, tmp: &Path) -> Result<OciArchive> {
        OciArchive::create_to(Target::File(path.to_path_buf()), tmp)
    }

    /// An archive written to `out` (STDOUT) as a stream once finished
    /// (a stream cannot be replaced: use it with [`OciArchive::several`]
    /// and [`OciArchive::commit`], or for one image).
    pub fn create_stream(out: Box<dyn Write + Send>, tmp: &Path) -> Result<OciArchive> {
        OciArchive::create_to(Target::Stream(std::sync::Mutex::new(Some(out))), tmp)
    }

    fn create_to(target: Target, tmp: &Path) -> Result<OciArchive> {
        let tar = TarOut::create(&target, tmp)?;
        Ok(OciArchive {
            path: target.shown(),
            layout: None,
            _dir: None,
            out: Some((Output::new(target), tar)),
            docker_names: false,
        })
    }

    /// Several images in one archive: each copy's `finish` adds its image,
    /// and [`OciArchive::commit`] writes the archive, once.
    pub fn several(mut self) -> OciArchive {
        if let Some((o, _)) = &mut self.out {
            o.deferred = true;
        }
        self
    }

    /// Names images in `index.json` as `docker save` and `strata save` do:
    /// the full reference as containerd's name and the tag as `ref.name`
    /// (what umoci and podman read), instead of the name as given.
    pub fn docker_names(mut self) -> OciArchive {
        self.docker_names = true;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> Result<&Layout> {
        self.layout
            .as_ref()
            .ok_or_else(|| TransferError::Invalid(format!("{} was opened for writing", self.path.display())))
    }

    fn output(&self) -> Result<&Output<Named>> {
        Ok(&self.writer()?.0)
    }

    fn writer(&self) -> Result<&(Output<Named>, TarOut)> {
        self.out
            .as_ref()
            .ok_or_else(|| TransferError::Invalid(format!("{} was opened for reading", self.path.display())))
    }

    /// The images of the archive, each with its names (`index.json` entries
    /// naming one manifest or index: one image).
    pub fn images(&self) -> Result<Vec<crate::archive::ArchivedImage>> {
        let index = self.reader()?.index()?;
        let mut out: Vec<crate::archive::ArchivedImage> = Vec::new();
        for d in &index.manifests {
            let reference = d.digest.to_string();
            let at = match out.iter().position(|i| i.reference == reference) {
                Some(at) => at,
                None => {
                    out.push(crate::archive::ArchivedImage {
                        reference,
                        names: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            if let Some(n) = full_name(d)
                && !out[at].names.contains(&n)
            {
                out[at].names.push(n);
            }
        }
        Ok(out)
    }

    /// Writes the archive with every image finished so far.
    pub async fn commit(&self) -> Result<()> {
        let out = self.output()?;
        let finished = out.finished();
        if finished.is_empty() {
            return Err(TransferError::Invalid(format!(
                "{}: no image to write",
                self.path.display()
            )));
        }
        let mut manifests: Vec<Descriptor> = Vec::new();
        for (root, names) in &finished {
            if self.docker_names {
                let refs = names.iter().map(|n| docker_name(n)).collect::<Result<Vec<_>>>()?;
                manifests.extend(index_entries(root, &refs));
                continue;
            }
            // As a layout names them: a name moves to the newest image.
            if names.is_empty()
                && !manifests
                    .iter()
                    .any(|m| m.digest == root.digest && m.annotations.is_none())
            {
                manifests.push(root.clone());
            }
            for n in names {
                manifests.retain(|m| m.annotations.as_ref().and_then(|a| a.get(REF_NAME)) != Some(n));
                let mut d = root.clone();
                d.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), n.clone())]));
                manifests.push(d);
            }
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&index).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let target = out.take(&self.path)?;
        self.writer()?.1.commit(target, layout_files(bytes)).await
    }
}

/// A name for a docker-style archive: a tag (`busybox` is `busybox:latest`), not a digest.
pub(crate) fn docker_name(n: &str) -> Result<Reference> {
    let r = Reference::parse(n)
        .map(Reference::with_default_tag)
        .map_err(|e| TransferError::Invalid(format!("{n:?} is not an image name: {e}")))?;
    if r.digest().is_some() {
        return Err(TransferError::Invalid(format!(
            "{n}: a docker-archive names images by tag, not by digest"
        )));
    }
    Ok(r)
}

/// The `index.json` entries `names` give `root`: each a full reference
/// (containerd's name) with its tag as `ref.name`, as Docker 25+ and
/// `strata save` write them.
pub(crate) fn index_entries(root: &Descriptor, names: &[Reference]) -> Vec<Descriptor> {
    if names.is_empty() {
        return vec![root.clone()];
    }
    names
        .iter()
        .map(|r| {
            let mut d = root.clone();
            d.annotations = Some(BTreeMap::from([
                (CONTAINERD_NAME.to_string(), r.to_string()),
                (REF_NAME.to_string(), r.tag().unwrap_or("latest").to_string()),
            ]));
            d
        })
        .collect()
}

/// The full name an index entry gives its image, as `docker load` takes
/// it: containerd's name, else a `ref.name` that is a whole reference (not
/// just a tag), in Docker's familiar form (`busybox:latest`).
pub(crate) fn full_name(d: &Descriptor) -> Option<String> {
    let a = d.annotations.as_ref()?;
    [CONTAINERD_NAME, REF_NAME].iter().find_map(|k| {
        let v = a.get(*k)?;
        if !v.contains(['/', ':']) {
            return None;
        }
        Reference::parse(v).ok().map(|r| r.with_default_tag().familiar())
    })
}

/// A private directory under `tmp`, named as the store's work entries are
/// (`blob-<pid>-…`), so that one a killed process left in the store's
/// `tmp/` is removed by the next `Store::open`.
pub(crate) fn work_dir(tmp: &Path, what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("blob-{}-archive-", std::process::id()))
        .tempdir_in(tmp)
        .map_err(|e| TransferError::io(format!("{what} in {}", tmp.display()), e))
}

pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransferError::Invalid(format!("archive task failed: {e}")))?
}

/// The names an index entry answers to: its `ref.name` and its containerd name.
fn entry_names(d: &Descriptor) -> Vec<String> {
    let Some(a) = &d.annotations else { return Vec::new() };
    [REF_NAME, CONTAINERD_NAME]
        .iter()
        .filter_map(|k| a.get(*k).cloned())
        .collect()
}

/// Whether an index entry is the one `wanted` names: its `ref.name` as
/// written, or its containerd name as the same normalized reference.
fn entry_matches(d: &Descriptor, wanted: &str) -> bool {
    let Some(a) = &d.annotations else { return false };
    if a.get(REF_NAME).is_some_and(|n| n == wanted) {
        return true;
    }
    let norm = |s: &str| Reference::parse(s).ok().map(|r| r.with_default_tag().to_string());
    match (a.get(CONTAINERD_NAME), norm(wanted)) {
        (Some(full), Some(w)) => full == wanted || norm(full).as_deref() == Some(w.as_str()),
        (Some(full), None) => full == wanted,
        _ => false,
    }
}

fn describe(d: &Descriptor) -> String {
    entry_names(d)
        .into_iter()
        .next()
        .unwrap_or_else(|| d.digest.to_string())
}

impl Source for OciArchive {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        let index = self.reader()?.index()?;
        let choices = || index.manifests.iter().map(describe).collect::<Vec<_>>().join(", ");
        let found = match reference {
            None => match index.manifests.len() {
                1 => index.manifests.first(),
                0 => {
                    return Err(TransferError::NotFound {
                        what: format!("an image in {} (its index.json is empty)", self.path.display()),
                    });
                }
                n => {
                    return Err(TransferError::Invalid(format!(
                        "{} holds {n} images ({}): name one (oci-archive:FILE:REF)",
                        self.path.display(),
                        choices()
                    )));
                }
            },
            Some(r) if Digest::parse(r).is_ok() => index.manifests.iter().find(|d| d.digest.to_string() == r),
            Some(r) => index.manifests.iter().find(|d| entry_matches(d, r)),
        };
        let mut desc = found.cloned().ok_or_else(|| TransferError::NotFound {
            what: format!(
                "image {:?} in {} (it has {})",
                reference.unwrap_or(""),
                self.path.display(),
                choices()
            ),
        })?;
        desc.annotations = None;
        Ok(desc)
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        self.reader()?.read_document(desc).await
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.reader()?.open_blob(desc).await
    }

    /// The unpacked file `open_blob` reads.
    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let path = self.reader().ok()?.blob_path(&desc.digest);
        path.is_file().then_some(path)
    }
}

impl Sink for OciArchive {
    async fn has_blob(&self, desc: &Descriptor, _role: &BlobRole) -> Result<bool> {
        Ok(self.writer()?.1.has(&desc.digest))
    }

    async fn put_blob(&self, desc: &Descriptor, _role: &BlobRole, data: BlobStream) -> Result<()> {
        self.writer()?.1.put_blob(desc, data).await
    }

    async fn put_blob_file(&self, desc: &Descriptor, _role: &BlobRole, data: BlobStream, file: &Path) -> Result<()> {
        self.writer()?.1.put_blob_file(desc, data, file).await
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        self.writer()?.1.put_document(desc, bytes).await
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        let out = self.output()?;
        if self.docker_names {
            for n in names {
                docker_name(n)?;
            }
        }
        out.record((root.clone(), names.to_vec()));
        if out.deferred {
            return Ok(());
        }
        self.commit().await
    }
}

/// A regular file of an unpacked archive.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub path: PathBuf,
    /// Of the bytes (sha256, or the algorithm its `blobs/<alg>/` name says).
    pub digest: Digest,
    pub size: u64,
    /// Sniffed from the first bytes.
    pub compression: Compression,
}

/// An archive unpacked into a private directory (removed on drop).
pub(crate) struct Unpacked {
    pub archive: PathBuf,
    pub dir: tempfile::TempDir,
    /// Regular files by their cleaned name.
    pub files: BTreeMap<String, Member>,
    /// Symbolic and hard links by cleaned name: the cleaned name they point to.
    pub links: BTreeMap<String, String>,
}

/// An entry name made relative and plain; refuses absolute names and `..`.
fn clean_member_name(raw: &str) -> std::result::Result<String, &'static str> {
    if raw.starts_with('/') {
        return Err("an absolute name");
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("`..` in its name: it leaves the archive"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// `path` with `..` resolved; None when it climbs out of the archive.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// The digest a `blobs/<alg>/<hex>` name promises.
fn blob_name_digest(name: &str) -> Option<Digest> {
    let (alg, hex) = name.strip_prefix("blobs/")?.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

impl Unpacked {
    /// Unpacks `archive` into a new directory under `tmp`.
    pub fn read(input: ArchiveInput, tmp: &Path) -> Result<Unpacked> {
        let archive = input.shown();
        let shown = archive.display().to_string();
        let raw: Box<dyn Read + Send> = match input {
            ArchiveInput::File(path) => Box::new(std::fs::File::open(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    TransferError::NotFound {
                        what: format!("archive {shown}"),
                    }
                } else {
                    TransferError::io(format!("opening {shown}"), e)
                }
            })?),
            ArchiveInput::Stream(r) => r,
        };
        let plain = strata_layer::decompressor(BufReader::with_capacity(256 * 1024, raw))
            .map_err(|e| TransferError::Invalid(format!("{shown}: {e}")))?;
        let dir = work_dir(tmp, &format!("creating a directory to unpack {shown}"))?;
        let mut out = Unpacked {
            archive,
            dir,
            files: BTreeMap::new(),
            links: BTreeMap::new(),
        };
        // The guard bounds PAX records and long names before the tar reader
        // would read them whole into memory.
        let mut tar = tar::Archive::new(strata_layer::TarGuard::new(plain));
        let rd = |e: std::io::Error| TransferError::io(format!("reading {shown} (is it a tar, whole?)"), e);
        let bad = |raw: &str, why: &str| TransferError::Invalid(format!("{shown}: archive entry {raw:?}: {why}"));
        let wr = |e: std::io::Error| TransferError::io(format!("unpacking {shown}"), e);
        let mut writer = WriteBehind::start().map_err(wr)?;
        for entry in tar.entries().map_err(rd)? {
            let mut entry = entry.map_err(rd)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean_member_name(&raw).map_err(|why| bad(&raw, why))?;
            let under_blobs = name.starts_with("blobs/");
            match entry.header().entry_type() {
                tar::EntryType::Directory => {
                    if blob_name_digest(&name).is_some() {
                        return Err(bad(
                            &raw,
                            "a directory where a blob belongs (blobs must be regular files)",
                        ));
                    }
                    continue;
                }
                kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    if under_blobs {
                        return Err(bad(&raw, "a link (blobs must be regular files)"));
                    }
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .ok_or_else(|| bad(&raw, "a link without a target"))?;
                    if target.starts_with('/') {
                        return Err(bad(&raw, "a link out of the archive (absolute target)"));
                    }
                    // A symbolic link is relative to its directory, a hard link to the archive's top.
                    let base = match kind {
                        tar::EntryType::Symlink => name.rsplit_once('/').map(|(d, _)| d).unwrap_or(""),
                        _ => "",
                    };
                    let resolved =
                        normalize(&format!("{base}/{target}")).ok_or_else(|| bad(&raw, "a link out of the archive"))?;
                    out.files.remove(&name);
                    out.links.insert(name, resolved);
                    continue;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                other => return Err(bad(&raw, &format!("unexpected entry type {other:?}"))),
            }
            if name.is_empty() {
                return Err(bad(&raw, "a file without a name"));
            }
            let declared = entry.header().size().map_err(rd)?;
            let named = blob_name_digest(&name);
            let mut hasher = named.as_ref().map_or(Algorithm::Sha256, Digest::algorithm).hasher();
            let path = out.dir.path().join(&name);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| TransferError::io(format!("unpacking {shown}: {raw:?}"), e))?;
            }
            // Hashed here while the thread writes the previous chunks.
            writer.create(path.clone()).map_err(wr)?;
            let (mut n, mut head) = (0u64, Vec::with_capacity(4));
            loop {
                let mut buf = writer.buffer();
                let k = entry.read(&mut buf).map_err(rd)?;
                if k == 0 {
                    break;
                }
                buf.truncate(k);
                if head.len() < 4 {
                    let more = (4 - head.len()).min(k);
                    head.extend_from_slice(&buf[..more]);
                }
                hasher.update(&buf);
                writer.write(buf).map_err(wr)?;
                n += k as u64;
            }
            if n != declared {
                return Err(bad(&raw, &format!("truncated ({n} of {declared} bytes)")));
            }
            let digest = hasher.finish();
            if let Some(expected) = named
                && expected != digest
            {
                return Err(bad(
                    &raw,
                    &format!(
                        "its bytes do not match its name: the content does not match its digest (it hashes to {digest}); a corrupt or forged blob"
                    ),
                ));
            }
            out.links.remove(&name);
            out.files.insert(
                name,
                Member {
                    path,
                    digest,
                    size: n,
                    compression: Compression::sniff(&head),
                },
            );
        }
        writer.finish().map_err(wr)?;
        Ok(out)
    }

    /// Whether the archive has `name` (a file, or a link to one).
    pub fn has(&self, name: &str) -> bool {
        self.member(name).is_ok()
    }

    /// The regular file `name` is, following links inside the archive.
    pub fn member(&self, name: &str) -> Result<&Member> {
        let missing = || TransferError::Invalid(format!("{}: {name} is not in the archive", self.archive.display()));
        let mut n = normalize(name).ok_or_else(missing)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.links.get(&n) {
                Some(t) => n = t.clone(),
                None => return self.files.get(&n).ok_or_else(missing),
            }
        }
        Err(TransferError::Invalid(format!(
            "{}: {name}: too many levels of links",
            self.archive.display()
        )))
    }

    /// A small file (`manifest.json`, a config): at most [`crate::MAX_DOCUMENT_SIZE`] bytes.
    pub fn read_small(&self, m: &Member, what: &str) -> Result<Vec<u8>> {
        if m.size > crate::MAX_DOCUMENT_SIZE {
            return Err(TransferError::Invalid(format!(
                "{}: {what} is {} bytes, more than the 4 MiB allowed",
                self.archive.display(),
                m.size
            )));
        }
        std::fs::read(&m.path).map_err(|e| TransferError::io(format!("reading {what}"), e))
    }
}

/// Where a finished archive goes, taken out of its [`Target`].
pub(crate) enum Out {
    File(PathBuf),
    Stream(Box<dyn Write + Send>),
}

/// An OCI layout's own files, after its blobs: `oci-layout`, then `index.json`.
pub(crate) fn layout_files(index: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    vec![
        ("oci-layout".to_string(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".to_string(), index),
    ]
}
