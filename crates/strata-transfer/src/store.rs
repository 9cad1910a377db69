//! The local store (`strata:REF`) as a location, the way pull and save use
//! it today.
//!
//! As a sink, a layer is present when the store holds its diff ID in any
//! form (or that very blob with its layer recorded), as pull decides
//! ("Already exists"). A layer that is not streams once through pull's
//! pipeline ([`crate::ingest::LayerIngest`]: staged blob under
//! `tmp/`, decompress, tar checks, diff ID, unpacked into `layers/<chain-id>`
//! so the image runs at once). Configs and manifests wait in memory (at most
//! 4 MiB each). Nothing is named in `blobs/` and no row is written before
//! [`Sink::finish`]; a layer unpacked for a copy that then fails is removed
//! again (as pull does). The store lock is held shared from the first
//! "present" decision to the registration, so no `rmi` removes a held form
//! in between. Staged blobs carry the pid in their name, so a killed copy
//! leaves only work entries the next `Store::open` removes.
//!
//! As a source, an image is resolved by strata-image's rules (name, then ID
//! prefix). When the store does not hold a layer blob its manifest names
//! (the layer was held in another form when the image came in), a held form
//! is served under a manifest rewritten as save does (same config, so the
//! same image ID; a new manifest digest). For a registry
//! ([`StoreLocation::set_distributable`], as push uses it) the manifest
//! served has only compressed layers held in the store (see
//! [`crate::distributable`]). Either way the source names the repositories
//! the store knows hold the image, for a registry sink to mount from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::ingest::{Blob, ByteCallback, LayerIngest, Staged, adopt_file, staging_file};
use strata_oci::{Descriptor, Digest, Document, ImageConfig, Manifest, Platform, Reference, media};
use strata_snapshot::{Driver, Snapshotter};
use strata_store::{ImageRecord, LayerRecord, NewImage, Store, StoreLock};
use tokio::io::AsyncReadExt;

use crate::copy::ByteCounter;
use crate::verify::from_io;
use crate::{
    BlobRole, BlobStream, MAX_DOCUMENT_SIZE, MountFrom, Phase, Progress, Result, Sink, Source, TransferError,
    no_progress,
};

/// strata's image store at a root, as a [`Source`] and a [`Sink`]. Use one
/// value per copy as a sink: it keeps what the copy staged until `finish`.
pub struct StoreLocation {
    root: PathBuf,
    store: Mutex<Store>,
    snap: Snapshotter,
    /// Taken shared at the first blob decision, released after `finish`.
    lock: Mutex<Option<StoreLock>>,
    state: Mutex<SinkState>,
    /// Wakes layers waiting for the config that gives their chain ID.
    configs_arrived: tokio::sync::Notify,
    /// Manifests rewritten for reading (see the module documentation).
    rewritten: Mutex<HashMap<Digest, Vec<u8>>>,
    /// Where the image last resolved could be mounted from.
    mounts: Mutex<Vec<MountFrom>>,
    /// Serve a registry's form (the compression and level; see `set_distributable`).
    distributable: Option<crate::distributable::LayerCompression>,
    /// Hears what the unpacker consumed ([`Phase::Unpack`]) and which
    /// layers the source compresses ([`crate::Event::Compressing`]).
    progress: Progress,
    /// Unpack layers into `layers/` as they arrive (else on first use).
    unpack: bool,
    /// Whether a name with a registry records a repo digest (not for `load`).
    repo_digests: bool,
}

#[derive(Default)]
struct SinkState {
    /// Configs of the images being copied (held or arriving), parsed.
    configs: HashMap<Digest, ImageConfig>,
    /// Configs to write at `finish`.
    config_bytes: HashMap<Digest, Vec<u8>>,
    /// Configs the copy will put (`has_blob` said no) and has not yet.
    pending_configs: usize,
    /// Verified layers, staged.
    layers: HashMap<Digest, Staged>,
    /// Other verified blobs, staged.
    others: Vec<(Digest, tempfile::NamedTempFile)>,
    documents: HashMap<Digest, Vec<u8>>,
    /// Layers this copy unpacked: removed again unless the copy finishes.
    unpacked: Vec<Digest>,
    finished: bool,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_err(e: impl std::fmt::Display) -> TransferError {
    TransferError::location(e)
}

/// The pipeline's errors: the verifier's own (they name the blob) as they
/// are, the rest said of the layer.
fn ingest_err(digest: &Digest, e: TransferError) -> TransferError {
    match e {
        e @ (TransferError::DigestMismatch { .. } | TransferError::SizeMismatch { .. }) => e,
        e => TransferError::Location(format!("layer {digest}: {e}")),
    }
}

impl StoreLocation {
    /// Opens (creating when needed) the store at `root`.
    pub fn open(root: &Path) -> Result<StoreLocation> {
        Ok(StoreLocation::new(Store::open(root).map_err(store_err)?))
    }

    /// The store `store` is open on, through a connection of its own.
    pub fn beside(store: &Store) -> Result<StoreLocation> {
        Ok(StoreLocation::new(store.another_connection().map_err(store_err)?))
    }

    pub fn new(store: Store) -> StoreLocation {
        let root = store.root().to_path_buf();
        StoreLocation {
            snap: Snapshotter::new(&root, Driver::Copy),
            root,
            store: Mutex::new(store),
            lock: Mutex::new(None),
            state: Mutex::new(SinkState::default()),
            configs_arrived: tokio::sync::Notify::new(),
            rewritten: Mutex::new(HashMap::new()),
            mounts: Mutex::new(Vec::new()),
            distributable: None,
            progress: no_progress(),
            unpack: true,
            repo_digests: true,
        }
    }

    /// As a source, serve the form a registry takes: a manifest whose
    /// layers are compressed and held in the store, plain layers
    /// gzip-compressed (at `level`, a fast default when `None`) and recorded
    /// once (see [`crate::distributable`]).
    pub fn set_distributable(&mut self, level: Option<i32>) {
        self.distributable = Some(crate::distributable::LayerCompression {
            level,
            ..Default::default()
        });
    }

    /// [`StoreLocation::set_distributable`] with zstd or gzip, and with
    /// `force`, layers held compressed otherwise made again as asked
    /// (buildx's `compression`, `compression-level`, `force-compression`).
    pub fn set_distributable_as(&mut self, compression: crate::distributable::LayerCompression) {
        self.distributable = Some(compression);
    }

    /// Where the unpacker's byte counts (and the source's compressions) go.
    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    /// Whether layers are unpacked as they arrive (the default) or on first use.
    pub fn set_unpack(&mut self, unpack: bool) {
        self.unpack = unpack;
    }

    /// Whether a name that says its registry records a repo digest (the
    /// default); `load` names by tag only, as `docker load` does (an
    /// archive cannot vouch for what a registry holds).
    pub fn set_repo_digests(&mut self, repo_digests: bool) {
        self.repo_digests = repo_digests;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store lock shared, once (it may wait for an `rmi`).
    async fn locked(&self) -> Result<()> {
        if guard(&self.lock).is_some() {
            return Ok(());
        }
        let root = self.root.clone();
        let lock = tokio::task::spawn_blocking(move || StoreLock::shared(&root))
            .await
            .map_err(|e| TransferError::Location(format!("taking the store lock stopped: {e}")))?
            .map_err(store_err)?;
        guard(&self.lock).get_or_insert(lock);
        Ok(())
    }

    /// The chain ID of layer `index` with `diff_id`, from a config of this
    /// copy; waits while configs are still arriving (copy puts configs
    /// first). `None`: not known, the layer is checked but not unpacked
    /// (it is unpacked on first use).
    async fn chain_for(&self, index: usize, diff_id: &Digest) -> Option<Digest> {
        loop {
            let arrived = self.configs_arrived.notified();
            {
                let st = guard(&self.state);
                for c in st.configs.values() {
                    let ids = &c.rootfs.diff_ids;
                    if ids.get(index) == Some(diff_id) {
                        return strata_oci::chain_ids(&ids[..=index]).pop();
                    }
                }
                if st.pending_configs == 0 {
                    return None;
                }
            }
            arrived.await;
        }
    }

    fn config_arrived(&self, digest: &Digest, config: ImageConfig, bytes: Option<Vec<u8>>) {
        let mut st = guard(&self.state);
        st.configs.insert(digest.clone(), config);
        if let Some(b) = bytes {
            st.config_bytes.insert(digest.clone(), b);
        }
        drop(st);
        self.configs_arrived.notify_waiters();
    }

    /// `file`: the source's file of the blob, linked instead of written when it can be.
    async fn put_layer(
        &self,
        desc: &Descriptor,
        index: usize,
        diff_id: &Digest,
        mut data: BlobStream,
        file: Option<&Path>,
    ) -> Result<()> {
        let chain = match self.unpack {
            true => self.chain_for(index, diff_id).await,
            false => None,
        };
        let unpack = chain
            .filter(|c| !self.snap.has_layer(c))
            .map(|c| (self.snap.clone(), c));
        let adopted = file.and_then(|f| adopt_file(&guard(&self.store), f));
        let mut unpacked = ByteCounter::new(self.progress.clone(), desc.digest.clone(), Phase::Unpack, desc.size);
        let (on_write, on_extract): (ByteCallback, ByteCallback) =
            (Box::new(|_| {}), Box::new(move |n| unpacked.add(n)));
        let blob = match adopted {
            Some(staged) => Blob::Adopted(staged),
            None => Blob::Write(staging_file(&guard(&self.store)).map_err(|e| ingest_err(&desc.digest, e))?),
        };
        // A plain layer: `data` is verified against its digest, its diff ID.
        let verified_plain = desc.digest == *diff_id;
        let mut ingest = LayerIngest::start_with(blob, diff_id, unpack, verified_plain, on_write, on_extract)
            .map_err(|e| ingest_err(&desc.digest, e))?;
        let what = format!("blob {}", desc.digest);
        // The bytes go on in batches of up to BATCH (a network read gives a
        // few KiB): each hand-over to the check thread wakes it, and on a
        // machine with fewer cores than busy threads a wake-up is a switch.
        const BATCH: usize = 256 * 1024;
        let mut buf = vec![0u8; BATCH];
        let mut filled = 0;
        let mut total = 0u64;
        let fetched = loop {
            let (n, end) = match data.read(&mut buf[filled..]).await {
                Ok(0) => (0, true),
                Ok(n) => (n, false),
                Err(e) => break Err(from_io(e, &what)),
            };
            filled += n;
            if filled == BATCH || (end && filled > 0) {
                if let Err(e) = std::io::Write::write_all(&mut ingest, &buf[..filled]) {
                    break Err(TransferError::io(format!("storing {what}"), e));
                }
                total += filled as u64;
                filled = 0;
            }
            if end {
                break Ok(total);
            }
        };
        let staged = ingest
            .finish(fetched, diff_id, desc.size)
            .await
            .map_err(|e| ingest_err(&desc.digest, e))?;
        let mut st = guard(&self.state);
        if let Some(c) = &staged.unpacked {
            st.unpacked.push(c.clone());
        }
        st.layers.insert(desc.digest.clone(), staged);
        Ok(())
    }

    /// Names what the copy staged and registers its images (see [`Sink::finish`]).
    fn register(&self, st: &mut SinkState, root: &Descriptor, names: &[String]) -> Result<()> {
        let mut store = guard(&self.store);
        let doc_bytes = |st: &SinkState, d: &Descriptor| -> Result<Vec<u8>> {
            match st.documents.get(&d.digest) {
                Some(b) => Ok(b.clone()),
                None => store.read_blob(&d.digest, MAX_DOCUMENT_SIZE).map_err(store_err),
            }
        };
        let root_bytes = doc_bytes(st, root)?;
        let parse = |d: &Descriptor, b: &[u8]| {
            Document::parse(b, Some(&d.media_type))
                .map_err(|e| TransferError::Invalid(format!("document {}: {e}", d.digest)))
        };
        let mut images: Vec<(Descriptor, Vec<u8>, Manifest)> = Vec::new();
        let is_index = match parse(root, &root_bytes)? {
            Document::Manifest(m) => {
                images.push((root.clone(), root_bytes.clone(), m));
                false
            }
            Document::Index(ix) => {
                // The images of the index this copy brought (all, or the chosen ones).
                for d in ix.manifests.iter().filter(|d| media::is_manifest(&d.media_type)) {
                    if let Some(b) = st.documents.get(&d.digest).cloned()
                        && let Document::Manifest(m) = parse(d, &b)?
                    {
                        images.push((d.clone(), b, m));
                    }
                }
                true
            }
        };
        if images.is_empty() {
            return Err(TransferError::Invalid(format!("{}: no image to store", root.digest)));
        }

        // Every image's layer records, before anything is named.
        let mut new_images = Vec::new();
        for (desc, _, m) in &images {
            let config = match st.configs.get(&m.config.digest) {
                Some(c) => c.clone(),
                None => {
                    let b = store
                        .read_blob(&m.config.digest, MAX_DOCUMENT_SIZE)
                        .map_err(store_err)?;
                    ImageConfig::parse(&b)
                        .map_err(|e| TransferError::Invalid(format!("config {}: {e}", m.config.digest)))?
                }
            };
            let diff_ids = &config.rootfs.diff_ids;
            if diff_ids.len() != m.layers.len() {
                return Err(TransferError::Invalid(format!(
                    "image {}: the config lists {} layers (diff IDs) but the manifest {}; the image is malformed",
                    m.config.digest,
                    diff_ids.len(),
                    m.layers.len()
                )));
            }
            let chain = strata_oci::chain_ids(diff_ids);
            let mut layers = Vec::with_capacity(m.layers.len());
            for (i, (l, diff_id)) in m.layers.iter().zip(diff_ids).enumerate() {
                let diff_size = match st.layers.get(&l.digest) {
                    Some(s) => {
                        self.check_lowers(s, &chain, i, &l.digest)?;
                        s.diff_size
                    }
                    None => store.layer_size(diff_id).map_err(store_err)?.ok_or_else(|| {
                        TransferError::Invalid(format!("layer {} was neither in the store nor copied", l.digest))
                    })?,
                };
                layers.push(LayerRecord {
                    diff_id: diff_id.clone(),
                    diff_size,
                    blob: l.clone(),
                });
            }
            new_images.push((
                NewImage {
                    config_digest: m.config.digest.clone(),
                    created: config.created.clone(),
                    os: config.os.clone(),
                    arch: config.architecture.clone(),
                    variant: config.variant.clone(),
                    manifest: Descriptor::new(&desc.media_type, desc.digest.clone(), desc.size),
                    layers,
                },
                config.platform(),
            ));
        }

        // Everything verified: name the blobs, then register (as pull does).
        for (digest, s) in st.layers.drain() {
            store
                .commit_synced(s.tmp, &digest)
                .map_err(|e| TransferError::Location(format!("storing layer {digest}: {e}")))?;
        }
        for (digest, tmp) in st.others.drain(..) {
            store.commit_staged(tmp, &digest).map_err(store_err)?;
        }
        for (d, b) in &st.config_bytes {
            store
                .put_blob_verified(d, Some(b.len() as u64), &b[..])
                .map_err(store_err)?;
        }
        for (desc, bytes, _) in &images {
            store
                .put_blob_verified(&desc.digest, Some(bytes.len() as u64), &bytes[..])
                .map_err(store_err)?;
        }
        for (img, _) in &new_images {
            store.add_image(img).map_err(store_err)?;
        }
        // A multi-platform copy names the index (its platforms are recorded,
        // present or not); the index itself is a manifest of the host's
        // image (the first one when none is), which a name resolves to by
        // default.
        let host = Platform::host();
        let named = new_images
            .iter()
            .find(|(_, p)| host.matches(p))
            .unwrap_or(&new_images[0]);
        let (id, mut manifest) = (named.0.config_digest.clone(), named.0.manifest.digest.clone());
        let mut repo_digest = manifest.clone();
        if is_index {
            store
                .put_blob_verified(&root.digest, Some(root_bytes.len() as u64), &root_bytes[..])
                .map_err(store_err)?;
            let Document::Index(ix) = parse(root, &root_bytes)? else {
                unreachable!("checked above")
            };
            let members: Vec<(Descriptor, Platform)> = ix
                .manifests
                .iter()
                .filter(|d| media::is_manifest(&d.media_type))
                .filter_map(|d| d.platform.clone().map(|p| (d.clone(), p)))
                .filter(|(_, p)| p.os != "unknown")
                .collect();
            store.add_index_image(root, &id, &members).map_err(store_err)?;
            repo_digest = root.digest.clone();
            manifest = root.digest.clone();
        }
        for name in names {
            let r = Reference::parse(name).map_err(|e| TransferError::Invalid(format!("{name:?}: {e}")))?;
            if let Some(d) = r.digest() {
                if *d != root.digest && *d != named.0.manifest.digest {
                    return Err(TransferError::Invalid(format!(
                        "{name}: the image copied is {}, not {d}",
                        root.digest
                    )));
                }
            } else {
                store
                    .set_tag(&r.clone().with_default_tag(), &manifest)
                    .map_err(store_err)?;
            }
            // Only a registry can vouch for a repo digest: a name that says
            // which registry holds the image (not a bare `NAME:TAG`).
            if self.repo_digests && names_registry(name) {
                store
                    .add_repo_digest(&r.repository(), &repo_digest)
                    .map_err(store_err)?;
            }
        }
        Ok(())
    }

    /// A layer unpacked side by side with the others could not see the
    /// layers below it: now that they are there, none of its implicit
    /// directories may go through a lower symlink (as pull checks). When a
    /// lower is not unpacked, the layer is removed again instead: it is
    /// unpacked on first use, with its lowers checked then.
    fn check_lowers(&self, s: &Staged, chain: &[Digest], i: usize, digest: &Digest) -> Result<()> {
        if s.implicit_dirs.is_empty() || s.unpacked.as_ref() != Some(&chain[i]) {
            return Ok(());
        }
        let lowers: Vec<_> = self.snap.lower_dirs(&chain[..i]).into_iter().rev().collect();
        if !lowers.iter().all(|l| l.is_dir()) {
            let _ = self.snap.remove_layer(&chain[i]);
            return Ok(());
        }
        strata_layer::check_lowers(&lowers, &s.implicit_dirs)
            .map_err(|e| TransferError::Invalid(format!("layer {digest}: {e}")))
    }
}

/// Whether a name as written says which registry it is from (`host/…`
/// with a dot or port, or `localhost/…`), as Docker tells a domain.
fn names_registry(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

impl Drop for StoreLocation {
    fn drop(&mut self) {
        // A copy that did not finish leaves the store as it was: the layers
        // it unpacked go (the lock is still held here).
        let st = guard(&self.state);
        if !st.finished {
            for c in &st.unpacked {
                let _ = self.snap.remove_layer(c);
            }
        }
    }
}

/// Holds a config's place among those still arriving.
struct Pending<'a>(&'a StoreLocation);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut st = guard(&self.0.state);
        st.pending_configs = st.pending_configs.saturating_sub(1);
        drop(st);
        self.0.configs_arrived.notify_waiters();
    }
}

impl Sink for StoreLocation {
    async fn has_blob(&self, desc: &Descriptor, role: &BlobRole) -> Result<bool> {
        // Counted before any await: copy asks for configs first, so a layer
        // that looks for its chain ID finds every config pending or there.
        let pending = match role {
            BlobRole::Config => {
                guard(&self.state).pending_configs += 1;
                Some(Pending(self))
            }
            _ => None,
        };
        self.locked().await?;
        match role {
            BlobRole::Config => {
                let held = {
                    let store = guard(&self.store);
                    match store.has_blob(&desc.digest) {
                        true => Some(store.read_blob(&desc.digest, MAX_DOCUMENT_SIZE).map_err(store_err)?),
                        false => None,
                    }
                };
                match held {
                    Some(b) => {
                        let c = ImageConfig::parse(&b)
                            .map_err(|e| TransferError::Invalid(format!("config {}: {e}", desc.digest)))?;
                        self.config_arrived(&desc.digest, c, None);
                        Ok(true)
                    }
                    None => {
                        // Still pending: `put_blob` ends it.
                        std::mem::forget(pending);
                        Ok(false)
                    }
                }
            }
            BlobRole::Layer {
                diff_id: Some(diff_id), ..
            } => {
                // "Already exists": the diff ID in any held form, or this
                // very blob with its layer (and so its size) recorded.
                let store = guard(&self.store);
                if store.layer_size(diff_id).map_err(store_err)?.is_none() {
                    return Ok(false);
                }
                Ok(store.has_blob(&desc.digest) || !store.held_layer_blobs(diff_id).map_err(store_err)?.is_empty())
            }
            _ => Ok(guard(&self.store).has_blob(&desc.digest)),
        }
    }

    async fn put_blob(&self, desc: &Descriptor, role: &BlobRole, mut data: BlobStream) -> Result<()> {
        self.locked().await?;
        let what = format!("blob {}", desc.digest);
        match role {
            BlobRole::Config => {
                let _pending = Pending(self);
                let mut bytes = Vec::new();
                (&mut data)
                    .take(MAX_DOCUMENT_SIZE + 1)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| from_io(e, &what))?;
                let c = ImageConfig::parse(&bytes)
                    .map_err(|e| TransferError::Invalid(format!("config {}: {e}", desc.digest)))?;
                self.config_arrived(&desc.digest, c, Some(bytes));
                Ok(())
            }
            BlobRole::Layer {
                index,
                diff_id: Some(diff_id),
            } => self.put_layer(desc, *index, diff_id, data, None).await,
            BlobRole::Layer { diff_id: None, .. } => Err(TransferError::Invalid(format!(
                "layer {}: the image config lists no diff ID for it; the store cannot take the image",
                desc.digest
            ))),
            BlobRole::Other => {
                let mut w = guard(&self.store)
                    .blob_writer_with(desc.digest.algorithm())
                    .map_err(store_err)?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = data.read(&mut buf).await.map_err(|e| from_io(e, &what))?;
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut w, &buf[..n]).map_err(|e| TransferError::io(&what, e))?;
                }
                let (digest, _, tmp) = w.finish_digest().map_err(store_err)?;
                // The verifier checked the stream already; this is the store's own check.
                if digest != desc.digest {
                    return Err(TransferError::DigestMismatch {
                        digest: desc.digest.clone(),
                        actual: digest,
                        size: desc.size,
                    });
                }
                guard(&self.state).others.push((digest, tmp));
                Ok(())
            }
        }
    }

    /// A layer from a source's file (an unpacked archive's) is checked
    /// from the verified stream as any other, and the file itself, linked
    /// under `tmp/` before the first byte is read, is named at `finish`
    /// instead of a copy of it.
    async fn put_blob_file(&self, desc: &Descriptor, role: &BlobRole, data: BlobStream, file: &Path) -> Result<()> {
        match role {
            BlobRole::Layer {
                index,
                diff_id: Some(diff_id),
            } => {
                self.locked().await?;
                self.put_layer(desc, *index, diff_id, data, Some(file)).await
            }
            _ => self.put_blob(desc, role, data).await,
        }
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        guard(&self.state).documents.insert(desc.digest.clone(), bytes.to_vec());
        Ok(())
    }

    /// The store records which platforms of an index it holds.
    fn keeps_partial_indexes(&self) -> bool {
        true
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        self.locked().await?;
        let mut st = guard(&self.state);
        self.register(&mut st, root, names)?;
        st.finished = true;
        drop(st);
        // Registered: the held forms are recorded for the images now.
        guard(&self.lock).take();
        Ok(())
    }
}

/// The annotation naming the manifest an attestation manifest describes.
const ATTESTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// An index entry that is an attestation manifest (BuildKit's
/// `vnd.docker.reference.type: attestation-manifest`, platform unknown/unknown).
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

impl StoreLocation {
    fn read_manifest_desc(&self, reference: &str) -> Result<Descriptor> {
        let mut store = guard(&self.store);
        let resolved = strata_image::resolve(&store, reference).map_err(|e| match e {
            strata_image::Error::NoSuchImage(_) => TransferError::NotFound {
                what: format!("image {reference:?} in the store {}", self.root.display()),
            },
            e => store_err(e),
        })?;
        *guard(&self.mounts) = crate::distributable::mount_candidates(&resolved.image);
        if let Some(index) = &resolved.index {
            return self.index_desc(&mut store, index);
        }
        self.image_manifest_desc(&mut store, &resolved.image, &resolved.manifest)
    }

    /// A multi-platform image as the store serves it: the stored index when
    /// it holds every platform and serves each manifest unchanged; else an
    /// index of the platforms it holds, each as served (see
    /// [`StoreLocation::image_manifest_desc`]), in the index's order.
    fn index_desc(&self, store: &mut Store, index: &Digest) -> Result<Descriptor> {
        let bytes = store.read_blob(index, MAX_DOCUMENT_SIZE).map_err(store_err)?;
        let (mt, mut ix) = match Document::parse(&bytes, None) {
            Ok(Document::Index(ix)) => (
                ix.media_type.clone().unwrap_or_else(|| media::OCI_INDEX.to_string()),
                ix,
            ),
            _ => return Err(TransferError::Invalid(format!("stored index {index} is not an index"))),
        };
        let members = store.index_members(index).map_err(store_err)?;
        let mut changed = false;
        let mut kept = Vec::new();
        let mut attestations = Vec::new();
        for d in &ix.manifests {
            let member = members.iter().find(|m| m.manifest.digest == d.digest);
            if member.is_some_and(|m| m.image.is_none() && is_attestation(d)) && store.has_blob(&d.digest) {
                // Served as stored, when the manifest it describes is.
                attestations.push(d.clone());
                continue;
            }
            let Some(image) = member.and_then(|m| m.image.as_ref()) else {
                // Not held here (another platform, or an attestation).
                changed = true;
                continue;
            };
            let record = store
                .image(image)
                .map_err(store_err)?
                .ok_or_else(|| TransferError::Invalid(format!("image {image} of index {index} is gone")))?;
            let served = self.image_manifest_desc(store, &record, &d.digest)?;
            if served.digest != d.digest {
                changed = true;
            }
            let mut entry = d.clone();
            entry.digest = served.digest;
            entry.size = served.size;
            entry.media_type = served.media_type;
            kept.push(entry);
        }
        if kept.is_empty() {
            return Err(TransferError::NotFound {
                what: format!("any platform of index {index} in the store {}", self.root.display()),
            });
        }
        let before = ix.manifests.len();
        let described = |a: &Descriptor| {
            let of = a.annotations.as_ref().and_then(|x| x.get(ATTESTATION_REFERENCE_DIGEST));
            kept.iter().any(|k| of.is_some_and(|of| *of == k.digest.to_string()))
        };
        let attestations: Vec<Descriptor> = attestations.into_iter().filter(|a| described(a)).collect();
        if !changed && kept.len() + attestations.len() == before {
            return Ok(Descriptor::new(&mt, index.clone(), bytes.len() as u64));
        }
        // Each attestation after the manifests, as BuildKit orders them.
        kept.extend(attestations);
        ix.manifests = kept;
        let bytes = serde_json::to_vec(&ix).map_err(|e| TransferError::Invalid(e.to_string()))?;
        let d = Digest::sha256_of(&bytes);
        guard(&self.rewritten).insert(d.clone(), bytes.clone());
        Ok(Descriptor::new(&mt, d, bytes.len() as u64))
    }

    /// One image's manifest as the store serves it: as stored, with the
    /// layer forms the store holds, or (for a registry) compressed.
    fn image_manifest_desc(&self, store: &mut Store, image: &ImageRecord, manifest: &Digest) -> Result<Descriptor> {
        if let Some(want) = &self.distributable {
            let (d, mt, bytes, _) = crate::distributable::manifest(store, image, manifest, want, &self.progress)?;
            let desc = Descriptor::new(&mt, d.clone(), bytes.len() as u64);
            guard(&self.rewritten).insert(d, bytes);
            return Ok(desc);
        }
        let bytes = store.read_blob(manifest, MAX_DOCUMENT_SIZE).map_err(store_err)?;
        let mt = image
            .manifests
            .iter()
            .find(|m| m.0 == *manifest)
            .map(|m| m.1.clone())
            .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
        let parsed = match Document::parse(&bytes, Some(&mt)) {
            Ok(Document::Manifest(m)) => m,
            Ok(Document::Index(_)) => {
                return Err(TransferError::Invalid(format!(
                    "stored manifest {} is an index",
                    manifest
                )));
            }
            Err(e) => {
                return Err(TransferError::Invalid(format!("stored manifest {}: {e}", manifest)));
            }
        };
        match strata_image::held_forms(store, &image.diff_ids, &parsed).map_err(store_err)? {
            None => Ok(Descriptor::new(&mt, manifest.clone(), bytes.len() as u64)),
            Some(rewritten) => {
                let bytes = serde_json::to_vec(&rewritten).map_err(|e| TransferError::Invalid(e.to_string()))?;
                let d = Digest::sha256_of(&bytes);
                let desc = Descriptor::new(media::OCI_MANIFEST, d.clone(), bytes.len() as u64);
                guard(&self.rewritten).insert(d, bytes);
                Ok(desc)
            }
        }
    }
}

impl Source for StoreLocation {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        let Some(reference) = reference else {
            return Err(TransferError::Invalid(
                "the store holds many images: name one (strata:NAME or an image ID)".into(),
            ));
        };
        // Shared from here until this location goes: no rmi or prune
        // deletes a blob under the reads (found by the concurrency
        // campaign: a save racing an rmi lost a blob midway).
        self.locked().await?;
        self.read_manifest_desc(reference)
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if let Some(b) = guard(&self.rewritten).get(&desc.digest) {
            return Ok(b.clone());
        }
        // One byte over the limit, so that the caller reports the size.
        guard(&self.store)
            .read_blob(&desc.digest, MAX_DOCUMENT_SIZE + 1)
            .map_err(|e| match e {
                strata_store::Error::BlobMissing(_) => TransferError::NotFound {
                    what: format!("blob {} in the store {}", desc.digest, self.root.display()),
                },
                e => store_err(e),
            })
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let f = guard(&self.store).open_blob(&desc.digest).map_err(|e| match e {
            strata_store::Error::BlobMissing(_) => TransferError::NotFound {
                what: format!("blob {} in the store {}", desc.digest, self.root.display()),
            },
            e => store_err(e),
        })?;
        Ok(crate::read_ahead::stream(f))
    }

    /// A blob file of the store: written once (verified, renamed into
    /// place) and never written again, so a sink may copy or link it.
    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let path = guard(&self.store).blob_path(&desc.digest);
        path.is_file().then_some(path)
    }

    /// Blobs are checked against their digests as they are written and
    /// renamed into place whole; `system check` verifies them again.
    fn vouches_for_digests(&self) -> bool {
        true
    }

    fn mount_from(&self) -> Vec<MountFrom> {
        guard(&self.mounts).clone()
    }
}
