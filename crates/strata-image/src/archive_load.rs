//! `load`: docker-archive (legacy and Docker 25+) and OCI archive tarballs,
//! as written by docker, podman, skopeo and strata.
//!
//! One pass over the archive stages every file as a blob in the store's
//! temporary directory, hashed while copied; then the manifests are checked
//! (every named blob present, every layer's diff ID as its config says, every
//! layer tar valid) and only then are blobs named and images registered. A
//! bad archive leaves the store as it was.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Read, Seek};

use serde::Deserialize;
use strata_layer::{Compression, WriteOptions};
use strata_oci::{Algorithm, Descriptor, Digest, Document, ImageConfig, Manifest, Platform, Reference, media};
use strata_store::{LayerRecord, NewImage, Store, StoreLock};
use tempfile::NamedTempFile;

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct LoadReport {
    /// `Loaded image: busybox:latest` / `Loaded image ID: sha256:…` lines.
    pub lines: Vec<String>,
    pub images: Vec<Digest>,
}

struct Staged {
    digest: Digest,
    size: u64,
    file: NamedTempFile,
}

const METADATA: &[&str] = &["manifest.json", "index.json", "repositories", "oci-layout"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Normalizes an archive member name; refuses names that leave the archive.
fn clean_name(raw: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::Invalid(format!(
                        "archive entry {raw:?}: path leaves the archive"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

struct Archive {
    files: BTreeMap<String, Staged>,
    metadata: BTreeMap<String, Vec<u8>>,
    links: BTreeMap<String, String>,
    /// Layer blobs checked so far (by blob digest).
    checked: RefCell<BTreeMap<Digest, LayerRecord>>,
}

impl Archive {
    fn read(store: &Store, input: impl Read) -> Result<Archive> {
        let mut a = Archive {
            files: BTreeMap::new(),
            metadata: BTreeMap::new(),
            links: BTreeMap::new(),
            checked: RefCell::default(),
        };
        // The guard refuses oversized PAX records and long names before the
        // tar crate would read them whole into memory.
        let mut tar = tar::Archive::new(strata_layer::TarGuard::new(input));
        let io = |e: std::io::Error| Error::io("reading the archive", e);
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = clean_name(&raw)?;
            match entry.header().entry_type() {
                tar::EntryType::Directory => continue,
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .ok_or_else(|| Error::Invalid(format!("archive entry {raw:?}: link without a target")))?;
                    let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                        name.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default()
                    } else {
                        String::new()
                    };
                    let resolved = clean_name(&format!("{base}/{target}"))?;
                    a.links.insert(name, resolved);
                    continue;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                other => {
                    return Err(Error::Invalid(format!(
                        "archive entry {raw:?}: unexpected entry type {other:?}"
                    )));
                }
            }
            let declared = entry.header().size().map_err(io)?;
            if METADATA.contains(&name.as_str()) {
                if declared > media::MAX_DOCUMENT_SIZE {
                    return Err(Error::Invalid(format!(
                        "archive entry {name}: {declared} bytes, more than the {} allowed",
                        media::MAX_DOCUMENT_SIZE
                    )));
                }
                let mut buf = Vec::with_capacity(declared as usize);
                entry.read_to_end(&mut buf).map_err(|e| truncated(&name, e))?;
                a.metadata.insert(name, buf);
                continue;
            }
            // Blobs named by digest are checked against their name as they are copied.
            let named = blob_digest_of_name(&name);
            let algorithm = named.as_ref().map(Digest::algorithm).unwrap_or(Algorithm::Sha256);
            let mut w = store.blob_writer_with(algorithm)?;
            let n = std::io::copy(&mut entry, &mut w).map_err(|e| truncated(&name, e))?;
            if n != declared {
                return Err(Error::Invalid(format!(
                    "archive entry {name}: truncated ({n} of {declared} bytes)"
                )));
            }
            let (digest, size, file) = w.finish_digest()?;
            if let Some(expected) = named
                && expected != digest
            {
                return Err(Error::Invalid(format!(
                    "archive entry {name}: content does not match its digest (it hashes to {digest})"
                )));
            }
            a.files.insert(name, Staged { digest, size, file });
        }
        Ok(a)
    }

    fn resolve_link(&self, name: &str) -> Result<String> {
        let mut name = clean_name(name)?;
        for _ in 0..16 {
            match self.links.get(&name) {
                Some(t) => name = t.clone(),
                None => return Ok(name),
            }
        }
        Err(Error::Invalid(format!(
            "archive entry {name}: too many levels of links"
        )))
    }

    fn file(&self, name: &str) -> Result<&Staged> {
        let resolved = self.resolve_link(name)?;
        self.files.get(&resolved).ok_or_else(|| {
            Error::Invalid(format!(
                "the archive's manifest names {name}, which is not in the archive"
            ))
        })
    }

    fn blob(&self, d: &Digest) -> Result<&Staged> {
        self.files
            .get(&format!("blobs/{}/{}", d.algorithm().name(), d.hex()))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the archive's manifest names blob {d}, which is not in the archive"
                ))
            })
    }

    fn read_small(&self, s: &Staged, what: &str) -> Result<Vec<u8>> {
        if s.size > media::MAX_DOCUMENT_SIZE {
            return Err(Error::Invalid(format!(
                "{what} is {} bytes, more than the {} allowed",
                s.size,
                media::MAX_DOCUMENT_SIZE
            )));
        }
        let mut f = s.file.reopen().map_err(|e| Error::io(format!("reading {what}"), e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("reading {what}"), e))?;
        Ok(buf)
    }
}

fn truncated(name: &str, e: std::io::Error) -> Error {
    Error::Invalid(format!("archive entry {name}: {e} (is the archive truncated?)"))
}

fn blob_digest_of_name(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// An image checked and ready to register.
struct Pending {
    config_digest: Digest,
    config: ImageConfig,
    manifest: Option<(Descriptor, Vec<u8>)>,
    layers: Vec<LayerRecord>,
    tags: Vec<Reference>,
}

/// Validates a layer file and computes its diff ID (one pass over it,
/// once per blob however many images of the archive use it).
fn check_layer(a: &Archive, s: &Staged, expected_diff: &Digest, what: &str) -> Result<LayerRecord> {
    let known = a.checked.borrow().get(&s.digest).cloned();
    let record = match known {
        Some(r) => r,
        None => {
            let r = read_layer(s, what)?;
            a.checked.borrow_mut().insert(s.digest.clone(), r.clone());
            r
        }
    };
    if record.diff_id != *expected_diff {
        return Err(Error::Invalid(format!(
            "{what}: its content ({}) does not match the diff ID its config names ({expected_diff})",
            record.diff_id
        )));
    }
    Ok(record)
}

fn read_layer(s: &Staged, what: &str) -> Result<LayerRecord> {
    let mut f = s.file.reopen().map_err(|e| Error::io(format!("reading {what}"), e))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(|e| Error::io(format!("reading {what}"), e))?;
    f.rewind().map_err(|e| Error::io(format!("reading {what}"), e))?;
    let compression = Compression::sniff(&head[..n]);
    let opts = WriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch: None,
    };
    let digests =
        strata_layer::recompress(f, &opts, std::io::sink()).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    Ok(LayerRecord {
        diff_id: digests.diff_id,
        diff_size: digests.diff_size,
        blob: Descriptor::new(compression.oci_layer_media_type(), s.digest.clone(), s.size),
    })
}

fn parse_config(a: &Archive, s: &Staged, what: &str) -> Result<ImageConfig> {
    let bytes = a.read_small(s, what)?;
    ImageConfig::parse(&bytes).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

fn docker_archive(a: &Archive, manifest_json: &[u8], oci_index: Option<&OciIndexInfo>) -> Result<Vec<Pending>> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(manifest_json)
        .map_err(|e| Error::Invalid(format!("manifest.json is not a docker-archive manifest: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let cfg_file = a.file(&e.config)?;
        let config = parse_config(a, cfg_file, &e.config)?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(Error::Invalid(format!(
                "manifest.json lists {} layers for {}, its config has {} diff IDs",
                e.layers.len(),
                e.config,
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff) in e.layers.iter().zip(&config.rootfs.diff_ids) {
            layers.push(check_layer(a, a.file(path)?, diff, path)?);
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            tags.push(Reference::parse(&t)?.with_default_tag());
        }
        // Docker 25+ archives carry the OCI manifest too: keep it (and its digest).
        let manifest = oci_index.and_then(|i| i.by_config.get(&cfg_file.digest).cloned());
        out.push(Pending {
            config_digest: cfg_file.digest.clone(),
            config,
            manifest,
            layers,
            tags,
        });
    }
    Ok(out)
}

#[derive(Default)]
struct OciIndexInfo {
    /// config digest → (manifest descriptor, manifest bytes)
    by_config: BTreeMap<Digest, (Descriptor, Vec<u8>)>,
    pending: Vec<Pending>,
}

fn oci_index(a: &Archive, index_json: &[u8], platform: &Platform, check_layers: bool) -> Result<OciIndexInfo> {
    let doc = Document::parse(index_json, None).map_err(|e| Error::Invalid(format!("index.json: {e}")))?;
    let Document::Index(index) = doc else {
        return Err(Error::Invalid("index.json is a manifest, not an index".into()));
    };
    let mut info = OciIndexInfo::default();
    for d in &index.manifests {
        let names = tag_of(d);
        let mut stack = vec![(d.clone(), 0)];
        while let Some((desc, depth)) = stack.pop() {
            if depth > 4 {
                return Err(Error::Invalid("index.json nests indexes too deeply".into()));
            }
            let s = a.blob(&desc.digest)?;
            let bytes = a.read_small(s, &format!("manifest {}", desc.digest))?;
            match Document::parse(&bytes, Some(&desc.media_type))
                .map_err(|e| Error::Invalid(format!("manifest {}: {e}", desc.digest)))?
            {
                Document::Index(inner) => {
                    // A multi-platform image: take the host's platform.
                    let pick = inner
                        .manifests
                        .iter()
                        .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
                        .ok_or_else(|| {
                            let offered: Vec<String> = inner
                                .manifests
                                .iter()
                                .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                                .collect();
                            Error::Invalid(format!(
                                "no image for {platform} in the archive's index (it offers: {})",
                                offered.join(", ")
                            ))
                        })?;
                    stack.push((pick.clone(), depth + 1));
                }
                Document::Manifest(m) => {
                    let config_blob = a.blob(&m.config.digest)?;
                    info.by_config
                        .insert(m.config.digest.clone(), (desc.clone(), bytes.clone()));
                    if !check_layers {
                        continue;
                    }
                    let config = parse_config(a, config_blob, &format!("config {}", m.config.digest))?;
                    info.pending.push(pending_from_manifest(
                        a,
                        &m,
                        config,
                        (desc.clone(), bytes),
                        names.clone(),
                    )?);
                }
            }
        }
    }
    Ok(info)
}

fn pending_from_manifest(
    a: &Archive,
    m: &Manifest,
    config: ImageConfig,
    manifest: (Descriptor, Vec<u8>),
    tags: Vec<Reference>,
) -> Result<Pending> {
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::Invalid(format!(
            "manifest {} has {} layers, its config {} diff IDs",
            manifest.0.digest,
            m.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (l, diff) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        let s = a.blob(&l.digest)?;
        let mut rec = check_layer(a, s, diff, &format!("layer {}", l.digest))?;
        rec.blob.media_type = l.media_type.clone();
        layers.push(rec);
    }
    Ok(Pending {
        config_digest: m.config.digest.clone(),
        config,
        manifest: Some(manifest),
        layers,
        tags,
    })
}

/// The name an OCI index entry carries, if it is a full reference.
fn tag_of(d: &Descriptor) -> Vec<Reference> {
    let Some(ann) = &d.annotations else { return vec![] };
    for key in ["io.containerd.image.name", "org.opencontainers.image.ref.name"] {
        if let Some(v) = ann.get(key)
            && v.contains(['/', ':'])
            && let Ok(r) = Reference::parse(v)
        {
            return vec![r.with_default_tag()];
        }
    }
    vec![]
}

pub fn load(store: &mut Store, input: impl Read) -> Result<LoadReport> {
    let archive = Archive::read(store, input)?;
    let platform = Platform::host();
    let pending = if let Some(mj) = archive.metadata.get("manifest.json") {
        let idx = match archive.metadata.get("index.json") {
            Some(i) => Some(oci_index(&archive, i, &platform, false)?),
            None => None,
        };
        docker_archive(&archive, mj, idx.as_ref())?
    } else if let Some(ij) = archive.metadata.get("index.json") {
        oci_index(&archive, ij, &platform, true)?.pending
    } else {
        return Err(Error::Invalid(
            "not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)".into(),
        ));
    };
    if pending.is_empty() {
        return Err(Error::Invalid("the archive holds no image".into()));
    }
    // Everything checked: name the blobs and register.
    let _lock = StoreLock::shared(store.root())?;
    let Archive { files, .. } = archive;
    let mut staged: BTreeMap<Digest, NamedTempFile> = BTreeMap::new();
    for (_, s) in files {
        staged.entry(s.digest).or_insert(s.file);
    }
    let mut report = LoadReport::default();
    for p in pending {
        let mut needed: Vec<Digest> = vec![p.config_digest.clone()];
        needed.extend(p.layers.iter().map(|l| l.blob.digest.clone()));
        if let Some((d, _)) = &p.manifest {
            needed.push(d.digest.clone());
        }
        for d in needed {
            if let Some(f) = staged.remove(&d) {
                store.commit_staged(f, &d)?;
            }
        }
        let manifest = match p.manifest {
            Some((d, _)) => d,
            None => {
                let config_size = store.blob_size(&p.config_digest).unwrap_or(0);
                let m = Manifest {
                    schema_version: 2,
                    media_type: Some(media::OCI_MANIFEST.into()),
                    artifact_type: None,
                    config: Descriptor::new(media::OCI_CONFIG, p.config_digest.clone(), config_size),
                    layers: p.layers.iter().map(|l| l.blob.clone()).collect(),
                    subject: None,
                    annotations: None,
                };
                let bytes = serde_json::to_vec(&m).expect("manifest serializes");
                let d = store.put_blob(&bytes)?;
                Descriptor::new(media::OCI_MANIFEST, d, bytes.len() as u64)
            }
        };
        store.add_image(&NewImage {
            config_digest: p.config_digest.clone(),
            created: p.config.created.clone(),
            os: p.config.os.clone(),
            arch: p.config.architecture.clone(),
            variant: p.config.variant.clone(),
            manifest: manifest.clone(),
            layers: p.layers,
        })?;
        if p.tags.is_empty() {
            report.lines.push(format!("Loaded image ID: {}", p.config_digest));
        }
        for t in &p.tags {
            if let Some(old) = store.set_tag(t, &manifest.digest)?
                && old != p.config_digest
            {
                report.lines.push(format!(
                    "The image {} already exists, renaming the old one with ID {} to empty string",
                    t.familiar(),
                    old
                ));
            }
            report.lines.push(format!("Loaded image: {}", t.familiar()));
        }
        report.images.push(p.config_digest);
    }
    Ok(report)
}
