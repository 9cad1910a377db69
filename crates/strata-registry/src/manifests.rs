//! Manifests and indexes (GET/HEAD/PUT/DELETE, verified and bounded), tag
//! lists and the catalog (paginated), and platform selection in an index.

use std::collections::HashSet;

use bytes::Bytes;
use reqwest::header;
use reqwest::{Method, Response, StatusCode, Url};
use strata_oci::media::{self, MAX_DOCUMENT_SIZE};
use strata_oci::{Descriptor, Digest, Document, Index, Platform, Reference};

use crate::auth::Scope;
use crate::blobs::check_repo;
use crate::client::{Client, ReadLimited, Req, read_limited};
use crate::error::{RegistryError, Result};

/// The `Accept` of manifest requests: OCI and Docker schema 2 manifests and
/// indexes (never schema 1).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest or index as fetched: its bytes (to store unchanged), digest,
/// media type and parsed form.
#[derive(Debug, Clone)]
pub struct ManifestResponse {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    pub document: Document,
}

impl ManifestResponse {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest.clone(), self.bytes.len() as u64)
    }
}

/// What a `HEAD` on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// A platform's manifest, and the index it was chosen from (if any).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub index: Option<ManifestResponse>,
    pub manifest: ManifestResponse,
}

impl Resolved {
    /// The digest the reference resolved to (the index's when there is one).
    pub fn top_digest(&self) -> &Digest {
        self.index.as_ref().map_or(&self.manifest.digest, |i| &i.digest)
    }
}

/// A tag or a digest, checked.
enum Ref {
    Tag,
    Digest(Digest),
}

fn parse_ref(reference: &str) -> Result<Ref> {
    if reference.contains(':') {
        Digest::parse(reference)
            .map(Ref::Digest)
            .map_err(|e| RegistryError::Invalid(e.to_string()))
    } else {
        Reference::check_tag(reference)
            .map(|_| Ref::Tag)
            .map_err(|e| RegistryError::Invalid(e.to_string()))
    }
}

fn header_str<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// What the manifest URL of `reference` ends with: its digest, else its
/// tag, else `latest`.
pub fn manifest_reference(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, t) => t.unwrap_or("latest").to_string(),
    }
}

/// The non-attestation entries of an index, as `os/arch[/variant]` strings.
pub fn index_platforms(index: &Index) -> Vec<String> {
    let mut seen = Vec::new();
    for d in index.manifests.iter().filter(|d| !is_attestation(d)) {
        if let Some(p) = &d.platform {
            let s = p.to_string();
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
    }
    seen
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// The manifest of `index` for `wanted`: an exact variant match before one
/// where either side leaves the variant out. When none matches, the error
/// lists the platforms the index offers.
pub fn select_manifest<'a>(index: &'a Index, wanted: &Platform) -> Result<&'a Descriptor> {
    let mut best: Option<(u8, &Descriptor)> = None;
    for d in &index.manifests {
        if is_attestation(d) || !media::is_manifest(&d.media_type) && !media::is_index(&d.media_type) {
            continue;
        }
        let Some(p) = &d.platform else { continue };
        if !wanted.matches(p) {
            continue;
        }
        let rank = if p.variant == wanted.variant { 2 } else { 1 };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| RegistryError::NoMatchingPlatform {
        image: None,
        wanted: Box::new(wanted.clone()),
        available: index_platforms(index),
    })
}

impl Client {
    /// `GET` a manifest or index by tag or digest. The body is bounded to
    /// 4 MiB and hashed: by digest it must match; by tag it must match the
    /// `Docker-Content-Digest` the registry sends. Schema 1 is refused.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<ManifestResponse> {
        check_repo(repo)?;
        let r = parse_ref(reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}")).await?;
        let resp = self
            .send(
                Req::new(Method::GET, url)
                    .header(header::ACCEPT, MANIFEST_ACCEPT)
                    .scope(Scope::pull(repo))
                    .repo(repo),
            )
            .await?;
        let resp = self.expect(resp, &[StatusCode::OK], Some(repo)).await?;
        let content_type = header_str(&resp, "content-type").map(str::to_string);
        let header_digest = header_str(&resp, "docker-content-digest").and_then(|d| Digest::parse(d).ok());
        let too_large = |size: String| RegistryError::TooLarge {
            site: self.site(Some(repo)),
            what: format!("manifest {reference}"),
            limit: MAX_DOCUMENT_SIZE,
            size,
        };
        if let Some(cl) = resp.content_length()
            && cl > MAX_DOCUMENT_SIZE
        {
            return Err(too_large(format!("{cl} bytes")));
        }
        let body = read_limited(resp, MAX_DOCUMENT_SIZE).await.map_err(|e| match e {
            ReadLimited::TooLarge(_) => too_large("more than that".into()),
            ReadLimited::Broken(cause) => RegistryError::Connection {
                site: self.site(Some(repo)),
                what: format!("the connection broke while receiving manifest {reference}"),
                cause,
            },
        })?;
        let expected = match &r {
            Ref::Digest(d) => Some(d.clone()),
            Ref::Tag => header_digest.clone(),
        };
        let algorithm = expected
            .as_ref()
            .map_or(strata_oci::Algorithm::Sha256, |d| d.algorithm());
        let actual = Digest::of(algorithm, &body);
        if let Some(e) = &expected
            && *e != actual
        {
            return Err(RegistryError::DigestMismatch {
                site: self.site(Some(repo)),
                what: if matches!(r, Ref::Digest(_)) {
                    "manifest"
                } else {
                    "manifest (Docker-Content-Digest)"
                },
                expected: e.clone(),
                actual,
            });
        }
        let document = Document::parse(&body, content_type.as_deref()).map_err(|source| RegistryError::Document {
            site: self.site(Some(repo)),
            reference: reference.to_string(),
            source,
        })?;
        Ok(ManifestResponse {
            digest: actual,
            media_type: document.media_type().to_string(),
            bytes: Bytes::from(body),
            document,
        })
    }

    /// `HEAD` a manifest: None when the repository has no such tag or digest.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<ManifestHead>> {
        check_repo(repo)?;
        parse_ref(reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}")).await?;
        let resp = self
            .send(
                Req::new(Method::HEAD, url)
                    .header(header::ACCEPT, MANIFEST_ACCEPT)
                    .scope(Scope::pull(repo))
                    .repo(repo),
            )
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(Some(ManifestHead {
                digest: header_str(&resp, "docker-content-digest").and_then(|d| Digest::parse(d).ok()),
                media_type: header_str(&resp, "content-type")
                    .map(|c| c.split(';').next().unwrap_or("").trim().to_string()),
                size: header_str(&resp, "content-length").and_then(|l| l.parse().ok()),
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error_for(resp, Some(repo)).await),
        }
    }

    /// `PUT` a manifest or index under a tag or its digest, with its media
    /// type. Returns its sha256 digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<Digest> {
        check_repo(repo)?;
        let r = parse_ref(reference)?;
        let bytes: Bytes = bytes.into();
        if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
            return Err(RegistryError::TooLarge {
                site: self.site(Some(repo)),
                what: format!("manifest {reference}"),
                limit: MAX_DOCUMENT_SIZE,
                size: format!("{} bytes", bytes.len()),
            });
        }
        let digest = match &r {
            Ref::Digest(d) => Digest::of(d.algorithm(), &bytes),
            Ref::Tag => Digest::sha256_of(&bytes),
        };
        if let Ref::Digest(d) = &r
            && *d != digest
        {
            return Err(RegistryError::Invalid(format!(
                "manifest pushed by digest {d} has digest {digest}"
            )));
        }
        let url = self.url(&format!("v2/{repo}/manifests/{reference}")).await?;
        let resp = self
            .send(
                Req::new(Method::PUT, url)
                    .header(header::CONTENT_TYPE, media_type)
                    .scope(Scope::push(repo))
                    .repo(repo)
                    .bytes(bytes),
            )
            .await?;
        let resp = self
            .expect(
                resp,
                &[StatusCode::CREATED, StatusCode::OK, StatusCode::ACCEPTED],
                Some(repo),
            )
            .await?;
        if let Some(d) = header_str(&resp, "docker-content-digest").and_then(|d| Digest::parse(d).ok())
            && d.algorithm() == digest.algorithm()
            && d != digest
        {
            return Err(RegistryError::Protocol {
                site: self.site(Some(repo)),
                message: format!("pushed manifest {digest}, but the registry stored it as {d}"),
            });
        }
        Ok(digest)
    }

    /// `DELETE` a manifest by digest (or a tag, where the registry allows it).
    pub async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<()> {
        check_repo(repo)?;
        parse_ref(reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}")).await?;
        let resp = self
            .send(
                Req::new(Method::DELETE, url)
                    .scope(Scope::none().with_repository(repo, &["delete"]))
                    .repo(repo),
            )
            .await?;
        self.expect(
            resp,
            &[StatusCode::ACCEPTED, StatusCode::OK, StatusCode::NO_CONTENT],
            Some(repo),
        )
        .await
        .map(|_| ())
    }

    /// The manifest `reference` names (digest before tag, `latest` when
    /// neither), and for an index the manifest of `platform` in it.
    pub async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<Resolved> {
        let repo = reference.path();
        let r = manifest_reference(reference);
        let top = self.get_manifest(repo, &r).await?;
        let Document::Index(index) = &top.document else {
            return Ok(Resolved {
                index: None,
                manifest: top,
            });
        };
        let chosen = select_manifest(index, platform).map_err(|e| match e {
            RegistryError::NoMatchingPlatform { wanted, available, .. } => RegistryError::NoMatchingPlatform {
                image: Some(reference.familiar()),
                wanted,
                available,
            },
            other => other,
        })?;
        let m = self.get_manifest(repo, &chosen.digest.to_string()).await?;
        if m.bytes.len() as u64 != chosen.size {
            return Err(RegistryError::Protocol {
                site: self.site(Some(repo)),
                message: format!(
                    "manifest {}: the index says {} bytes, the registry sent {}",
                    chosen.digest,
                    chosen.size,
                    m.bytes.len()
                ),
            });
        }
        if !matches!(m.document, Document::Manifest(_)) {
            return Err(RegistryError::Protocol {
                site: self.site(Some(repo)),
                message: format!("index entry {} for {platform} is itself an index", chosen.digest),
            });
        }
        Ok(Resolved {
            index: Some(top),
            manifest: m,
        })
    }

    /// Every tag of a repository, following `Link: <…>; rel="next"` pages
    /// of `page_size` (the registry's default when None).
    pub async fn list_tags(&self, repo: &str, page_size: Option<usize>) -> Result<Vec<String>> {
        check_repo(repo)?;
        let mut url = self.url(&format!("v2/{repo}/tags/list")).await?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        self.paginate(url, Scope::pull(repo), Some(repo), "tags").await
    }

    /// Every repository of the registry (`/v2/_catalog`), paginated likewise.
    pub async fn catalog(&self, page_size: Option<usize>) -> Result<Vec<String>> {
        let mut url = self.url("v2/_catalog").await?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        self.paginate(url, Scope::catalog(), None, "repositories").await
    }

    async fn paginate(&self, first: Url, scope: Scope, repo: Option<&str>, field: &str) -> Result<Vec<String>> {
        const PAGE_LIMIT: u64 = 32 * 1024 * 1024;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                return Err(RegistryError::Protocol {
                    site: self.site(repo),
                    message: format!("listing {field}: the registry's next page loops back to {url}"),
                });
            }
            let mut req = Req::new(Method::GET, url.clone()).scope(scope.clone());
            if let Some(r) = repo {
                req = req.repo(r);
            }
            let resp = self.send(req).await?;
            let resp = self.expect(resp, &[StatusCode::OK], repo).await?;
            let link = resp
                .headers()
                .get_all(header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let body = read_limited(resp, PAGE_LIMIT)
                .await
                .map_err(|e| RegistryError::Connection {
                    site: self.site(repo),
                    what: format!("reading the {field} list"),
                    cause: e.to_string(),
                })?;
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                site: self.site(repo),
                message: format!("the {field} list is not valid JSON: {e}"),
            })?;
            match v.get(field) {
                Some(serde_json::Value::Array(items)) => {
                    out.extend(items.iter().filter_map(|t| t.as_str()).map(str::to_string));
                }
                None | Some(serde_json::Value::Null) => {}
                Some(_) => {
                    return Err(RegistryError::Protocol {
                        site: self.site(repo),
                        message: format!("the {field} list has a \"{field}\" that is not an array"),
                    });
                }
            }
            if let Some(l) = link {
                next = Some(self.resolve_location(&url, &l, repo)?);
            }
        }
        Ok(out)
    }
}

/// The target of a `rel="next"` link in one `Link` header value.
fn next_link(value: &str) -> Option<String> {
    for part in value.split(',') {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else { continue };
        let Some((target, params)) = rest.split_once('>') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|r| r.trim_matches('"').split(' ').any(|r| r.eq_ignore_ascii_case("next")))
                .unwrap_or(false)
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    fn desc(p: Option<&str>, attest: bool) -> Descriptor {
        let mut d = Descriptor::new(media::OCI_MANIFEST, Digest::sha256_of(p.unwrap_or("").as_bytes()), 1);
        d.platform = p.map(|p| Platform::parse(p).unwrap());
        if attest {
            d.annotations = Some(
                [(
                    "vnd.docker.reference.type".to_string(),
                    "attestation-manifest".to_string(),
                )]
                .into(),
            );
        }
        d
    }

    #[test]
    fn platform_selection() {
        let index = Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.into()),
            artifact_type: None,
            manifests: vec![
                desc(Some("linux/amd64"), false),
                desc(Some("linux/arm/v6"), false),
                desc(Some("linux/arm/v7"), false),
                desc(Some("linux/arm64"), false),
                desc(Some("unknown/unknown"), true),
                desc(None, false),
            ],
            subject: None,
            annotations: None,
        };
        let pick = |p: &str| select_manifest(&index, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), index.manifests[0].digest);
        assert_eq!(pick("linux/arm/v7").unwrap(), index.manifests[2].digest);
        assert_eq!(pick("linux/arm64/v8").unwrap(), index.manifests[3].digest);
        let e = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64"),
            "{e}"
        );
        assert!(!e.contains("unknown"), "{e}");
    }
}
