//! The walk: root → (index → chosen manifests) → config and layers, blobs
//! first, then the manifests that refer to them, then the index, then names.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use strata_oci::{Descriptor, Digest, Document, ImageConfig, Index, Manifest, Platform, media};

use crate::verify::{VerifyingReader, read_document_verified};
use crate::{BlobRole, Result, Sink, Source, TransferError};

/// Which images of an index to copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The host's platform only: the image, without the index (as `docker pull`, `skopeo copy`).
    #[default]
    Host,
    /// These platforms: one is copied as the image alone; several as an
    /// index of just them (a new index, so a new digest).
    Platforms(Vec<Platform>),
    /// The whole index, byte for byte, with every image in it.
    All,
}

#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub platforms: PlatformChoice,
    /// Blobs moved at once.
    pub concurrency: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platforms: PlatformChoice::Host,
            concurrency: 4,
        }
    }
}

/// What a copy did, for the caller to show (pull and push turn these into
/// Docker's per-layer lines).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A blob the copy will look at, in walk order (every config, then each
    /// image's layers in manifest order), sent for all before any is looked at.
    Planned { digest: Digest, size: u64, layer: bool },
    /// The sink had the blob (sent in walk order, before any [`Event::Queued`]).
    Skipped { digest: Digest },
    /// The sink lacks the blob: it is mounted or copied next (sent for every
    /// such blob, in walk order, before any of them moves).
    Queued { digest: Digest, size: u64 },
    /// The blob was mounted from another repository of the same registry.
    Mounted { digest: Digest, from: String },
    /// The blob's bytes are moving.
    Copying { digest: Digest, size: u64 },
    /// Bytes of a blob so far, counted as they stream (at most one event per
    /// [`BYTES_EVENT_STEP`] bytes, and one at the end).
    Bytes {
        digest: Digest,
        phase: Phase,
        current: u64,
        total: u64,
    },
    /// Every byte arrived and matched its digest; the sink is finishing the
    /// blob (the store unpacks a layer alongside the transfer).
    Received { digest: Digest },
    /// The blob is in the sink.
    Copied { digest: Digest, size: u64 },
    /// A location's transfer failed and is tried again (resuming where it broke).
    Retrying {
        digest: Digest,
        attempt: u32,
        error: String,
    },
    /// A source is making a compressed form of a plain layer (once: the
    /// store remembers it), named by the plain layer's digest.
    Compressing { digest: Digest },
    /// A manifest or index was written.
    Document { digest: Digest, media_type: String },
}

/// Which bytes an [`Event::Bytes`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Taken by the sink from the verified stream.
    Transfer,
    /// Compressed bytes the store's unpacker has consumed.
    Unpack,
}

/// How often a blob is moved in all when the sink's error is transient
/// ([`TransferError::is_transient`]); a registry source's download, too
/// (5: dockerd's `max-download-attempts` and `max-upload-attempts`).
pub(crate) const ATTEMPTS: u32 = 5;

/// How many bytes pass between two [`Event::Bytes`] of one blob.
pub const BYTES_EVENT_STEP: u64 = 256 * 1024;

/// Counts bytes of one blob and sends [`Event::Bytes`] now and then.
pub(crate) struct ByteCounter {
    progress: Progress,
    digest: Digest,
    phase: Phase,
    total: u64,
    current: u64,
    last: u64,
}

impl ByteCounter {
    pub(crate) fn new(progress: Progress, digest: Digest, phase: Phase, total: u64) -> ByteCounter {
        ByteCounter {
            progress,
            digest,
            phase,
            total,
            current: 0,
            last: 0,
        }
    }

    /// `n` more bytes went by.
    pub(crate) fn add(&mut self, n: u64) {
        self.current += n;
        if self.current - self.last >= BYTES_EVENT_STEP || (self.current >= self.total && self.last < self.total) {
            self.last = self.current;
            (self.progress)(Event::Bytes {
                digest: self.digest.clone(),
                phase: self.phase,
                current: self.current,
                total: self.total,
            });
        }
    }
}

/// A verified stream that counts what the sink takes and says when it ended cleanly.
struct Counted<R> {
    inner: R,
    counter: ByteCounter,
    ended: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &r {
            let n = buf.filled().len() - before;
            if n > 0 {
                this.counter.add(n as u64);
            } else if buf.remaining() > 0 && !this.ended {
                // The verifier lets the end through only when the bytes matched.
                this.ended = true;
                (this.counter.progress)(Event::Received {
                    digest: this.counter.digest.clone(),
                });
            }
        }
        r
    }
}

/// Receives events, possibly from several tasks at once.
pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// A progress that drops everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

/// What moved.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    /// The root written to the sink (the source's root, or the chosen image of an index).
    pub root: Descriptor,
    /// Every image manifest copied, with its config digest (the image ID).
    pub images: Vec<(Descriptor, Digest)>,
    pub blobs_copied: usize,
    pub bytes_copied: u64,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
}

struct Image {
    desc: Descriptor,
    bytes: Vec<u8>,
    manifest: Manifest,
    config: ImageConfig,
    config_bytes: Vec<u8>,
}

/// Copies the image or index `reference` names in `src` to `dst`, naming it
/// `names` there. Nothing is named in the sink unless every blob and
/// document arrived verified.
pub async fn copy<S: Source, D: Sink>(
    src: &S,
    dst: &D,
    reference: Option<&str>,
    names: &[String],
    options: &CopyOptions,
    progress: Progress,
) -> Result<CopyReport> {
    let root = src.resolve(reference).await?;
    let root_bytes = read_document_verified(&root, src.read_document(&root).await?)?;
    let (root, index, images) = match Document::parse(&root_bytes, Some(&root.media_type))
        .map_err(|e| TransferError::Invalid(format!("document {}: {e}", root.digest)))?
    {
        Document::Manifest(m) => (root.clone(), None, vec![(root, root_bytes, m)]),
        Document::Index(ix) => {
            choose(
                src,
                root,
                root_bytes,
                ix,
                &options.platforms,
                dst.keeps_partial_indexes(),
            )
            .await?
        }
    };
    let mut loaded = Vec::new();
    for (desc, bytes, manifest) in images {
        let config_bytes = read_document_verified(&manifest.config, src.read_document(&manifest.config).await?)?;
        let config = ImageConfig::parse(&config_bytes)
            .map_err(|e| TransferError::Invalid(format!("config {}: {e}", manifest.config.digest)))?;
        loaded.push(Image {
            desc,
            bytes,
            manifest,
            config,
            config_bytes,
        });
    }

    // Every blob once (images of an index share layers), configs first.
    let mut seen = HashSet::new();
    let mut blobs: Vec<(Descriptor, BlobRole)> = Vec::new();
    for img in &loaded {
        if seen.insert(img.manifest.config.digest.clone()) {
            blobs.push((img.manifest.config.clone(), BlobRole::Config));
        }
    }
    for img in &loaded {
        let diff_ids = &img.config.rootfs.diff_ids;
        for (i, l) in img.manifest.layers.iter().enumerate() {
            if l.urls.as_ref().is_some_and(|u| !u.is_empty()) || l.media_type == media::DOCKER_FOREIGN_LAYER_GZIP {
                continue; // foreign layers stay where they are
            }
            if seen.insert(l.digest.clone()) {
                let diff_id = diff_ids.get(i).cloned();
                blobs.push((l.clone(), BlobRole::Layer { index: i, diff_id }));
            }
        }
    }
    let configs: std::collections::HashMap<Digest, Vec<u8>> = loaded
        .iter()
        .map(|i| (i.manifest.config.digest.clone(), i.config_bytes.clone()))
        .collect();
    for (desc, role) in &blobs {
        progress(Event::Planned {
            digest: desc.digest.clone(),
            size: desc.size,
            layer: matches!(role, BlobRole::Layer { .. }),
        });
    }
    // What the sink has, asked in walk order (a sink may rely on configs
    // being asked first), then told in that order.
    let present: Vec<bool> = stream::iter(blobs.iter().map(|(desc, role)| dst.has_blob(desc, role)))
        .buffered(options.concurrency.max(1))
        .try_collect()
        .await?;
    let mut outcomes = Vec::new();
    let mut missing = Vec::new();
    for ((desc, role), present) in blobs.into_iter().zip(present) {
        if present {
            progress(Event::Skipped {
                digest: desc.digest.clone(),
            });
            outcomes.push(Moved::Skipped);
        } else {
            missing.push((desc, role));
        }
    }
    for (desc, _) in &missing {
        progress(Event::Queued {
            digest: desc.digest.clone(),
            size: desc.size,
        });
    }
    let mounts = src.mount_from();
    let moved: Vec<Moved> = stream::iter(missing.into_iter().map(|(desc, role)| {
        let progress = progress.clone();
        let mounts = &mounts;
        let config = configs.get(&desc.digest).cloned();
        async move {
            for from in mounts {
                if dst.mount_blob(&desc, from).await? {
                    progress(Event::Mounted {
                        digest: desc.digest.clone(),
                        from: from.repository.clone(),
                    });
                    return Ok(Moved::Mounted);
                }
            }
            let mut attempt = 1;
            loop {
                progress(Event::Copying {
                    digest: desc.digest.clone(),
                    size: desc.size,
                });
                let data: crate::BlobStream = match &config {
                    // Read (and verified) already: no second trip to the source.
                    Some(bytes) => Box::pin(std::io::Cursor::new(bytes.clone())),
                    None => src.open_blob(&desc).await?,
                };
                let trusted = config.is_none() && src.vouches_for_digests();
                let counted = Counted {
                    inner: if trusted {
                        VerifyingReader::size_only(data, &desc)
                    } else {
                        VerifyingReader::new(data, &desc)
                    },
                    counter: ByteCounter::new(progress.clone(), desc.digest.clone(), Phase::Transfer, desc.size),
                    ended: false,
                };
                let put = match config.is_none().then(|| src.blob_file(&desc)).flatten() {
                    Some(file) => dst.put_blob_file(&desc, &role, Box::pin(counted), &file).await,
                    None => dst.put_blob(&desc, &role, Box::pin(counted)).await,
                };
                match put {
                    Ok(()) => break,
                    // The sink kept nothing: the blob moves again, from its start.
                    Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                        attempt += 1;
                        progress(Event::Retrying {
                            digest: desc.digest.clone(),
                            attempt,
                            error: e.to_string(),
                        });
                        tokio::time::sleep(std::time::Duration::from_millis(300 * u64::from(attempt - 1))).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            progress(Event::Copied {
                digest: desc.digest.clone(),
                size: desc.size,
            });
            Ok::<_, TransferError>(Moved::Copied(desc.size))
        }
    }))
    .buffer_unordered(options.concurrency.max(1))
    // Every transfer runs to its end, even after one failed: a sink cleans
    // up what each left (an unpacked layer) only once none is still running.
    .collect::<Vec<Result<Moved>>>()
    .await
    .into_iter()
    .collect::<Result<_>>()?;
    outcomes.extend(moved);

    for img in &loaded {
        dst.put_document(&img.desc, &img.bytes).await?;
        progress(Event::Document {
            digest: img.desc.digest.clone(),
            media_type: img.desc.media_type.clone(),
        });
    }
    if let Some((desc, bytes)) = &index {
        dst.put_document(desc, bytes).await?;
        progress(Event::Document {
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        });
    }
    dst.finish(&root, names).await?;
    let mut report = CopyReport {
        root,
        images: loaded
            .iter()
            .map(|i| (i.desc.clone(), i.manifest.config.digest.clone()))
            .collect(),
        blobs_copied: 0,
        bytes_copied: 0,
        blobs_skipped: 0,
        blobs_mounted: 0,
    };
    for o in outcomes {
        match o {
            Moved::Skipped => report.blobs_skipped += 1,
            Moved::Mounted => report.blobs_mounted += 1,
            Moved::Copied(n) => {
                report.blobs_copied += 1;
                report.bytes_copied += n;
            }
        }
    }
    Ok(report)
}

enum Moved {
    Skipped,
    Mounted,
    Copied(u64),
}

type Chosen = (
    Descriptor,
    Option<(Descriptor, Vec<u8>)>,
    Vec<(Descriptor, Vec<u8>, Manifest)>,
);

/// The index's image for `wanted` (the first that matches), or an error
/// listing the platforms it has.
pub(crate) fn platform_manifest<'a>(index: &'a Index, wanted: &Platform) -> Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| media::is_manifest(&d.media_type))
        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .ok_or_else(|| TransferError::NoMatchingPlatform {
            wanted: wanted.to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The images of an index to copy, the index to write (if any) and the root.
async fn choose<S: Source>(
    src: &S,
    root: Descriptor,
    root_bytes: Vec<u8>,
    index: Index,
    choice: &PlatformChoice,
    partial: bool,
) -> Result<Chosen> {
    let wanted: Vec<Platform> = match choice {
        PlatformChoice::Host => vec![Platform::host()],
        PlatformChoice::Platforms(p) => p.clone(),
        PlatformChoice::All => Vec::new(),
    };
    let picked: Vec<Descriptor> = if *choice == PlatformChoice::All {
        index
            .manifests
            .iter()
            .filter(|d| media::is_manifest(&d.media_type))
            // A sink that keeps an index without all of it (the store)
            // takes the images, not what is attached to them (BuildKit's
            // attestation manifests, platform unknown/unknown).
            .filter(|d| !partial || d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
            .cloned()
            .collect()
    } else {
        let mut picked = Vec::new();
        for w in &wanted {
            picked.push(platform_manifest(&index, w)?.clone());
        }
        picked
    };
    let mut images = Vec::new();
    for d in picked {
        let bytes = read_document_verified(&d, src.read_document(&d).await?)?;
        match Document::parse(&bytes, Some(&d.media_type)) {
            Ok(Document::Manifest(m)) => images.push((d, bytes, m)),
            Ok(Document::Index(_)) => {
                return Err(TransferError::Invalid(format!(
                    "{}: nested indexes are not supported",
                    d.digest
                )));
            }
            Err(e) => return Err(TransferError::Invalid(format!("manifest {}: {e}", d.digest))),
        }
    }
    match choice {
        PlatformChoice::All => Ok((root.clone(), Some((root, root_bytes)), images)),
        _ if images.len() == 1 => {
            let only = images[0].0.clone();
            Ok((only, None, images))
        }
        // The store keeps the index as it is and records which of its
        // platforms it holds.
        _ if partial => Ok((root.clone(), Some((root, root_bytes)), images)),
        _ => {
            // An index of just the chosen images.
            let mut sub = index.clone();
            sub.manifests = images.iter().map(|(d, _, _)| d.clone()).collect();
            let bytes = serde_json::to_vec(&sub).map_err(|e| TransferError::Invalid(e.to_string()))?;
            let mt = sub.media_type.clone().unwrap_or_else(|| media::OCI_INDEX.to_string());
            let desc = Descriptor::new(&mt, Digest::sha256_of(&bytes), bytes.len() as u64);
            Ok((desc.clone(), Some((desc, bytes)), images))
        }
    }
}
