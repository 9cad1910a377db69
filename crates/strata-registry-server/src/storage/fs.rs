//! The filesystem driver (the default): every write goes to a temporary file
//! under `<root>/_tmp` and is renamed into place, so a kill -9 at any moment
//! leaves either the old object or the new one, never a torn one. Upload
//! sessions are `<root>/_uploads/<id>/{info,data}`; `data` only grows.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use strata_oci::Digest;
use tokio::io::AsyncWriteExt;

use super::{ByteStream, Driver, Meta, UploadEntry, WriteError};

pub struct FsDriver {
    root: PathBuf,
}

/// Removes a temporary file unless it was renamed away.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl FsDriver {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<FsDriver> {
        let root = root.into();
        std::fs::create_dir_all(root.join("_tmp"))?;
        std::fs::create_dir_all(root.join(super::layout::UPLOADS))?;
        // Temporary files of a killed process are garbage: nothing names them.
        purge_dir(&root.join("_tmp"), std::time::Duration::from_secs(3600));
        Ok(FsDriver { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(!key.split('/').any(|c| c == ".." || c == "."), "unsafe key {key}");
        self.root.join(key)
    }

    fn temp_path(&self) -> PathBuf {
        self.root.join("_tmp").join(crate::util::random_id())
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join(super::layout::UPLOADS).join(id)
    }

    async fn rename_into(&self, from: &Path, key: &str) -> io::Result<()> {
        let dest = self.path(key);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(from, &dest).await
    }
}

fn purge_dir(dir: &Path, age: std::time::Duration) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() >= age)
                .unwrap_or(false);
            if old && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        size: m.len(),
        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

fn not_found_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a stream into an open file; returns bytes written.
async fn copy_stream(file: &mut tokio::fs::File, mut body: ByteStream) -> Result<u64, WriteError> {
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(WriteError::Body)?;
        file.write_all(&chunk).await?;
        n += chunk.len() as u64;
    }
    file.flush().await?;
    Ok(n)
}

/// Bytes read per blocking call when streaming a blob.
const READ_CHUNK: usize = 1 << 20;

/// Streams `len` bytes of `file` from its current position, one chunk read
/// ahead on the blocking pool while the previous one is being sent, so that
/// disk reads and socket writes overlap. A blocking thread is held only for
/// the read itself, never while a slow client drains a chunk.
fn read_ahead(file: std::fs::File, len: u64) -> ByteStream {
    type Pending = tokio::task::JoinHandle<io::Result<(std::fs::File, Bytes)>>;
    fn next(file: std::fs::File, remaining: u64) -> Option<Pending> {
        (remaining > 0).then(|| {
            let n = remaining.min(READ_CHUNK as u64);
            // Allocated here, on the runtime's thread that will also free it
            // once sent: buffers made on the many blocking threads would
            // spread over as many malloc arenas and inflate the RSS.
            let mut buf = Vec::with_capacity(n as usize);
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                (&file).take(n).read_to_end(&mut buf)?;
                Ok((file, Bytes::from(buf)))
            })
        })
    }
    let first = next(file, len);
    Box::pin(futures_util::stream::unfold(
        (first, len),
        |(pending, remaining)| async move {
            let err = match pending?.await {
                Ok(Ok((file, chunk))) => {
                    if chunk.is_empty() {
                        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the blob is shorter than its size");
                        return Some((Err(e), (None, 0)));
                    }
                    let left = remaining - chunk.len() as u64;
                    return Some((Ok(chunk), (next(file, left), left)));
                }
                Ok(Err(e)) => e,
                Err(e) => io::Error::other(e),
            };
            Some((Err(err), (None, 0)))
        },
    ))
}

/// Hashes a file on a blocking thread.
async fn hash_file(path: PathBuf, algorithm: strata_oci::Algorithm) -> io::Result<(Digest, u64)> {
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path)?;
        let mut r = strata_oci::HashingReader::new(io::BufReader::with_capacity(1 << 20, f), algorithm);
        io::copy(&mut r, &mut io::sink())?;
        let (_, d, n) = r.finish();
        Ok((d, n))
    })
    .await
    .map_err(io::Error::other)?
}

#[async_trait]
impl Driver for FsDriver {
    fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }

    async fn get(&self, key: &str) -> io::Result<Option<Bytes>> {
        Ok(not_found_none(tokio::fs::read(self.path(key)).await)?.map(Bytes::from))
    }

    async fn put(&self, key: &str, data: Bytes) -> io::Result<()> {
        let tmp = TempFile(Some(self.temp_path()));
        let path = tmp.0.clone().expect("temp path");
        let mut f = tokio::fs::File::create(&path).await?;
        f.write_all(&data).await?;
        f.sync_data().await?;
        drop(f);
        self.rename_into(&path, key).await?;
        std::mem::forget(tmp);
        Ok(())
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        not_found_none(tokio::fs::remove_file(self.path(key)).await).map(|_| ())
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        not_found_none(tokio::fs::remove_dir_all(self.path(prefix)).await).map(|_| ())
    }

    async fn stat(&self, key: &str) -> io::Result<Option<Meta>> {
        Ok(not_found_none(tokio::fs::metadata(self.path(key)).await)?
            .filter(|m| m.is_file())
            .map(|m| meta_of(&m)))
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> io::Result<Option<ByteStream>> {
        let path = self.path(key);
        let opened = tokio::task::spawn_blocking(move || -> io::Result<Option<(std::fs::File, u64)>> {
            let Some(mut f) = not_found_none(std::fs::File::open(path))? else {
                return Ok(None);
            };
            let len = match range {
                Some(r) => {
                    io::Seek::seek(&mut f, SeekFrom::Start(r.start))?;
                    r.end - r.start
                }
                None => f.metadata()?.len(),
            };
            Ok(Some((f, len)))
        })
        .await
        .map_err(io::Error::other)??;
        Ok(opened.map(|(f, len)| read_ahead(f, len)))
    }

    async fn list_dir(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let Some(mut rd) = not_found_none(tokio::fs::read_dir(self.path(prefix)).await)? else {
            return Ok(out);
        };
        while let Some(e) = rd.next_entry().await? {
            if let Ok(name) = e.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    async fn walk(&self, prefix: &str) -> io::Result<Vec<(String, Meta)>> {
        let base = self.path(prefix);
        let prefix = prefix.trim_end_matches('/').to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![(base, prefix)];
            while let Some((dir, key)) = stack.pop() {
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for e in rd {
                    let e = e?;
                    let Ok(name) = e.file_name().into_string() else {
                        continue;
                    };
                    let k = format!("{key}/{name}");
                    let ft = e.file_type()?;
                    if ft.is_dir() {
                        stack.push((e.path(), k));
                    } else if ft.is_file() {
                        out.push((k, meta_of(&e.metadata()?)));
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn put_verified(&self, key: &str, body: ByteStream, expected: &Digest) -> Result<u64, WriteError> {
        let tmp = TempFile(Some(self.temp_path()));
        let path = tmp.0.clone().expect("temp path");
        let mut f = tokio::fs::File::create(&path).await?;
        let (body, cell) = super::hashing(body, expected.algorithm().hasher());
        copy_stream(&mut f, body).await?;
        let (hasher, size) = std::mem::replace(&mut *cell.lock().expect("hasher"), (expected.algorithm().hasher(), 0));
        let actual = hasher.finish();
        if &actual != expected {
            return Err(WriteError::Digest {
                expected: expected.clone(),
                actual,
                size,
            });
        }
        f.sync_data().await?;
        drop(f);
        self.rename_into(&path, key).await?;
        std::mem::forget(tmp);
        Ok(size)
    }

    async fn upload_start(&self, id: &str, info: Bytes) -> io::Result<()> {
        let dir = self.upload_dir(id);
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::File::create(dir.join("data")).await?;
        // info is written last: a session without it is incomplete.
        let tmp = dir.join("info.tmp");
        tokio::fs::write(&tmp, &info).await?;
        tokio::fs::rename(&tmp, dir.join("info")).await
    }

    async fn upload_state(&self, id: &str) -> io::Result<Option<(Bytes, u64)>> {
        let dir = self.upload_dir(id);
        let Some(info) = not_found_none(tokio::fs::read(dir.join("info")).await)? else {
            return Ok(None);
        };
        let size = not_found_none(tokio::fs::metadata(dir.join("data")).await)?.map_or(0, |m| m.len());
        Ok(Some((Bytes::from(info), size)))
    }

    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, WriteError> {
        let dir = self.upload_dir(id);
        if !tokio::fs::try_exists(dir.join("info")).await? {
            return Err(WriteError::UnknownUpload);
        }
        let mut f = match tokio::fs::OpenOptions::new().append(true).open(dir.join("data")).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(WriteError::UnknownUpload),
            Err(e) => return Err(e.into()),
        };
        let current = f.metadata().await?.len();
        if current != offset {
            return Err(WriteError::Offset { offset, current });
        }
        let n = copy_stream(&mut f, body).await;
        match n {
            Ok(n) => Ok(offset + n),
            Err(e) => Err(e),
        }
    }

    async fn upload_commit(
        &self,
        id: &str,
        key: &str,
        expected: &Digest,
        known: Option<&Digest>,
    ) -> Result<u64, WriteError> {
        let dir = self.upload_dir(id);
        let data = dir.join("data");
        let size = match tokio::fs::metadata(&data).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(WriteError::UnknownUpload),
            Err(e) => return Err(e.into()),
        };
        let actual = match known {
            Some(d) if d.algorithm() == expected.algorithm() => d.clone(),
            _ => hash_file(data.clone(), expected.algorithm()).await?.0,
        };
        if &actual != expected {
            return Err(WriteError::Digest {
                expected: expected.clone(),
                actual,
                size,
            });
        }
        let f = tokio::fs::File::open(&data).await?;
        f.sync_data().await?;
        drop(f);
        self.rename_into(&data, key).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(size)
    }

    async fn upload_remove(&self, id: &str) -> io::Result<()> {
        not_found_none(tokio::fs::remove_dir_all(self.upload_dir(id)).await).map(|_| ())
    }

    async fn uploads(&self) -> io::Result<Vec<UploadEntry>> {
        let base = self.root.join(super::layout::UPLOADS);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let rd = match std::fs::read_dir(&base) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            for e in rd.flatten() {
                let Ok(id) = e.file_name().into_string() else { continue };
                let mut last = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                for f in ["data", "info"] {
                    if let Ok(t) = std::fs::metadata(e.path().join(f)).and_then(|m| m.modified()) {
                        last = last.max(t);
                    }
                }
                out.push(UploadEntry {
                    id,
                    last_activity: last,
                });
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn purge_temp(&self, age: std::time::Duration) -> io::Result<usize> {
        let dir = self.root.join("_tmp");
        tokio::task::spawn_blocking(move || purge_dir(&dir, age))
            .await
            .map_err(io::Error::other)
    }
}
