//! Blobs: HEAD, GET (streamed and verified, resumable), uploads (monolithic,
//! chunked, from a stream), cross-repository mounts.

use std::io::Write;

use bytes::Bytes;
use reqwest::header;
use reqwest::{Method, Response, StatusCode, Url};
use strata_oci::{Algorithm, Descriptor, Digest, Hasher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::Scope;
use crate::client::{Client, Req};
use crate::error::{RegistryError, Result, chain};

/// What part of a blob a writer already holds, to resume a download. Keeps
/// the hash of the bytes written so far.
#[derive(Clone)]
pub struct PartialBlob {
    hasher: Hasher,
    written: u64,
}

impl PartialBlob {
    /// Nothing written yet.
    pub fn new(algorithm: Algorithm) -> PartialBlob {
        PartialBlob {
            hasher: algorithm.hasher(),
            written: 0,
        }
    }

    /// The bytes a writer already holds (e.g. a partly downloaded file).
    pub fn from_reader(algorithm: Algorithm, mut r: impl std::io::Read) -> std::io::Result<PartialBlob> {
        let mut p = PartialBlob::new(algorithm);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(p);
            }
            p.hasher.update(&buf[..n]);
            p.written += n as u64;
        }
    }

    /// Bytes written so far (the offset a resumed download starts at).
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// The outcome of a cross-repository mount.
pub enum Mount {
    /// The registry linked the blob: nothing to upload.
    Mounted,
    /// It did not; upload into this session instead.
    Upload(Upload),
}

/// An upload session (`Location` of `POST /v2/NAME/blobs/uploads/`).
#[derive(Debug, Clone)]
pub struct Upload {
    repo: String,
    location: Url,
}

impl Upload {
    pub fn repository(&self) -> &str {
        &self.repo
    }
    pub fn location(&self) -> &Url {
        &self.location
    }
}

/// A blob being downloaded, chunk by chunk; the last `chunk()` call checks
/// the size and the digest, so `Ok(None)` means the content is verified.
pub struct BlobReader {
    client: Client,
    repo: String,
    digest: Digest,
    size: Option<u64>,
    resp: Response,
    hasher: Hasher,
    received: u64,
    done: bool,
    /// A resumed download the registry answered from the start (200, not
    /// 206): the bytes held already, skipped after checking they match.
    skip: Option<(u64, Hasher, Digest)>,
    _permit: OwnedSemaphorePermit,
}

impl BlobReader {
    /// The next chunk; None once all arrived and matched the digest.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        match self.resp.chunk().await {
            Ok(Some(mut c)) => {
                if let Some((left, h, _)) = &mut self.skip {
                    let n = (*left).min(c.len() as u64) as usize;
                    h.update(&c[..n]);
                    *left -= n as u64;
                    c = c.slice(n..);
                    if *left == 0 {
                        let (_, h, held) = self.skip.take().expect("set");
                        if h.finish() != held {
                            self.done = true;
                            return Err(RegistryError::Protocol {
                                site: self.client.site(Some(&self.repo)),
                                message: format!(
                                    "blob {}: cannot resume: the registry ignored the range request and the {} bytes already received differ from its content; download again from the start",
                                    self.digest, self.received
                                ),
                            });
                        }
                    }
                    if c.is_empty() {
                        return Ok(Some(c));
                    }
                }
                if let Some(s) = self.size
                    && self.received + c.len() as u64 > s
                {
                    self.done = true;
                    return Err(RegistryError::SizeMismatch {
                        site: self.client.site(Some(&self.repo)),
                        digest: self.digest.clone(),
                        expected: s,
                        actual: self.received + c.len() as u64,
                    });
                }
                self.hasher.update(&c);
                self.received += c.len() as u64;
                Ok(Some(c))
            }
            Ok(None) => {
                self.done = true;
                if self.skip.is_some() {
                    return Err(RegistryError::SizeMismatch {
                        site: self.client.site(Some(&self.repo)),
                        digest: self.digest.clone(),
                        expected: self.size.unwrap_or(self.received),
                        actual: 0,
                    });
                }
                let hasher = std::mem::replace(&mut self.hasher, self.digest.algorithm().hasher());
                verify(&self.client, &self.repo, &self.digest, self.size, self.received, hasher)?;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(broken(
                    &self.client,
                    &self.repo,
                    &self.digest,
                    self.received,
                    self.size,
                    &e,
                ))
            }
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// What was received so far, to resume with [`Client::open_blob_resumed`]
    /// after an error.
    pub fn partial(&self) -> PartialBlob {
        PartialBlob {
            hasher: self.hasher.clone(),
            written: self.received,
        }
    }

    /// The expected size (given, or from `Content-Length`).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

fn verify(client: &Client, repo: &str, digest: &Digest, size: Option<u64>, got: u64, hasher: Hasher) -> Result<()> {
    if let Some(s) = size
        && s != got
    {
        return Err(RegistryError::SizeMismatch {
            site: client.site(Some(repo)),
            digest: digest.clone(),
            expected: s,
            actual: got,
        });
    }
    let actual = hasher.finish();
    if actual != *digest {
        return Err(RegistryError::DigestMismatch {
            site: client.site(Some(repo)),
            what: "blob",
            expected: digest.clone(),
            actual,
        });
    }
    Ok(())
}

fn broken(
    client: &Client,
    repo: &str,
    digest: &Digest,
    got: u64,
    size: Option<u64>,
    e: &reqwest::Error,
) -> RegistryError {
    let of = size.map(|s| format!(" of {s}")).unwrap_or_default();
    RegistryError::Connection {
        site: client.site(Some(repo)),
        what: format!(
            "the connection broke while receiving blob {digest} (after {got}{of} bytes); the download is incomplete"
        ),
        cause: chain(e),
    }
}

pub(crate) fn check_repo(repo: &str) -> Result<()> {
    strata_oci::Reference::check_repository_path(repo).map_err(|e| RegistryError::Invalid(e.to_string()))
}

fn header_u64(resp: &Response, name: header::HeaderName) -> Option<u64> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl Client {
    /// Size of a blob, or None when the repository does not have it.
    /// Where in the blob a ranged GET's response starts: `offset` for a 206
    /// whose Content-Range says so, 0 for a 200 (the registry ignored the
    /// range); an error for any other range or a length that does not add
    /// up to the blob's `size`.
    fn resumed_position(
        &self,
        resp: &reqwest::Response,
        repo: &str,
        digest: &Digest,
        offset: u64,
        size: Option<u64>,
    ) -> Result<u64> {
        let mut pos = 0;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            let cr = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !cr.starts_with(&format!("bytes {offset}-")) {
                return Err(RegistryError::Protocol {
                    site: self.site(Some(repo)),
                    message: format!(
                        "blob {digest}: asked for bytes {offset}- but the registry sent Content-Range {cr:?}"
                    ),
                });
            }
            pos = offset;
        }
        if let (Some(s), Some(cl)) = (size, resp.content_length())
            && pos + cl != s
        {
            return Err(RegistryError::SizeMismatch {
                site: self.site(Some(repo)),
                digest: digest.clone(),
                expected: s,
                actual: pos + cl,
            });
        }
        Ok(pos)
    }

    pub async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}")).await?;
        let resp = self
            .send(Req::new(Method::HEAD, url).scope(Scope::pull(repo)).repo(repo))
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(Some(header_u64(&resp, header::CONTENT_LENGTH).unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error_for(resp, Some(repo)).await),
        }
    }

    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.head_blob(repo, digest).await?.is_some())
    }

    /// Starts a download; read it with [`BlobReader::chunk`].
    pub async fn open_blob(&self, repo: &str, digest: &Digest, size: Option<u64>) -> Result<BlobReader> {
        check_repo(repo)?;
        let permit = self.transfer_permit().await;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}")).await?;
        let resp = self
            .send(Req::new(Method::GET, url).scope(Scope::pull(repo)).repo(repo))
            .await?;
        let resp = self.expect(resp, &[StatusCode::OK], Some(repo)).await?;
        let cl = resp.content_length();
        if let (Some(s), Some(cl)) = (size, cl)
            && s != cl
        {
            return Err(RegistryError::SizeMismatch {
                site: self.site(Some(repo)),
                digest: digest.clone(),
                expected: s,
                actual: cl,
            });
        }
        Ok(BlobReader {
            client: self.clone(),
            repo: repo.to_string(),
            digest: digest.clone(),
            size: size.or(cl),
            resp,
            hasher: digest.algorithm().hasher(),
            received: 0,
            done: false,
            skip: None,
            _permit: permit,
        })
    }

    /// Resumes a download after the bytes `partial` describes
    /// (`Range: bytes=N-`); the reader goes on from there and checks the
    /// whole blob's size and digest at its end. A registry that ignores the
    /// range sends everything again: the first N bytes are then checked
    /// against `partial` and skipped.
    pub async fn open_blob_resumed(
        &self,
        repo: &str,
        digest: &Digest,
        size: Option<u64>,
        partial: PartialBlob,
    ) -> Result<BlobReader> {
        check_repo(repo)?;
        let offset = partial.written;
        if offset == 0 {
            return self.open_blob(repo, digest, size).await;
        }
        let permit = self.transfer_permit().await;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}")).await?;
        let req = Req::new(Method::GET, url)
            .scope(Scope::pull(repo))
            .repo(repo)
            .header(header::RANGE, &format!("bytes={offset}-"));
        let resp = self.send(req).await?;
        let status = resp.status();
        let resp = match status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => resp,
            _ => return Err(self.error_for(resp, Some(repo)).await),
        };
        let pos = self.resumed_position(&resp, repo, digest, offset, size)?;
        let skip = (pos < offset).then(|| (offset, digest.algorithm().hasher(), partial.hasher.clone().finish()));
        Ok(BlobReader {
            client: self.clone(),
            repo: repo.to_string(),
            digest: digest.clone(),
            size,
            resp,
            hasher: partial.hasher,
            received: offset,
            done: false,
            skip,
            _permit: permit,
        })
    }

    /// Downloads a blob into `w`, checking its size (when given) and digest.
    /// Returns its size. On error `w` may hold part of the blob: discard it,
    /// or resume with [`Client::get_blob_resumable`].
    pub async fn get_blob<W: Write>(&self, repo: &str, digest: &Digest, size: Option<u64>, w: &mut W) -> Result<u64> {
        let mut p = PartialBlob::new(digest.algorithm());
        self.get_blob_resumable(repo, digest, size, &mut p, w).await
    }

    /// Downloads a blob into an async writer, verified like [`Client::get_blob`].
    pub async fn get_blob_async<W: AsyncWrite + Unpin>(
        &self,
        repo: &str,
        digest: &Digest,
        size: Option<u64>,
        w: &mut W,
    ) -> Result<u64> {
        let mut r = self.open_blob(repo, digest, size).await?;
        while let Some(c) = r.chunk().await? {
            w.write_all(&c).await.map_err(|e| RegistryError::Io {
                what: format!("writing blob {digest}"),
                source: e,
            })?;
        }
        w.flush().await.map_err(|e| RegistryError::Io {
            what: format!("writing blob {digest}"),
            source: e,
        })?;
        Ok(r.received())
    }

    /// Downloads the rest of a blob after the `partial.written()` bytes that
    /// `w` already holds (`Range: bytes=N-`). A registry that ignores the
    /// range (200 instead of 206) sends everything again: the first N bytes
    /// are then checked against what `w` holds and not written twice. After
    /// an error, `partial` still describes what `w` holds, so the call can be
    /// repeated. Returns the blob's full size once its digest matched.
    pub async fn get_blob_resumable<W: Write>(
        &self,
        repo: &str,
        digest: &Digest,
        size: Option<u64>,
        partial: &mut PartialBlob,
        w: &mut W,
    ) -> Result<u64> {
        check_repo(repo)?;
        let algorithm = match partial.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        };
        if algorithm != digest.algorithm() {
            return Err(RegistryError::Invalid(format!(
                "resuming blob {digest}: the partial content was hashed with another algorithm"
            )));
        }
        let offset = partial.written;
        if let Some(s) = size {
            if offset > s {
                return Err(RegistryError::Invalid(format!(
                    "resuming blob {digest}: {offset} bytes already written, but the blob has {s}"
                )));
            }
            if offset == s {
                verify(self, repo, digest, size, offset, partial.hasher.clone())?;
                return Ok(s);
            }
        }
        let _permit = self.transfer_permit().await;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}")).await?;
        let mut req = Req::new(Method::GET, url).scope(Scope::pull(repo)).repo(repo);
        if offset > 0 {
            req = req.header(header::RANGE, &format!("bytes={offset}-"));
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        let mut resp = match status {
            StatusCode::OK => resp,
            StatusCode::PARTIAL_CONTENT if offset > 0 => resp,
            _ => return Err(self.error_for(resp, Some(repo)).await),
        };
        // Position in the blob of the next byte the response carries.
        let mut pos = self.resumed_position(&resp, repo, digest, offset, size)?;
        // When the registry starts again from 0, re-hash the prefix and compare.
        let mut prefix = (pos < offset).then(|| digest.algorithm().hasher());
        let write_err = |e| RegistryError::Io {
            what: format!("writing blob {digest}"),
            source: e,
        };
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(broken(self, repo, digest, partial.written, size, &e)),
            };
            let mut data = &chunk[..];
            if let Some(h) = prefix.as_mut() {
                let n = (offset - pos).min(data.len() as u64) as usize;
                h.update(&data[..n]);
                pos += n as u64;
                data = &data[n..];
                if pos == offset {
                    let theirs = prefix.take().expect("set").finish();
                    let ours = partial.hasher.clone().finish();
                    if theirs != ours {
                        return Err(RegistryError::Protocol {
                            site: self.site(Some(repo)),
                            message: format!(
                                "blob {digest}: cannot resume: the registry ignored the range request and the {offset} bytes already written differ from its content; download again from the start"
                            ),
                        });
                    }
                }
            }
            if data.is_empty() {
                continue;
            }
            if let Some(s) = size
                && pos + data.len() as u64 > s
            {
                return Err(RegistryError::SizeMismatch {
                    site: self.site(Some(repo)),
                    digest: digest.clone(),
                    expected: s,
                    actual: pos + data.len() as u64,
                });
            }
            w.write_all(data).map_err(write_err)?;
            partial.hasher.update(data);
            partial.written += data.len() as u64;
            pos += data.len() as u64;
        }
        if prefix.is_some() {
            return Err(RegistryError::SizeMismatch {
                site: self.site(Some(repo)),
                digest: digest.clone(),
                expected: size.unwrap_or(offset),
                actual: pos,
            });
        }
        w.flush().map_err(write_err)?;
        verify(self, repo, digest, size, partial.written, partial.hasher.clone())?;
        Ok(partial.written)
    }

    /// Downloads several blobs of one repository at once (at most
    /// [`crate::ClientOptions::max_concurrent_transfers`] in flight), each
    /// into its writer. Results are in the order given.
    pub async fn fetch_blobs<W: Write>(&self, repo: &str, items: Vec<(Descriptor, W)>) -> Vec<Result<W>> {
        let futs = items
            .into_iter()
            .map(|(d, mut w)| async move { self.get_blob(repo, &d.digest, Some(d.size), &mut w).await.map(|_| w) });
        futures_util::future::join_all(futs).await
    }

    /// `POST /v2/NAME/blobs/uploads/`: a new upload session.
    pub async fn start_upload(&self, repo: &str) -> Result<Upload> {
        check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/blobs/uploads/")).await?;
        let resp = self
            .send(
                Req::new(Method::POST, url)
                    .scope(Scope::push(repo))
                    .repo(repo)
                    .bytes(Bytes::new()),
            )
            .await?;
        let resp = self.expect(resp, &[StatusCode::ACCEPTED], Some(repo)).await?;
        self.upload_from(repo, &resp)
    }

    fn upload_from(&self, repo: &str, resp: &Response) -> Result<Upload> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                site: self.site(Some(repo)),
                message: format!(
                    "the registry answered {} without a Location for the upload",
                    resp.status()
                ),
            })?;
        Ok(Upload {
            repo: repo.to_string(),
            location: self.resolve_location(resp.url(), loc, Some(repo))?,
        })
    }

    /// Cross-repository mount: `POST ?mount=DIGEST&from=REPO`. 201 means
    /// mounted; 202 means the registry opened an upload session instead.
    pub async fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount> {
        check_repo(repo)?;
        check_repo(from)?;
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/")).await?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let scope = Scope::push(repo).with_repository(from, &["pull"]);
        let resp = self
            .send(Req::new(Method::POST, url).scope(scope).repo(repo).bytes(Bytes::new()))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(self.upload_from(repo, &resp)?)),
            _ => Err(self.error_for(resp, Some(repo)).await),
        }
    }

    /// Uploads a blob of `size` bytes read from `reader` into a new session.
    pub async fn push_blob<R: AsyncRead + Unpin>(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        reader: R,
    ) -> Result<()> {
        let upload = self.start_upload(repo).await?;
        self.upload_blob(upload, digest, size, reader).await
    }

    /// Uploads bytes; returns their sha256 digest.
    pub async fn push_blob_bytes(&self, repo: &str, data: impl Into<Bytes>) -> Result<Digest> {
        let data: Bytes = data.into();
        let digest = Digest::sha256_of(&data);
        let upload = self.start_upload(repo).await?;
        let _permit = self.transfer_permit().await;
        let url = with_digest(&upload.location, &digest);
        let resp = self
            .send(
                Req::new(Method::PUT, url)
                    .scope(Scope::push(repo))
                    .repo(repo)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .bytes(data),
            )
            .await?;
        self.finish_upload(resp, repo, &digest).await?;
        Ok(digest)
    }

    /// Uploads into a session: one `PUT ?digest=` up to
    /// [`crate::ClientOptions::monolithic_max`] bytes, else `PATCH` chunks
    /// (`Content-Range`, following each `Location`) and a closing `PUT`.
    /// The content is hashed on the way and must match `digest`.
    pub async fn upload_blob<R: AsyncRead + Unpin>(
        &self,
        upload: Upload,
        digest: &Digest,
        size: u64,
        mut reader: R,
    ) -> Result<()> {
        let repo = upload.repo.clone();
        let _permit = self.transfer_permit().await;
        let mut hasher = digest.algorithm().hasher();
        let opts = &self.inner.options;
        if size <= opts.monolithic_max {
            let url = with_digest(&upload.location, digest);
            let req = Req::new(Method::PUT, url)
                .scope(Scope::push(&repo))
                .repo(&repo)
                .header(header::CONTENT_TYPE, "application/octet-stream");
            let resp = self
                .send_streamed(req, &mut reader, size, Some(&mut hasher), digest)
                .await;
            self.check_hash(&repo, digest, hasher)?;
            return self.finish_upload(resp?, &repo, digest).await;
        }
        let mut location = upload.location.clone();
        self.patch_chunks(&repo, &mut location, digest, size, &mut reader, Some(&mut hasher))
            .await?;
        self.check_hash(&repo, digest, hasher)?;
        let req = Req::new(Method::PUT, with_digest(&location, digest))
            .scope(Scope::push(&repo))
            .repo(&repo)
            .bytes(Bytes::new());
        let resp = self.send(req).await?;
        self.finish_upload(resp, &repo, digest).await
    }

    /// `PATCH`es `size` bytes of `reader` into the session at `location` (in
    /// chunks of [`crate::ClientOptions::chunk_size`], else one request),
    /// hashing them into `hasher` when given; `location` follows each
    /// `Location` the registry answers.
    async fn patch_chunks<R: AsyncRead + Unpin>(
        &self,
        repo: &str,
        location: &mut Url,
        digest: &Digest,
        size: u64,
        reader: &mut R,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<()> {
        let chunk = self.inner.options.chunk_size.filter(|c| *c > 0).unwrap_or(size);
        let mut offset = 0u64;
        while offset < size {
            let n = chunk.min(size - offset);
            let req = Req::new(Method::PATCH, location.clone())
                .scope(Scope::push(repo))
                .repo(repo)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, &format!("{offset}-{}", offset + n - 1));
            let resp = self
                .send_streamed(req, reader, n, hasher.as_deref_mut(), digest)
                .await?;
            let resp = self.expect(resp, &[StatusCode::ACCEPTED], Some(repo)).await?;
            if let Some(r) = resp.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) {
                let end = r
                    .trim()
                    .trim_start_matches("bytes=")
                    .split('-')
                    .nth(1)
                    .and_then(|e| e.parse::<u64>().ok());
                if end.is_some_and(|e| e != offset + n - 1) {
                    return Err(RegistryError::Protocol {
                        site: self.site(Some(repo)),
                        message: format!(
                            "uploading blob {digest}: after sending bytes up to {} the registry reports Range {r:?}",
                            offset + n - 1
                        ),
                    });
                }
            }
            *location = self.upload_from(repo, &resp)?.location;
            offset += n;
        }
        Ok(())
    }

    /// Uploads into a session from a reader that proves its content only at
    /// its end (a verifying reader fails its last read when the bytes are
    /// not `digest`'s): `PATCH`es carry the content, and the closing
    /// `PUT ?digest=` is sent only after `reader` ended cleanly right after
    /// `size` bytes. Otherwise the session is cancelled, so the repository
    /// never gets the blob; an error of the reader comes back as
    /// [`RegistryError::Io`] with that error as its source. The bytes are
    /// not hashed a second time here: the reader vouches for them (and the
    /// registry checks the digest at the closing `PUT`).
    pub async fn upload_blob_until_end<R: AsyncRead + Unpin>(
        &self,
        upload: Upload,
        digest: &Digest,
        size: u64,
        mut reader: R,
    ) -> Result<()> {
        let repo = upload.repo.clone();
        let _permit = self.transfer_permit().await;
        let mut location = upload.location.clone();
        let sent = async {
            self.patch_chunks(&repo, &mut location, digest, size, &mut reader, None)
                .await?;
            // One more read: the reader's verdict comes with its end.
            let mut probe = [0u8; 1];
            match reader.read(&mut probe).await {
                Ok(0) => {}
                Ok(_) => {
                    return Err(RegistryError::SizeMismatch {
                        site: self.site(Some(&repo)),
                        digest: digest.clone(),
                        expected: size,
                        actual: size + 1,
                    });
                }
                Err(e) => {
                    return Err(RegistryError::Io {
                        what: format!("reading the content of blob {digest} to upload"),
                        source: e,
                    });
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = sent {
            let _ = self
                .cancel_upload(&Upload {
                    repo: repo.clone(),
                    location,
                })
                .await;
            return Err(e);
        }
        let req = Req::new(Method::PUT, with_digest(&location, digest))
            .scope(Scope::push(&repo))
            .repo(&repo)
            .bytes(Bytes::new());
        let resp = self.send(req).await?;
        self.finish_upload(resp, &repo, digest).await
    }

    /// `DELETE` an upload session: the registry drops what it received.
    pub async fn cancel_upload(&self, upload: &Upload) -> Result<()> {
        let resp = self
            .send(
                Req::new(Method::DELETE, upload.location.clone())
                    .scope(Scope::push(&upload.repo))
                    .repo(&upload.repo),
            )
            .await?;
        self.expect(
            resp,
            &[StatusCode::NO_CONTENT, StatusCode::OK, StatusCode::ACCEPTED],
            Some(&upload.repo),
        )
        .await
        .map(|_| ())
    }

    fn check_hash(&self, repo: &str, digest: &Digest, hasher: Hasher) -> Result<()> {
        let actual = hasher.finish();
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                site: self.site(Some(repo)),
                what: "upload of blob",
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    async fn finish_upload(&self, resp: Response, repo: &str, digest: &Digest) -> Result<()> {
        // The closing PUT tried again after its answer was lost finds the
        // session closed (404): the blob is there if the first one took.
        if resp.status() == StatusCode::NOT_FOUND && matches!(self.head_blob(repo, digest).await, Ok(Some(_))) {
            return Ok(());
        }
        let resp = self
            .expect(
                resp,
                &[StatusCode::CREATED, StatusCode::OK, StatusCode::NO_CONTENT],
                Some(repo),
            )
            .await?;
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok())
            && d.algorithm() == digest.algorithm()
            && d != *digest
        {
            return Err(RegistryError::Protocol {
                site: self.site(Some(repo)),
                message: format!("uploaded blob {digest}, but the registry stored it as {d}"),
            });
        }
        Ok(())
    }

    /// Sends `req` with exactly `len` bytes of `reader` as its body, hashing them.
    async fn send_streamed<R: AsyncRead + Unpin>(
        &self,
        req: Req,
        reader: &mut R,
        len: u64,
        mut hasher: Option<&mut Hasher>,
        digest: &Digest,
    ) -> Result<Response> {
        if len == 0 {
            return self.send(req.bytes(Bytes::new())).await;
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        let req = req.stream(reqwest::Body::wrap_stream(stream), len);
        let feed = async move {
            let mut left = len;
            let mut buf = vec![0u8; (256 * 1024).min(len as usize)];
            while left > 0 {
                let want = (buf.len() as u64).min(left) as usize;
                match reader.read(&mut buf[..want]).await {
                    Ok(0) => {
                        let e = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("the content ended {left} bytes before its announced size"),
                        );
                        let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string()))).await;
                        return Err(e);
                    }
                    Ok(n) => {
                        if let Some(h) = hasher.as_deref_mut() {
                            h.update(&buf[..n]);
                        }
                        left -= n as u64;
                        if tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                            // The request ended early; its response says why.
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string()))).await;
                        return Err(e);
                    }
                }
            }
            Ok(())
        };
        let (resp, fed) = tokio::join!(self.send(req), feed);
        fed.map_err(|e| RegistryError::Io {
            what: format!("reading the content of blob {digest} to upload"),
            source: e,
        })?;
        resp
    }
}

fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut u = location.clone();
    u.query_pairs_mut().append_pair("digest", &digest.to_string());
    u
}
