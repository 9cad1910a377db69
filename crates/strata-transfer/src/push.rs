//! Pushing an image from the local store.
//!
//! An image pulled from a registry keeps its compressed blobs and manifest
//! byte for byte, so it is pushed unchanged (same manifest digest), unless
//! a layer was not downloaded because the store held it in another form:
//! then another manifest of the image whose blobs are all held is pushed,
//! or one rewritten with held gzip forms (made from the held form when
//! there is none, decompressing it first). An image
//! strata made itself (import, commit, build) has plain tar layers: each is
//! gzip-compressed once, the compressed blob is remembered for the layer,
//! and a new OCI manifest names them. For every blob the registry is asked
//! first (HEAD), a mount from another repository of the same registry is
//! tried when the store knows one that has the image, and only what is
//! missing is uploaded, in parallel. The manifest goes last.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail};
use strata_oci::media::{self, Compression, MAX_DOCUMENT_SIZE};
use strata_oci::{Algorithm, Descriptor, Digest, Document, HashingReader, Manifest, Reference};
use strata_store::{LayerRecord, NewImage, Store};

use strata_registry::{BlobPush, Client, ClientOptions};

use crate::progress::{ATTEMPTS, ByteCounter, Event, LayerStatus, Progress, backoff, retryable};

#[derive(Clone, Default)]
pub struct PushOptions {
    pub client: ClientOptions,
    /// gzip level for layers compressed for the push (a fast default when None).
    pub compression_level: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct PushReport {
    /// Where it went (fully qualified, with its tag).
    pub reference: Reference,
    /// The pushed manifest's digest and size.
    pub digest: Digest,
    pub size: u64,
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
}

/// The local tags of `repository` (fully qualified), for `push --all-tags`.
pub fn local_tags(store: &Store, repository: &str) -> Result<Vec<Reference>> {
    let mut out = Vec::new();
    for img in store.list_images()? {
        for t in img.tags {
            if t.repo == repository {
                out.push(Reference::from_parts(&t.repo, Some(&t.tag), None)?);
            }
        }
    }
    out.sort_by_key(|r| r.tag().unwrap_or_default().to_string());
    Ok(out)
}

/// Pushes the local image `name` to the registry it names.
pub fn push(store: &mut Store, name: &str, opts: &PushOptions, progress: &Progress) -> Result<PushReport> {
    strata_registry::block_on(push_async(store, name, opts, progress))?
}

/// The manifest to push for an image, with layers the registry can take
/// (compressed, and in the store): plain tar layers, and layers the store
/// holds only in another form (the image was pulled while the store had the
/// layer in another compression), are replaced by a gzip form of the same
/// diff ID, made and recorded here when there is none yet; the manifest is
/// then rewritten (a new digest, as Docker does when it recompresses).
/// Returns its digest, media type, bytes, and the manifest they parse to.
fn distributable_manifest(
    store: &mut Store,
    image: &strata_store::ImageRecord,
    manifest_digest: &Digest,
    level: Option<i32>,
    progress: &Progress,
) -> Result<(Digest, String, Vec<u8>, Manifest)> {
    // Prefer a manifest whose blobs are all in the store (pushed as it is),
    // then the manifest asked for; any manifest of the image will do.
    let mut candidates = Vec::new();
    let mut unreadable = None;
    for (d, mt, _) in image.manifests.iter().filter(|(_, mt, _)| media::is_manifest(mt)) {
        let read = store
            .read_blob(d, MAX_DOCUMENT_SIZE)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| Ok((Document::parse(&bytes, Some(mt))?, bytes)));
        match read {
            Ok((Document::Manifest(m), bytes)) => {
                let all_held = m.layers.iter().all(|l| store.has_blob(&l.digest));
                candidates.push((d.clone(), mt.clone(), bytes, m, all_held));
            }
            Ok(_) => {
                unreadable.get_or_insert_with(|| anyhow!("stored manifest {d} is an index"));
            }
            Err(e) => {
                unreadable.get_or_insert(e.context(format!("reading stored manifest {d}")));
            }
        }
    }
    candidates.sort_by_key(|(d, _, _, _, all_held)| (!*all_held, d != manifest_digest));
    let Some((digest, mt, bytes, m, _)) = candidates.into_iter().next() else {
        return Err(unreadable.unwrap_or_else(|| anyhow!("image {} has no manifest in the store", image.id)));
    };
    let rewrite: Vec<usize> = m
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            Compression::of_layer_media_type(&l.media_type) == Some(Compression::None) || !store.has_blob(&l.digest)
        })
        .map(|(i, _)| i)
        .collect();
    if rewrite.is_empty() {
        return Ok((digest, mt, bytes, m));
    }
    if image.diff_ids.len() != m.layers.len() {
        bail!(
            "image {}: the store lists {} layers but its manifest {}",
            image.id,
            image.diff_ids.len(),
            m.layers.len()
        );
    }
    let mut layers = m.layers.clone();
    // Layers compressed before (by an earlier push, or pulled) are reused.
    let mut to_compress = Vec::new();
    for &i in &rewrite {
        let diff_id = &image.diff_ids[i];
        let known = store
            .held_layer_blobs(diff_id)?
            .into_iter()
            .find(|b| Compression::of_layer_media_type(&b.media_type) == Some(Compression::Gzip));
        match known {
            Some(b) => layers[i] = Descriptor::new(media::OCI_LAYER_GZIP, b.digest, b.size),
            None => to_compress.push(i),
        }
    }
    if !to_compress.is_empty() {
        let mut jobs = Vec::new();
        for &i in &to_compress {
            let diff_id = &image.diff_ids[i];
            // The manifest's own blob when held, else another held form
            // (plain first: nothing to decompress).
            let source = match store.has_blob(&m.layers[i].digest) {
                true => m.layers[i].clone(),
                false => {
                    let mut forms = store.held_layer_blobs(diff_id)?;
                    forms.sort_by_key(|b| Compression::of_layer_media_type(&b.media_type) != Some(Compression::None));
                    forms.into_iter().next().ok_or_else(|| {
                        anyhow!(
                            "layer {diff_id} of image {} is not in the store in any form; pull the image again",
                            image.id.short()
                        )
                    })?
                }
            };
            let plain = Compression::of_layer_media_type(&source.media_type) == Some(Compression::None);
            // A plain form named by the diff ID is that tar already (a
            // blob's name is its content's digest); others are checked.
            let check = !(plain && source.digest == *diff_id);
            let src = store.open_blob(&source.digest)?;
            let w = store.blob_writer()?;
            progress(Event::Layer {
                digest: m.layers[i].digest.clone(),
                status: LayerStatus::Compressing,
            });
            jobs.push((i, diff_id.clone(), src, plain, check, w));
        }
        let results: Vec<(usize, Result<(Digest, u64)>)> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(i, diff_id, src, plain, check, w)| {
                    s.spawn(move || {
                        let r = (|| -> Result<(Digest, u64)> {
                            let mut src = std::io::BufReader::with_capacity(256 * 1024, src);
                            let mut enc = strata_layer::Encoder::new(w, Compression::Gzip, level)?;
                            if check {
                                // A compressed form (gzip, zstd) is
                                // decompressed on the fly, its diff ID
                                // checked on the way.
                                let tar: Box<dyn std::io::Read> = match plain {
                                    true => Box::new(src),
                                    false => strata_layer::decompressor(src)?,
                                };
                                let mut tar = HashingReader::new(tar, Algorithm::Sha256);
                                std::io::copy(&mut tar, &mut enc).context("compressing a layer")?;
                                let (_, got, _) = tar.finish();
                                if got != diff_id {
                                    bail!("the stored form of layer {diff_id} has diff ID {got}; the store is corrupt");
                                }
                            } else {
                                std::io::copy(&mut src, &mut enc).context("compressing a layer")?;
                            }
                            let (w, digest, size) = enc.finish()?;
                            w.commit(Some(&digest))?;
                            Ok((digest, size))
                        })();
                        (i, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (usize::MAX, Err(anyhow!("compressing a layer panicked"))))
                })
                .collect()
        });
        for (i, r) in results {
            let (digest, size) = r?;
            let diff_id = &image.diff_ids[i];
            let diff_size = store.layer_size(diff_id)?.unwrap_or(m.layers[i].size);
            let d = Descriptor::new(media::OCI_LAYER_GZIP, digest, size);
            store.add_layer_blob(diff_id, diff_size, &d)?;
            layers[i] = d;
        }
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
    let new_bytes = serde_json::to_vec(&new).expect("manifest serializes");
    let new_digest = store.put_blob(&new_bytes)?;
    let mut records = Vec::new();
    for (l, diff_id) in new.layers.iter().zip(&image.diff_ids) {
        records.push(LayerRecord {
            diff_id: diff_id.clone(),
            diff_size: store.layer_size(diff_id)?.unwrap_or(0),
            blob: l.clone(),
        });
    }
    store.add_image(&NewImage {
        config_digest: image.id.clone(),
        created: image.created.clone(),
        os: image.os.clone(),
        arch: image.arch.clone(),
        variant: image.variant.clone(),
        manifest: Descriptor::new(media::OCI_MANIFEST, new_digest.clone(), new_bytes.len() as u64),
        layers: records,
    })?;
    Ok((new_digest, media::OCI_MANIFEST.to_string(), new_bytes, new))
}

/// [`push`] on the caller's (multi-threaded) runtime.
pub async fn push_async(store: &mut Store, name: &str, opts: &PushOptions, progress: &Progress) -> Result<PushReport> {
    let parsed = Reference::parse(name)?;
    if parsed.digest().is_some() {
        bail!("cannot push a digest reference ({name}): push by tag");
    }
    let target = parsed.with_default_tag();
    let tag = target.tag().unwrap_or("latest").to_string();
    let resolved = strata_image::resolve(store, &target.familiar()).map_err(|e| match e {
        strata_image::Error::NoSuchImage(_) => {
            anyhow!(
                "An image does not exist locally with the tag: {}",
                target.familiar_repository()
            )
        }
        e => e.into(),
    })?;
    let image = resolved.image;
    let repo = target.path().to_string();
    progress(Event::PushingTo {
        repository: target.repository(),
    });
    let (manifest_digest, media_type, manifest_bytes, m) =
        distributable_manifest(store, &image, &resolved.manifest, opts.compression_level, progress)?;

    // Other repositories of the same registry known to hold this image.
    let domain = target.domain().to_string();
    let mut from: BTreeSet<String> = BTreeSet::new();
    for r in image
        .repo_digests
        .iter()
        .map(|(r, _)| r.as_str())
        .chain(image.tags.iter().map(|t| t.repo.as_str()))
    {
        if let Some(path) = r.strip_prefix(&format!("{domain}/"))
            && path != repo
        {
            from.insert(path.to_string());
        }
    }
    let from: Vec<String> = from.into_iter().collect();

    let client = Client::for_reference(&target, opts.client.clone())?;
    let mut blobs: Vec<(Descriptor, bool)> = Vec::new();
    for l in &m.layers {
        if !blobs.iter().any(|(d, _)| d.digest == l.digest) {
            blobs.push((l.clone(), true));
        }
    }
    blobs.push((m.config.clone(), false));
    for (desc, _) in blobs.iter().filter(|(_, is_layer)| *is_layer) {
        progress(Event::Layer {
            digest: desc.digest.clone(),
            status: LayerStatus::Waiting,
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (desc, is_layer) in blobs {
        if !store.has_blob(&desc.digest) {
            bail!(
                "blob {} of image {} is not in the store; pull the image again",
                desc.digest,
                image.id.short()
            );
        }
        let path = store.blob_path(&desc.digest);
        let client = client.clone();
        let repo = repo.clone();
        let from = from.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let mut attempt = 0;
            let r = loop {
                attempt += 1;
                let sources: Vec<&str> = from.iter().map(String::as_str).collect();
                let path = path.clone();
                let open = || async {
                    let file = tokio::fs::File::open(path).await?;
                    if is_layer {
                        progress(Event::Layer {
                            digest: desc.digest.clone(),
                            status: LayerStatus::Pushing,
                        });
                    }
                    let status = LayerStatus::Pushing;
                    let counter = ByteCounter::new(progress.clone(), desc.digest.clone(), status, desc.size);
                    Ok(Counted {
                        inner: file,
                        counter: is_layer.then_some(counter),
                    })
                };
                let r = client.ensure_blob(&repo, &desc.digest, desc.size, &sources, open).await;
                match r {
                    Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                        progress(Event::Retrying {
                            digest: desc.digest.clone(),
                            attempt: attempt + 1,
                            error: e.to_string(),
                        });
                        backoff(attempt).await;
                    }
                    r => break r,
                }
            };
            if let Ok(done) = &r
                && is_layer
            {
                let status = match done {
                    BlobPush::Existed => LayerStatus::LayerAlreadyExists,
                    BlobPush::Mounted => LayerStatus::MountedFrom(if from.len() == 1 {
                        from[0].clone()
                    } else {
                        "another repository".into()
                    }),
                    BlobPush::Uploaded => LayerStatus::Pushed,
                };
                progress(Event::Layer {
                    digest: desc.digest.clone(),
                    status,
                });
            }
            (desc.digest, r)
        });
    }
    let (mut uploaded, mut mounted, mut existed) = (0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (digest, r) = joined.map_err(|e| anyhow!("an upload stopped: {e}"))?;
        match r.with_context(|| format!("pushing {}: blob {digest}", target.familiar()))? {
            BlobPush::Uploaded => uploaded += 1,
            BlobPush::Mounted => mounted += 1,
            BlobPush::Existed => existed += 1,
        }
    }
    let pushed = client
        .put_manifest(&repo, &tag, &media_type, manifest_bytes.clone())
        .await
        .with_context(|| format!("pushing {}: manifest", target.familiar()))?;
    if pushed != manifest_digest {
        bail!("pushed manifest has digest {pushed}, expected {manifest_digest}");
    }
    store.add_repo_digest(&target.repository(), &manifest_digest)?;
    Ok(PushReport {
        reference: target,
        digest: manifest_digest,
        size: manifest_bytes.len() as u64,
        uploaded,
        mounted,
        existed,
    })
}

/// A reader that counts what the upload took from it.
struct Counted<R> {
    inner: R,
    counter: Option<ByteCounter>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0
            && let Some(c) = &mut self.counter
        {
            c.add(n as u64);
        }
        r
    }
}
