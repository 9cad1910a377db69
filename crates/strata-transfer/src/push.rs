//! Pushing an image from the local store: one [`copy`] from the store
//! ([`StoreLocation`], serving the form a registry takes) to the registry
//! ([`RegistryLocation`]), shown as Docker shows a push.
//!
//! The store source resolves the image to a manifest whose layers are
//! compressed and held (see [`crate::distributable`]): an image pulled from
//! a registry is pushed unchanged (same manifest digest); plain tar layers
//! (import, commit, build) are gzip-compressed once on all cores and
//! remembered, so a second push compresses nothing and makes the same
//! manifest. The copy asks the registry for every blob first (HEAD), mounts
//! what another repository of the same registry holds (those the store
//! knows hold the image, in turn), uploads only what is missing, in
//! parallel and verified on its way (an upload that fails transiently is
//! tried again, up to 3 times), then puts the manifest and its tag; the
//! repository is then recorded as a repo digest of the image.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use strata_oci::{Digest, Reference};
use strata_registry::ClientOptions;
use strata_store::Store;

use crate::progress::{Event, LayerStatus, Progress};
use crate::registry::RegistryLocation;
use crate::store::StoreLocation;
use crate::{CopyOptions, Phase, PlatformChoice, Result, TransferError, copy};

#[derive(Clone, Default)]
pub struct PushOptions {
    pub client: ClientOptions,
    /// Level for layers compressed for the push (the encoder's fast default when None).
    pub compression_level: Option<i32>,
    /// gzip (None: the default) or zstd, for layers compressed for the push.
    pub compression: Option<strata_oci::media::Compression>,
    /// Layers held compressed the other way are compressed again as asked.
    pub force_compression: bool,
}

#[derive(Debug, Clone)]
pub struct PushReport {
    /// Where it went (fully qualified, with its tag).
    pub reference: Reference,
    /// The pushed manifest's digest and size.
    pub digest: Digest,
    pub size: u64,
    /// Blobs (layers and the config) uploaded, mounted, and found in the repository.
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
}

fn store_err(e: impl std::fmt::Display) -> TransferError {
    TransferError::location(e)
}

/// The local tags of `repository` (fully qualified), for `push --all-tags`.
pub fn local_tags(store: &Store, repository: &str) -> Result<Vec<Reference>> {
    let mut out = Vec::new();
    for img in store.list_images().map_err(store_err)? {
        for t in img.tags {
            if t.repo == repository {
                out.push(
                    Reference::from_parts(&t.repo, Some(&t.tag), None)
                        .map_err(|e| TransferError::Invalid(e.to_string()))?,
                );
            }
        }
    }
    out.sort_by_key(|r| r.tag().unwrap_or_default().to_string());
    Ok(out)
}

/// Pushes the local image `name` to the registry it names.
pub fn push(store: &mut Store, name: &str, opts: &PushOptions, progress: &Progress) -> Result<PushReport> {
    strata_registry::block_on(push_async(store, name, opts, progress)).map_err(TransferError::location)?
}

/// [`push`] on the caller's (multi-threaded) runtime.
pub async fn push_async(store: &mut Store, name: &str, opts: &PushOptions, progress: &Progress) -> Result<PushReport> {
    let parsed = Reference::parse(name).map_err(|e| TransferError::Invalid(e.to_string()))?;
    if parsed.digest().is_some() {
        return Err(TransferError::Invalid(format!(
            "cannot push a digest reference ({name}): push by tag"
        )));
    }
    let target = parsed.with_default_tag();
    let tag = target.tag().unwrap_or("latest").to_string();
    // Docker's words when there is no such image (before anything is said).
    strata_image::resolve(store, &target.familiar()).map_err(|e| match e {
        strata_image::Error::NoSuchImage(_) => TransferError::Invalid(format!(
            "An image does not exist locally with the tag: {}",
            target.familiar_repository()
        )),
        e => store_err(e),
    })?;
    progress(Event::PushingTo {
        repository: target.repository(),
    });

    // The copy, its events as Docker's lines (layers only).
    let layers: Arc<Mutex<HashSet<Digest>>> = Arc::default();
    let events: crate::Progress = {
        let progress = progress.clone();
        let layers = layers.clone();
        Arc::new(move |e: crate::Event| {
            let layer = |d: &Digest| layers.lock().unwrap_or_else(|e| e.into_inner()).contains(d);
            let status = |digest, status| Event::Layer { digest, status };
            let out = match e {
                crate::Event::Compressing { digest } => status(digest, LayerStatus::Compressing),
                crate::Event::Planned {
                    digest, layer: true, ..
                } => {
                    layers.lock().unwrap_or_else(|e| e.into_inner()).insert(digest.clone());
                    status(digest, LayerStatus::Waiting)
                }
                crate::Event::Skipped { digest } if layer(&digest) => status(digest, LayerStatus::LayerAlreadyExists),
                crate::Event::Mounted { digest, from } if layer(&digest) => {
                    status(digest, LayerStatus::MountedFrom(from))
                }
                crate::Event::Copying { digest, .. } if layer(&digest) => status(digest, LayerStatus::Pushing),
                crate::Event::Bytes {
                    digest,
                    phase: Phase::Transfer,
                    current,
                    total,
                } if layer(&digest) => Event::Bytes {
                    digest,
                    status: LayerStatus::Pushing,
                    current,
                    total,
                },
                crate::Event::Copied { digest, .. } if layer(&digest) => status(digest, LayerStatus::Pushed),
                crate::Event::Retrying { digest, attempt, error } => Event::Retrying { digest, attempt, error },
                _ => return,
            };
            progress(out)
        })
    };
    let mut src = StoreLocation::beside(store)?;
    src.set_distributable_as(crate::LayerCompression {
        kind: opts.compression.unwrap_or(strata_oci::media::Compression::Gzip),
        level: opts.compression_level,
        force: opts.force_compression,
    });
    src.set_progress(events.clone());
    let mut dst = RegistryLocation::new(&target, opts.client.clone())?;
    dst.set_progress(events.clone());
    // A multi-platform image: every platform the store holds, then the index.
    let options = CopyOptions {
        platforms: PlatformChoice::All,
        concurrency: opts.client.max_concurrent_transfers.max(1),
    };
    let report = copy(
        &src,
        &dst,
        Some(&target.familiar()),
        std::slice::from_ref(&tag),
        &options,
        events,
    )
    .await
    .map_err(|e| e.context(format!("pushing {}", target.familiar())))?;
    drop(src);

    // The repository now serves this manifest (or index). An index made
    // for the push (of the platforms held here) is no name of the store's.
    // A read-only store pushes without noting it (#16).
    if !store.is_read_only()
        && store
            .image_of_manifest(&report.root.digest, None)
            .map_err(store_err)?
            .is_some()
    {
        store
            .add_repo_digest(&target.repository(), &report.root.digest)
            .map_err(store_err)?;
    }
    Ok(PushReport {
        reference: target,
        digest: report.root.digest.clone(),
        size: report.root.size,
        uploaded: report.blobs_copied,
        mounted: report.blobs_mounted,
        existed: report.blobs_skipped,
    })
}
