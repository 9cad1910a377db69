//! `docker-archive:FILE[:REF]`: what `docker save` writes and `docker load`
//! reads.
//!
//! As a source, both forms are read: the legacy one (`manifest.json` with
//! `Config`, `RepoTags`, `Layers`; `<id>/layer.tar`, `repositories`) and
//! Docker 25+'s (an OCI layout plus `manifest.json`). The archive is
//! unpacked once (checked as `oci_archive` does). An image whose OCI
//! manifest the archive carries (Docker 25+) is served with it, so its
//! manifest digest is kept; otherwise a Docker v2 schema 2 manifest is made
//! from `manifest.json`: the config file, and each layer file as it is
//! (an uncompressed tar, whose digest must then be the config's diff ID,
//! or a gzip/zstd one, sniffed).
//!
//! As a sink, it writes what `strata save` writes (Docker 25+ style, which
//! `docker load` 20.10, podman and skopeo read): the OCI layout, with names
//! in `index.json` as containerd's full name plus the tag as `ref.name`;
//! `manifest.json` with `Config` and `Layers` as `blobs/sha256/<hex>` (layer
//! blobs as they are, compressed or not) and `RepoTags` in Docker's
//! familiar form (`busybox:latest`); and `repositories`. Blobs go straight
//! into the tar as they arrive ([`crate::tar_out`]), a temporary file
//! renamed onto FILE at [`Sink::finish`]; with
//! [`DockerArchive::several`], each `finish` adds its image and
//! [`DockerArchive::commit`] writes the archive of them all.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use strata_oci::media::Compression;
use strata_oci::{Descriptor, Digest, Document, ImageConfig, Manifest, Platform, Reference, media};
use tokio::io::AsyncReadExt;

use crate::archive::{ArchiveInput, ArchivedImage, Output, Target};
use crate::oci_archive::{Unpacked, blocking, docker_name, index_entries, layout_files};
use crate::tar_out::{TarOut, blob_name};
use crate::{BlobRole, BlobStream, Result, Sink, Source, TransferError};

/// A docker-archive, opened to read ([`DockerArchive::open`]) or to write ([`DockerArchive::create`]).
pub struct DockerArchive {
    path: PathBuf,
    mode: Mode,
}

enum Mode {
    Read(Reader),
    Write { tar: TarOut, out: Output<Finished> },
}

/// An image finished into the archive: its root, names and image manifests.
#[derive(Clone)]
struct Finished {
    root: Descriptor,
    refs: Vec<Reference>,
    manifests: Vec<Manifest>,
    /// Which of `manifests` takes the names.
    tagged: usize,
}

struct Reader {
    unpacked: Unpacked,
    images: Vec<Archived>,
    /// Multi-platform images (Docker 27+ saves them in `index.json`): the
    /// index, its images' configs, its names.
    indexes: Vec<(Descriptor, Vec<Digest>, Vec<String>)>,
    /// Manifests made from `manifest.json`, by digest.
    documents: HashMap<Digest, Vec<u8>>,
    /// Every regular file of the archive, by the digest of its bytes.
    blobs: HashMap<Digest, PathBuf>,
}

/// One image of the archive (one `manifest.json` entry).
struct Archived {
    /// `RepoTags`, normalized (`busybox:latest`).
    tags: Vec<String>,
    root: Descriptor,
    config: Digest,
}

impl Archived {
    fn describe(&self, i: usize) -> String {
        match self.tags.first() {
            Some(t) => t.clone(),
            None => format!("@{i} (ID {})", self.config),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// `busybox` → `busybox:latest`, `docker.io/library/busybox:1` → `busybox:1`.
fn familiar_tag(s: &str) -> Result<Reference> {
    Reference::parse(s)
        .map(Reference::with_default_tag)
        .map_err(|e| TransferError::Invalid(format!("{s:?} is not an image name: {e}")))
}

impl DockerArchive {
    /// Unpacks the archive at `path` into a private directory under the
    /// system's temporary directory (`TMPDIR`) and serves its images.
    pub async fn open(path: &Path) -> Result<DockerArchive> {
        DockerArchive::open_in(path, &std::env::temp_dir()).await
    }

    /// [`DockerArchive::open`], unpacking under `tmp`.
    pub async fn open_in(path: &Path, tmp: &Path) -> Result<DockerArchive> {
        let (input, tmp) = (ArchiveInput::File(path.to_path_buf()), tmp.to_path_buf());
        blocking(move || DockerArchive::from_unpacked(Unpacked::read(input, &tmp)?)).await
    }

    /// An unpacked archive that must be a docker-archive.
    pub(crate) fn from_unpacked(unpacked: Unpacked) -> Result<DockerArchive> {
        let path = unpacked.archive.clone();
        let reader = Reader::new(unpacked)?;
        Ok(DockerArchive {
            path,
            mode: Mode::Read(reader),
        })
    }

    /// An archive to write at `path` (replaced at [`Sink::finish`] if it
    /// exists); blobs are staged under the system's temporary directory.
    pub fn create(path: &Path) -> Result<DockerArchive> {
        DockerArchive::create_in(path, &std::env::temp_dir())
    }

    /// [`DockerArchive::create`], staging under `tmp`.
    pub fn create_in(path: &Path, tmp: &Path) -> Result<DockerArchive> {
        DockerArchive::create_to(Target::File(path.to_path_buf()), tmp)
    }

    /// An archive written to `out` (STDOUT) as a stream once finished
    /// (a stream cannot be replaced: use it with [`DockerArchive::several`]
    /// and [`DockerArchive::commit`], or for one image).
    pub fn create_stream(out: Box<dyn Write + Send>, tmp: &Path) -> Result<DockerArchive> {
        DockerArchive::create_to(Target::Stream(std::sync::Mutex::new(Some(out))), tmp)
    }

    fn create_to(target: Target, tmp: &Path) -> Result<DockerArchive> {
        let tar = TarOut::create(&target, tmp)?;
        Ok(DockerArchive {
            path: target.shown(),
            mode: Mode::Write {
                tar,
                out: Output::new(target),
            },
        })
    }

    /// Several images in one archive: each copy's `finish` adds its image,
    /// and [`DockerArchive::commit`] writes the archive, once.
    pub fn several(mut self) -> DockerArchive {
        if let Mode::Write { out, .. } = &mut self.mode {
            out.deferred = true;
        }
        self
    }

    /// The images of the archive (one per `manifest.json` entry), each with its tags.
    /// Each multi-platform index (whole), then each image of
    /// `manifest.json` that is not one of their platforms.
    pub fn images(&self) -> Result<Vec<ArchivedImage>> {
        let r = self.reader()?;
        let mut out: Vec<ArchivedImage> = r
            .indexes
            .iter()
            .map(|(d, _, names)| ArchivedImage {
                reference: d.digest.to_string(),
                names: names.clone(),
            })
            .collect();
        for (i, img) in r.images.iter().enumerate() {
            if !r.indexes.iter().any(|(_, configs, _)| configs.contains(&img.config)) {
                out.push(ArchivedImage {
                    reference: format!("@{i}"),
                    names: img.tags.clone(),
                });
            }
        }
        Ok(out)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images' tags (`RepoTags`, normalized), one list per image, in archive order.
    pub fn tags(&self) -> Vec<Vec<String>> {
        match &self.mode {
            Mode::Read(r) => r.images.iter().map(|i| i.tags.clone()).collect(),
            Mode::Write { .. } => Vec::new(),
        }
    }

    fn reader(&self) -> Result<&Reader> {
        match &self.mode {
            Mode::Read(r) => Ok(r),
            Mode::Write { .. } => Err(TransferError::Invalid(format!(
                "{} was opened for writing",
                self.path.display()
            ))),
        }
    }

    fn tar(&self) -> Result<&TarOut> {
        Ok(self.writer()?.0)
    }

    fn writer(&self) -> Result<(&TarOut, &Output<Finished>)> {
        match &self.mode {
            Mode::Write { tar, out } => Ok((tar, out)),
            Mode::Read(_) => Err(TransferError::Invalid(format!(
                "{} was opened for reading",
                self.path.display()
            ))),
        }
    }
}

impl Reader {
    fn new(unpacked: Unpacked) -> Result<Reader> {
        let shown = unpacked.archive.display().to_string();
        let mj = match unpacked.member("manifest.json") {
            Ok(m) => unpacked.read_small(m, "manifest.json")?,
            Err(_) => {
                return Err(TransferError::Invalid(format!(
                    "{shown} is not a docker-archive: it has no manifest.json{}",
                    if unpacked.files.contains_key("index.json") {
                        " (it looks like an OCI archive: use oci-archive:)"
                    } else {
                        ""
                    }
                )));
            }
        };
        let entries: Vec<Entry> = serde_json::from_slice(&mj).map_err(|e| {
            TransferError::Invalid(format!("{shown}: manifest.json is not a docker-archive manifest: {e}"))
        })?;
        let mut blobs = HashMap::new();
        for m in unpacked.files.values() {
            blobs.entry(m.digest.clone()).or_insert_with(|| m.path.clone());
        }
        let oci = OciManifests::read(&unpacked)?;
        let mut reader = Reader {
            images: Vec::new(),
            indexes: oci.indexes.clone(),
            documents: HashMap::new(),
            blobs,
            unpacked,
        };
        for e in entries {
            let img = reader.image(&e, &oci)?;
            reader.images.push(img);
        }
        if reader.images.is_empty() {
            return Err(TransferError::Invalid(format!("{shown}: manifest.json lists no image")));
        }
        Ok(reader)
    }

    /// The image a `manifest.json` entry describes.
    fn image(&mut self, e: &Entry, oci: &OciManifests) -> Result<Archived> {
        let u = &self.unpacked;
        let shown = u.archive.display().to_string();
        let cfg = u.member(&e.config)?.clone();
        let config = ImageConfig::parse(&u.read_small(&cfg, &e.config)?)
            .map_err(|err| TransferError::Invalid(format!("{shown}: config {}: {err}", e.config)))?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != e.layers.len() {
            return Err(TransferError::Invalid(format!(
                "{shown}: manifest.json lists {} layers for {}, its config has {} diff IDs",
                e.layers.len(),
                e.config,
                diff_ids.len()
            )));
        }
        let tags = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| familiar_tag(t).map(|r| r.familiar()))
            .collect::<Result<Vec<_>>>()?;
        // Docker 25+: the archive's own manifest, digest and all (its
        // layers, as manifest.json names them, must be there all the same).
        if let Some(root) = oci.by_config.get(&cfg.digest) {
            for path in &e.layers {
                u.member(path)?;
            }
            return Ok(Archived {
                tags,
                root: root.clone(),
                config: cfg.digest,
            });
        }
        let mut layers = Vec::new();
        for (path, diff_id) in e.layers.iter().zip(diff_ids) {
            let m = u.member(path)?;
            if m.compression == Compression::None && m.digest != *diff_id {
                return Err(TransferError::Invalid(format!(
                    "{shown}: layer {path}: its content ({}) does not match the diff ID its config names ({diff_id})",
                    m.digest
                )));
            }
            layers.push((m.compression, m.digest.clone(), m.size));
        }
        // Docker's schema 2 has no zstd layer type: then an OCI manifest.
        let oci_types = layers.iter().any(|l| l.0 == Compression::Zstd);
        let layer_type = |c: Compression| match (oci_types, c) {
            (true, c) => c.oci_layer_media_type(),
            (false, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
            (false, _) => media::DOCKER_LAYER_TAR,
        };
        let (manifest_type, config_type) = if oci_types {
            (media::OCI_MANIFEST, media::OCI_CONFIG)
        } else {
            (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_type.into()),
            artifact_type: None,
            config: Descriptor::new(config_type, cfg.digest.clone(), cfg.size),
            layers: layers
                .into_iter()
                .map(|(c, d, size)| Descriptor::new(layer_type(c), d, size))
                .collect(),
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let root = Descriptor::new(manifest_type, Digest::sha256_of(&bytes), bytes.len() as u64);
        self.documents.insert(root.digest.clone(), bytes);
        Ok(Archived {
            tags,
            root,
            config: cfg.digest,
        })
    }

    fn path_of(&self, desc: &Descriptor, archive: &Path) -> Result<&PathBuf> {
        self.blobs.get(&desc.digest).ok_or_else(|| TransferError::NotFound {
            what: format!("blob {} in {}", desc.digest, archive.display()),
        })
    }
}

/// The image manifests a Docker 25+ archive's `index.json` leads to, by config digest.
#[derive(Default)]
struct OciManifests {
    by_config: HashMap<Digest, Descriptor>,
    /// Entries that are multi-platform indexes held whole enough to load
    /// (at least one image), with the configs of their images and names.
    indexes: Vec<(Descriptor, Vec<Digest>, Vec<String>)>,
}

impl OciManifests {
    fn read(u: &Unpacked) -> Result<OciManifests> {
        let mut out = OciManifests::default();
        let Ok(index) = u.member("index.json") else {
            return Ok(out);
        };
        let shown = u.archive.display().to_string();
        let index = match Document::parse(&u.read_small(index, "index.json")?, None) {
            Ok(Document::Index(ix)) => ix,
            Ok(Document::Manifest(_)) => {
                return Err(TransferError::Invalid(format!(
                    "{shown}: index.json is a manifest, not an index"
                )));
            }
            Err(e) => return Err(TransferError::Invalid(format!("{shown}: index.json: {e}"))),
        };
        let doc = |d: &Descriptor| -> Result<Option<Document>> {
            let name = blob_name(&d.digest);
            // An index may name images the archive does not carry (other platforms).
            let Some(m) = u.files.get(&name) else { return Ok(None) };
            let bytes = u.read_small(m, &name)?;
            Document::parse(&bytes, Some(&d.media_type))
                .map(Some)
                .map_err(|e| TransferError::Invalid(format!("{shown}: {name}: {e}")))
        };
        let mut indexes = Vec::new();
        let mut add = |d: &Descriptor, m: &Manifest| {
            let mut d = d.clone();
            d.annotations = None;
            out.by_config.entry(m.config.digest.clone()).or_insert(d);
        };
        // The entries, and the images of entries that are indexes (one level down).
        for d in &index.manifests {
            match doc(d)? {
                Some(Document::Manifest(m)) => add(d, &m),
                Some(Document::Index(ix)) => {
                    let mut configs = Vec::new();
                    for c in &ix.manifests {
                        if let Some(Document::Manifest(m)) = doc(c)? {
                            configs.push(m.config.digest.clone());
                            add(c, &m);
                        }
                    }
                    if !configs.is_empty() {
                        let names = crate::oci_archive::full_name(d).into_iter().collect();
                        let mut d = d.clone();
                        d.annotations = None;
                        indexes.push((d, configs, names));
                    }
                }
                None => {}
            }
        }
        out.indexes = indexes;
        Ok(out)
    }
}

impl Source for DockerArchive {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        let r = self.reader()?;
        let choices = || {
            r.images
                .iter()
                .enumerate()
                .map(|(i, img)| img.describe(i))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found = match reference {
            None if r.images.len() == 1 => r.images.first(),
            None => {
                return Err(TransferError::Invalid(format!(
                    "{} holds {} images ({}): name one (docker-archive:FILE:REF, REF a tag or @N)",
                    self.path.display(),
                    r.images.len(),
                    choices()
                )));
            }
            Some(s) if s.starts_with('@') => s[1..].parse::<usize>().ok().and_then(|i| r.images.get(i)),
            Some(s) if let Some((d, _, _)) = r.indexes.iter().find(|(d, _, _)| d.digest.to_string() == s) => {
                return Ok(d.clone());
            }
            Some(s) if Digest::parse(s).is_ok() => r
                .images
                .iter()
                .find(|i| i.root.digest.to_string() == s || i.config.to_string() == s),
            Some(s) => {
                let want = familiar_tag(s)?.familiar();
                r.images.iter().find(|i| i.tags.contains(&want))
            }
        };
        found.map(|i| i.root.clone()).ok_or_else(|| TransferError::NotFound {
            what: format!(
                "image {:?} in {} (it has {})",
                reference.unwrap_or(""),
                self.path.display(),
                choices()
            ),
        })
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let r = self.reader()?;
        if let Some(b) = r.documents.get(&desc.digest) {
            return Ok(b.clone());
        }
        let path = r.path_of(desc, &self.path)?;
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| TransferError::io(format!("opening {}", path.display()), e))?;
        let mut out = Vec::new();
        f.take(crate::MAX_DOCUMENT_SIZE + 1)
            .read_to_end(&mut out)
            .await
            .map_err(|e| TransferError::io(format!("reading {}", path.display()), e))?;
        Ok(out)
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let r = self.reader()?;
        if let Some(b) = r.documents.get(&desc.digest) {
            return Ok(Box::pin(std::io::Cursor::new(b.clone())));
        }
        let path = r.path_of(desc, &self.path)?;
        let f = std::fs::File::open(path).map_err(|e| TransferError::io(format!("opening {}", path.display()), e))?;
        Ok(crate::read_ahead::stream(f))
    }

    /// The unpacked file `open_blob` reads (not a manifest made from `manifest.json`).
    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let r = self.reader().ok()?;
        if r.documents.contains_key(&desc.digest) {
            return None;
        }
        r.blobs.get(&desc.digest).cloned()
    }
}

impl Sink for DockerArchive {
    async fn has_blob(&self, desc: &Descriptor, _role: &BlobRole) -> Result<bool> {
        Ok(self.tar()?.has(&desc.digest))
    }

    async fn put_blob(&self, desc: &Descriptor, _role: &BlobRole, data: BlobStream) -> Result<()> {
        self.tar()?.put_blob(desc, data).await
    }

    async fn put_blob_file(&self, desc: &Descriptor, _role: &BlobRole, data: BlobStream, file: &Path) -> Result<()> {
        self.tar()?.put_blob_file(desc, data, file).await
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        self.tar()?.put_document(desc, bytes).await
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        let (tar, out) = self.writer()?;
        let refs = names.iter().map(|n| docker_name(n)).collect::<Result<Vec<_>>>()?;
        let document = |d: &Descriptor| {
            tar.document(&d.digest).ok_or_else(|| TransferError::NotFound {
                what: format!("document {} in the archive being written", d.digest),
            })
        };
        // The images: the root, or every image of the root index.
        let root_bytes = document(root)?;
        let images: Vec<Descriptor> = match Document::parse(&root_bytes, Some(&root.media_type))
            .map_err(|e| TransferError::Invalid(format!("document {}: {e}", root.digest)))?
        {
            Document::Manifest(_) => vec![root.clone()],
            Document::Index(ix) => ix
                .manifests
                .into_iter()
                .filter(|d| media::is_manifest(&d.media_type))
                .collect(),
        };
        let mut manifests = Vec::new();
        for d in &images {
            let bytes = document(d)?;
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| TransferError::Invalid(format!("manifest {}: {e}", d.digest)))?;
            for l in &m.layers {
                if !tar.has(&l.digest) {
                    return Err(TransferError::Invalid(format!(
                        "layer {} of {} was not copied (a foreign layer?): a docker-archive needs every layer",
                        l.digest, d.digest
                    )));
                }
            }
            manifests.push(m);
        }
        if manifests.is_empty() {
            return Err(TransferError::Invalid(format!(
                "{}: the index holds no image to write",
                root.digest
            )));
        }
        // One manifest.json entry per image; several images under one name
        // would each take the tags in turn, so the names go to one image:
        // the host's, else the first.
        let host = Platform::host();
        let tagged = images
            .iter()
            .position(|d| d.platform.as_ref().is_some_and(|p| host.matches(p)))
            .unwrap_or(0);
        out.record(Finished {
            root: root.clone(),
            refs,
            manifests,
            tagged,
        });
        if out.deferred {
            return Ok(());
        }
        self.commit().await
    }
}

impl DockerArchive {
    /// Writes the archive with every image finished so far.
    pub async fn commit(&self) -> Result<()> {
        let (tar, out) = self.writer()?;
        let finished = out.finished();
        if finished.is_empty() {
            return Err(TransferError::Invalid(format!(
                "{}: no image to write",
                self.path.display()
            )));
        }
        let mut entries = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for f in &finished {
            let tags: Vec<String> = f.refs.iter().map(Reference::familiar).collect();
            for (i, m) in f.manifests.iter().enumerate() {
                let repo_tags = if i == f.tagged && !tags.is_empty() {
                    json!(tags)
                } else {
                    Value::Null
                };
                entries.push(json!({
                    "Config": blob_name(&m.config.digest),
                    "RepoTags": repo_tags,
                    "Layers": m.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
                }));
                if i == f.tagged
                    && let Some(top) = m.layers.last()
                {
                    for r in &f.refs {
                        repositories
                            .entry(r.familiar_repository())
                            .or_default()
                            .insert(r.tag().unwrap_or("latest").to_string(), top.digest.hex().to_string());
                    }
                }
            }
            index.extend(index_entries(&f.root, &f.refs));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": index,
        });
        let json = |v: &Value| serde_json::to_vec(v).map_err(|e| TransferError::Invalid(e.to_string()));
        let mut files = layout_files(json(&index)?);
        files.push(("manifest.json".to_string(), json(&Value::from(entries))?));
        if !repositories.is_empty() {
            files.push(("repositories".to_string(), json(&json!(repositories))?));
        }
        let target = out.take(&self.path)?;
        tar.commit(target, files).await
    }
}
