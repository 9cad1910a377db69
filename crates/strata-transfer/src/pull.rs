//! Pulling an image into the local store: one [`copy`] from the registry
//! ([`RegistryLocation`]) to the store ([`StoreLocation`]), shown as Docker
//! shows a pull.
//!
//! resolve (tag → digest; index → the wanted platform) → config → every
//! layer the store lacks, at once: each is streamed once, verified on its
//! way (the copy's verifier) and, in the same pass, decompressed, every tar
//! header checked, the diff ID computed and the layer unpacked (the store
//! sink's pipeline, [`crate::ingest::LayerIngest`]). Nothing is named in the
//! store until every layer's digest and diff ID matched; then the blobs are
//! committed and the image registered and tagged. A download that breaks
//! resumes with `Range` (the registry location).
//!
//! A layer is present when the store holds its diff ID in any form, as
//! Docker does ("Already exists"): the same layer pulled before in another
//! compression or imported as a plain tar is not downloaded again. The
//! image keeps the registry's manifest byte for byte.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_oci::media;
use strata_oci::{Descriptor, Digest, Document, ImageConfig, Platform, Reference};
use strata_registry::ClientOptions;
use strata_store::{Store, StoreLock};

use crate::progress::{Event, LayerStatus, Progress};
use crate::registry::RegistryLocation;
use crate::store::StoreLocation;
use crate::{CopyOptions, Phase, PlatformChoice, Result, Source, TransferError, copy};

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's). When given
    /// explicitly, a single-platform image must match it too.
    pub platform: Option<Platform>,
    pub client: ClientOptions,
    /// Also unpack each layer into `<store>/layers/<chain-id>` in the same
    /// pass as the download, so the image is ready to run when pull ends.
    pub unpack: bool,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The reference as pulled (fully qualified; tag or digest).
    pub reference: Reference,
    /// What the reference resolved to at the registry (the index's digest
    /// for a multi-platform image); recorded as the image's repo digest, as
    /// Docker does, and stored with the image when it is an index.
    pub digest: Digest,
    /// The platform manifest's digest.
    pub manifest: Digest,
    /// The image ID (config digest).
    pub image_id: Digest,
    /// Layers downloaded (0 when everything was present).
    pub downloaded: usize,
    /// The reference already named this image before the pull.
    pub up_to_date: bool,
}

/// The reference a pull of `reference` asks the registry for: the digest
/// wins over a tag, and no tag means `latest`.
pub fn pull_target(reference: &Reference) -> Reference {
    match reference.digest() {
        // `name:tag@digest` pulls by digest.
        Some(d) => {
            Reference::from_parts(&reference.repository(), None, Some(d.clone())).unwrap_or_else(|_| reference.clone())
        }
        None => reference.clone().with_default_tag(),
    }
}

/// Pulls several platforms of a multi-platform image (`pull --platform
/// a,b`, `--all-platforms`): the index and the chosen platforms' images
/// go into the store in one copy, and the name goes to the index (the
/// store records which platforms it holds). Layers are unpacked as they
/// arrive when `opts.unpack`.
pub fn pull_platforms(
    store: &mut Store,
    reference: &Reference,
    platforms: &PlatformChoice,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PullReport> {
    let target = pull_target(reference);
    let shown = format!("pulling {}", target.familiar());
    strata_registry::block_on(async {
        let src = RegistryLocation::new(&target, opts.client.clone())?;
        progress(Event::PullingFrom {
            what: strata_registry::manifest_reference(&target),
            repository: target.path().to_string(),
        });
        let before = match target.tag() {
            Some(_) => store.tag_target(&target).map_err(store_err)?.map(|(_, id)| id),
            None => None,
        };
        let mut dst = StoreLocation::beside(store)?;
        dst.set_unpack(opts.unpack);
        let options = CopyOptions {
            platforms: platforms.clone(),
            concurrency: opts.client.max_concurrent_transfers.max(1),
        };
        let names: Vec<String> = match target.tag() {
            Some(_) => vec![target.to_string()],
            None => Vec::new(),
        };
        let report = copy(&src, &dst, None, &names, &options, crate::no_progress()).await?;
        drop(dst);
        let (manifest, image_id) = report
            .images
            .iter()
            .find(|(_, id)| {
                store
                    .image(id)
                    .ok()
                    .flatten()
                    .is_some_and(|i| Platform::host().matches(&image_platform(&i)))
            })
            .or(report.images.first())
            .map(|(d, id)| (d.digest.clone(), id.clone()))
            .ok_or_else(|| TransferError::Invalid(format!("{}: no image was copied", target.familiar())))?;
        Ok(PullReport {
            reference: target.clone(),
            digest: report.root.digest.clone(),
            manifest,
            up_to_date: report.blobs_copied == 0 && before.is_some(),
            image_id,
            downloaded: report.blobs_copied,
        })
    })
    .map_err(TransferError::location)?
    .map_err(|e: TransferError| e.context(shown))
}

/// Pulls `reference` into `store` (see the module documentation).
pub fn pull(store: &mut Store, reference: &Reference, opts: &PullOptions, progress: &Progress) -> Result<PullReport> {
    strata_registry::block_on(pull_async(store, reference, opts, progress)).map_err(TransferError::location)?
}

fn store_err(e: impl std::fmt::Display) -> TransferError {
    TransferError::location(e)
}

/// [`pull`] on the caller's runtime (which must be multi-threaded).
pub async fn pull_async(
    store: &mut Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PullReport> {
    let target = pull_target(reference);
    let shown = format!("pulling {}", target.familiar());
    pull_target_async(store, &target, opts, progress)
        .await
        .map_err(|e| e.context(shown))
}

async fn pull_target_async(
    store: &mut Store,
    target: &Reference,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PullReport> {
    let repo_full = target.repository();
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut src = RegistryLocation::new(target, opts.client.clone())?;
    let what = strata_registry::manifest_reference(target);
    progress(Event::PullingFrom {
        what: what.clone(),
        repository: target.path().to_string(),
    });
    let before = match target.tag() {
        Some(_) => store.tag_target(target).map_err(store_err)?.map(|(_, id)| id),
        None => None,
    };

    // What the reference names at the registry (a HEAD when it says enough).
    let root = src.resolve(None).await?;
    // When it names a manifest (or an index, for the wanted platform's
    // image) the store already has for this repository, nothing needs fetching.
    // The store lock, shared, from finding the image to naming it: an rmi
    // or prune (exclusive) cannot delete it in between (found by the
    // concurrency campaign: "FOREIGN KEY constraint failed").
    let known = StoreLock::shared(store.root()).map_err(store_err)?;
    if let Some(id) = store
        .image_of_manifest(&root.digest, Some(&repo_full))
        .map_err(store_err)?
        && let Some(img) = store.image(&id).map_err(store_err)?
        && opts.platform.as_ref().is_none_or(|p| p.matches(&image_platform(&img)))
        && let Some((_, mt, _)) = img.manifests.iter().find(|(m, _, _)| *m == root.digest)
        && (media::is_manifest(mt) || wanted.matches(&image_platform(&img)))
    {
        let d = root.digest.clone();
        let manifest = match media::is_manifest(mt) {
            true => d.clone(),
            false => img.primary_manifest().clone(),
        };
        return finish_known(store, target, (&d, &d), &manifest, &id, before);
    }
    drop(known);

    let root_bytes = crate::read_document_verified(&root, src.read_document(&root).await?)?;
    let parse = |d: &Descriptor, b: &[u8]| {
        Document::parse(b, Some(&d.media_type))
            .map_err(|e| TransferError::Invalid(format!("manifest {}: {e}", d.digest)))
    };
    let (index, manifest_desc, m) = match parse(&root, &root_bytes)? {
        Document::Manifest(m) => (None, root.clone(), m),
        Document::Index(ix) => {
            let chosen = strata_registry::select_manifest(&ix, &wanted)
                .cloned()
                .map_err(|e| match e {
                    strata_registry::RegistryError::NoMatchingPlatform { wanted, available, .. } => {
                        strata_registry::RegistryError::NoMatchingPlatform {
                            image: Some(target.familiar()),
                            wanted,
                            available,
                        }
                    }
                    e => e,
                })
                .map_err(TransferError::location)?;
            let bytes = crate::read_document_verified(&chosen, src.read_document(&chosen).await?)?;
            match parse(&chosen, &bytes)? {
                Document::Manifest(m) => (Some((root.clone(), root_bytes.clone())), chosen, m),
                Document::Index(_) => {
                    return Err(TransferError::Invalid(format!(
                        "{}: the registry sent an index where a manifest was expected",
                        target.familiar()
                    )));
                }
            }
        }
    };
    let top = root.digest.clone();
    if m.layers.is_empty() && m.config.media_type != media::OCI_CONFIG && m.config.media_type != media::DOCKER_CONFIG {
        return Err(TransferError::Invalid(format!(
            "{} is not a container image (config media type {:?}); it cannot be pulled as one",
            target.familiar(),
            m.config.media_type
        )));
    }
    // Whether this pull's image is the one an index digest names locally:
    // the host's platform wins over others pulled from the same index.
    let for_host = opts.platform.as_ref().is_none_or(|p| p.matches(&Platform::host()));
    // The store may already hold this very manifest (pulled before, or by
    // another tag of the same image); locked as above.
    let known = StoreLock::shared(store.root()).map_err(store_err)?;
    if let Some(id) = store
        .image_of_manifest(&manifest_desc.digest, None)
        .map_err(store_err)?
    {
        let named = record_index(store, index.as_ref(), &manifest_desc.digest, &id, for_host)?;
        return finish_known(store, target, (&top, &named), &manifest_desc.digest, &id, before);
    }
    drop(known);

    // The config: small, read first (its diff IDs check the layers); the
    // copy reads it again from the location's cache.
    let config_bytes = crate::read_document_verified(&m.config, src.read_document(&m.config).await?)?;
    let config = ImageConfig::parse(&config_bytes)
        .map_err(|e| TransferError::Invalid(format!("{}: image config {}: {e}", target.familiar(), m.config.digest)))?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(TransferError::Invalid(format!(
            "{}: the image config lists {} layers (diff IDs) but the manifest {}; the image is malformed",
            target.familiar(),
            config.rootfs.diff_ids.len(),
            m.layers.len()
        )));
    }
    if let Some(p) = &opts.platform
        && index.is_none()
        && !config.os.is_empty()
        && !p.matches(&config.platform())
    {
        return Err(TransferError::Invalid(format!(
            "image with reference {} was found but does not match the specified platform: wanted {p}, actual: {}",
            target.familiar(),
            config.platform()
        )));
    }

    // The copy, its events as Docker's lines.
    let layers: Arc<HashSet<Digest>> = Arc::new(m.layers.iter().map(|l| l.digest.clone()).collect());
    let downloaded = Arc::new(AtomicUsize::new(0));
    let events: crate::Progress = {
        let progress = progress.clone();
        let layers = layers.clone();
        let downloaded = downloaded.clone();
        Arc::new(move |e: crate::Event| {
            let layer = |d: &Digest| layers.contains(d);
            let out = match e {
                crate::Event::Skipped { digest } if layer(&digest) => Event::Layer {
                    digest,
                    status: LayerStatus::AlreadyExists,
                },
                crate::Event::Queued { digest, .. } if layer(&digest) => Event::Layer {
                    digest,
                    status: LayerStatus::Downloading,
                },
                crate::Event::Bytes {
                    digest,
                    phase,
                    current,
                    total,
                } if layer(&digest) => Event::Bytes {
                    digest,
                    status: match phase {
                        Phase::Transfer => LayerStatus::Downloading,
                        Phase::Unpack => LayerStatus::Extracting,
                    },
                    current,
                    total,
                },
                crate::Event::Received { digest } if layer(&digest) => Event::Layer {
                    digest,
                    status: LayerStatus::Extracting,
                },
                crate::Event::Copied { digest, .. } if layer(&digest) => {
                    downloaded.fetch_add(1, Ordering::Relaxed);
                    Event::Layer {
                        digest,
                        status: LayerStatus::PullComplete,
                    }
                }
                crate::Event::Retrying { digest, attempt, error } => Event::Retrying { digest, attempt, error },
                _ => return,
            };
            progress(out)
        })
    };
    src.set_progress(events.clone());
    // Held until the image is named: the copy registers it unnamed and
    // drops its own lock, and an image prune would take it for dangling.
    let _named = StoreLock::shared(store.root()).map_err(store_err)?;
    let mut dst = StoreLocation::beside(store)?;
    dst.set_progress(events.clone());
    dst.set_unpack(opts.unpack);
    let options = CopyOptions {
        platforms: PlatformChoice::Host,
        concurrency: opts.client.max_concurrent_transfers.max(1),
    };
    copy(
        &src,
        &dst,
        Some(&manifest_desc.digest.to_string()),
        &[],
        &options,
        events,
    )
    .await?;
    drop(dst);

    let named = record_index(store, index.as_ref(), &manifest_desc.digest, &m.config.digest, for_host)?;
    finish_known(
        store,
        target,
        (&top, &named),
        &manifest_desc.digest,
        &m.config.digest,
        before,
    )
    .map(|mut r| {
        r.downloaded = downloaded.load(Ordering::Relaxed);
        r.up_to_date = false;
        r
    })
}

fn image_platform(img: &strata_store::ImageRecord) -> Platform {
    Platform {
        os: img.os.clone(),
        architecture: img.arch.clone(),
        variant: img.variant.clone(),
        ..Default::default()
    }
}

/// Stores the index a platform's image was chosen from and records it as a
/// name of image `id` (see [`Store::add_index`]). Returns the digest to keep
/// as the repo digest: the index's, unless the index names another image
/// locally (another platform, pulled first and not replaced).
fn record_index(
    store: &mut Store,
    index: Option<&(Descriptor, Vec<u8>)>,
    manifest: &Digest,
    id: &Digest,
    replace: bool,
) -> Result<Digest> {
    let Some(index) = index else {
        return Ok(manifest.clone());
    };
    let (desc, bytes) = index;
    store
        .put_blob_verified(&desc.digest, Some(bytes.len() as u64), &bytes[..])
        .map_err(store_err)?;
    store.add_index(desc, id, replace).map_err(store_err)?;
    Ok(match store.image_of_manifest(&desc.digest, None).map_err(store_err)? {
        Some(named) if named == *id => desc.digest.clone(),
        _ => manifest.clone(),
    })
}

/// The image is in the store: record the repo digest, point the tag at the
/// image's manifest. `(top, repo_digest)`: what the reference resolved to,
/// and the digest to record (the index's, or the manifest's).
fn finish_known(
    store: &mut Store,
    target: &Reference,
    (top, repo_digest): (&Digest, &Digest),
    manifest: &Digest,
    id: &Digest,
    before: Option<Digest>,
) -> Result<PullReport> {
    store
        .add_repo_digest(&target.repository(), repo_digest)
        .map_err(store_err)?;
    if target.digest().is_none() {
        store.set_tag(target, manifest).map_err(store_err)?;
    }
    let up_to_date = match target.digest() {
        Some(_) => true,
        None => before.as_ref() == Some(id),
    };
    Ok(PullReport {
        reference: target.clone(),
        digest: top.clone(),
        manifest: manifest.clone(),
        image_id: id.clone(),
        downloaded: 0,
        up_to_date,
    })
}
