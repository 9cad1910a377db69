//! A repository of a registry (`docker://HOST/REPO[:TAG|@DIGEST]`) as an
//! image source and sink, on strata-registry's client.
//!
//! As a source, documents come by digest (bounded to 4 MiB) and blobs
//! stream chunk by chunk from the response: nothing is held whole or
//! written to disk. As a sink, a blob's bytes go up in `PATCH`es and the
//! upload is committed by its closing `PUT ?digest=` only once the verified
//! stream ended cleanly (else the session is cancelled), so a lying source
//! leaves no blob behind; manifests are put by digest, and tags only by
//! [`Sink::finish`]. Blobs of another repository of the same registry are
//! mounted, not moved. A download that breaks (or a transient error:
//! 429, 5xx) is tried again, resuming with `Range` where it broke; the
//! location's progress hears of each retry ([`RegistryLocation::set_progress`]).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::stream;
use strata_oci::{Descriptor, Digest, Reference, media};
use strata_registry::{BlobReader, Client, ClientOptions, Mount, RegistryError, Upload, api_host, manifest_reference};
use tokio_util::io::StreamReader;

use crate::copy::ATTEMPTS;
use crate::verify::from_io;
use crate::{
    BlobRole, BlobStream, Event, MAX_DOCUMENT_SIZE, MountFrom, Progress, Result, Sink, Source, TransferError,
    no_progress,
};

/// The wait before another try after try `attempt` failed with `e`: the
/// client's retry policy (exponential, bounded), or the registry's
/// `Retry-After` when it said one (bounded by the policy too).
async fn backoff(client: &Client, attempt: u32, e: &RegistryError) {
    let policy = client.retry_policy();
    let wait = policy
        .delay(attempt, e.retry_after())
        .unwrap_or(policy.max_delay)
        .min(policy.max_retry_after.max(policy.max_delay));
    tokio::time::sleep(wait).await;
}

/// One repository of a registry.
pub struct RegistryLocation {
    client: Client,
    repository: String,
    /// What `resolve(None)` resolves, and the tag `finish` names when given no names.
    reference: Reference,
    /// Upload sessions a mount that was refused opened (HTTP 202): the
    /// blob's upload goes into them rather than into new ones.
    sessions: Mutex<HashMap<Digest, Upload>>,
    /// Documents put or read so far (media type, bytes), so `finish` tags
    /// the root without a GET and a document is fetched once.
    documents: Mutex<HashMap<Digest, (String, Bytes)>>,
    progress: Progress,
}

impl RegistryLocation {
    /// The repository of `reference`, on a client of its registry.
    pub fn new(reference: &Reference, options: ClientOptions) -> Result<RegistryLocation> {
        let client = Client::for_reference(reference, options).map_err(TransferError::location)?;
        Ok(RegistryLocation::with_client(client, reference))
    }

    /// The repository of `reference` on an existing client (which must be
    /// for its registry). Do not share one client between the source and
    /// the sink of a copy: a blob held open on the source and its upload
    /// each take one of the client's transfer slots.
    pub fn with_client(client: Client, reference: &Reference) -> RegistryLocation {
        RegistryLocation {
            client,
            repository: reference.path().to_string(),
            reference: reference.clone(),
            sessions: Mutex::new(HashMap::new()),
            documents: Mutex::new(HashMap::new()),
            progress: no_progress(),
        }
    }

    /// Where [`Event::Retrying`] goes.
    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The repository path in the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `HOST/REPO`, for messages.
    fn name(&self) -> String {
        format!("{}/{}", self.client.registry(), self.repository)
    }

    /// A client error as a transfer error; `what` names the object for a 404.
    fn error(&self, e: RegistryError, what: impl FnOnce() -> String) -> TransferError {
        if e.is_not_found() {
            return TransferError::NotFound {
                what: format!("{} in {}", what(), self.name()),
            };
        }
        registry_error(e)
    }

    /// A tag or digest of this repository: `reference` is a tag, a digest,
    /// or a full reference naming this repository.
    fn in_repository(&self, reference: &str) -> Result<String> {
        if Digest::parse(reference).is_ok() || Reference::check_tag(reference).is_ok() {
            return Ok(reference.to_string());
        }
        let r = Reference::parse(reference).map_err(|e| TransferError::Invalid(e.to_string()))?;
        self.check_same_repository(&r, reference)?;
        Ok(manifest_reference(&r))
    }

    fn check_same_repository(&self, r: &Reference, given: &str) -> Result<()> {
        if same_registry(r.domain(), self.client.registry()) && r.path() == self.repository {
            return Ok(());
        }
        Err(TransferError::Invalid(format!(
            "{given:?} names repository {}, not {}",
            r.repository(),
            self.name()
        )))
    }

    /// The tag `name` asks `finish` for (None: only a digest, which `root` must have).
    fn tag_for(&self, name: &str, root: &Descriptor) -> Result<Option<String>> {
        if Reference::check_tag(name).is_ok() {
            return Ok(Some(name.to_string()));
        }
        let r = Reference::parse(name).map_err(|e| TransferError::Invalid(e.to_string()))?;
        self.check_same_repository(&r, name)?;
        if let Some(d) = r.digest()
            && *d != root.digest
        {
            return Err(TransferError::Invalid(format!(
                "{name:?} names digest {d}, but the image copied is {}",
                root.digest
            )));
        }
        Ok(match (r.tag(), r.digest()) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        })
    }
}

/// Whether two registry names reach the same host (`docker.io` is `registry-1.docker.io`).
fn same_registry(a: &str, b: &str) -> bool {
    api_host(a).eq_ignore_ascii_case(&api_host(b))
}

/// A client error as a transfer error: the reader's own error comes back
/// unwrapped (it names the blob), size mismatches keep their type, the rest
/// is the registry's message (which names the registry and repository).
fn registry_error(e: RegistryError) -> TransferError {
    match e {
        RegistryError::Io { what, source } => from_io(source, &what),
        RegistryError::SizeMismatch {
            digest,
            expected,
            actual,
            ..
        } => TransferError::SizeMismatch {
            digest,
            expected,
            actual,
        },
        other => TransferError::location(other),
    }
}

/// A blob download as an `AsyncRead`. Each chunk has passed the reader's
/// size check; its last read fails when the digest does not match. A
/// transient failure is retried (up to [`ATTEMPTS`] tries in a row without
/// progress: a try that got further than the one before starts the count
/// again), resuming after the bytes already delivered.
fn blob_stream(loc: BlobSource, reader: BlobReader) -> BlobStream {
    let chunks = stream::unfold(Some((loc, reader, 1u32, 0u64)), |state| async move {
        let (loc, mut r, mut attempt, mut broke_at) = state?;
        loop {
            match r.chunk().await {
                Ok(Some(c)) => return Some((Ok(c), Some((loc, r, attempt, broke_at)))),
                Ok(None) => return None,
                Err(e) if e.is_transient() && (attempt < ATTEMPTS || r.received() > broke_at) => {
                    if r.received() > broke_at {
                        attempt = 1;
                        broke_at = r.received();
                    }
                    let partial = r.partial();
                    drop(r);
                    (loc.progress)(Event::Retrying {
                        digest: loc.desc.digest.clone(),
                        attempt: attempt + 1,
                        error: e.to_string(),
                    });
                    let mut err = e;
                    loop {
                        backoff(&loc.client, attempt, &err).await;
                        attempt += 1;
                        match loc
                            .client
                            .open_blob_resumed(&loc.repository, &loc.desc.digest, Some(loc.desc.size), partial.clone())
                            .await
                        {
                            Ok(next) => {
                                r = next;
                                break;
                            }
                            Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                                (loc.progress)(Event::Retrying {
                                    digest: loc.desc.digest.clone(),
                                    attempt: attempt + 1,
                                    error: e.to_string(),
                                });
                                err = e;
                            }
                            Err(e) => {
                                let _ = err;
                                return Some((Err(io_error(e, 0)), None));
                            }
                        }
                    }
                }
                Err(e) => {
                    let received = r.received();
                    return Some((Err(io_error(e, received)), None));
                }
            }
        }
    });
    Box::pin(StreamReader::new(Box::pin(chunks)))
}

/// What a blob stream needs to resume.
struct BlobSource {
    client: Client,
    repository: String,
    desc: Descriptor,
    progress: Progress,
}

fn io_error(e: RegistryError, received: u64) -> std::io::Error {
    let e = match e {
        RegistryError::DigestMismatch { expected, actual, .. } => TransferError::DigestMismatch {
            digest: expected,
            actual,
            size: received,
        },
        other => registry_error(other),
    };
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl RegistryLocation {
    /// One try at a document.
    async fn fetch_document(&self, desc: &Descriptor) -> std::result::Result<Vec<u8>, Fetch> {
        let too_large = || TransferError::DocumentTooLarge {
            digest: desc.digest.clone(),
        };
        if media::is_manifest(&desc.media_type) || media::is_index(&desc.media_type) {
            let m = self
                .client
                .get_manifest(&self.repository, &desc.digest.to_string())
                .await
                .map_err(|e| match e {
                    RegistryError::TooLarge { .. } => Fetch::Failed(too_large()),
                    e if e.is_transient() => Fetch::Transient(e),
                    e => Fetch::Failed(self.error(e, || format!("manifest {}", desc.digest))),
                })?;
            return Ok(m.bytes.to_vec());
        }
        // A config (or another small blob): read as a blob, bounded.
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(Fetch::Failed(too_large()));
        }
        let mut r = self
            .client
            .open_blob(&self.repository, &desc.digest, Some(desc.size))
            .await
            .map_err(|e| match e {
                e if e.is_transient() => Fetch::Transient(e),
                e => Fetch::Failed(self.error(e, || format!("blob {}", desc.digest))),
            })?;
        let mut out = Vec::new();
        loop {
            match r.chunk().await {
                Ok(Some(c)) => out.extend_from_slice(&c),
                Ok(None) => return Ok(out),
                // The caller checks the digest and names the mismatch.
                Err(RegistryError::DigestMismatch { .. }) => return Ok(out),
                Err(e) if e.is_transient() => return Err(Fetch::Transient(e)),
                Err(e) => return Err(Fetch::Failed(registry_error(e))),
            }
            if out.len() as u64 > MAX_DOCUMENT_SIZE {
                return Err(Fetch::Failed(too_large()));
            }
        }
    }
}

enum Fetch {
    Transient(RegistryError),
    Failed(TransferError),
}

impl Source for RegistryLocation {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        let r = match reference {
            None => manifest_reference(&self.reference),
            Some(r) => self.in_repository(r)?,
        };
        let by_digest = Digest::parse(&r).ok();
        if let Some(d) = &by_digest {
            let docs = self.documents.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((mt, b)) = docs.get(d)
                && (media::is_manifest(mt) || media::is_index(mt))
            {
                return Ok(Descriptor::new(mt, d.clone(), b.len() as u64));
            }
        }
        // A HEAD answers with all a descriptor needs; a registry that leaves
        // out the digest or media type (or refuses HEAD) is asked with a GET.
        match self.client.head_manifest(&self.repository, &r).await {
            Ok(None) => {
                return Err(TransferError::NotFound {
                    what: format!("manifest {r} in {}", self.name()),
                });
            }
            Ok(Some(head)) => {
                if let (Some(d), Some(mt), Some(size)) = (head.digest, head.media_type, head.size)
                    && (media::is_manifest(&mt) || media::is_index(&mt))
                    && by_digest.as_ref().is_none_or(|b| *b == d)
                {
                    return Ok(Descriptor::new(&mt, d, size));
                }
            }
            Err(e) if e.is_unauthorized() => return Err(registry_error(e)),
            Err(_) => {}
        }
        let m = self
            .client
            .get_manifest(&self.repository, &r)
            .await
            .map_err(|e| self.error(e, || format!("manifest {r}")))?;
        Ok(m.descriptor())
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let cached = {
            let docs = self.documents.lock().unwrap_or_else(|e| e.into_inner());
            docs.get(&desc.digest).map(|(_, b)| b.to_vec())
        };
        if let Some(b) = cached {
            return Ok(b);
        }
        let mut attempt = 0;
        let bytes = loop {
            attempt += 1;
            match self.fetch_document(desc).await {
                Err(Fetch::Transient(e)) if attempt < ATTEMPTS => backoff(&self.client, attempt, &e).await,
                Err(Fetch::Transient(e)) => return Err(registry_error(e)),
                Err(Fetch::Failed(e)) => return Err(e),
                Ok(b) => break b,
            }
        };
        // Kept for another read only when it is what was asked for (the caller checks it too).
        if Digest::of(desc.digest.algorithm(), &bytes) == desc.digest {
            let mut docs = self.documents.lock().unwrap_or_else(|e| e.into_inner());
            docs.insert(
                desc.digest.clone(),
                (desc.media_type.clone(), Bytes::from(bytes.clone())),
            );
        }
        Ok(bytes)
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            match self
                .client
                .open_blob(&self.repository, &desc.digest, Some(desc.size))
                .await
            {
                Ok(r) => break r,
                Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                    (self.progress)(Event::Retrying {
                        digest: desc.digest.clone(),
                        attempt: attempt + 1,
                        error: e.to_string(),
                    });
                    backoff(&self.client, attempt, &e).await;
                }
                Err(e) => return Err(self.error(e, || format!("blob {}", desc.digest))),
            }
        };
        let loc = BlobSource {
            client: self.client.clone(),
            repository: self.repository.clone(),
            desc: desc.clone(),
            progress: self.progress.clone(),
        };
        Ok(blob_stream(loc, r))
    }

    /// The client's [`strata_registry::BlobReader`] checks size and digest
    /// at the end of each download (resumed ones too).
    fn vouches_for_digests(&self) -> bool {
        true
    }

    fn mount_from(&self) -> Vec<MountFrom> {
        vec![MountFrom {
            registry: self.client.registry().to_string(),
            repository: self.repository.clone(),
        }]
    }
}

/// A sink's own error (a request of the upload, not the stream it reads):
/// transient ones may pass when the blob moves again.
fn sink_error(e: RegistryError) -> TransferError {
    match e.is_transient() {
        true => TransferError::Transient(e.to_string()),
        false => registry_error(e),
    }
}

impl Sink for RegistryLocation {
    async fn has_blob(&self, desc: &Descriptor, _role: &BlobRole) -> Result<bool> {
        let mut attempt = 0;
        let head = loop {
            attempt += 1;
            match self.client.head_blob(&self.repository, &desc.digest).await {
                Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                    (self.progress)(Event::Retrying {
                        digest: desc.digest.clone(),
                        attempt: attempt + 1,
                        error: e.to_string(),
                    });
                    backoff(&self.client, attempt, &e).await;
                }
                r => break r.map_err(registry_error)?,
            }
        };
        match head {
            None => Ok(false),
            // A registry may leave out Content-Length (read as 0).
            Some(n) if n == desc.size || n == 0 => Ok(true),
            Some(n) => Err(TransferError::Invalid(format!(
                "blob {} in {} has {n} bytes, the image says {}",
                desc.digest,
                self.name(),
                desc.size
            ))),
        }
    }

    async fn mount_blob(&self, desc: &Descriptor, from: &MountFrom) -> Result<bool> {
        if !same_registry(&from.registry, self.client.registry()) || from.repository == self.repository {
            return Ok(false);
        }
        match self
            .client
            .mount_blob(&self.repository, &desc.digest, &from.repository)
            .await
        {
            Ok(Mount::Mounted) => Ok(true),
            Ok(Mount::Upload(u)) => {
                let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                sessions.insert(desc.digest.clone(), u);
                Ok(false)
            }
            // A mount only saves work (the source repository may not be
            // readable with the sink's credentials): upload instead.
            Err(_) => Ok(false),
        }
    }

    async fn put_blob(&self, desc: &Descriptor, _role: &BlobRole, data: BlobStream) -> Result<()> {
        let session = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.remove(&desc.digest)
        };
        let upload = match session {
            Some(u) => u,
            None => self.client.start_upload(&self.repository).await.map_err(sink_error)?,
        };
        self.client
            .upload_blob_until_end(upload, &desc.digest, desc.size, data)
            .await
            .map_err(sink_error)
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        let bytes = Bytes::copy_from_slice(bytes);
        self.client
            .put_manifest(
                &self.repository,
                &desc.digest.to_string(),
                &desc.media_type,
                bytes.clone(),
            )
            .await
            .map_err(registry_error)?;
        let mut docs = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        docs.insert(desc.digest.clone(), (desc.media_type.clone(), bytes));
        Ok(())
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        // Every name is checked before the first tag moves.
        let mut tags = Vec::new();
        if names.is_empty() {
            // The location's own name: its tag (never a default `latest`),
            // or a digest the copied image must have.
            if let Some(d) = self.reference.digest()
                && *d != root.digest
            {
                return Err(TransferError::Invalid(format!(
                    "{} names digest {d}, but the image copied is {}",
                    self.name(),
                    root.digest
                )));
            }
            tags.extend(self.reference.tag().map(str::to_string));
        }
        for n in names {
            if let Some(t) = self.tag_for(n, root)? {
                tags.push(t);
            }
        }
        if tags.is_empty() {
            return Ok(());
        }
        let cached = {
            let docs = self.documents.lock().unwrap_or_else(|e| e.into_inner());
            docs.get(&root.digest).cloned()
        };
        let (media_type, bytes) = match cached {
            Some(c) => c,
            None => {
                let m = self
                    .client
                    .get_manifest(&self.repository, &root.digest.to_string())
                    .await
                    .map_err(|e| self.error(e, || format!("manifest {}", root.digest)))?;
                (root.media_type.clone(), m.bytes)
            }
        };
        for t in tags {
            self.client
                .put_manifest(&self.repository, &t, &media_type, bytes.clone())
                .await
                .map_err(registry_error)?;
        }
        Ok(())
    }
}
