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

/// What a copy did, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The sink had the blob.
    Skipped { digest: Digest },
    /// The blob was mounted from another repository of the same registry.
    Mounted { digest: Digest, from: String },
    /// The blob's bytes are moving.
    Copying { digest: Digest, size: u64 },
    /// The blob is in the sink.
    Copied { digest: Digest, size: u64 },
    /// A manifest or index was written.
    Document { digest: Digest, media_type: String },
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
        Document::Index(ix) => choose(src, root, root_bytes, ix, &options.platforms).await?,
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
    let mount = src.mount_from();
    let outcomes: Vec<Moved> = stream::iter(blobs.into_iter().map(|(desc, role)| {
        let progress = progress.clone();
        let mount = mount.clone();
        let config = configs.get(&desc.digest).cloned();
        async move {
            if dst.has_blob(&desc, &role).await? {
                progress(Event::Skipped {
                    digest: desc.digest.clone(),
                });
                return Ok(Moved::Skipped);
            }
            if let Some(from) = &mount
                && dst.mount_blob(&desc, from).await?
            {
                progress(Event::Mounted {
                    digest: desc.digest.clone(),
                    from: from.repository.clone(),
                });
                return Ok(Moved::Mounted);
            }
            progress(Event::Copying {
                digest: desc.digest.clone(),
                size: desc.size,
            });
            let data: crate::BlobStream = match config {
                // Read (and verified) already: no second trip to the source.
                Some(bytes) => Box::pin(std::io::Cursor::new(bytes)),
                None => src.open_blob(&desc).await?,
            };
            dst.put_blob(&desc, &role, Box::pin(VerifyingReader::new(data, &desc)))
                .await?;
            progress(Event::Copied {
                digest: desc.digest.clone(),
                size: desc.size,
            });
            Ok::<_, TransferError>(Moved::Copied(desc.size))
        }
    }))
    .buffer_unordered(options.concurrency.max(1))
    .try_collect()
    .await?;

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

/// The images of an index to copy, the index to write (if any) and the root.
async fn choose<S: Source>(
    src: &S,
    root: Descriptor,
    root_bytes: Vec<u8>,
    index: Index,
    choice: &PlatformChoice,
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
            .cloned()
            .collect()
    } else {
        let mut picked = Vec::new();
        for w in &wanted {
            let found = index
                .manifests
                .iter()
                .filter(|d| media::is_manifest(&d.media_type))
                .find(|d| d.platform.as_ref().is_some_and(|p| w.matches(p)));
            match found {
                Some(d) => picked.push(d.clone()),
                None => {
                    let available: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                        .collect();
                    return Err(TransferError::NoMatchingPlatform {
                        wanted: w.to_string(),
                        available: available.join(", "),
                    });
                }
            }
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
