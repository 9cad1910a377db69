//! Blobs by digest under `blobs/<algorithm>/<hex>`: written to a temporary
//! file on the same filesystem, hashed while streaming, fsynced, renamed.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use strata_oci::{Algorithm, Digest, HashingWriter};

use crate::Store;
use crate::error::{Error, Result};

/// A blob being written. Dropping it without `commit` leaves nothing behind.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    root: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Ends writing without naming the blob: the caller checks the content
    /// (e.g. a whole archive) and then calls [`Store::commit_staged`].
    pub fn finish_digest(self) -> Result<(Digest, u64, tempfile::NamedTempFile)> {
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io("writing blob", e.into_error()))?;
        Ok((digest, size, tmp))
    }

    /// Checks the digest (when one is expected), fsyncs and names the blob.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let root = self.root.clone();
        let (digest, size, tmp) = self.finish_digest()?;
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(Error::DigestMismatch {
                expected: exp.clone(),
                actual: digest,
            });
        }
        commit_staged(&root, tmp, &digest, Synced::No)?;
        Ok((digest, size))
    }
}

/// Whether a staged file's data is already on disk (`sync_all` done).
#[derive(PartialEq)]
enum Synced {
    Yes,
    No,
}

/// Names a staged blob whose digest the caller computed while writing it,
/// after making its data durable unless that is done.
fn commit_staged(root: &std::path::Path, tmp: tempfile::NamedTempFile, digest: &Digest, synced: Synced) -> Result<()> {
    let dest = blob_path(root, digest);
    if dest.exists() {
        return Ok(());
    }
    if synced == Synced::No {
        tmp.as_file().sync_all().map_err(|e| Error::io("syncing blob", e))?;
    }
    // Said before it is named: a process killed before it references the
    // blob leaves it to the next one to remove (see `deletions`).
    crate::deletions::journal_named(root, digest)?;
    tmp.persist(&dest)
        .map_err(|e| Error::io(format!("naming blob {}", dest.display()), e.error))?;
    Ok(())
}

pub(crate) fn blob_path(root: &std::path::Path, d: &Digest) -> PathBuf {
    root.join("blobs").join(d.algorithm().name()).join(d.hex())
}

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        blob_path(&self.root, d)
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Size of a stored blob, if present.
    pub fn blob_size(&self, d: &Digest) -> Option<u64> {
        std::fs::metadata(self.blob_path(d)).ok().map(|m| m.len())
    }

    /// Starts writing a blob whose digest is computed as it is written.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        self.blob_writer_with(Algorithm::Sha256)
    }

    pub fn blob_writer_with(&self, algorithm: Algorithm) -> Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            // The pid in the name lets a later process see that the file's
            // maker is gone (see `leftovers`).
            .prefix(&format!("blob-{}-", std::process::id()))
            .tempfile_in(self.tmp_dir())
            .map_err(|e| Error::io("creating a temporary blob file", e))?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(256 * 1024, tmp), algorithm),
            root: self.root.clone(),
        })
    }

    /// Stores bytes, returning their sha256 digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::sha256_of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(|e| Error::io("writing blob", e))?;
        Ok(w.commit(Some(&d))?.0)
    }

    /// Streams `r` into the store, refusing it unless it hashes to `expected`
    /// (and has `expected_size` bytes, when given).
    pub fn put_blob_verified(&self, expected: &Digest, expected_size: Option<u64>, mut r: impl Read) -> Result<u64> {
        let mut w = self.blob_writer_with(expected.algorithm())?;
        let n = std::io::copy(&mut r, &mut w).map_err(|e| Error::io(format!("reading content of {expected}"), e))?;
        if let Some(s) = expected_size
            && s != n
        {
            return Err(Error::SizeMismatch {
                digest: expected.clone(),
                expected: s,
                actual: n,
            });
        }
        w.commit(Some(expected))?;
        Ok(n)
    }

    /// Names a blob staged with [`BlobWriter::finish_digest`]; `digest` must be
    /// the one that call returned.
    pub fn commit_staged(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
        commit_staged(&self.root, tmp, digest, Synced::No)
    }

    /// [`Store::commit_staged`] for a file the caller has already synced
    /// (`sync_all`), e.g. while other transfers were still running: naming
    /// it then costs no second device flush.
    pub fn commit_synced(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
        commit_staged(&self.root, tmp, digest, Synced::Yes)
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.blob_path(d)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::BlobMissing(d.clone())
            } else {
                Error::io(format!("opening blob {d}"), e)
            }
        })
    }

    /// Reads a whole blob of at most `max` bytes (documents, configs) and
    /// checks it against its digest.
    pub fn read_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        let f = self.open_blob(d)?;
        let len = f
            .metadata()
            .map_err(|e| Error::io(format!("reading blob {d}"), e))?
            .len();
        if len > max {
            return Err(Error::TooLarge {
                digest: d.clone(),
                size: len,
                max,
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("reading blob {d}"), e))?;
        let actual = Digest::of(d.algorithm(), &buf);
        if actual != *d {
            return Err(Error::DigestMismatch {
                expected: d.clone(),
                actual,
            });
        }
        Ok(buf)
    }

    /// Removes a blob file (caller holds the exclusive lock and has checked
    /// that nothing references it).
    pub(crate) fn remove_blob_file(&self, d: &Digest) {
        let _ = std::fs::remove_file(self.blob_path(d));
    }
}
