//! Storage drivers: where blobs, links, tags and upload sessions live.
//!
//! A driver is a small key/value store with streaming reads and verified
//! writes, plus upload sessions. Keys are `/`-separated and are only ever
//! built by [`layout`] from validated names and digests.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use strata_oci::Digest;

pub mod fs;
pub mod layout;
pub mod s3;

/// A stream of body bytes.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("storage: {0}")]
    Io(#[from] io::Error),
    #[error("reading the request body: {0}")]
    Body(io::Error),
    #[error("content digest {actual} ({size} bytes) does not match the expected {expected}")]
    Digest {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("chunk starts at {offset} but the upload holds {current} bytes")]
    Offset { offset: u64, current: u64 },
    #[error("upload session not found")]
    UnknownUpload,
}

/// One upload session in storage, as garbage collection sees it.
#[derive(Debug, Clone)]
pub struct UploadEntry {
    pub id: String,
    pub last_activity: SystemTime,
}

#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// e.g. `filesystem /var/lib/registry`.
    fn describe(&self) -> String;
    /// A whole (small) object, or None when absent.
    async fn get(&self, key: &str) -> io::Result<Option<Bytes>>;
    /// Writes a small object atomically: readers see the old or the new bytes.
    async fn put(&self, key: &str, data: Bytes) -> io::Result<()>;
    /// Removes an object; an absent one is not an error.
    async fn delete(&self, key: &str) -> io::Result<()>;
    /// Removes everything under `prefix/`.
    async fn delete_prefix(&self, prefix: &str) -> io::Result<()>;
    async fn stat(&self, key: &str) -> io::Result<Option<Meta>>;
    /// Streams an object (or a byte range of it); None when absent.
    async fn read(&self, key: &str, range: Option<Range<u64>>) -> io::Result<Option<ByteStream>>;
    /// Names directly under `prefix/` (objects and sub-prefixes), unsorted.
    async fn list_dir(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Every object under `prefix/`, with full keys.
    async fn walk(&self, prefix: &str) -> io::Result<Vec<(String, Meta)>>;
    /// Writes a stream to `key` only if it hashes to `expected`; never leaves a
    /// partial or wrong object under `key`. Returns the size.
    async fn put_verified(&self, key: &str, body: ByteStream, expected: &Digest) -> Result<u64, WriteError>;

    /// Creates an upload session holding `info` (opaque to the driver).
    async fn upload_start(&self, id: &str, info: Bytes) -> io::Result<()>;
    /// The session's info and its current size, or None when unknown.
    async fn upload_state(&self, id: &str) -> io::Result<Option<(Bytes, u64)>>;
    /// Appends a chunk that must start at `offset`; returns the new size.
    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> Result<u64, WriteError>;
    /// Moves the session's bytes to `key` if they hash to `expected`. `known`
    /// is the digest of all the bytes when the caller hashed them on the way in.
    /// On success the session is gone.
    async fn upload_commit(
        &self,
        id: &str,
        key: &str,
        expected: &Digest,
        known: Option<&Digest>,
    ) -> Result<u64, WriteError>;
    /// Removes a session and its bytes.
    async fn upload_remove(&self, id: &str) -> io::Result<()>;
    /// Every session with the time it last received bytes.
    async fn uploads(&self) -> io::Result<Vec<UploadEntry>>;
    /// Removes temporary files older than `age` left by killed writers; returns how many.
    async fn purge_temp(&self, age: std::time::Duration) -> io::Result<usize>;
}

pub type DynDriver = Arc<dyn Driver>;

/// Hashes a stream while passing it on; the hasher's result is available
/// through the shared cell once the stream is drained.
pub fn hashing(
    body: ByteStream,
    hasher: strata_oci::Hasher,
) -> (ByteStream, Arc<std::sync::Mutex<(strata_oci::Hasher, u64)>>) {
    use futures_util::StreamExt;
    let cell = Arc::new(std::sync::Mutex::new((hasher, 0u64)));
    let c = cell.clone();
    let s = body.map(move |item| {
        if let Ok(b) = &item {
            let mut g = c.lock().expect("hasher lock");
            g.0.update(b);
            g.1 += b.len() as u64;
        }
        item
    });
    (Box::pin(s), cell)
}
