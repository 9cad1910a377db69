//! The tar an archive sink writes, blob by blob as the copy hands them over:
//! each verified stream goes straight into its tar entry (the header needs
//! only the size, which the descriptor gives), so every byte is written
//! once. Entries are written one at a time (an async mutex), the bytes of
//! one entry by a blocking task fed 1 MiB at a time, so that writing
//! overlaps the verifier's hashing.
//!
//! The tar is a temporary file: beside the target file (renamed onto it by
//! [`TarOut::commit`], after the metadata entries), or under the given
//! temporary directory for a stream target (copied into the stream at
//! commit). A blob whose stream fails is cut off the file again, so nothing
//! unverified stays in it; a copy that fails leaves the target as it was.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use strata_oci::{Descriptor, Digest};
use tokio::io::AsyncReadExt;

use crate::archive::Target;
use crate::oci_archive::{Out, blocking, parent_of, work_dir};
use crate::verify::from_io;
use crate::{BlobStream, Result, TransferError};

const BLOCK: u64 = 512;
/// Bytes handed to the writing task at once.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the verifier and the writing task.
const IN_FLIGHT: usize = 4;

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tar being written (see the module documentation).
pub(crate) struct TarOut {
    shown: PathBuf,
    spool: tokio::sync::Mutex<Spool>,
    /// Entries whole in the tar (blobs and documents), by digest.
    blobs: Mutex<HashSet<Digest>>,
    /// Manifests and indexes put so far (a docker-archive's `finish` reads them).
    documents: Mutex<HashMap<Digest, Vec<u8>>>,
    /// A stream target's spool directory (removed on drop).
    _dir: Option<tempfile::TempDir>,
}

struct Spool {
    /// `None` once committed.
    file: Option<tempfile::NamedTempFile>,
    /// The end of the last whole entry: where the next one goes.
    len: u64,
    /// Directory entries written (`blobs/`, `blobs/sha256/`).
    dirs: HashSet<String>,
}

fn header(name: &str, size: u64, kind: tar::EntryType) -> Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(0);
    h.set_entry_type(kind);
    h.set_path(name)
        .map_err(|e| TransferError::Invalid(format!("archive entry {name}: {e}")))?;
    h.set_cksum();
    Ok(*h.as_bytes())
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

pub(crate) fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

impl Spool {
    fn file(&self, shown: &Path) -> Result<&std::fs::File> {
        self.file
            .as_ref()
            .map(|f| f.as_file())
            .ok_or_else(|| TransferError::Invalid(format!("{} was written already", shown.display())))
    }

    /// Appends a small entry (a directory, a document) at the end.
    fn append(&mut self, shown: &Path, name: &str, bytes: &[u8], kind: tar::EntryType) -> Result<()> {
        let wr = |e: std::io::Error| TransferError::io(format!("writing {}", shown.display()), e);
        let f = self.file(shown)?;
        let mut entry = header(name, bytes.len() as u64, kind)?.to_vec();
        entry.extend_from_slice(bytes);
        entry.resize((BLOCK + padded(bytes.len() as u64)) as usize, 0);
        f.write_all_at(&entry, self.len).map_err(wr)?;
        self.len += entry.len() as u64;
        Ok(())
    }

    /// The directory entries a blob's name needs, once each.
    fn dirs_for(&mut self, shown: &Path, d: &Digest) -> Result<()> {
        for dir in ["blobs/".to_string(), format!("blobs/{}/", d.algorithm().name())] {
            if self.dirs.insert(dir.clone()) {
                self.append(shown, &dir, &[], tar::EntryType::Directory)?;
            }
        }
        Ok(())
    }
}

impl TarOut {
    /// A tar for `target` (checked to be writable), spooled beside the
    /// target file or, for a stream, under `tmp`.
    pub(crate) fn create(target: &Target, tmp: &Path) -> Result<TarOut> {
        let shown = target.shown();
        let (file, dir) = match target {
            Target::File(path) => {
                let parent = parent_of(path);
                if !parent.is_dir() {
                    return Err(TransferError::NotFound {
                        what: format!("directory {} (for {})", parent.display(), path.display()),
                    });
                }
                if path.is_dir() {
                    return Err(TransferError::Invalid(format!(
                        "{} is a directory, not an archive file",
                        path.display()
                    )));
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let f = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".tmp")
                    .permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
                        0o666,
                    ))
                    .tempfile_in(parent)
                    .map_err(|e| TransferError::io(format!("creating a file beside {}", path.display()), e))?;
                (f, None)
            }
            Target::Stream(_) => {
                let dir = work_dir(tmp, "creating a spool directory")?;
                let f = tempfile::NamedTempFile::new_in(dir.path())
                    .map_err(|e| TransferError::io(format!("creating a spool file in {}", tmp.display()), e))?;
                (f, Some(dir))
            }
        };
        Ok(TarOut {
            shown,
            spool: tokio::sync::Mutex::new(Spool {
                file: Some(file),
                len: 0,
                dirs: HashSet::new(),
            }),
            blobs: Mutex::new(HashSet::new()),
            documents: Mutex::new(HashMap::new()),
            _dir: dir,
        })
    }

    /// Whether the tar holds the blob (or document) already.
    pub(crate) fn has(&self, d: &Digest) -> bool {
        guard(&self.blobs).contains(d)
    }

    /// A manifest or index put into the tar.
    pub(crate) fn document(&self, d: &Digest) -> Option<Vec<u8>> {
        guard(&self.documents).get(d).cloned()
    }

    /// Writes the blob's verified stream as its entry; on any error (the
    /// verifier's included) the entry is cut off again.
    pub(crate) async fn put_blob(&self, desc: &Descriptor, mut data: BlobStream) -> Result<()> {
        let mut spool = self.spool.lock().await;
        if self.has(&desc.digest) {
            return Ok(());
        }
        spool.dirs_for(&self.shown, &desc.digest)?;
        let start = spool.len;
        let file = spool.file(&self.shown)?;
        let what = format!("blob {}", desc.digest);
        let wr = |e: std::io::Error| TransferError::io(format!("writing {}", self.shown.display()), e);
        let head = header(&blob_name(&desc.digest), desc.size, tar::EntryType::Regular)?;
        let out = file.try_clone().map_err(wr)?;
        let kick = self._dir.is_none();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(IN_FLIGHT);
        let (free_tx, mut free_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            out.write_all_at(&head, start)?;
            let mut at = start + BLOCK;
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all_at(&chunk, at)?;
                if kick {
                    // Starts writing the chunk back now, beside the hashing,
                    // rather than in the final rename (ext4 flushes a file
                    // renamed over another then).
                    let _ = rustix::fs::fadvise(
                        &out,
                        at,
                        std::num::NonZeroU64::new(chunk.len() as u64),
                        rustix::fs::Advice::DontNeed,
                    );
                }
                at += chunk.len() as u64;
                let _ = free_tx.send(chunk);
            }
            let n = at - start - BLOCK;
            let pad = (padded(n) - n) as usize;
            out.write_all_at(&[0u8; BLOCK as usize][..pad], at)?;
            Ok(n)
        });
        let fed: Result<u64> = async {
            let mut total = 0u64;
            loop {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                buf.resize(CHUNK, 0);
                let mut n = 0;
                while n < CHUNK {
                    match data.read(&mut buf[n..]).await.map_err(|e| from_io(e, &what))? {
                        0 => break,
                        k => n += k,
                    }
                }
                buf.truncate(n);
                total += n as u64;
                if n > 0 && tx.send(buf).await.is_err() {
                    // The writer stopped: its error says why.
                    return Ok(total);
                }
                if n < CHUNK {
                    return Ok(total);
                }
            }
        }
        .await;
        drop(tx);
        let written = writer
            .await
            .map_err(|e| TransferError::Invalid(format!("writing {what} stopped: {e}")))?
            .map_err(wr);
        self.settle(&mut spool, desc, start, fed, written)
    }

    /// Ends a blob's entry started at `start`: whole (both the stream read
    /// and the bytes written are the descriptor's size), or cut off the tar
    /// again, so nothing of a blob that failed stays in it.
    fn settle(
        &self,
        spool: &mut Spool,
        desc: &Descriptor,
        start: u64,
        read: Result<u64>,
        written: Result<u64>,
    ) -> Result<()> {
        let result = match (read, written) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(read), Ok(n)) if read != n || n != desc.size => Err(TransferError::Invalid(format!(
                "blob {}: wrote {n} of {} bytes",
                desc.digest, desc.size
            ))),
            (Ok(_), Ok(n)) => Ok(n),
        };
        match result {
            Ok(n) => {
                spool.len = start + BLOCK + padded(n);
                guard(&self.blobs).insert(desc.digest.clone());
                Ok(())
            }
            Err(e) => {
                let wr = |e: std::io::Error| TransferError::io(format!("writing {}", self.shown.display()), e);
                let _ = spool.file(&self.shown).and_then(|f| f.set_len(start).map_err(wr));
                Err(e)
            }
        }
    }

    /// [`TarOut::put_blob`] for a blob that is also the source's file
    /// `file`: the kernel copies the file into the entry
    /// (`copy_file_range`, no pass through user space) while `data`, the
    /// verified stream over the same bytes, is read to its end on the other
    /// core; the entry stays only when both ended cleanly. (Writing what
    /// `data` reads costs one more copy of every byte, and the hashing and
    /// the writing then take turns.)
    pub(crate) async fn put_blob_file(&self, desc: &Descriptor, mut data: BlobStream, file: &Path) -> Result<()> {
        let mut spool = self.spool.lock().await;
        if self.has(&desc.digest) {
            return Ok(());
        }
        let src = std::fs::File::open(file).map_err(|e| TransferError::io(format!("opening {}", file.display()), e))?;
        spool.dirs_for(&self.shown, &desc.digest)?;
        let start = spool.len;
        let out = spool.file(&self.shown)?;
        let what = format!("blob {}", desc.digest);
        let wr = |e: std::io::Error| TransferError::io(format!("writing {}", self.shown.display()), e);
        let head = header(&blob_name(&desc.digest), desc.size, tar::EntryType::Regular)?;
        let out = out.try_clone().map_err(wr)?;
        let kick = self._dir.is_none();
        let size = desc.size;
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            out.write_all_at(&head, start)?;
            let (mut from, mut at) = (0u64, start + BLOCK);
            while from < size {
                let want = (size - from).min(CHUNK as u64 * 16) as usize;
                let n = match rustix::fs::copy_file_range(&src, Some(&mut from), &out, Some(&mut at), want) {
                    Ok(n) => n,
                    // Another filesystem (a store on tmpfs, the archive on
                    // ext4: EXDEV) or no support: through a buffer.
                    Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {
                        let mut buf = vec![0u8; want.min(CHUNK)];
                        let k = std::os::unix::fs::FileExt::read_at(&src, &mut buf, from)?;
                        out.write_all_at(&buf[..k], at)?;
                        from += k as u64;
                        at += k as u64;
                        k
                    }
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    // The file is shorter than the descriptor: the
                    // verifier says so too; stop here.
                    break;
                }
                if kick {
                    // Writeback starts now rather than in the final rename
                    // (see put_blob).
                    let _ = rustix::fs::fadvise(
                        &out,
                        at - n as u64,
                        std::num::NonZeroU64::new(n as u64),
                        rustix::fs::Advice::DontNeed,
                    );
                }
            }
            let pad = (padded(from) - from) as usize;
            out.write_all_at(&[0u8; BLOCK as usize][..pad], at)?;
            Ok(from)
        });
        let drained: Result<u64> = async {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                match data.read(&mut buf).await.map_err(|e| from_io(e, &what))? {
                    0 => return Ok(total),
                    k => total += k as u64,
                }
            }
        }
        .await;
        let written = writer
            .await
            .map_err(|e| TransferError::Invalid(format!("writing {what} stopped: {e}")))?
            .map_err(wr);
        self.settle(&mut spool, desc, start, drained, written)
    }

    /// Writes a (verified) manifest or index as its blob entry.
    pub(crate) async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        let mut spool = self.spool.lock().await;
        if !self.has(&desc.digest) {
            spool.dirs_for(&self.shown, &desc.digest)?;
            spool.append(&self.shown, &blob_name(&desc.digest), bytes, tar::EntryType::Regular)?;
            guard(&self.blobs).insert(desc.digest.clone());
        }
        guard(&self.documents).insert(desc.digest.clone(), bytes.to_vec());
        Ok(())
    }

    /// Appends `files` (`oci-layout`, `index.json`, …) and the tar's end,
    /// then renames the tar onto the target file, or copies it into the
    /// stream. Once only.
    pub(crate) async fn commit(&self, target: Out, files: Vec<(String, Vec<u8>)>) -> Result<()> {
        let mut spool = self.spool.lock().await;
        for (name, bytes) in &files {
            spool.append(&self.shown, name, bytes, tar::EntryType::Regular)?;
        }
        let end = spool.len + 2 * BLOCK;
        let mut tmp = spool
            .file
            .take()
            .ok_or_else(|| TransferError::Invalid(format!("{} was written already", self.shown.display())))?;
        let shown = self.shown.display().to_string();
        let at = spool.len;
        blocking(move || {
            let wr = |e: std::io::Error| TransferError::io(format!("writing {shown}"), e);
            tmp.as_file().write_all_at(&[0u8; 2 * BLOCK as usize], at).map_err(wr)?;
            tmp.as_file().set_len(end).map_err(wr)?;
            match target {
                // Renamed whole, not synced: as `docker save` and skopeo
                // write archives (a sync of the whole archive would cost
                // as much as writing it).
                Out::File(path) => {
                    tmp.persist(&path).map_err(|e| wr(e.error))?;
                }
                Out::Stream(mut w) => {
                    let f = tmp.as_file_mut();
                    f.rewind().map_err(wr)?;
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let n = f.read(&mut buf).map_err(wr)?;
                        if n == 0 {
                            break;
                        }
                        w.write_all(&buf[..n]).map_err(wr)?;
                    }
                    w.flush().map_err(wr)?;
                }
            }
            Ok(())
        })
        .await
    }
}
