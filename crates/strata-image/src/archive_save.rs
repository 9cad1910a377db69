//! `save`: images to a docker-archive (Docker 25+ layout: an OCI layout
//! plus `manifest.json` and `repositories`) or an OCI image layout tarball.
//! Blobs stream from the store into the tar once each; nothing is staged.
//!
//! An image whose manifest names a layer blob the store does not hold (the
//! layer was already there in another form when the image was pulled) is
//! written with a held form of the same diff ID instead, under a manifest
//! rewritten for the archive (same config, those layers substituted); the
//! store keeps its own manifest. Images whose blobs are all held are written
//! exactly as stored.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};
use strata_oci::{Digest, Manifest, Reference, media};
use strata_store::Store;

use crate::error::{Error, Result};
use crate::resolve::Resolved;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    DockerArchive,
    OciArchive,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

/// Writes the archive for `images` (each with the references it was asked
/// by; an image asked for by ID has none) to `out`.
pub fn save(store: &Store, images: &[(Resolved, Vec<Reference>)], format: SaveFormat, out: impl Write) -> Result<()> {
    let mut blobs: Vec<Digest> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut index_entries = Vec::new();
    let mut docker_manifest: Vec<Value> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut push = |d: &Digest, blobs: &mut Vec<Digest>| {
        if seen.insert(d.clone()) {
            blobs.push(d.clone());
        }
    };
    // Rewritten manifests, written from memory.
    let mut documents: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    for (resolved, refs) in images {
        let manifest_bytes = store.read_blob(&resolved.manifest, media::MAX_DOCUMENT_SIZE)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::Invalid(format!("stored manifest {} is unreadable: {e}", resolved.manifest)))?;
        let (mut manifest_digest, mut mt, mut size) = resolved
            .image
            .manifests
            .iter()
            .find(|m| m.0 == resolved.manifest)
            .cloned()
            .unwrap_or((
                resolved.manifest.clone(),
                media::OCI_MANIFEST.into(),
                manifest_bytes.len() as u64,
            ));
        let manifest = match held_forms(store, &resolved.image.diff_ids, &manifest)? {
            None => manifest,
            Some(rewritten) => {
                let bytes = serde_json::to_vec(&rewritten).expect("manifest serializes");
                manifest_digest = Digest::sha256_of(&bytes);
                mt = media::OCI_MANIFEST.into();
                size = bytes.len() as u64;
                documents.insert(manifest_digest.clone(), bytes);
                rewritten
            }
        };
        push(&manifest.config.digest, &mut blobs);
        for l in &manifest.layers {
            push(&l.digest, &mut blobs);
        }
        push(&manifest_digest, &mut blobs);
        let descriptor = |r: Option<&Reference>| {
            let mut d = json!({"mediaType": mt, "digest": manifest_digest.to_string(), "size": size});
            if let Some(r) = r {
                d["annotations"] = json!({
                    CONTAINERD_NAME: r.to_string(),
                    REF_NAME: r.tag().unwrap_or("latest"),
                });
            }
            d
        };
        if refs.is_empty() {
            index_entries.push(descriptor(None));
        }
        for r in refs {
            index_entries.push(descriptor(Some(r)));
        }
        let tags: Vec<String> = refs.iter().map(|r| r.familiar()).collect();
        docker_manifest.push(json!({
            "Config": blob_name(&manifest.config.digest),
            "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
            "Layers": manifest.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
        }));
        if let Some(top) = manifest.layers.last() {
            for r in refs {
                repositories
                    .entry(r.familiar_repository())
                    .or_default()
                    .insert(r.tag().unwrap_or("latest").to_string(), top.digest.hex().to_string());
            }
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": index_entries,
    });
    let mut tar = tar::Builder::new(out);
    let io = |e: std::io::Error| Error::io("writing the archive", e);
    append_dir(&mut tar, "blobs/").map_err(io)?;
    append_dir(&mut tar, "blobs/sha256/").map_err(io)?;
    if blobs.iter().any(|b| b.algorithm() != strata_oci::Algorithm::Sha256) {
        append_dir(&mut tar, "blobs/sha512/").map_err(io)?;
    }
    for d in &blobs {
        if let Some(bytes) = documents.get(d) {
            let mut h = file_header(bytes.len() as u64);
            tar.append_data(&mut h, blob_name(d), &bytes[..]).map_err(io)?;
            continue;
        }
        let f = store.open_blob(d)?;
        let len = f
            .metadata()
            .map_err(|e| Error::io(format!("reading blob {d}"), e))?
            .len();
        let mut h = file_header(len);
        tar.append_data(&mut h, blob_name(d), f).map_err(io)?;
    }
    let mut small = |name: &str, bytes: &[u8]| -> Result<()> {
        let mut h = file_header(bytes.len() as u64);
        tar.append_data(&mut h, name, bytes).map_err(io)
    };
    small(
        "oci-layout",
        format!(r#"{{"imageLayoutVersion":"{}"}}"#, media::OCI_LAYOUT_VERSION).as_bytes(),
    )?;
    small("index.json", &serde_json::to_vec(&index).expect("json"))?;
    if format == SaveFormat::DockerArchive {
        small("manifest.json", &serde_json::to_vec(&docker_manifest).expect("json"))?;
        if !repositories.is_empty() {
            small("repositories", &serde_json::to_vec(&repositories).expect("json"))?;
        }
    }
    tar.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(())
}

/// The manifest to write when it names layer blobs the store does not
/// hold: each such layer replaced by a held form of its diff ID (gzip or
/// plain tar before zstd, which older loaders do not read), as an OCI
/// manifest. None when every layer blob is held.
pub fn held_forms(store: &Store, diff_ids: &[Digest], manifest: &Manifest) -> Result<Option<Manifest>> {
    if manifest.layers.iter().all(|l| store.has_blob(&l.digest)) {
        return Ok(None);
    }
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Invalid(format!(
            "the image has {} layers, but its manifest {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
        if store.has_blob(&l.digest) {
            layers.push(l.with_oci_media_type());
            continue;
        }
        let mut forms = store.held_layer_blobs(diff_id)?;
        forms.sort_by_key(|b| media::Compression::of_layer_media_type(&b.media_type) == Some(media::Compression::Zstd));
        let form = forms.into_iter().next().ok_or_else(|| {
            Error::Invalid(format!(
                "layer {diff_id} (blob {}) is not in the store in any form; pull the image again",
                l.digest
            ))
        })?;
        layers.push(form.with_oci_media_type());
    }
    Ok(Some(Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: manifest.artifact_type.clone(),
        config: manifest.config.with_oci_media_type(),
        layers,
        subject: manifest.subject.clone(),
        annotations: manifest.annotations.clone(),
    }))
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut h, name, std::io::empty())
}
