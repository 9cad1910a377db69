//! Pull-through cache: a manifest or blob missing here is fetched from the
//! upstream registry, verified against its digest, stored, then served from
//! storage. Tags are re-checked upstream on every pull (a HEAD) and served
//! from the cache when the upstream is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::TryStreamExt;
use strata_oci::{Digest, media};

use crate::config::ProxyConfig;
use crate::error::{ApiError, ApiResult};
use crate::registry::{ManifestRef, Registry};
use crate::storage::{ByteStream, layout};

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
    pub fn new(cfg: &ProxyConfig) -> anyhow::Result<Proxy> {
        crate::util::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| anyhow::anyhow!("proxy HTTP client: {e}"))?;
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

    async fn login(&self, repo: &str, challenge: &str) -> Result<String, String> {
        if challenge.to_ascii_lowercase().starts_with("basic") {
            return self
                .basic()
                .ok_or_else(|| "upstream wants credentials; set proxy.username".into());
        }
        let p = challenge_params(challenge);
        let realm = p.get("realm").ok_or("upstream challenge has no realm")?;
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("scope", &format!("repository:{repo}:pull"));
            if let Some(s) = p.get("service") {
                q.append_pair("service", s);
            }
            q.finish()
        };
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut req = self.client.get(format!("{realm}{sep}{query}"));
        if let Some(b) = self.basic() {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| format!("upstream token: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("upstream token endpoint answered {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| format!("upstream token: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("upstream token: {e}"))?;
        let t = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or("upstream token response has no token")?;
        Ok(format!("Bearer {t}"))
    }

    /// Sends a request upstream, answering one auth challenge if needed.
    async fn send(&self, method: reqwest::Method, repo: &str, path: &str) -> Result<reqwest::Response, String> {
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
            let resp = req.send().await.map_err(|e| format!("upstream {url}: {e}"))?;
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
        Err(format!("upstream {url}: unauthorized"))
    }

    async fn fetch_manifest(
        &self,
        reg: &Registry,
        repo: &str,
        reference: &str,
        tag: Option<&str>,
    ) -> Result<(), String> {
        let resp = self
            .send(reqwest::Method::GET, repo, &format!("manifests/{reference}"))
            .await?;
        if !resp.status().is_success() {
            return Err(format!("upstream manifest {repo}:{reference}: {}", resp.status()));
        }
        let mt = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .filter(|s| media::is_manifest(s) || media::is_index(s));
        let bytes = resp.bytes().await.map_err(|e| format!("upstream manifest: {e}"))?;
        if bytes.len() as u64 > media::MAX_DOCUMENT_SIZE {
            return Err("upstream manifest is larger than 4 MiB".into());
        }
        let digest = match Digest::parse(reference) {
            Ok(d) => {
                if Digest::of(d.algorithm(), &bytes) != d {
                    return Err(format!("upstream manifest does not match its digest {d}"));
                }
                d
            }
            Err(_) => Digest::sha256_of(&bytes),
        };
        let doc = strata_oci::Document::parse(&bytes, mt.as_deref()).map_err(|e| e.to_string())?;
        let mt = mt.unwrap_or_else(|| doc.media_type().to_string());
        reg.manifest_store_raw(repo, &digest, &mt, bytes, tag)
            .await
            .map_err(|e| e.message)
    }

    /// Makes sure the manifest is in the cache (best effort: failures leave
    /// whatever the cache holds).
    pub async fn ensure_manifest(&self, reg: &Registry, repo: &str, r: &ManifestRef) {
        let result = match r {
            ManifestRef::Digest(d) => {
                if matches!(reg.manifest_media_type(repo, d).await, Ok(Some(_)))
                    && matches!(reg.driver.stat(&layout::blob(d)).await, Ok(Some(_)))
                {
                    return;
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
                    return;
                }
                self.fetch_manifest(reg, repo, t, Some(t)).await
            }
        };
        if let Err(e) = result {
            eprintln!("strata registry: proxy: {e}");
        }
    }

    /// Whether the upstream has blob `d` in `repo` (a HEAD with the proxy's
    /// credentials); Err when it gives no clear answer.
    async fn upstream_has_blob(&self, repo: &str, d: &Digest) -> Result<bool, String> {
        let resp = self.send(reqwest::Method::HEAD, repo, &format!("blobs/{d}")).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(false),
            s => Err(format!("upstream blob {repo}@{d}: {s}")),
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
                Err(e) => Err(ApiError::unavailable(e)),
            };
        }
        let resp = self
            .send(reqwest::Method::GET, repo, &format!("blobs/{d}"))
            .await
            .map_err(ApiError::unavailable)?;
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
