//! The store check (`strata system check`): blobs hash to their names, the
//! metadata's references resolve, nothing is orphaned and nothing is left
//! over from a process that was killed.
//!
//! Runs under the store's exclusive lock, so no import, load, build or
//! commit is midway (they hold the lock shared). What a process without the
//! lock writes (a pull's temporary blobs, a probe directory) carries its pid
//! in its name and counts as a leftover only once that process is gone.
//!
//! A manifest may name a layer blob the store does not hold, when the store
//! holds the same layer (diff ID) in another form: such a blob is neither
//! missing nor recorded, and is no problem.
//!
//! `repair` removes what is safe to remove: orphaned blobs, leftovers,
//! unpacked layers no image, container or build cache entry uses, and
//! unexpected files in `blobs/`. It never touches a corrupt blob or the
//! metadata: those need the image removed and pulled or built again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use strata_oci::{Algorithm, Digest, Document};
use strata_store::{LeftoverArea, Store, StoreLock};

use crate::error::{Error, Result};

/// How to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Compare blob sizes with the recorded ones instead of hashing them.
    pub quick: bool,
    /// Remove what can be removed safely (see the module documentation).
    pub repair: bool,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A blob whose content does not hash to its name, or has another size
    /// than recorded.
    CorruptBlob,
    /// A file under `blobs/` whose name is not a digest.
    UnexpectedBlobFile,
    /// A blob the metadata names that is not there.
    MissingBlob,
    /// A row that points at a row that is not there, or a manifest that
    /// disagrees with the image's records.
    Metadata,
    /// A blob nothing references.
    OrphanBlob,
    /// A temporary file or staging directory whose maker is gone.
    Leftover,
    /// An unpacked layer no image, container or build cache entry uses.
    StrayLayer,
    /// Something under `layers/` strata does not make.
    UnexpectedLayerEntry,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemKind,
    /// One line, naming the blob, row or path.
    pub message: String,
    /// `repair` removed it.
    pub repaired: bool,
    /// `repair` tried and failed (why).
    pub repair_error: Option<String>,
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub blobs: usize,
    pub images: usize,
    pub layer_dirs: usize,
}

impl CheckReport {
    /// Problems that are still there.
    pub fn remaining(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }

    pub fn repaired(&self) -> usize {
        self.problems.iter().filter(|p| p.repaired).count()
    }

    fn add(&mut self, kind: ProblemKind, message: String) {
        self.problems.push(Problem {
            kind,
            message,
            repaired: false,
            repair_error: None,
        });
    }

    fn add_repaired(&mut self, kind: ProblemKind, message: String, result: std::result::Result<(), String>) {
        let (repaired, repair_error) = match result {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        self.problems.push(Problem {
            kind,
            message,
            repaired,
            repair_error,
        });
    }
}

/// Checks (and with `repair`, tidies) the store. Takes the exclusive lock.
/// `others` are the owners of unpacked layers besides images (see
/// [`LayerUsers`]): a layer none of them uses is stray.
pub fn check(store: &Store, opts: &CheckOptions, others: &[&dyn LayerUsers]) -> Result<CheckReport> {
    // A read-only store cannot change under the check: shared is enough
    // (and exclusive cannot be taken there); repairing it cannot be done.
    let _lock = match store.is_read_only() && !opts.repair {
        true => StoreLock::shared(store.root())?,
        false => {
            store.check_writable("repair it")?;
            StoreLock::exclusive(store.root())?
        }
    };
    let mut report = CheckReport::default();
    let root = store.root().to_path_buf();
    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();

    // Leftovers first: a staging directory is not a stray layer.
    for e in store.work_entries() {
        if e.alive {
            continue;
        }
        let what = match (e.area, std::fs::symlink_metadata(&e.path).map(|m| m.is_dir())) {
            (LeftoverArea::Tmp, Ok(true)) => "leftover temporary directory",
            (LeftoverArea::Tmp, _) => "leftover temporary file",
            (LeftoverArea::Layers, _) => "leftover layer staging directory",
            (LeftoverArea::Containers, _) => "leftover snapshot staging directory",
        };
        let why = match e.pid {
            Some(pid) => format!("process {pid}, which made it, is gone"),
            None => "no writer holds the store lock".to_string(),
        };
        let msg = format!("{}: {what} ({why})", rel(&e.path));
        if opts.repair {
            let r = strata_store::remove_work_entry(&e.path).map_err(|e| e.to_string());
            report.add_repaired(ProblemKind::Leftover, msg, r);
        } else {
            report.add(ProblemKind::Leftover, msg);
        }
    }

    // What the metadata references.
    let (refs, bad) = store.blob_references()?;
    for b in bad {
        report.add(ProblemKind::Metadata, b);
    }
    for m in store.dangling_rows()? {
        report.add(ProblemKind::Metadata, m);
    }
    let mut sizes: BTreeMap<Digest, (u64, String)> = BTreeMap::new();
    let mut referenced: BTreeSet<Digest> = BTreeSet::new();
    for r in &refs {
        referenced.insert(r.digest.clone());
        if let Some(s) = r.size {
            sizes.entry(r.digest.clone()).or_insert((s, r.what.clone()));
        }
        if !store.has_blob(&r.digest) {
            report.add(
                ProblemKind::MissingBlob,
                format!("blob {} ({}) is missing", r.digest, r.what),
            );
        }
    }

    // Every blob file: named by a digest, hashing to it, referenced.
    let mut corrupt: BTreeSet<Digest> = BTreeSet::new();
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let dir = root.join("blobs").join(alg.name());
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
            let digest = match Digest::parse(&format!("{}:{name}", alg.name())) {
                Ok(d) if is_file => d,
                _ => {
                    let msg = format!("{}: not a blob (the name is not a {} digest)", rel(&path), alg.name());
                    if opts.repair {
                        let r = strata_store::remove_work_entry(&path).map_err(|e| e.to_string());
                        report.add_repaired(ProblemKind::UnexpectedBlobFile, msg, r);
                    } else {
                        report.add(ProblemKind::UnexpectedBlobFile, msg);
                    }
                    continue;
                }
            };
            report.blobs += 1;
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if let Some((want, what)) = sizes.get(&digest)
                && *want != len
            {
                corrupt.insert(digest.clone());
                report.add(
                    ProblemKind::CorruptBlob,
                    format!("blob {digest} has {len} bytes, but {what} records {want}"),
                );
            } else if !opts.quick {
                match hash_file(&path, alg) {
                    Ok(actual) if actual == digest => {}
                    Ok(actual) => {
                        corrupt.insert(digest.clone());
                        report.add(
                            ProblemKind::CorruptBlob,
                            format!("blob {digest} is corrupt: its content hashes to {actual}"),
                        );
                    }
                    Err(err) => {
                        corrupt.insert(digest.clone());
                        report.add(ProblemKind::CorruptBlob, format!("blob {digest} cannot be read: {err}"));
                    }
                }
            }
            if !referenced.contains(&digest) {
                let msg = format!("blob {digest} ({len} bytes) is orphaned: nothing references it");
                if opts.repair {
                    let r = store.remove_unreferenced_blob(&digest).map_err(|e| e.to_string());
                    report.add_repaired(ProblemKind::OrphanBlob, msg, r);
                } else {
                    report.add(ProblemKind::OrphanBlob, msg);
                }
            }
        }
    }

    // Each image's manifests agree with what the image records.
    let images = store.list_images()?;
    report.images = images.len();
    for img in &images {
        for (m, _, _) in &img.manifests {
            if corrupt.contains(m) || !store.has_blob(m) {
                continue;
            }
            let Ok(bytes) = store.read_blob(m, strata_oci::media::MAX_DOCUMENT_SIZE) else {
                continue;
            };
            match Document::parse(&bytes, None) {
                Ok(Document::Manifest(doc)) => {
                    if doc.config.digest != img.id {
                        report.add(
                            ProblemKind::Metadata,
                            format!(
                                "manifest {m} names config {}, but is recorded for image {}",
                                doc.config.digest, img.id
                            ),
                        );
                    }
                    if doc.layers.len() != img.diff_ids.len() {
                        report.add(
                            ProblemKind::Metadata,
                            format!(
                                "manifest {m} lists {} layers, but image {} has {}",
                                doc.layers.len(),
                                img.id,
                                img.diff_ids.len()
                            ),
                        );
                        continue;
                    }
                    for (i, (l, diff)) in doc.layers.iter().zip(&img.diff_ids).enumerate() {
                        let forms = store.layer_blobs(diff)?;
                        if forms.iter().any(|b| b.digest == l.digest) {
                            continue;
                        }
                        if store.has_blob(&l.digest) {
                            report.add(
                                ProblemKind::Metadata,
                                format!(
                                    "manifest {m}: layer {i} is blob {}, which is not recorded as a form of layer {diff}",
                                    l.digest
                                ),
                            );
                            continue;
                        }
                        // A blob the store does not hold: fine when the
                        // layer is held in another form (it was there
                        // already when the image was pulled).
                        if !forms.iter().any(|b| store.has_blob(&b.digest)) {
                            report.add(
                                ProblemKind::MissingBlob,
                                format!(
                                    "manifest {m}: layer {i} is blob {}, which is not in the store, and layer {diff} is held in no other form",
                                    l.digest
                                ),
                            );
                        }
                    }
                }
                // An index recorded with the image (the one its tag or
                // digest named) must list one of the image's manifests.
                Ok(Document::Index(idx)) => {
                    if !idx
                        .manifests
                        .iter()
                        .any(|d| img.manifests.iter().any(|(own, _, _)| *own == d.digest))
                    {
                        report.add(
                            ProblemKind::Metadata,
                            format!("index {m} of image {} lists none of the image's manifests", img.id),
                        );
                    }
                }
                Err(e) => report.add(ProblemKind::Metadata, format!("manifest {m}: {e}")),
            }
        }
    }

    // Unpacked layers: each one a chain some image, container or build
    // cache entry uses.
    let used = used_chains(store, others)?;
    let layers = store.layers_dir();
    if let Ok(rd) = std::fs::read_dir(&layers) {
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            // `.locks`, and the work entries judged above.
            if name == ".locks" || strata_store::is_work_name(LeftoverArea::Layers, &name) {
                continue;
            }
            if name.starts_with('.') {
                report.add(
                    ProblemKind::UnexpectedLayerEntry,
                    format!("{}: not made by strata", rel(&e.path())),
                );
                continue;
            }
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let chain = match Digest::parse(&format!("sha256:{name}")) {
                Ok(c) if is_dir => c,
                _ => {
                    report.add(
                        ProblemKind::UnexpectedLayerEntry,
                        format!("{}: not an unpacked layer (the name is not a chain ID)", rel(&e.path())),
                    );
                    continue;
                }
            };
            report.layer_dirs += 1;
            if used.contains(&chain) {
                continue;
            }
            let msg = format!(
                "{}: unpacked layer {chain} is not used by any image, container or build cache entry",
                rel(&e.path())
            );
            if opts.repair {
                let r = remove_layer_dir(&e.path(), &chain).map_err(|e| e.to_string());
                report.add_repaired(ProblemKind::StrayLayer, msg, r);
            } else {
                report.add(ProblemKind::StrayLayer, msg);
            }
        }
    }
    Ok(report)
}

fn hash_file(path: &Path, alg: Algorithm) -> std::io::Result<Digest> {
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut h = alg.hasher();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finish())
}

/// Chains in use: by images, by snapshots (containers and build steps, in
/// `containers/*/snapshot.json`) and by the builder's cache.
fn used_chains(store: &Store, others: &[&dyn LayerUsers]) -> Result<BTreeSet<Digest>> {
    let mut used = store.image_chain_ids()?;
    for o in others {
        used.extend(
            o.chains_in_use()
                .map_err(|e| Error::Invalid(format!("{}: {e}", o.what())))?,
        );
    }
    Ok(used)
}

/// Who besides images keeps unpacked layers (`layers/<chain-id>`):
/// container and build-step snapshots, the build cache. Each owner answers
/// from its own records; the check never reads them itself.
pub trait LayerUsers {
    /// What it is, for messages ("snapshots", "the build cache").
    fn what(&self) -> &str;
    /// The chain IDs of the unpacked layers it uses.
    fn chains_in_use(&self) -> std::result::Result<BTreeSet<Digest>, Box<dyn std::error::Error + Send + Sync>>;
}

fn remove_layer_dir(dir: &Path, chain: &Digest) -> Result<()> {
    strata_store::remove_layer_dir(dir, chain).map_err(|e| Error::io(format!("removing {}", dir.display()), e))
}
