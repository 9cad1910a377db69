//! The S3 driver (any S3-compatible store, through `object_store`).
//!
//! Everything, upload sessions included, lives in the bucket, so several
//! registry processes can serve one bucket behind any load balancer: a
//! session is `_uploads/<id>/info` plus one object per received chunk,
//! `_uploads/<id>/chunks/<start offset, 20 digits>`, each written whole (a
//! multipart upload for large ones) or not at all. Committing streams the
//! chunks through the hasher into a multipart upload of the blob, completed
//! only when the digest matches.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use strata_oci::Digest;
use tokio::io::AsyncWriteExt;

use super::{ByteStream, Driver, Meta, UploadEntry, WriteError};
use crate::config::S3Config;

/// Blobs up to this size are buffered and written with one PUT.
const SINGLE_PUT_LIMIT: usize = 8 * 1024 * 1024;

pub struct S3Driver {
    store: Arc<dyn ObjectStore>,
    root: String,
    describe: String,
    part_size: usize,
}

fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        e => io::Error::other(e.to_string()),
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl S3Driver {
    pub fn new(cfg: &S3Config) -> Result<S3Driver, crate::error::Error> {
        crate::util::install_crypto_provider();
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(cfg.region.as_deref().unwrap_or("us-east-1"));
        if let Some(ep) = &cfg.regionendpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"))
                .with_virtual_hosted_style_request(!cfg.forcepathstyle.unwrap_or(true));
        }
        if let (Some(k), Some(s)) = (&cfg.accesskey, &cfg.secretkey) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
        }
        let store = b.build().map_err(|source| crate::error::Error::S3Config { source })?;
        let root = cfg.rootdirectory.as_deref().unwrap_or("").trim_matches('/').to_string();
        Ok(S3Driver {
            store: Arc::new(store),
            describe: format!(
                "s3 bucket {} at {}{}",
                cfg.bucket,
                cfg.regionendpoint.as_deref().unwrap_or("AWS"),
                if root.is_empty() {
                    String::new()
                } else {
                    format!(" under /{root}")
                }
            ),
            root,
            part_size: cfg.chunksize.unwrap_or(10 * 1024 * 1024).max(5 * 1024 * 1024),
        })
    }

    fn path(&self, key: &str) -> Path {
        if self.root.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.root))
        }
    }

    /// The key of a listed path, without the root.
    fn key_of(&self, p: &Path) -> String {
        let s = p.as_ref();
        if self.root.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.root)
                .unwrap_or(s)
                .trim_start_matches('/')
                .to_string()
        }
    }

    fn upload(&self, id: &str, rest: &str) -> String {
        format!("{}/{id}/{rest}", super::layout::UPLOADS)
    }

    /// The session's chunks as (start, size), checked to be contiguous from 0.
    async fn chunks(&self, id: &str) -> io::Result<Vec<(u64, u64)>> {
        let prefix = self.path(&self.upload(id, "chunks"));
        let mut list: Vec<(u64, u64)> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| {
                let start = m.location.filename().and_then(|f| f.parse::<u64>().ok());
                (start, m.size)
            })
            .try_collect::<Vec<_>>()
            .await
            .map_err(to_io)?
            .into_iter()
            .filter_map(|(s, n)| s.map(|s| (s, n)))
            .collect();
        list.sort();
        let mut expect = 0;
        for (s, n) in &list {
            if *s != expect {
                return Err(io::Error::other(format!(
                    "upload {id} is missing bytes {expect}..{s} in storage"
                )));
            }
            expect += n;
        }
        Ok(list)
    }

    /// Streams `body` into a new object at `path`; when `expected` is given the
    /// object is completed only if the bytes hash to it.
    async fn write_stream(
        &self,
        path: Path,
        mut body: ByteStream,
        expected: Option<&Digest>,
    ) -> Result<(u64, Option<Digest>), WriteError> {
        let mut hasher = expected.map(|d| d.algorithm().hasher());
        let mut buf = BytesMut::new();
        let mut size = 0u64;
        // Small objects: one PUT after checking.
        while buf.len() <= SINGLE_PUT_LIMIT {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(WriteError::Body)?;
                    if let Some(h) = &mut hasher {
                        h.update(&chunk);
                    }
                    size += chunk.len() as u64;
                    buf.extend_from_slice(&chunk);
                }
                None => {
                    let actual = hasher.map(|h| h.finish());
                    check(expected, actual.as_ref(), size)?;
                    self.store
                        .put(&path, PutPayload::from_bytes(buf.freeze()))
                        .await
                        .map_err(to_io)?;
                    return Ok((size, actual));
                }
            }
        }
        let mut w = BufWriter::with_capacity(self.store.clone(), path, self.part_size);
        let result: Result<Option<Digest>, WriteError> = async {
            w.put(buf.freeze()).await.map_err(to_io)?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(WriteError::Body)?;
                if let Some(h) = &mut hasher {
                    h.update(&chunk);
                }
                size += chunk.len() as u64;
                w.put(chunk).await.map_err(to_io)?;
            }
            let actual = hasher.map(|h| h.finish());
            check(expected, actual.as_ref(), size)?;
            Ok(actual)
        }
        .await;
        match result {
            Ok(actual) => {
                w.shutdown().await?;
                Ok((size, actual))
            }
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }
}

fn check(expected: Option<&Digest>, actual: Option<&Digest>, size: u64) -> Result<(), WriteError> {
    match (expected, actual) {
        (Some(e), Some(a)) if e != a => Err(WriteError::Digest {
            expected: e.clone(),
            actual: a.clone(),
            size,
        }),
        _ => Ok(()),
    }
}

#[async_trait]
impl Driver for S3Driver {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn get(&self, key: &str) -> io::Result<Option<Bytes>> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(to_io)?)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> io::Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(to_io)
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        let paths: Vec<Path> = self
            .store
            .list(Some(&self.path(prefix)))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(to_io)?;
        for p in paths {
            match self.store.delete(&p).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(to_io(e)),
            }
        }
        Ok(())
    }

    async fn stat(&self, key: &str) -> io::Result<Option<Meta>> {
        match self.store.head(&self.path(key)).await {
            Ok(m) => Ok(Some(Meta {
                size: m.size,
                modified: m.last_modified.into(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> io::Result<Option<ByteStream>> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        match self.store.get_opts(&self.path(key), opts).await {
            Ok(r) => Ok(Some(Box::pin(r.into_stream().map_err(to_io)))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    async fn list_dir(&self, prefix: &str) -> io::Result<Vec<String>> {
        let dir = self.path(prefix);
        let r = self.store.list_with_delimiter(Some(&dir)).await.map_err(to_io)?;
        // A directory marker (`…/tags/`, which SeaweedFS and others keep
        // once a directory's last object is deleted) lists as the directory
        // itself: it is no entry of it.
        let mut out: Vec<String> = r
            .common_prefixes
            .iter()
            .filter(|p| **p != dir)
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.extend(
            r.objects
                .iter()
                .filter(|o| o.location != dir)
                .filter_map(|o| o.location.filename().map(str::to_string)),
        );
        Ok(out)
    }

    async fn walk(&self, prefix: &str) -> io::Result<Vec<(String, Meta)>> {
        let list: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&self.path(prefix)))
            .try_collect()
            .await
            .map_err(to_io)?;
        Ok(list
            .into_iter()
            .map(|m| {
                (
                    self.key_of(&m.location),
                    Meta {
                        size: m.size,
                        modified: m.last_modified.into(),
                    },
                )
            })
            .collect())
    }

    async fn put_verified(&self, key: &str, body: ByteStream, expected: &Digest) -> Result<u64, WriteError> {
        Ok(self.write_stream(self.path(key), body, Some(expected)).await?.0)
    }

    async fn upload_start(&self, id: &str, info: Bytes) -> io::Result<()> {
        self.put(&self.upload(id, "info"), info).await
    }

    async fn upload_state(&self, id: &str) -> io::Result<Option<(Bytes, u64)>> {
        let Some(info) = self.get(&self.upload(id, "info")).await? else {
            return Ok(None);
        };
        let size = self.chunks(id).await?.iter().map(|c| c.1).sum();
        Ok(Some((info, size)))
    }

    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, WriteError> {
        if self.stat(&self.upload(id, "info")).await?.is_none() {
            return Err(WriteError::UnknownUpload);
        }
        let current: u64 = self.chunks(id).await?.iter().map(|c| c.1).sum();
        if current != offset {
            return Err(WriteError::Offset { offset, current });
        }
        let path = self.path(&self.upload(id, &format!("chunks/{offset:020}")));
        let (n, _) = self.write_stream(path.clone(), body, None).await?;
        if n == 0 {
            let _ = self.store.delete(&path).await;
        }
        Ok(offset + n)
    }

    async fn upload_commit(
        &self,
        id: &str,
        key: &str,
        expected: &Digest,
        known: Option<&Digest>,
    ) -> Result<u64, WriteError> {
        if self.stat(&self.upload(id, "info")).await?.is_none() {
            return Err(WriteError::UnknownUpload);
        }
        let chunks = self.chunks(id).await?;
        let size: u64 = chunks.iter().map(|c| c.1).sum();
        let dest = self.path(key);
        if known == Some(expected) && chunks.len() == 1 {
            // One chunk already hashed on the way in: a server-side copy.
            let from = self.path(&self.upload(id, &format!("chunks/{:020}", chunks[0].0)));
            self.store.copy(&from, &dest).await.map_err(to_io)?;
        } else if known == Some(expected) && self.stat(key).await?.is_some_and(|m| m.size == size) {
            // The blob is already there (another client pushed the same bytes).
        } else {
            let store = self.store.clone();
            let paths: Vec<Path> = chunks
                .iter()
                .map(|(s, _)| self.path(&self.upload(id, &format!("chunks/{s:020}"))))
                .collect();
            let body: ByteStream = Box::pin(
                futures_util::stream::iter(paths)
                    .then(move |p| {
                        let store = store.clone();
                        async move { store.get(&p).await.map(|r| r.into_stream()) }
                    })
                    .try_flatten()
                    .map_err(to_io),
            );
            // A read failure here is the store's, not the client's.
            self.write_stream(dest, body, Some(expected))
                .await
                .map_err(|e| match e {
                    WriteError::Body(e) => WriteError::Io(e),
                    e => e,
                })?;
        }
        self.upload_remove(id).await?;
        Ok(size)
    }

    async fn upload_remove(&self, id: &str) -> io::Result<()> {
        // Chunks first, info last: a session with info but no chunks is empty, never torn.
        self.delete_prefix(&self.upload(id, "chunks")).await?;
        self.delete(&self.upload(id, "info")).await
    }

    async fn uploads(&self) -> io::Result<Vec<UploadEntry>> {
        let mut by_id: std::collections::HashMap<String, SystemTime> = Default::default();
        for (key, meta) in self.walk(super::layout::UPLOADS).await? {
            let Some(id) = key.split('/').nth(1) else { continue };
            let e = by_id.entry(id.to_string()).or_insert(SystemTime::UNIX_EPOCH);
            *e = (*e).max(meta.modified);
        }
        Ok(by_id
            .into_iter()
            .map(|(id, last_activity)| UploadEntry { id, last_activity })
            .collect())
    }

    async fn purge_temp(&self, _age: std::time::Duration) -> io::Result<usize> {
        // Nothing is staged outside upload sessions; an abandoned multipart
        // upload is aborted by its writer or by the bucket's lifecycle rules.
        Ok(0)
    }
}
