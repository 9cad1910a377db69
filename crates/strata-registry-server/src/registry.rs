//! The registry's content model over a storage driver: blobs linked into
//! repositories, upload sessions, manifests, tags and referrers. HTTP-free:
//! the routes translate requests into these calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use serde_json::{Value, json};
use strata_oci::{Algorithm, Descriptor, Digest, Document, DocumentError, Hasher, Reference, media};

use crate::config::ManifestValidation;
use crate::error::{ApiError, ApiResult};
use crate::storage::{ByteStream, DynDriver, WriteError, layout};

/// Upper bound on cached in-progress upload hashers (each ~200 bytes).
const MAX_CACHED_HASHERS: usize = 10_000;

pub struct Registry {
    pub driver: DynDriver,
    pub validation: ManifestValidation,
    pub delete_enabled: bool,
    /// sha256 state of uploads hashed on the way in: id → (bytes hashed, hasher).
    hashers: Mutex<HashMap<String, (u64, Hasher)>>,
    /// Serializes requests on one upload session within this process.
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// A manifest as stored: its digest, media type and bytes.
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct UploadInfo {
    repo: String,
    started: u64,
}

/// A reference in a manifest URL: a tag or a digest.
pub enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

impl ManifestRef {
    pub fn parse(s: &str) -> ApiResult<ManifestRef> {
        if s.contains(':') {
            Digest::parse(s)
                .map(ManifestRef::Digest)
                .map_err(|e| ApiError::digest_invalid(e.to_string()))
        } else {
            Reference::check_tag(s).map_err(|e| ApiError::tag_invalid(e.to_string()))?;
            Ok(ManifestRef::Tag(s.to_string()))
        }
    }
}

pub fn check_name(name: &str) -> ApiResult<()> {
    Reference::check_repository_path(name).map_err(|e| ApiError::name_invalid(e.to_string()))
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Io(e) => ApiError::internal(format!("storage: {e}")),
        WriteError::Body(e) => ApiError::upload_invalid(format!("reading the request body failed: {e}")),
        WriteError::Digest { expected, actual, size } => ApiError::digest_invalid(format!(
            "provided digest {expected} does not match the content ({size} bytes hash to {actual})"
        ))
        .with_detail(json!({ "digest": expected.to_string() })),
        WriteError::Offset { current, .. } => ApiError::range_invalid(current),
        WriteError::UnknownUpload => ApiError::upload_unknown(),
    }
}

impl Registry {
    pub fn new(driver: DynDriver, validation: ManifestValidation, delete_enabled: bool) -> Registry {
        Registry {
            driver,
            validation,
            delete_enabled,
            hashers: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("locks");
        if let Some(l) = locks.get(id).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(id.to_string(), Arc::downgrade(&l));
        l
    }

    // ---- blobs ----

    /// Size of a blob visible in `repo`, or None.
    pub async fn blob_size(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        let linked = self.driver.stat(&layout::layer_link(repo, d)).await?.is_some()
            || self.driver.stat(&layout::revision(repo, d)).await?.is_some();
        if !linked {
            return Ok(None);
        }
        Ok(self.driver.stat(&layout::blob(d)).await?.map(|m| m.size))
    }

    pub async fn blob_read(&self, d: &Digest, range: Option<std::ops::Range<u64>>) -> ApiResult<Option<ByteStream>> {
        Ok(self.driver.read(&layout::blob(d), range).await?)
    }

    pub async fn blob_exists_anywhere(&self, d: &Digest) -> ApiResult<Option<u64>> {
        Ok(self.driver.stat(&layout::blob(d)).await?.map(|m| m.size))
    }

    pub async fn link_blob(&self, repo: &str, d: &Digest) -> ApiResult<()> {
        self.driver
            .put(&layout::layer_link(repo, d), Bytes::from(d.to_string()))
            .await?;
        Ok(())
    }

    pub async fn blob_delete(&self, repo: &str, d: &Digest) -> ApiResult<()> {
        if !self.delete_enabled {
            return Err(ApiError::unsupported("deletes are disabled on this registry"));
        }
        let key = layout::layer_link(repo, d);
        if self.driver.stat(&key).await?.is_none() {
            return Err(ApiError::blob_unknown(d));
        }
        self.driver.delete(&key).await?;
        Ok(())
    }

    /// Stores a whole blob whose digest the client gave, then links it.
    pub async fn blob_put(&self, repo: &str, d: &Digest, body: ByteStream) -> ApiResult<u64> {
        let size = self
            .driver
            .put_verified(&layout::blob(d), body, d)
            .await
            .map_err(write_error)?;
        self.link_blob(repo, d).await?;
        Ok(size)
    }

    /// Links a blob from `from` (or from anywhere, when `from` is None) into `repo`.
    pub async fn mount(&self, repo: &str, d: &Digest, from: Option<&str>) -> ApiResult<bool> {
        let present = match from {
            Some(f) => self.blob_size(f, d).await?.is_some(),
            None => self.blob_exists_anywhere(d).await?.is_some(),
        };
        if present {
            self.link_blob(repo, d).await?;
        }
        Ok(present)
    }

    // ---- uploads ----

    pub async fn upload_start(&self, repo: &str) -> ApiResult<String> {
        let id = crate::util::random_id();
        let info = serde_json::to_vec(&UploadInfo {
            repo: repo.into(),
            started: crate::util::unix_now(),
        })
        .expect("upload info serializes");
        self.driver.upload_start(&id, Bytes::from(info)).await?;
        Ok(id)
    }

    /// The upload's current size; unknown unless it belongs to `repo`.
    pub async fn upload_size(&self, repo: &str, id: &str) -> ApiResult<u64> {
        if !crate::util::is_upload_id(id) {
            return Err(ApiError::upload_unknown());
        }
        let Some((info, size)) = self.driver.upload_state(id).await? else {
            return Err(ApiError::upload_unknown());
        };
        let info: UploadInfo = serde_json::from_slice(&info).map_err(|_| ApiError::upload_unknown())?;
        if info.repo != repo {
            return Err(ApiError::upload_unknown());
        }
        Ok(size)
    }

    async fn append(&self, id: &str, offset: u64, body: ByteStream) -> ApiResult<u64> {
        let cached = {
            let mut h = self.hashers.lock().expect("hashers");
            match h.remove(id) {
                Some((n, hasher)) if n == offset => Some(hasher),
                _ if offset == 0 => Some(Hasher::sha256()),
                _ => None,
            }
        };
        let (body, cell) = match cached {
            Some(hasher) => {
                let (b, c) = crate::storage::hashing(body, hasher);
                (b, Some(c))
            }
            None => (body, None),
        };
        let new_size = self.driver.upload_append(id, offset, body).await.map_err(write_error)?;
        if let Some(cell) = cell {
            let (hasher, n) = std::mem::replace(&mut *cell.lock().expect("hasher"), (Hasher::sha256(), 0));
            if offset + n == new_size {
                let mut h = self.hashers.lock().expect("hashers");
                if h.len() >= MAX_CACHED_HASHERS {
                    h.clear();
                }
                h.insert(id.to_string(), (new_size, hasher));
            }
        }
        Ok(new_size)
    }

    /// Appends a chunk. `start` is the first byte's offset from Content-Range, if given.
    pub async fn upload_patch(&self, repo: &str, id: &str, start: Option<u64>, body: ByteStream) -> ApiResult<u64> {
        let lock = self.upload_lock(id);
        let _g = lock.lock().await;
        let size = self.upload_size(repo, id).await?;
        if let Some(s) = start
            && s != size
        {
            return Err(ApiError::range_invalid(size));
        }
        self.append(id, size, body).await
    }

    /// Appends a last chunk (if any; `start` from its Content-Range) and
    /// completes the upload as `d`.
    pub async fn upload_finish(
        &self,
        repo: &str,
        id: &str,
        d: &Digest,
        start: Option<u64>,
        body: Option<ByteStream>,
    ) -> ApiResult<u64> {
        let lock = self.upload_lock(id);
        let _g = lock.lock().await;
        let mut size = self.upload_size(repo, id).await?;
        if let Some(s) = start
            && s != size
        {
            return Err(ApiError::range_invalid(size));
        }
        if let Some(body) = body {
            size = self.append(id, size, body).await?;
        }
        let known = {
            let mut h = self.hashers.lock().expect("hashers");
            match h.remove(id) {
                Some((n, hasher)) if n == size && d.algorithm() == Algorithm::Sha256 => Some(hasher.finish()),
                _ => None,
            }
        };
        match self.driver.upload_commit(id, &layout::blob(d), d, known.as_ref()).await {
            Ok(size) => {
                self.link_blob(repo, d).await?;
                Ok(size)
            }
            Err(e @ WriteError::Digest { .. }) => {
                // The bytes can never become this digest: the session is dead.
                let _ = self.driver.upload_remove(id).await;
                Err(write_error(e))
            }
            Err(e) => Err(write_error(e)),
        }
    }

    pub async fn upload_cancel(&self, repo: &str, id: &str) -> ApiResult<()> {
        let lock = self.upload_lock(id);
        let _g = lock.lock().await;
        self.upload_size(repo, id).await?;
        self.hashers.lock().expect("hashers").remove(id);
        self.driver.upload_remove(id).await?;
        Ok(())
    }

    // ---- manifests ----

    async fn resolve(&self, repo: &str, r: &ManifestRef) -> ApiResult<Option<Digest>> {
        match r {
            ManifestRef::Digest(d) => Ok(Some(d.clone())),
            ManifestRef::Tag(t) => {
                let Some(b) = self.driver.get(&layout::tag(repo, t)).await? else {
                    return Ok(None);
                };
                let s = std::str::from_utf8(&b).unwrap_or("").trim();
                Ok(Digest::parse(s).ok())
            }
        }
    }

    /// Media type of a manifest in `repo`, or None.
    pub async fn manifest_media_type(&self, repo: &str, d: &Digest) -> ApiResult<Option<String>> {
        Ok(self
            .driver
            .get(&layout::revision(repo, d))
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub async fn manifest_get(&self, repo: &str, r: &ManifestRef) -> ApiResult<Option<StoredManifest>> {
        let Some(digest) = self.resolve(repo, r).await? else {
            return Ok(None);
        };
        let Some(media_type) = self.manifest_media_type(repo, &digest).await? else {
            return Ok(None);
        };
        let Some(bytes) = self.driver.get(&layout::blob(&digest)).await? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            digest,
            media_type,
            bytes,
        }))
    }

    /// Checks a descriptor's inline `data` against its digest and size.
    fn check_data(desc: &Descriptor) -> ApiResult<bool> {
        let Some(data) = &desc.data else { return Ok(false) };
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| ApiError::manifest_invalid(format!("descriptor {}: data is not base64: {e}", desc.digest)))?;
        if bytes.len() as u64 != desc.size || Digest::of(desc.digest.algorithm(), &bytes) != desc.digest {
            return Err(ApiError::manifest_invalid(format!(
                "descriptor {}: its data field does not match its digest and size",
                desc.digest
            )));
        }
        Ok(true)
    }

    async fn check_blob_ref(&self, repo: &str, desc: &Descriptor) -> ApiResult<()> {
        let inline = Self::check_data(desc)?;
        if inline || !self.validation.referencedblobs || desc.urls.as_ref().is_some_and(|u| !u.is_empty()) {
            return Ok(());
        }
        match self.blob_size(repo, &desc.digest).await? {
            None => Err(ApiError::manifest_blob_unknown(&desc.digest)),
            Some(n) if n != desc.size => Err(ApiError::manifest_invalid(format!(
                "descriptor {} says {} bytes but the blob has {n}",
                desc.digest, desc.size
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Validates and stores a manifest; returns its digest and its subject, if any.
    pub async fn manifest_put(
        &self,
        repo: &str,
        r: &ManifestRef,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> ApiResult<(Digest, Option<Digest>)> {
        let doc = Document::parse(&bytes, content_type).map_err(|e| match e {
            DocumentError::TooLarge(_) => ApiError::too_large(e.to_string()),
            e => ApiError::manifest_invalid(e.to_string()),
        })?;
        let digest = match r {
            ManifestRef::Digest(d) => {
                let actual = Digest::of(d.algorithm(), &bytes);
                if &actual != d {
                    return Err(ApiError::digest_invalid(format!(
                        "manifest content hashes to {actual}, not {d}"
                    )));
                }
                actual
            }
            ManifestRef::Tag(_) => Digest::sha256_of(&bytes),
        };
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
        let (declared, subject, artifact_type) = match &doc {
            Document::Manifest(m) => {
                self.check_blob_ref(repo, &m.config).await?;
                for l in &m.layers {
                    self.check_blob_ref(repo, l).await?;
                }
                let at = m.artifact_type.clone().unwrap_or_else(|| m.config.media_type.clone());
                (m.media_type.clone(), m.subject.clone(), Some(at))
            }
            Document::Index(i) => {
                for child in &i.manifests {
                    Self::check_data(child)?;
                    if self.validation.indexchildren && self.manifest_media_type(repo, &child.digest).await?.is_none() {
                        return Err(ApiError::manifest_blob_unknown(&child.digest));
                    }
                }
                (i.media_type.clone(), i.subject.clone(), i.artifact_type.clone())
            }
        };
        let media_type = declared
            .or_else(|| {
                ct.filter(|c| media::is_manifest(c) || media::is_index(c))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| doc.media_type().to_string());
        let size = bytes.len() as u64;
        self.driver.put(&layout::blob(&digest), bytes).await?;
        self.driver
            .put(&layout::revision(repo, &digest), Bytes::from(media_type.clone()))
            .await?;
        if let ManifestRef::Tag(t) = r {
            self.driver
                .put(&layout::tag(repo, t), Bytes::from(digest.to_string()))
                .await?;
        }
        let subject_digest = subject.map(|s| s.digest);
        if let Some(s) = &subject_digest {
            let mut desc = json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size });
            if let Some(at) = artifact_type {
                desc["artifactType"] = Value::String(at);
            }
            let annotations = match &doc {
                Document::Manifest(m) => m.annotations.clone(),
                Document::Index(i) => i.annotations.clone(),
            };
            if let Some(a) = annotations {
                desc["annotations"] = serde_json::to_value(a).expect("annotations serialize");
            }
            self.driver
                .put(
                    &layout::referrer(repo, s, &digest),
                    Bytes::from(serde_json::to_vec(&desc).expect("descriptor serializes")),
                )
                .await?;
        }
        Ok((digest, subject_digest))
    }

    pub async fn manifest_delete(&self, repo: &str, r: &ManifestRef) -> ApiResult<()> {
        if !self.delete_enabled {
            return Err(ApiError::unsupported("deletes are disabled on this registry"));
        }
        match r {
            ManifestRef::Tag(t) => {
                let key = layout::tag(repo, t);
                if self.driver.stat(&key).await?.is_none() {
                    return Err(ApiError::manifest_unknown(t));
                }
                self.driver.delete(&key).await?;
                Ok(())
            }
            ManifestRef::Digest(d) => {
                if self.manifest_media_type(repo, d).await?.is_none() {
                    return Err(ApiError::manifest_unknown(&d.to_string()));
                }
                self.remove_manifest(repo, d).await
            }
        }
    }

    /// Removes a manifest from a repository: its tags, its referrer entry and
    /// its revision link (the blob itself goes at the next gc).
    pub async fn remove_manifest(&self, repo: &str, d: &Digest) -> ApiResult<()> {
        if let Some(bytes) = self.driver.get(&layout::blob(d)).await?
            && let Ok(doc) = Document::parse(&bytes, None)
        {
            let subject = match doc {
                Document::Manifest(m) => m.subject,
                Document::Index(i) => i.subject,
            };
            if let Some(s) = subject {
                self.driver.delete(&layout::referrer(repo, &s.digest, d)).await?;
            }
        }
        let wanted = d.to_string();
        for t in self.driver.list_dir(&layout::tags(repo)).await? {
            let key = layout::tag(repo, &t);
            if let Some(b) = self.driver.get(&key).await?
                && std::str::from_utf8(&b).map(str::trim) == Ok(wanted.as_str())
            {
                self.driver.delete(&key).await?;
            }
        }
        self.driver.delete(&layout::revision(repo, d)).await?;
        Ok(())
    }

    // ---- listings ----

    pub async fn repo_exists(&self, repo: &str) -> ApiResult<bool> {
        Ok(self
            .driver
            .list_dir(&layout::repo(repo))
            .await?
            .iter()
            .any(|n| n.starts_with('_')))
    }

    /// Sorted tags, or None when the repository is unknown.
    pub async fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>> {
        let mut tags = self.driver.list_dir(&layout::tags(repo)).await?;
        if tags.is_empty() && !self.repo_exists(repo).await? {
            return Ok(None);
        }
        tags.retain(|t| Reference::check_tag(t).is_ok());
        tags.sort();
        Ok(Some(tags))
    }

    /// Every repository name, sorted.
    pub async fn catalog(&self) -> ApiResult<Vec<String>> {
        let mut out = Vec::new();
        let mut stack: Vec<String> = vec![String::new()];
        while let Some(name) = stack.pop() {
            let prefix = if name.is_empty() {
                layout::REPOSITORIES.to_string()
            } else {
                layout::repo(&name)
            };
            let children = self.driver.list_dir(&prefix).await?;
            if !name.is_empty() && children.iter().any(|c| c.starts_with('_')) {
                out.push(name.clone());
            }
            for c in children {
                if !c.starts_with('_') {
                    let child = if name.is_empty() { c } else { format!("{name}/{c}") };
                    if check_name(&child).is_ok() {
                        stack.push(child);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Descriptors of the manifests whose subject is `subject`.
    pub async fn referrers(&self, repo: &str, subject: &Digest, artifact_type: Option<&str>) -> ApiResult<Vec<Value>> {
        let prefix = layout::referrers(repo, subject);
        let mut out = Vec::new();
        let mut names = self.driver.list_dir(&prefix).await?;
        names.sort();
        for n in names {
            let Some(b) = self.driver.get(&format!("{prefix}/{n}")).await? else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(&b) else {
                continue;
            };
            if let Some(at) = artifact_type
                && v.get("artifactType").and_then(Value::as_str) != Some(at)
            {
                continue;
            }
            out.push(v);
        }
        Ok(out)
    }
}

impl Registry {
    /// Stores a manifest fetched from an upstream (pull-through cache): its
    /// digest was checked by the caller; referenced blobs arrive on demand.
    pub async fn manifest_store_raw(
        &self,
        repo: &str,
        digest: &Digest,
        media_type: &str,
        bytes: Bytes,
        tag: Option<&str>,
    ) -> ApiResult<()> {
        Document::parse(&bytes, Some(media_type)).map_err(|e| ApiError::manifest_invalid(e.to_string()))?;
        self.driver.put(&layout::blob(digest), bytes).await?;
        self.driver
            .put(&layout::revision(repo, digest), Bytes::from(media_type.to_string()))
            .await?;
        if let Some(t) = tag {
            self.driver
                .put(&layout::tag(repo, t), Bytes::from(digest.to_string()))
                .await?;
        }
        Ok(())
    }

    /// Whether a manifest stored in `repo` names `d` as its config or a layer.
    pub async fn manifests_reference(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        for m in self.revisions(repo).await? {
            let mt = self.manifest_media_type(repo, &m).await?;
            let Some(bytes) = self.driver.get(&layout::blob(&m)).await? else {
                continue;
            };
            if let Ok(Document::Manifest(doc)) = Document::parse(&bytes, mt.as_deref())
                && (doc.config.digest == *d || doc.layers.iter().any(|l| l.digest == *d))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Digests of every manifest revision in a repository.
    pub async fn revisions(&self, repo: &str) -> ApiResult<Vec<Digest>> {
        let base = layout::revisions(repo);
        let mut out = Vec::new();
        for alg in self.driver.list_dir(&base).await? {
            for hex in self.driver.list_dir(&format!("{base}/{alg}")).await? {
                if let Some(d) = layout::digest_from(&alg, &hex) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Digest a tag points to.
    pub async fn tag_digest(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        self.resolve(repo, &ManifestRef::Tag(tag.to_string())).await
    }
}
