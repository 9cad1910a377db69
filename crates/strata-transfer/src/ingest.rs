//! The one-pass layer pipeline of a store sink: the bytes of a layer go to
//! a staged blob under the store's `tmp/` and, in the same pass, through
//! the decompressor, the tar checks and the diff ID hash on a thread of
//! their own, unpacked into `layers/<chain-id>` when asked. Nothing is
//! named until the caller commits the staged blob.

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::{Buf, Bytes};
use strata_oci::Digest;
use strata_store::Store;

use crate::{Result, TransferError};

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

/// Why the check thread refused a layer (the snapshotter's, the layer
/// reader's or our own error).
type CheckError = Box<dyn std::error::Error + Send + Sync>;

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
    blob: Blob,
    tx: Option<SyncSender<Bytes>>,
    done: tokio::sync::oneshot::Receiver<std::result::Result<Checked, CheckError>>,
    cleanup: Option<strata_snapshot::Snapshotter>,
    /// Bytes written (a resumed download writes only the new ones).
    on_write: ByteCallback,
}

/// Where the layer's bytes go.
pub enum Blob {
    /// Written to a staged file.
    Write(std::io::BufWriter<tempfile::NamedTempFile>),
    /// There already: a source's file linked as a staged one (see
    /// [`adopt_file`]); the bytes are only checked.
    Adopted(tempfile::NamedTempFile),
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
        LayerIngest::start_with(Blob::Write(blob), diff_id, unpack, false, on_write, on_extract)
    }

    /// [`LayerIngest::start`] with `blob` written or [`Blob::Adopted`] (then
    /// what is written is checked, and unpacked, but not written again; the
    /// verdict also checks the file's size). `verified_plain`: the caller
    /// verifies every byte it writes against `diff_id` itself (a plain
    /// layer, whose blob digest is its diff ID, from a verified stream) and
    /// takes the verdict only when that passed: a check that does not
    /// unpack then checks the tar without hashing it again.
    pub fn start_with(
        blob: Blob,
        diff_id: &Digest,
        unpack: Option<(strata_snapshot::Snapshotter, Digest)>,
        verified_plain: bool,
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
                    let r = snap.ensure_layer(chain_id, |dir| -> std::result::Result<(), CheckError> {
                        let f = feed.take().expect("filled once");
                        let opts = strata_layer::UnpackOptions {
                            whiteouts: strata_layer::WhiteoutMode::Overlay,
                            ..Default::default()
                        };
                        let report = strata_layer::unpack(f, dir, &opts)?;
                        if report.diff_id != expected_diff {
                            return Err(TransferError::DiffIdMismatch {
                                expected: expected_diff.clone(),
                                actual: report.diff_id,
                            }
                            .into());
                        }
                        unpacked = Some(report);
                        Ok(())
                    });
                    if let Err(e) = r {
                        let _ = done_tx.send(Err(e.into()));
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
                    // Verified by the caller: the tar is checked, not hashed again.
                    (None, Some(f)) if verified_plain => strata_layer::check_plain(f)
                        .map(|diff_size| Checked {
                            diff_id: expected_diff.clone(),
                            diff_size,
                            implicit_dirs: Vec::new(),
                            unpacked: None,
                        })
                        .map_err(CheckError::from),
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
                            .map_err(CheckError::from)
                    }
                    (None, None) => {
                        Err(TransferError::Invalid("the layer was neither unpacked nor checked".into()).into())
                    }
                };
                let _ = done_tx.send(r);
            })
            .map_err(|e| TransferError::io("starting a layer check thread", e))?;
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
        let checked = done
            .await
            .map_err(|_| TransferError::Invalid("the layer check thread stopped".into()))?;
        let (fetched, layer) = match (fetched, checked) {
            // Wrong bytes explain a refusal better than what the check tripped on.
            (Err(e @ (TransferError::DigestMismatch { .. } | TransferError::SizeMismatch { .. })), Err(_)) => {
                return Err(e);
            }
            (Err(_), Err(source)) if refused => return Err(TransferError::LayerRefused { source }),
            (Err(e), Ok(l)) => {
                discard(&cleanup, &l);
                return Err(e);
            }
            (Err(e), _) => return Err(e),
            (Ok(_), Err(source)) => return Err(TransferError::LayerRefused { source }),
            (Ok(n), Ok(l)) => (n, l),
        };
        let verdict = async {
            if layer.diff_id != *diff_id {
                return Err(TransferError::Invalid(format!(
                    "the layer's content has diff ID {}, but the image config says {diff_id}; the image is corrupt",
                    layer.diff_id
                )));
            }
            if fetched != size {
                return Err(TransferError::Invalid(format!(
                    "received {fetched} bytes, expected {size}"
                )));
            }
            tokio::task::spawn_blocking(move || -> Result<tempfile::NamedTempFile> {
                let tmp = match blob {
                    Blob::Write(w) => w
                        .into_inner()
                        .map_err(|e| TransferError::io("writing the layer blob", e.into_error()))?,
                    Blob::Adopted(tmp) => tmp,
                };
                let stored = tmp
                    .as_file()
                    .metadata()
                    .map_err(|e| TransferError::io("reading the staged layer blob", e))?
                    .len();
                if stored != size {
                    return Err(TransferError::Invalid(format!(
                        "stored {stored} bytes, expected {size}"
                    )));
                }
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| TransferError::io("syncing the staged layer blob", e))?;
                Ok(tmp)
            })
            .await
            .map_err(|e| TransferError::Invalid(format!("syncing a layer blob stopped: {e}")))?
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
        if self.tx.is_none() {
            // Refused already: the rest is only read through (not stored) so
            // the verifier reaches the end and can say whether the bytes were
            // the wrong ones all along, the more precise error.
            (self.on_write)(buf.len() as u64);
            return Ok(());
        }
        if let Blob::Write(w) = &mut self.blob {
            w.write_all(buf)?;
        }
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
            }
        }
        (self.on_write)(buf.len() as u64);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.blob {
            Blob::Write(w) => w.flush(),
            Blob::Adopted(_) => Ok(()),
        }
    }
}

/// A staged file for a layer blob under the store's `tmp/` (named like the
/// store's own, with the pid, so that leftovers of a killed pull are swept).
pub fn staging_file(store: &Store) -> Result<std::io::BufWriter<tempfile::NamedTempFile>> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("blob-{}-", std::process::id()))
        .tempfile_in(store.tmp_dir())
        .map_err(|e| TransferError::io("creating a temporary blob file", e))?;
    Ok(std::io::BufWriter::with_capacity(256 * 1024, tmp))
}

/// A source's file (see [`crate::Source::blob_file`]) linked under the
/// store's `tmp/` as a staged blob (named like [`staging_file`]'s, so a
/// killed process's is swept), to be named once checked instead of written
/// again; `None` when it cannot be linked there (another filesystem).
pub fn adopt_file(store: &Store, file: &std::path::Path) -> Option<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!("blob-{}-", std::process::id()))
        .make_in(store.tmp_dir(), |p| {
            std::fs::hard_link(file, p)?;
            std::fs::File::open(p)
        })
        .ok()
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
