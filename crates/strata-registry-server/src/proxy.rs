//! Pull-through cache: a manifest or blob missing here is fetched from the
//! upstream registry, verified against its digest, stored, then served from
//! storage. Tags are re-checked upstream on every pull (a HEAD) and served
//! from the cache when the upstream is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use strata_oci::{Digest, media};

use crate::config::ProxyConfig;
use crate::error::{ApiError, ApiResult};
use crate::registry::{ManifestRef, Registry};
use crate::storage::{ByteStream, layout};

/// The most of an upstream token response read (a JWT is a few KiB).
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// Why the upstream could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream {url}: {cause}")]
    Connection { url: String, cause: String },
    #[error("upstream {what} exceeds {} MiB", .limit >> 20)]
    TooLarge { what: &'static str, limit: u64 },
    #[error("upstream {what}: {status}")]
    Status { what: String, status: StatusCode },
    #[error("upstream wants credentials; set proxy.username")]
    NeedsCredentials,
    #[error("upstream token challenge has no realm")]
    NoRealm,
    #[error("upstream token response: {0}")]
    BadToken(String),
    #[error("upstream {0}: unauthorized")]
    Unauthorized(String),
    #[error("upstream manifest does not match its digest {0}")]
    DigestMismatch(Digest),
    #[error("upstream manifest is not valid: {0}")]
    InvalidManifest(String),
    #[error("caching upstream manifest: {0}")]
    Store(String),
}

impl ProxyError {
    fn connection(url: &str, e: &reqwest::Error) -> ProxyError {
        let mut cause = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            cause.push_str(&format!(": {s}"));
            src = s.source();
        }
        ProxyError::Connection {
            url: url.to_string(),
            cause,
        }
    }
}

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> ApiError {
        match e {
            ProxyError::Connection { .. } => ApiError::unavailable(e.to_string()),
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "UNAVAILABLE", e.to_string()),
        }
    }
}

/// Reads a whole upstream body of at most `limit` bytes: a larger declared
/// length is refused before any of the body is read, and a body without one
/// (chunked) is dropped, closing the connection, as soon as it passes `limit`.
async fn read_bounded(mut resp: reqwest::Response, limit: u64, what: &'static str) -> Result<Bytes, ProxyError> {
    let too_large = ProxyError::TooLarge { what, limit };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let url = resp.url().to_string();
    let mut out = BytesMut::new();
    while let Some(c) = resp.chunk().await.map_err(|e| ProxyError::connection(&url, &e))? {
        if (out.len() + c.len()) as u64 > limit {
            return Err(too_large);
        }
        out.extend_from_slice(&c);
    }
    Ok(out.freeze())
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

pub struct Proxy {
    remote: String,
    username: Option<String>,
    password: Option<String>,
    client: reqwest::Client,
    /// repo → (Authorization header value, obtained at).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// One fetch per blob at a time.
    fetching: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

fn challenge_params(h: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let rest = h.split_once(' ').map(|x| x.1).unwrap_or("");
    let mut s = rest;
    while let Some((k, v)) = s.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let v = v.trim_start();
        if let Some(stripped) = v.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            out.insert(k, stripped[..end].to_string());
            s = stripped.get(end + 1..).unwrap_or("");
        } else {
            let end = v.find(',').unwrap_or(v.len());
            out.insert(k, v[..end].to_string());
            s = &v[end..];
        }
    }
    out
}

impl Proxy {
    pub fn new(cfg: &ProxyConfig) -> Result<Proxy, crate::error::Error> {
        crate::util::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // An upstream that stops sending must not hold a request forever.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| crate::error::Error::ProxyClient { source })?;
        Ok(Proxy {
            remote: cfg.remoteurl.trim_end_matches('/').to_string(),
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            client,
            tokens: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine;
        let (u, p) = (self.username.as_ref()?, self.password.as_deref().unwrap_or(""));
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ))
    }

    async fn login(&self, repo: &str, challenge: &str) -> Result<String, ProxyError> {
        if challenge.to_ascii_lowercase().starts_with("basic") {
            return self.basic().ok_or(ProxyError::NeedsCredentials);
        }
        let p = challenge_params(challenge);
        let realm = p.get("realm").ok_or(ProxyError::NoRealm)?;
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("scope", &format!("repository:{repo}:pull"));
            if let Some(s) = p.get("service") {
                q.append_pair("service", s);
            }
            q.finish()
        };
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{query}");
        let mut req = self.client.get(&url);
        if let Some(b) = self.basic() {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| ProxyError::connection(&url, &e))?;
        if !resp.status().is_success() {
            return Err(ProxyError::Status {
                what: "token endpoint".into(),
                status: resp.status(),
            });
        }
        let body = read_bounded(resp, MAX_TOKEN_RESPONSE, "token response").await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ProxyError::BadToken(e.to_string()))?;
        let t = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| ProxyError::BadToken("no token in it".into()))?;
        Ok(format!("Bearer {t}"))
    }

    /// Sends a request upstream, answering one auth challenge if needed.
    async fn send(&self, method: reqwest::Method, repo: &str, path: &str) -> Result<reqwest::Response, ProxyError> {
        let url = format!("{}/v2/{repo}/{path}", self.remote);
        let cached = self
            .tokens
            .lock()
            .expect("tokens")
            .get(repo)
            .filter(|(_, t)| t.elapsed() < Duration::from_secs(60))
            .map(|(h, _)| h.clone());
        for attempt in 0..2 {
            let auth = if attempt == 0 {
                cached.clone()
            } else {
                self.tokens.lock().expect("tokens").get(repo).map(|(h, _)| h.clone())
            };
            let mut req = self
                .client
                .request(method.clone(), &url)
                .header(reqwest::header::ACCEPT, ACCEPT);
            if let Some(a) = auth {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| ProxyError::connection(&url, &e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let ch = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let h = self.login(repo, &ch).await?;
                self.tokens
                    .lock()
                    .expect("tokens")
                    .insert(repo.to_string(), (h, Instant::now()));
                continue;
            }
            return Ok(resp);
        }
        Err(ProxyError::Unauthorized(url))
    }

    async fn fetch_manifest(
        &self,
        reg: &Registry,
        repo: &str,
        reference: &str,
        tag: Option<&str>,
    ) -> Result<(), ProxyError> {
        let resp = self
            .send(reqwest::Method::GET, repo, &format!("manifests/{reference}"))
            .await?;
        if !resp.status().is_success() {
            return Err(ProxyError::Status {
                what: format!("manifest {repo}:{reference}"),
                status: resp.status(),
            });
        }
        let mt = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .filter(|s| media::is_manifest(s) || media::is_index(s));
        let bytes = read_bounded(resp, media::MAX_DOCUMENT_SIZE, "manifest").await?;
        let digest = match Digest::parse(reference) {
            Ok(d) => {
                if Digest::of(d.algorithm(), &bytes) != d {
                    return Err(ProxyError::DigestMismatch(d));
                }
                d
            }
            Err(_) => Digest::sha256_of(&bytes),
        };
        let doc = strata_oci::Document::parse(&bytes, mt.as_deref())
            .map_err(|e| ProxyError::InvalidManifest(e.to_string()))?;
        let mt = mt.unwrap_or_else(|| doc.media_type().to_string());
        reg.manifest_store_raw(repo, &digest, &mt, bytes, tag)
            .await
            .map_err(|e| ProxyError::Store(e.message))
    }

    /// Makes sure the manifest is in the cache. On an error the cache may
    /// still hold a copy (served when the upstream is down); the caller
    /// reports the error only when it does not.
    pub async fn ensure_manifest(&self, reg: &Registry, repo: &str, r: &ManifestRef) -> Result<(), ProxyError> {
        let result = match r {
            ManifestRef::Digest(d) => {
                if matches!(reg.manifest_media_type(repo, d).await, Ok(Some(_)))
                    && matches!(reg.driver.stat(&layout::blob(d)).await, Ok(Some(_)))
                {
                    return Ok(());
                }
                self.fetch_manifest(reg, repo, &d.to_string(), None).await
            }
            ManifestRef::Tag(t) => {
                let head = self.send(reqwest::Method::HEAD, repo, &format!("manifests/{t}")).await;
                let upstream = head.ok().and_then(|r| {
                    r.status()
                        .is_success()
                        .then(|| {
                            r.headers()
                                .get("docker-content-digest")?
                                .to_str()
                                .ok()?
                                .parse::<Digest>()
                                .ok()
                        })
                        .flatten()
                });
                let local = reg.tag_digest(repo, t).await.ok().flatten();
                if upstream.is_some() && upstream == local {
                    return Ok(());
                }
                self.fetch_manifest(reg, repo, t, Some(t)).await
            }
        };
        if let Err(e) = &result {
            eprintln!("strata registry: proxy: {e}");
        }
        result
    }

    /// Whether the upstream has blob `d` in `repo` (a HEAD with the proxy's
    /// credentials); Err when it gives no clear answer.
    async fn upstream_has_blob(&self, repo: &str, d: &Digest) -> Result<bool, ProxyError> {
        let resp = self.send(reqwest::Method::HEAD, repo, &format!("blobs/{d}")).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(false),
            status => Err(ProxyError::Status {
                what: format!("blob {repo}@{d}"),
                status,
            }),
        }
    }

    /// Fetches a blob into the cache and links it into `repo`.
    pub async fn ensure_blob(&self, reg: &Registry, repo: &str, d: &Digest) -> ApiResult<()> {
        let lock = {
            let mut f = self.fetching.lock().expect("fetching");
            f.retain(|_, l| Arc::strong_count(l) > 1);
            f.entry(d.clone()).or_default().clone()
        };
        let _g = lock.lock().await;
        if reg.blob_exists_anywhere(d).await?.is_some() {
            // Cached for some repository. A digest is no secret, so linking it
            // here on that alone would let anyone who may pull `repo` read any
            // cached blob: link it only when a manifest of `repo` names it or
            // the upstream serves it under `repo`.
            if reg.manifests_reference(repo, d).await? {
                return reg.link_blob(repo, d).await;
            }
            return match self.upstream_has_blob(repo, d).await {
                Ok(true) => reg.link_blob(repo, d).await,
                Ok(false) => Err(ApiError::blob_unknown(d)),
                Err(e) => Err(e.into()),
            };
        }
        let resp = self.send(reqwest::Method::GET, repo, &format!("blobs/{d}")).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(ApiError::blob_unknown(d));
        }
        if !resp.status().is_success() {
            return Err(ApiError::unavailable(format!("upstream blob {d}: {}", resp.status())));
        }
        let stream: ByteStream = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
        reg.driver
            .put_verified(&layout::blob(d), stream, d)
            .await
            .map_err(|e| ApiError::unavailable(format!("fetching {d} from upstream: {e}")))?;
        reg.link_blob(repo, d).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn challenge() {
        let p = super::challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }
}
