//! strata-sbom: the packages in an image, from its layer tars, as SPDX 2.3,
//! CycloneDX 1.5, strata's JSON or a table (`strata sbom`).
//!
//! Owns the per-layer file index and its merged view ([`index`], which
//! `image analyze` uses too), the package cataloguers (dpkg, apk, rpm,
//! Python, npm, Cargo and cargo-auditable, Go build info, Java archives,
//! RubyGems, os-release) and the SBOM documents.
//!
//! Reads each layer once, as a stream of tar entries, and keeps only the
//! contents of files a cataloguer wants, each up to a size limit. Never
//! executes or loads image content (binaries are parsed as bytes), never
//! follows a symlink outside the layer index (links are entries, resolved
//! only inside the merged view and only a bounded number of hops), and
//! never touches the host filesystem except one temporary file per rpm
//! database (SQLite needs a file). Malformed content is a [`Warning`] naming
//! the file, never a panic or an error; only an unreadable layer stream is
//! an [`SbomError`]. No store, no registry, no clock beyond `created`.

mod apk;
mod assemble;
mod cargo;
mod cyclonedx;
mod distro;
mod dpkg;
mod elf;
mod gem;
mod golang;
pub mod index;
mod java;
mod license;
mod license_ids;
mod model;
mod npm;
mod output;
mod purl;
mod python;
mod rpm;
mod scan;
mod spdx;

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub use index::{Entry, EntryKind, LayerIndex, MergedEntry, MergedIndex};
pub use model::{Distro, ImageInfo, LayerInfo, Package, PackageType, Sbom, SourcePackage, Warning};
pub use scan::{LayerScan, index_layer, scan_layer};

/// One layer: its uncompressed tar stream and labels.
pub struct LayerInput<R> {
    pub reader: R,
    /// The layer's digest as the image names it (diff ID or blob digest).
    pub digest: Option<String>,
    /// The history step that made it (`created_by`: the Dockerfile line).
    pub created_by: Option<String>,
}

/// Limits and labels for [`catalog`].
#[derive(Clone, Debug)]
pub struct Options {
    /// What the documents say they describe.
    pub image: ImageInfo,
    /// Layers scanned at once; 0 = the machine's parallelism.
    pub threads: usize,
    /// Largest package metadata file read (status, METADATA, package.json, …).
    pub max_metadata_size: u64,
    /// Largest rpm database read (copied to a temporary file).
    pub max_database_size: u64,
    /// Largest executable examined for Go build info or a cargo-auditable section.
    pub max_binary_size: u64,
    /// Largest Java archive opened.
    pub max_archive_size: u64,
    /// Bytes decompressed from one top-level Java archive, nested ones included.
    pub max_archive_expanded: u64,
    /// Java archives inside Java archives: how deep to look.
    pub max_archive_depth: usize,
    /// Creation time (Unix seconds). `None`: `SOURCE_DATE_EPOCH`, else now.
    pub created: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            image: ImageInfo::default(),
            threads: 0,
            max_metadata_size: 64 << 20,
            max_database_size: 1 << 30,
            max_binary_size: 512 << 20,
            max_archive_size: 512 << 20,
            max_archive_expanded: 512 << 20,
            max_archive_depth: 4,
            created: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("reading layer {index}{}: {source}", digest.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Layer {
        index: usize,
        digest: Option<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("scanning layer {index} failed unexpectedly (a bug in strata-sbom): {message}")]
    Internal { index: usize, message: String },
}

/// Catalogues the packages of an image from its layers, bottom first.
///
/// Layers are read in parallel (`opts.threads`), each once; the iterator is
/// advanced only as workers become free, so readers may be opened lazily.
pub fn catalog<I, R>(layers: I, opts: &Options) -> Result<Sbom, SbomError>
where
    I: IntoIterator<Item = LayerInput<R>>,
    I::IntoIter: Send,
    R: Read + Send,
{
    let scans = scan_layers(layers, opts)?;
    Ok(assemble::assemble(scans, opts))
}

/// Scans layers in parallel: the file index and the cataloguers' findings
/// of each. [`catalog`] is this plus [`Sbom::from_scans`].
pub fn scan_layers<I, R>(layers: I, opts: &Options) -> Result<Vec<LayerScan>, SbomError>
where
    I: IntoIterator<Item = LayerInput<R>>,
    I::IntoIter: Send,
    R: Read + Send,
{
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let queue = Mutex::new((0usize, layers.into_iter()));
    let results: Mutex<Vec<(usize, Result<LayerScan, SbomError>)>> = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let work = || {
        loop {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            let (index, input) = {
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                let Some(input) = q.1.next() else { return };
                q.0 += 1;
                (q.0 - 1, input)
            };
            let digest = input.digest.clone();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scan_layer(input.reader, index, opts)
                    .map(|mut s| {
                        s.digest = input.digest;
                        s.created_by = input.created_by;
                        s
                    })
                    .map_err(|source| SbomError::Layer { index, digest, source })
            }))
            .unwrap_or_else(|p| {
                Err(SbomError::Internal {
                    index,
                    message: panic_message(&p),
                })
            });
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            results.lock().unwrap_or_else(|p| p.into_inner()).push((index, r));
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

impl Sbom {
    /// The SBOM of layers already scanned with [`scan_layers`] (bottom first).
    pub fn from_scans(scans: Vec<LayerScan>, opts: &Options) -> Sbom {
        assemble::assemble(scans, opts)
    }
}
