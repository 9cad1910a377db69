//! What the store serves a registry ([`crate::store::StoreLocation::set_distributable`],
//! as push uses it): an image's manifest whose layers a registry can take,
//! compressed and held in the store, and the other repositories known to
//! hold the image (to mount from).
//!
//! An image pulled from a registry keeps its compressed blobs and manifest
//! byte for byte, so it is served unchanged (same manifest digest), unless
//! a layer was not downloaded because the store held it in another form:
//! then another manifest of the image whose blobs are all held is served,
//! or one rewritten with held gzip forms (made from the held form when
//! there is none, decompressing it first). An image strata made itself
//! (import, commit, build) has plain tar layers: each is gzip-compressed
//! once on all cores ([`strata_layer::Encoder`]), the compressed blob is
//! recorded for the layer, and a new OCI manifest names them; a second
//! push finds the gzip forms and makes the same manifest again.

use std::collections::BTreeSet;

use strata_oci::media::{self, Compression, MAX_DOCUMENT_SIZE};
use strata_oci::{Algorithm, Descriptor, Digest, Document, HashingReader, Manifest, Reference};
use strata_store::{ImageRecord, LayerRecord, NewImage, Store};

use crate::{Event, MountFrom, Progress, Result, TransferError};

fn store_err(e: impl std::fmt::Display) -> TransferError {
    TransferError::location(e)
}

/// The repositories (on any registry) the store knows hold `image`: those
/// of its repo digests, then of its tags, each once, sorted.
pub(crate) fn mount_candidates(image: &ImageRecord) -> Vec<MountFrom> {
    let repos: BTreeSet<&str> = image
        .repo_digests
        .iter()
        .map(|(r, _)| r.as_str())
        .chain(image.tags.iter().map(|t| t.repo.as_str()))
        .collect();
    repos
        .into_iter()
        .filter_map(|r| Reference::parse(r).ok())
        .map(|r| MountFrom {
            registry: r.domain().to_string(),
            repository: r.path().to_string(),
        })
        .collect()
}

/// The manifest to push for `image` (asked for by `manifest_digest`): its
/// digest, media type, bytes and parsed form. Plain tar layers, and layers
/// the store holds only in another form, are replaced by a gzip form of the
/// same diff ID, made and recorded here when there is none yet; the
/// manifest is then rewritten (a new digest, as Docker does when it
/// recompresses) and recorded as one of the image's. A layer being
/// compressed is announced as [`Event::Compressing`], named by the digest
/// the image's manifest gives it.
/// How layers are compressed for a registry: gzip (the default) or zstd,
/// at `level` (the encoder's fast default when None); `force`: layers held
/// compressed the other way are made again (buildx's `force-compression`),
/// else only plain layers are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCompression {
    pub kind: Compression,
    pub level: Option<i32>,
    pub force: bool,
}

impl Default for LayerCompression {
    fn default() -> Self {
        LayerCompression {
            kind: Compression::Gzip,
            level: None,
            force: false,
        }
    }
}

impl LayerCompression {
    /// The OCI media type of a layer compressed so.
    fn media_type(&self) -> &'static str {
        match self.kind {
            Compression::Zstd => media::OCI_LAYER_ZSTD,
            _ => media::OCI_LAYER_GZIP,
        }
    }
}

pub(crate) fn manifest(
    store: &mut Store,
    image: &ImageRecord,
    manifest_digest: &Digest,
    want: &LayerCompression,
    progress: &Progress,
) -> Result<(Digest, String, Vec<u8>, Manifest)> {
    // Prefer a manifest whose blobs are all in the store (pushed as it is),
    // then the manifest asked for; any manifest of the image will do.
    let mut candidates = Vec::new();
    let mut unreadable = None;
    for (d, mt, _) in image.manifests.iter().filter(|(_, mt, _)| media::is_manifest(mt)) {
        let read = store
            .read_blob(d, MAX_DOCUMENT_SIZE)
            .map_err(|e| TransferError::Location(format!("reading stored manifest {d}: {e}")))
            .and_then(|bytes| {
                Document::parse(&bytes, Some(mt))
                    .map(|doc| (doc, bytes))
                    .map_err(|e| TransferError::Invalid(format!("stored manifest {d}: {e}")))
            });
        match read {
            Ok((Document::Manifest(m), bytes)) => {
                let all_held = m.layers.iter().all(|l| store.has_blob(&l.digest));
                candidates.push((d.clone(), mt.clone(), bytes, m, all_held));
            }
            Ok(_) => {
                unreadable.get_or_insert_with(|| TransferError::Invalid(format!("stored manifest {d} is an index")));
            }
            Err(e) => {
                unreadable.get_or_insert(e);
            }
        }
    }
    candidates.sort_by_key(|(d, _, _, _, all_held)| (!*all_held, d != manifest_digest));
    let Some((digest, mt, bytes, m, _)) = candidates.into_iter().next() else {
        return Err(unreadable
            .unwrap_or_else(|| TransferError::Invalid(format!("image {} has no manifest in the store", image.id))));
    };
    let rewrite: Vec<usize> = m
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let c = Compression::of_layer_media_type(&l.media_type);
            c == Some(Compression::None) || !store.has_blob(&l.digest) || (want.force && c != Some(want.kind))
        })
        .map(|(i, _)| i)
        .collect();
    if rewrite.is_empty() {
        return Ok((digest, mt, bytes, m));
    }
    if image.diff_ids.len() != m.layers.len() {
        return Err(TransferError::Invalid(format!(
            "image {}: the store lists {} layers but its manifest {}",
            image.id,
            image.diff_ids.len(),
            m.layers.len()
        )));
    }
    let mut layers = m.layers.clone();
    // Layers compressed before (by an earlier push, or pulled) are reused.
    let mut to_compress = Vec::new();
    for &i in &rewrite {
        let diff_id = &image.diff_ids[i];
        // (Without `force`, zstd asked for takes a gzip form held, as buildx
        // reuses the compressed blobs it has; gzip, the default, is made
        // from a zstd form, which older clients cannot pull.)
        let held = store.held_layer_blobs(diff_id).map_err(store_err)?;
        let of = |b: &Descriptor| Compression::of_layer_media_type(&b.media_type);
        let known = held.iter().find(|b| of(b) == Some(want.kind)).or_else(|| {
            held.iter()
                .find(|b| !want.force && want.kind == Compression::Zstd && of(b) == Some(Compression::Gzip))
        });
        match known.cloned() {
            Some(b) => {
                let mt = match of(&b) {
                    Some(Compression::Zstd) => media::OCI_LAYER_ZSTD,
                    _ => media::OCI_LAYER_GZIP,
                };
                layers[i] = Descriptor::new(mt, b.digest, b.size)
            }
            None => to_compress.push(i),
        }
    }
    if !to_compress.is_empty() {
        compress(store, image, &m, &to_compress, &mut layers, want, progress)?;
    }
    // An OCI manifest: Docker media types of what it keeps become their
    // OCI equivalents (the bytes they name are the same).
    let new = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: m.config.with_oci_media_type(),
        layers: layers.iter().map(Descriptor::with_oci_media_type).collect(),
        subject: None,
        annotations: m.annotations.clone(),
    };
    let new_bytes = serde_json::to_vec(&new).map_err(|e| TransferError::Invalid(e.to_string()))?;
    // Made and recorded by an earlier push: nothing to write again (and a
    // store on a read-only filesystem serves it too, #16).
    let made = Digest::of(Algorithm::Sha256, &new_bytes);
    if image.manifests.iter().any(|(d, _, _)| *d == made) && store.has_blob(&made) {
        return Ok((made, media::OCI_MANIFEST.to_string(), new_bytes, new));
    }
    let new_digest = store.put_blob(&new_bytes).map_err(store_err)?;
    let mut records = Vec::new();
    for (l, diff_id) in new.layers.iter().zip(&image.diff_ids) {
        records.push(LayerRecord {
            diff_id: diff_id.clone(),
            diff_size: store.layer_size(diff_id).map_err(store_err)?.unwrap_or(0),
            blob: l.clone(),
        });
    }
    store
        .add_image(&NewImage {
            config_digest: image.id.clone(),
            created: image.created.clone(),
            os: image.os.clone(),
            arch: image.arch.clone(),
            variant: image.variant.clone(),
            manifest: Descriptor::new(media::OCI_MANIFEST, new_digest.clone(), new_bytes.len() as u64),
            layers: records,
        })
        .map_err(store_err)?;
    Ok((new_digest, media::OCI_MANIFEST.to_string(), new_bytes, new))
}

/// The manifest of image `id` a registry takes (gzip layers, made and
/// recorded now when there are none), recorded as one of the image's:
/// what a build with attestations names in its index, so that a push
/// serves that index (and the statements about the manifest) unchanged.
pub fn distributable_manifest(store: &mut Store, id: &Digest, manifest: &Digest) -> Result<Descriptor> {
    let image = store
        .image(id)
        .map_err(store_err)?
        .ok_or_else(|| TransferError::Invalid(format!("image {id} is not in the store")))?;
    let (digest, mt, bytes, _) = self::manifest(
        store,
        &image,
        manifest,
        &LayerCompression::default(),
        &crate::no_progress(),
    )?;
    Ok(Descriptor::new(&mt, digest, bytes.len() as u64))
}

/// Makes and records a gzip form of layers `which` of `m`, one thread each
/// (each compressing on all cores), into `layers`.
fn compress(
    store: &mut Store,
    image: &ImageRecord,
    m: &Manifest,
    which: &[usize],
    layers: &mut [Descriptor],
    want: &LayerCompression,
    progress: &Progress,
) -> Result<()> {
    let mut jobs = Vec::new();
    for &i in which {
        let diff_id = &image.diff_ids[i];
        // The manifest's own blob when held, else another held form
        // (plain first: nothing to decompress).
        let source = match store.has_blob(&m.layers[i].digest) {
            true => m.layers[i].clone(),
            false => {
                let mut forms = store.held_layer_blobs(diff_id).map_err(store_err)?;
                forms.sort_by_key(|b| Compression::of_layer_media_type(&b.media_type) != Some(Compression::None));
                forms.into_iter().next().ok_or_else(|| {
                    TransferError::Invalid(format!(
                        "layer {diff_id} of image {} is not in the store in any form; pull the image again",
                        image.id.short()
                    ))
                })?
            }
        };
        let plain = Compression::of_layer_media_type(&source.media_type) == Some(Compression::None);
        // A plain form named by the diff ID is that tar already (a blob's
        // name is its content's digest); others are checked.
        let check = !(plain && source.digest == *diff_id);
        let src = store.open_blob(&source.digest).map_err(store_err)?;
        let w = store.blob_writer().map_err(store_err)?;
        progress(Event::Compressing {
            digest: m.layers[i].digest.clone(),
        });
        jobs.push((i, diff_id.clone(), src, plain, check, w));
    }
    let results: Vec<(usize, Result<(Digest, u64)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(i, diff_id, src, plain, check, w)| {
                s.spawn(move || {
                    let failed = |e: &dyn std::fmt::Display| {
                        TransferError::Location(format!("compressing layer {diff_id}: {e}"))
                    };
                    let r = (|| -> Result<(Digest, u64)> {
                        let mut src = std::io::BufReader::with_capacity(256 * 1024, src);
                        let mut enc = strata_layer::Encoder::new(w, want.kind, want.level).map_err(|e| failed(&e))?;
                        if check {
                            // A compressed form (gzip, zstd) is decompressed
                            // on the fly, its diff ID checked on the way.
                            let tar: Box<dyn std::io::Read> = match plain {
                                true => Box::new(src),
                                false => strata_layer::decompressor(src).map_err(|e| failed(&e))?,
                            };
                            let mut tar = HashingReader::new(tar, Algorithm::Sha256);
                            std::io::copy(&mut tar, &mut enc).map_err(|e| failed(&e))?;
                            let (_, got, _) = tar.finish();
                            if got != diff_id {
                                return Err(TransferError::Invalid(format!(
                                    "the stored form of layer {diff_id} has diff ID {got}; the store is corrupt"
                                )));
                            }
                        } else {
                            std::io::copy(&mut src, &mut enc).map_err(|e| failed(&e))?;
                        }
                        let (w, digest, size) = enc.finish().map_err(|e| failed(&e))?;
                        w.commit(Some(&digest)).map_err(|e| failed(&e))?;
                        Ok((digest, size))
                    })();
                    (i, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        usize::MAX,
                        Err(TransferError::Location("compressing a layer panicked".into())),
                    )
                })
            })
            .collect()
    });
    for (i, r) in results {
        let (digest, size) = r?;
        let diff_id = &image.diff_ids[i];
        let diff_size = store
            .layer_size(diff_id)
            .map_err(store_err)?
            .unwrap_or(m.layers[i].size);
        let d = Descriptor::new(want.media_type(), digest, size);
        store.add_layer_blob(diff_id, diff_size, &d).map_err(store_err)?;
        layers[i] = d;
    }
    Ok(())
}
