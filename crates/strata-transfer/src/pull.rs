//! Pulling an image into the local store.
//!
//! resolve (tag → digest; index → the wanted platform) → config → every
//! layer the store lacks, at once: each is streamed once, hashed (the
//! client checks the distribution digest), written to a staged blob and, in
//! the same pass, decompressed, every tar header checked and the diff ID
//! computed. Nothing is named in the store until every layer's digest and
//! diff ID matched; then the blobs are committed and the image registered
//! and tagged. A download that breaks resumes with `Range`.
//!
//! A layer is present when the store holds its diff ID in any form, as
//! Docker does ("Already exists"): the same layer pulled before in another
//! compression (the image pushed elsewhere as zstd) or imported as a plain
//! tar is not downloaded again. The image then names, in its manifest (kept
//! byte for byte), a blob the store does not hold; everything that reads
//! the layer uses a held form of the diff ID. The store lock is held shared
//! from that decision to the image's registration, so that no `rmi` or
//! `system check --repair` removes the held form in between.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Buf, Bytes};
use strata_oci::media::{self, MAX_DOCUMENT_SIZE};
use strata_oci::{Descriptor, Digest, Document, ImageConfig, Platform, Reference};
use strata_store::{LayerRecord, NewImage, Store};

use strata_registry::{Client, ClientOptions, ManifestResponse, PartialBlob, Resolved};

use crate::progress::{ATTEMPTS, ByteCounter, Event, LayerStatus, Progress, backoff, retryable};

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

/// Pulls `reference` into `store` (see the module documentation).
pub fn pull(store: &mut Store, reference: &Reference, opts: &PullOptions, progress: &Progress) -> Result<PullReport> {
    strata_registry::block_on(pull_async(store, reference, opts, progress))?
}

/// [`pull`] on the caller's runtime (which must be multi-threaded).
pub async fn pull_async(
    store: &mut Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<PullReport> {
    let target = pull_target(reference);
    let repo_full = target.repository();
    let repo = target.path().to_string();
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let client = Client::for_reference(&target, opts.client.clone())?;
    let what = strata_registry::manifest_reference(&target);
    progress(Event::PullingFrom {
        what: what.clone(),
        repository: target.path().to_string(),
    });
    let before = match target.tag() {
        Some(_) => store.tag_target(&target)?.map(|(_, id)| id),
        None => None,
    };

    // Cheap check first: a HEAD tells the digest; when it names a manifest
    // (or an index, for the wanted platform's image) the store already has
    // for this repository, nothing needs fetching.
    if let Some(head) = client.head_manifest(&repo, &what).await.ok().flatten()
        && let Some(d) = head.digest.or_else(|| target.digest().cloned())
        && let Some(id) = store.image_of_manifest(&d, Some(&repo_full))?
        && let Some(img) = store.image(&id)?
        && opts.platform.as_ref().is_none_or(|p| p.matches(&image_platform(&img)))
        && let Some((_, mt, _)) = img.manifests.iter().find(|(m, _, _)| *m == d)
        && (media::is_manifest(mt) || wanted.matches(&image_platform(&img)))
    {
        let manifest = img.primary_manifest().clone();
        let manifest = if media::is_manifest(mt) { d.clone() } else { manifest };
        return finish_known(store, &target, (&d, &d), &manifest, &id, before);
    }

    let resolved = client
        .resolve(&target, &wanted)
        .await
        .with_context(|| format!("pulling {}", target.familiar()))?;
    let Resolved { index, manifest } = resolved;
    let top = index.as_ref().map_or(&manifest.digest, |i| &i.digest).clone();
    let Document::Manifest(m) = &manifest.document else {
        bail!(
            "{}: the registry sent an index where a manifest was expected",
            target.familiar()
        );
    };
    if m.layers.is_empty() && m.config.media_type != media::OCI_CONFIG && m.config.media_type != media::DOCKER_CONFIG {
        bail!(
            "{} is not a container image (config media type {:?}); it cannot be pulled as one",
            target.familiar(),
            m.config.media_type
        );
    }
    // Whether this pull's image is the one an index digest names locally:
    // the host's platform wins over others pulled from the same index.
    let for_host = opts.platform.as_ref().is_none_or(|p| p.matches(&Platform::host()));
    // The store may already hold this very manifest (pulled before, or by
    // another tag of the same image).
    if let Some(id) = store.image_of_manifest(&manifest.digest, None)? {
        let named = record_index(store, index.as_ref(), &manifest.digest, &id, for_host)?;
        return finish_known(store, &target, (&top, &named), &manifest.digest, &id, before);
    }

    // The config: small, fetched first (its diff IDs check the layers).
    let config_bytes = fetch_document(&client, &repo, &m.config).await?;
    let config = ImageConfig::parse(&config_bytes)
        .map_err(|e| anyhow!("{}: image config {}: {e}", target.familiar(), m.config.digest))?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        bail!(
            "{}: the image config lists {} layers (diff IDs) but the manifest {}; the image is malformed",
            target.familiar(),
            config.rootfs.diff_ids.len(),
            m.layers.len()
        );
    }
    if let Some(p) = &opts.platform
        && index.is_none()
        && !config.os.is_empty()
        && !p.matches(&config.platform())
    {
        bail!(
            "image with reference {} was found but does not match the specified platform: wanted {p}, actual: {}",
            target.familiar(),
            config.platform()
        );
    }

    // From here until the image is registered, no deleter may remove a
    // blob this pull relies on (they take the lock exclusive). Nothing below
    // takes the lock exclusive itself: a second flock from this process
    // would wait for this one forever.
    let _lock = {
        let root = store.root().to_path_buf();
        tokio::task::spawn_blocking(move || strata_store::StoreLock::shared(&root))
            .await
            .map_err(|e| anyhow!("taking the store lock stopped: {e}"))??
    };

    // Which layers to fetch: those whose diff ID the store holds in no form
    // (the manifest's blob or another compression of the same layer).
    let mut records = Vec::with_capacity(m.layers.len());
    let mut wanted_layers: Vec<(Descriptor, Digest)> = Vec::new();
    for (layer, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        let held = match store.layer_size(diff_id)? {
            Some(size) if !store.held_layer_blobs(diff_id)?.is_empty() => Some(size),
            _ => None,
        };
        if let Some(diff_size) = held {
            records.push(Some(LayerRecord {
                diff_id: diff_id.clone(),
                diff_size,
                blob: layer.clone(),
            }));
            progress(Event::Layer {
                digest: layer.digest.clone(),
                status: LayerStatus::AlreadyExists,
            });
        } else {
            records.push(None);
            if !wanted_layers.iter().any(|(d, _)| d.digest == layer.digest) {
                wanted_layers.push((layer.clone(), diff_id.clone()));
            }
        }
    }

    // Fetch them all at once (the client bounds how many run).
    let mut tasks = tokio::task::JoinSet::new();
    // One check thread per layer in flight, no more than the client transfers at once.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(opts.client.max_concurrent_transfers.max(1)));
    let chain = strata_oci::chain_ids(&config.rootfs.diff_ids);
    let snap = strata_snapshot::Snapshotter::new(store.root(), strata_snapshot::Driver::Copy);
    for (desc, diff_id) in &wanted_layers {
        let writer = staging_file(store)?;
        let unpack = match opts.unpack {
            true => m
                .layers
                .iter()
                .position(|l| l.digest == desc.digest)
                .map(|i| (snap.clone(), chain[i].clone()))
                .filter(|(s, c)| !s.has_layer(c)),
            false => None,
        };
        let client = client.clone();
        let repo = repo.clone();
        let desc = desc.clone();
        let diff_id = diff_id.clone();
        let progress = progress.clone();
        let slots = slots.clone();
        // Announced in manifest order, before any of them starts.
        progress(Event::Layer {
            digest: desc.digest.clone(),
            status: LayerStatus::Downloading,
        });
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            let digest = desc.digest.clone();
            let r = fetch_layer(&client, &repo, &desc, &diff_id, writer, unpack, &progress).await;
            (digest, r)
        });
    }
    let mut staged: HashMap<Digest, Staged> = HashMap::new();
    // Every task is waited for, even after a failure: each one cleans up its
    // own staging (temp blob, unpack dir) before it ends.
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let r = joined
            .map_err(|e| anyhow!("a layer download stopped: {e}"))
            .and_then(|(digest, r)| {
                r.map(|s| (digest.clone(), s))
                    .with_context(|| format!("pulling {}: layer {digest}", target.familiar()))
            });
        match r {
            Ok((digest, s)) => {
                staged.insert(digest, s);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        // A failed pull leaves the store as it was: the layers unpacked for
        // it go too (an image that shares one unpacks it again on demand).
        remove_unpacked(&snap, &staged);
        return Err(e);
    }

    // Layers unpacked side by side could not see the ones below them: now
    // that all are there, no layer may have gone through a lower symlink.
    if opts.unpack {
        for (i, layer) in m.layers.iter().enumerate() {
            let Some(s) = staged.get(&layer.digest) else { continue };
            if s.implicit_dirs.is_empty() {
                continue;
            }
            let lowers: Vec<_> = snap.lower_dirs(&chain[..i]).into_iter().rev().collect();
            if let Err(e) = strata_layer::check_lowers(&lowers, &s.implicit_dirs) {
                remove_unpacked(&snap, &staged);
                return Err(anyhow!(e).context(format!("pulling {}: layer {}", target.familiar(), layer.digest)));
            }
        }
    }

    // Everything verified: name the blobs, then register.
    for (i, layer) in m.layers.iter().enumerate() {
        if records[i].is_some() {
            continue;
        }
        let diff_id = &config.rootfs.diff_ids[i];
        let diff_size = match staged.get(&layer.digest) {
            Some(s) => s.diff_size,
            None => bail!("internal error: layer {} was not fetched", layer.digest),
        };
        records[i] = Some(LayerRecord {
            diff_id: diff_id.clone(),
            diff_size,
            blob: layer.clone(),
        });
    }
    let downloaded = staged.len();
    for (digest, s) in staged {
        store
            .commit_synced(s.tmp, &digest)
            .with_context(|| format!("storing layer {digest}"))?;
    }
    store.put_blob_verified(&m.config.digest, Some(m.config.size), &config_bytes[..])?;
    store.put_blob_verified(&manifest.digest, Some(manifest.bytes.len() as u64), &manifest.bytes[..])?;
    store.add_image(&NewImage {
        config_digest: m.config.digest.clone(),
        created: config.created.clone(),
        os: config.os.clone(),
        arch: config.architecture.clone(),
        variant: config.variant.clone(),
        manifest: manifest.descriptor(),
        layers: records.into_iter().map(|r| r.expect("every layer recorded")).collect(),
    })?;
    let named = record_index(store, index.as_ref(), &manifest.digest, &m.config.digest, for_host)?;
    finish_known(
        store,
        &target,
        (&top, &named),
        &manifest.digest,
        &m.config.digest,
        before,
    )
    .map(|mut r| {
        r.downloaded = downloaded;
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
    index: Option<&ManifestResponse>,
    manifest: &Digest,
    id: &Digest,
    replace: bool,
) -> Result<Digest> {
    let Some(index) = index else {
        return Ok(manifest.clone());
    };
    store.put_blob_verified(&index.digest, Some(index.bytes.len() as u64), &index.bytes[..])?;
    store.add_index(&index.descriptor(), id, replace)?;
    Ok(match store.image_of_manifest(&index.digest, None)? {
        Some(named) if named == *id => index.digest.clone(),
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
    store.add_repo_digest(&target.repository(), repo_digest)?;
    if target.digest().is_none() {
        store.set_tag(target, manifest)?;
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

/// A small blob (config), bounded and verified.
async fn fetch_document(client: &Client, repo: &str, d: &Descriptor) -> Result<Vec<u8>> {
    if d.size > MAX_DOCUMENT_SIZE {
        bail!(
            "config {} is {} bytes; at most {MAX_DOCUMENT_SIZE} are accepted",
            d.digest,
            d.size
        );
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut buf = Vec::new();
        match client.get_blob(repo, &d.digest, Some(d.size), &mut buf).await {
            Ok(_) => return Ok(buf),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes the layers this pull unpacked (it failed).
fn remove_unpacked(snap: &strata_snapshot::Snapshotter, staged: &HashMap<Digest, Staged>) {
    for chain in staged.values().filter_map(|s| s.unpacked.as_ref()) {
        let _ = snap.remove_layer(chain);
    }
}

/// A verified layer blob, not yet named (see [`LayerIngest`]).
pub struct Staged {
    /// The blob, synced: name it with [`Store::commit_synced`].
    pub tmp: tempfile::NamedTempFile,
    pub diff_size: u64,
    /// Directories the unpacked layer created implicitly (to check against
    /// the layers below once they are all there, with `strata_layer::check_lowers`).
    pub implicit_dirs: Vec<std::path::PathBuf>,
    /// The chain ID the layer was unpacked as (the caller removes it when
    /// the image is not registered after all).
    pub unpacked: Option<Digest>,
}

/// What the check thread learnt of a layer.
struct Checked {
    diff_id: Digest,
    diff_size: u64,
    implicit_dirs: Vec<std::path::PathBuf>,
    unpacked: Option<Digest>,
}

/// Counts bytes for progress (called with each chunk's length).
pub type ByteCallback = Box<dyn FnMut(u64) + Send>;

/// Pull's one-pass layer pipeline, without the registry: the bytes written
/// to it go to a staged blob under the store's `tmp/` and, in the same
/// pass, through the decompressor, the tar checks and the diff ID hash on a
/// thread of their own, unpacked into `layers/<chain-id>` when asked
/// (named only when the content has the expected diff ID). The writer
/// hashes and checks the blob's digest itself; [`LayerIngest::finish`]
/// gives the verdict. The local store location of strata-transfer uses it too.
pub struct LayerIngest {
    blob: std::io::BufWriter<tempfile::NamedTempFile>,
    tx: Option<SyncSender<Bytes>>,
    done: tokio::sync::oneshot::Receiver<Result<Checked>>,
    cleanup: Option<strata_snapshot::Snapshotter>,
    /// Bytes written (a resumed download writes only the new ones).
    on_write: ByteCallback,
}

impl LayerIngest {
    /// Starts the check thread for a layer whose content must have
    /// `diff_id`, writing to `blob` (from [`staging_file`]); `unpack`: the
    /// snapshotter and chain ID to unpack it as. `on_extract` counts what
    /// the check consumed.
    pub fn start(
        blob: std::io::BufWriter<tempfile::NamedTempFile>,
        diff_id: &Digest,
        unpack: Option<(strata_snapshot::Snapshotter, Digest)>,
        on_write: ByteCallback,
        on_extract: ByteCallback,
    ) -> Result<LayerIngest> {
        let (tx, rx) = sync_channel::<Bytes>(32);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let expected_diff = diff_id.clone();
        let cleanup = unpack.as_ref().map(|(snap, _)| snap.clone());
        std::thread::Builder::new()
            .name("layer-check".into())
            .spawn(move || {
                let mut feed = Some(Feed {
                    rx,
                    cur: Bytes::new(),
                    counter: on_extract,
                });
                let mut unpacked = None;
                if let Some((snap, chain_id)) = &unpack {
                    // Unpacked in the same pass; named `layers/<chain-id>` only
                    // when the content has the diff ID the (verified) config names.
                    let r = snap.ensure_layer(chain_id, |dir| {
                        let f = feed.take().expect("filled once");
                        let opts = strata_layer::UnpackOptions {
                            whiteouts: strata_layer::WhiteoutMode::Overlay,
                            ..Default::default()
                        };
                        let report = strata_layer::unpack(f, dir, &opts)?;
                        if report.diff_id != expected_diff {
                            bail!(
                                "the layer's content has diff ID {}, but the image config says {expected_diff}",
                                report.diff_id
                            );
                        }
                        unpacked = Some(report);
                        Ok(())
                    });
                    if let Err(e) = r {
                        let _ = done_tx.send(Err(e));
                        return;
                    }
                }
                let r = match (unpacked, feed) {
                    (Some(rep), _) => Ok(Checked {
                        diff_id: rep.diff_id,
                        diff_size: rep.diff_size,
                        implicit_dirs: rep.implicit_dirs,
                        unpacked: unpack.as_ref().map(|(_, c)| c.clone()),
                    }),
                    // Not unpacked (not asked, or present meanwhile): check only.
                    (None, Some(f)) => {
                        let opts = strata_layer::WriteOptions {
                            compression: strata_layer::Compression::None,
                            level: None,
                            source_date_epoch: None,
                        };
                        strata_layer::recompress(f, &opts, std::io::sink())
                            .map(|d| Checked {
                                diff_id: d.diff_id,
                                diff_size: d.diff_size,
                                implicit_dirs: Vec::new(),
                                unpacked: None,
                            })
                            .map_err(anyhow::Error::from)
                    }
                    (None, None) => Err(anyhow!("the layer was neither unpacked nor checked")),
                };
                let _ = done_tx.send(r);
            })
            .context("starting a layer check thread")?;
        Ok(LayerIngest {
            blob,
            tx: Some(tx),
            done: done_rx,
            cleanup,
            on_write,
        })
    }

    /// The check refused the layer (a write failed for it): sending the
    /// rest is pointless.
    pub fn refused(&self) -> bool {
        self.tx.is_none()
    }

    /// The verdict, once every byte was written (`fetched`: how many, or
    /// why the transfer failed): the check's result decides first (a layer
    /// refused by the check stops the transfer with a write error), then
    /// the diff ID and the size; the staged blob is synced now, while other
    /// layers may still be in transfer, so that naming it at the end costs
    /// no device flush. A layer unpacked for a refused transfer is removed.
    pub async fn finish(self, fetched: Result<u64>, diff_id: &Digest, size: u64) -> Result<Staged> {
        let LayerIngest {
            blob,
            tx,
            done,
            cleanup,
            ..
        } = self;
        let refused = tx.is_none();
        // Closing the feed ends the check.
        drop(tx);
        let checked = done.await.map_err(|_| anyhow!("the layer check thread stopped"))?;
        let (fetched, layer) = match (fetched, checked) {
            (Err(_), Err(e)) if refused => bail!("the layer was refused: {e:#}"),
            (Err(e), Ok(l)) => {
                discard(&cleanup, &l);
                return Err(e);
            }
            (Err(e), _) => return Err(e),
            (Ok(_), Err(e)) => bail!("the layer was refused: {e:#}"),
            (Ok(n), Ok(l)) => (n, l),
        };
        let verdict = async {
            if layer.diff_id != *diff_id {
                bail!(
                    "the layer's content has diff ID {}, but the image config says {diff_id}; the image is corrupt",
                    layer.diff_id
                );
            }
            if fetched != size {
                bail!("received {fetched} bytes, expected {size}");
            }
            let tmp = tokio::task::spawn_blocking(move || -> Result<tempfile::NamedTempFile> {
                let tmp = blob
                    .into_inner()
                    .map_err(|e| anyhow!("writing the layer blob: {}", e.error()))?;
                let stored = tmp.as_file().metadata().context("reading the staged layer blob")?.len();
                if stored != size {
                    bail!("stored {stored} bytes, expected {size}");
                }
                tmp.as_file().sync_all().context("syncing the staged layer blob")?;
                Ok(tmp)
            })
            .await
            .map_err(|e| anyhow!("syncing a layer blob stopped: {e}"))??;
            Ok(tmp)
        }
        .await;
        match verdict {
            Ok(tmp) => Ok(Staged {
                tmp,
                diff_size: layer.diff_size,
                implicit_dirs: layer.implicit_dirs,
                unpacked: layer.unpacked,
            }),
            Err(e) => {
                discard(&cleanup, &layer);
                Err(e)
            }
        }
    }
}

/// Writes to the staged blob and hands the bytes to the check thread.
impl Write for LayerIngest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.blob.write_all(buf)?;
        if let Some(tx) = &self.tx {
            let chunk = Bytes::copy_from_slice(buf);
            // A full channel means the check is behind: wait for it without
            // holding up the runtime's other tasks (where the runtime can).
            let sent = match tx.try_send(chunk) {
                Ok(()) => Ok(()),
                Err(std::sync::mpsc::TrySendError::Full(c)) => {
                    let multi_thread = tokio::runtime::Handle::try_current()
                        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
                    match multi_thread {
                        true => tokio::task::block_in_place(|| tx.send(c)).map_err(|_| ()),
                        false => tx.send(c).map_err(|_| ()),
                    }
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(()),
            };
            if sent.is_err() {
                self.tx = None;
                return Err(std::io::Error::other("the layer was refused while checking it"));
            }
        }
        (self.on_write)(buf.len() as u64);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.blob.flush()
    }
}

/// Streams one layer from the registry through a [`LayerIngest`].
async fn fetch_layer(
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    diff_id: &Digest,
    writer: std::io::BufWriter<tempfile::NamedTempFile>,
    unpack: Option<(strata_snapshot::Snapshotter, Digest)>,
    progress: &Progress,
) -> Result<Staged> {
    let mut extracted = ByteCounter::new(
        progress.clone(),
        desc.digest.clone(),
        LayerStatus::Extracting,
        desc.size,
    );
    let mut downloaded = ByteCounter::new(
        progress.clone(),
        desc.digest.clone(),
        LayerStatus::Downloading,
        desc.size,
    );
    let mut ingest = LayerIngest::start(
        writer,
        diff_id,
        unpack,
        Box::new(move |n| downloaded.add(n)),
        Box::new(move |n| extracted.add(n)),
    )?;
    let mut partial = PartialBlob::new(desc.digest.algorithm());
    let mut attempt = 0;
    let fetched = loop {
        attempt += 1;
        match client
            .get_blob_resumable(repo, &desc.digest, Some(desc.size), &mut partial, &mut ingest)
            .await
        {
            Ok(n) => break Ok(n),
            Err(e) if attempt < ATTEMPTS && retryable(&e) && !ingest.refused() => {
                progress(Event::Retrying {
                    digest: desc.digest.clone(),
                    attempt: attempt + 1,
                    error: e.to_string(),
                });
                backoff(attempt).await;
            }
            Err(e) => break Err(e),
        }
    };
    if fetched.is_ok() {
        progress(Event::Layer {
            digest: desc.digest.clone(),
            status: LayerStatus::Extracting,
        });
    }
    // The client hashed every byte it wrote to the staged file and checked
    // digest and size (no second hashing pass here).
    let staged = ingest
        .finish(fetched.map_err(anyhow::Error::from), diff_id, desc.size)
        .await?;
    progress(Event::Layer {
        digest: desc.digest.clone(),
        status: LayerStatus::PullComplete,
    });
    Ok(staged)
}

/// A staged file for a layer blob under the store's `tmp/` (named like the
/// store's own, with the pid, so that leftovers of a killed pull are swept).
pub fn staging_file(store: &Store) -> Result<std::io::BufWriter<tempfile::NamedTempFile>> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("blob-{}-", std::process::id()))
        .tempfile_in(store.tmp_dir())
        .context("creating a temporary blob file")?;
    Ok(std::io::BufWriter::with_capacity(256 * 1024, tmp))
}

/// The check thread's end of the channel, as a reader.
struct Feed {
    rx: Receiver<Bytes>,
    cur: Bytes,
    /// Bytes the check (unpack) has consumed.
    counter: ByteCallback,
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        (self.counter)(n as u64);
        Ok(n)
    }
}

/// Removes a layer this pull unpacked but then refused.
fn discard(snap: &Option<strata_snapshot::Snapshotter>, layer: &Checked) {
    if let (Some(snap), Some(chain)) = (snap, &layer.unpacked) {
        let _ = snap.remove_layer(chain);
    }
}
