//! HTTP: turns distribution API requests into registry calls. Repository
//! names contain slashes, so `/v2/...` paths are split here by their last
//! components rather than by a router pattern; every name, digest, tag and
//! upload id is validated before anything touches storage.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;
use strata_oci::{Digest, media};

use crate::auth::{Action, Auth, Identity, Scope};
use crate::error::{ApiError, ApiResult, upload_range};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyError};
use crate::registry::{ManifestRef, Registry, check_name};
use crate::storage::ByteStream;

pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub proxy: Option<Proxy>,
    pub read_only: bool,
    pub access_log: bool,
    pub max_page: usize,
    pub anonymous_mount: bool,
    pub body_timeout: Duration,
}

const API_VERSION: &str = "registry/2.0";

#[derive(Debug)]
enum Target {
    Ping,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Upload(String, Option<String>),
    Referrers(String, String),
}

impl Target {
    fn route(&self) -> &'static str {
        match self {
            Target::Ping => "ping",
            Target::Catalog => "catalog",
            Target::Tags(_) => "tags",
            Target::Manifest(..) => "manifests",
            Target::Blob(..) => "blobs",
            Target::Upload(..) => "uploads",
            Target::Referrers(..) => "referrers",
        }
    }
}

/// Splits `/v2/<rest>` by its trailing components.
fn parse_target(path: &str) -> Option<Target> {
    if path == "/v2" || path == "/v2/" {
        return Some(Target::Ping);
    }
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    let c: Vec<&str> = rest.split('/').collect();
    let n = c.len();
    let name = |k: usize| c[..n - k].join("/");
    if n >= 3 && c[n - 2] == "tags" && c[n - 1] == "list" {
        return Some(Target::Tags(name(2)));
    }
    if n >= 4 && c[n - 3] == "blobs" && c[n - 2] == "uploads" {
        let id = c[n - 1];
        return Some(Target::Upload(name(3), (!id.is_empty()).then(|| id.to_string())));
    }
    if n >= 3 && c[n - 2] == "blobs" && c[n - 1] == "uploads" {
        return Some(Target::Upload(name(2), None));
    }
    if n >= 3 {
        let last = c[n - 1].to_string();
        match c[n - 2] {
            "blobs" => return Some(Target::Blob(name(2), last)),
            "manifests" => return Some(Target::Manifest(name(2), last)),
            "referrers" => return Some(Target::Referrers(name(2), last)),
            _ => {}
        }
    }
    None
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn parse_digest(s: &str) -> ApiResult<Digest> {
    Digest::parse(s).map_err(|e| ApiError::digest_invalid(e.to_string()))
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Does the request carry a body (a non-zero length, or chunked)?
fn has_body(h: &HeaderMap) -> bool {
    match header_str(h, header::CONTENT_LENGTH) {
        Some(n) => n.trim() != "0",
        None => h.contains_key(header::TRANSFER_ENCODING),
    }
}

/// The request body as a byte stream that counts bytes and fails when the
/// client stays silent for longer than `idle`.
fn body_stream(st: &Arc<AppState>, body: Body) -> ByteStream {
    let st = st.clone();
    let idle = st.body_timeout;
    let inner = body.into_data_stream();
    let s = futures_util::stream::unfold((inner, st, false), move |(mut inner, st, done)| async move {
        if done {
            return None;
        }
        match tokio::time::timeout(idle, inner.next()).await {
            Ok(Some(Ok(b))) => {
                st.metrics.received(b.len() as u64);
                Some((Ok(b), (inner, st, false)))
            }
            Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), (inner, st, true))),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client sent nothing for too long",
                )),
                (inner, st, true),
            )),
        }
    });
    Box::pin(s)
}

fn builder(status: StatusCode) -> axum::http::response::Builder {
    Response::builder().status(status)
}

fn upload_response(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    builder(status)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header(header::RANGE, upload_range(size))
        .header("Docker-Upload-UUID", id)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("valid response")
}

fn json_response(v: serde_json::Value, content_type: &str) -> Response {
    let body = serde_json::to_vec(&v).expect("json serializes");
    builder(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("valid response")
}

/// `n` and `last` of a listing; n is clamped to the configured page size.
fn page<'a>(st: &AppState, q: &'a [(String, String)]) -> ApiResult<(Option<usize>, Option<&'a str>)> {
    let n = match param(q, "n") {
        None => None,
        Some(s) => Some(
            s.parse::<usize>()
                .map_err(|_| ApiError::pagination_invalid(format!("n={s:?} is not a non-negative number")))?
                .min(st.max_page),
        ),
    };
    Ok((n, param(q, "last")))
}

/// Applies `n`/`last` to a sorted list; returns the page and whether more follow.
fn paginate(items: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let mut it: Vec<String> = match last {
        Some(l) => items.into_iter().filter(|t| t.as_str() > l).collect(),
        None => items,
    };
    match n {
        Some(n) if it.len() > n => {
            it.truncate(n);
            (it, true)
        }
        _ => (it, false),
    }
}

fn with_link(mut resp: Response, path: &str, n: Option<usize>, items: &[String], more: bool) -> Response {
    if more && let (Some(n), Some(last)) = (n, items.last()) {
        let last_enc: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
        if let Ok(v) = HeaderValue::from_str(&format!("<{path}?n={n}&last={last_enc}>; rel=\"next\"")) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// Parses a blob `Range: bytes=a-b` against a blob of `size` bytes: the
/// non-empty byte range to send, inside `0..size`, or `None` (416).
pub fn parse_range(h: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() {
            size.checked_sub(1)?
        } else {
            b.parse().ok()?
        };
        (start, end.min(size.checked_sub(1)?))
    };
    (start <= end && start < size).then_some(start..end + 1)
}

/// Parses an upload's `Content-Range: a-b` (also `bytes a-b/*`); returns
/// (a, b), the first and last byte of the chunk, with `a <= b`.
pub fn parse_content_range(h: &str) -> Option<(u64, u64)> {
    let s = h.trim();
    let s = s
        .strip_prefix("bytes")
        .map(|r| r.trim_start_matches([' ', '=']))
        .unwrap_or(s);
    let s = s.split('/').next()?;
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

pub async fn handle(
    State(st): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let agent = header_str(req.headers(), header::USER_AGENT).unwrap_or("").to_string();
    let (route, user, result) = dispatch(&st, req).await;
    let mut resp = result.unwrap_or_else(|e| e.into_response());
    if path.starts_with("/v2") {
        resp.headers_mut()
            .insert("Docker-Distribution-API-Version", HeaderValue::from_static(API_VERSION));
    }
    let sent = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .filter(|_| method != Method::HEAD)
        .unwrap_or(0);
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    st.metrics.record(route, method.as_str(), status, elapsed, sent);
    if st.access_log {
        crate::metrics::access_log(
            &remote.to_string(),
            user.as_deref(),
            method.as_str(),
            &path,
            status,
            sent,
            elapsed,
            &agent,
        );
    }
    resp
}

async fn dispatch(st: &Arc<AppState>, req: Request) -> (&'static str, Option<String>, ApiResult<Response>) {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/token" => return ("token", None, token(st, req).await),
        "/metrics" => {
            let body = st.metrics.render();
            let r = builder(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .header(header::CONTENT_LENGTH, body.len())
                .body(Body::from(body))
                .expect("valid response");
            return ("metrics", None, Ok(r));
        }
        "/health" | "/healthz" | "/debug/health" => return ("health", None, Ok(health(st).await)),
        _ => {}
    }
    let Some(target) = parse_target(&path) else {
        return (
            "other",
            None,
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                format!("no such endpoint: {path}"),
            )),
        );
    };
    let route = target.route();
    let mut user = None;
    let r = serve(st, target, req, &mut user).await;
    (route, user, r)
}

async fn token(st: &Arc<AppState>, req: Request) -> ApiResult<Response> {
    let mut params = query_pairs(req.uri().query());
    let headers = req.headers().clone();
    match *req.method() {
        Method::GET => {}
        Method::POST => {
            let body = axum::body::to_bytes(req.into_body(), 64 * 1024).await.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED",
                    format!("token request body: {e}"),
                )
            })?;
            params.extend(form_urlencoded::parse(&body).into_owned());
        }
        _ => return Err(ApiError::unsupported("the token endpoint takes GET or POST")),
    }
    let v = st.auth.issue_token(&headers, &params).await?;
    Ok(json_response(v, "application/json"))
}

async fn health(st: &Arc<AppState>) -> Response {
    match st.registry.driver.list_dir(crate::storage::layout::REPOSITORIES).await {
        Ok(_) => json_response(
            json!({ "status": "ok", "storage": st.registry.driver.describe() }),
            "application/json",
        ),
        Err(e) => {
            let body = json!({ "status": "unavailable", "error": e.to_string() }).to_string();
            builder(StatusCode::SERVICE_UNAVAILABLE)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .expect("valid response")
        }
    }
}

fn scope(name: &str, a: Action) -> Vec<Scope> {
    vec![Scope::Repository(name.to_string(), vec![a])]
}

async fn serve(st: &Arc<AppState>, target: Target, req: Request, user: &mut Option<String>) -> ApiResult<Response> {
    let method = req.method().clone();
    let is_read = method == Method::GET || method == Method::HEAD;
    let name = match &target {
        Target::Ping | Target::Catalog => None,
        Target::Tags(n)
        | Target::Manifest(n, _)
        | Target::Blob(n, _)
        | Target::Upload(n, _)
        | Target::Referrers(n, _) => Some(n.clone()),
    };
    if let Some(n) = &name {
        check_name(n)?;
    }
    if !is_read && st.read_only {
        return Err(ApiError::unsupported("the registry is in read-only mode"));
    }
    if !is_read && st.proxy.is_some() {
        return Err(ApiError::unsupported(
            "the registry is a pull-through cache: pushes and deletes are refused",
        ));
    }
    let scopes = match (&target, &method) {
        (Target::Ping, _) => vec![],
        (Target::Catalog, _) => vec![Scope::Catalog],
        (Target::Upload(n, _), _) => scope(n, Action::Push),
        (Target::Manifest(n, _), &Method::PUT) => scope(n, Action::Push),
        (Target::Manifest(n, _) | Target::Blob(n, _), &Method::DELETE) => scope(n, Action::Delete),
        (_, _) => scope(name.as_deref().unwrap_or(""), Action::Pull),
    };
    let id = st.auth.authorize(req.headers(), &scopes).await?;
    *user = id.user.clone();
    let q = query_pairs(req.uri().query());
    match target {
        Target::Ping => match method {
            Method::GET | Method::HEAD => Ok(json_response(json!({}), "application/json")),
            _ => Err(ApiError::unsupported("use GET /v2/")),
        },
        Target::Catalog => {
            if method != Method::GET {
                return Err(ApiError::unsupported("use GET /v2/_catalog"));
            }
            let (n, last) = page(st, &q)?;
            let all: Vec<String> = st
                .registry
                .catalog()
                .await?
                .into_iter()
                .filter(|r| st.auth.may_list(&id, r))
                .collect();
            let (items, more) = paginate(all, n, last);
            let resp = json_response(json!({ "repositories": items }), "application/json");
            Ok(with_link(resp, "/v2/_catalog", n, &items, more))
        }
        Target::Tags(name) => {
            if method != Method::GET {
                return Err(ApiError::unsupported("use GET on tags/list"));
            }
            let (n, last) = page(st, &q)?;
            let Some(all) = st.registry.tags(&name).await? else {
                return Err(ApiError::name_unknown(&name));
            };
            let (items, more) = paginate(all, n, last);
            let resp = json_response(json!({ "name": name, "tags": items }), "application/json");
            Ok(with_link(resp, &format!("/v2/{name}/tags/list"), n, &items, more))
        }
        Target::Referrers(name, digest) => {
            if method != Method::GET {
                return Err(ApiError::unsupported("use GET on referrers"));
            }
            let d = parse_digest(&digest)?;
            let at = param(&q, "artifactType");
            let list = st.registry.referrers(&name, &d, at).await?;
            let mut resp = json_response(
                json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": list }),
                media::OCI_INDEX,
            );
            if at.is_some() {
                resp.headers_mut()
                    .insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
            }
            Ok(resp)
        }
        Target::Manifest(name, reference) => manifest(st, method, name, reference, req).await,
        Target::Blob(name, digest) => blob(st, method, name, digest, req).await,
        Target::Upload(name, up) => upload(st, &id, method, name, up, q, req).await,
    }
}

async fn manifest(
    st: &Arc<AppState>,
    method: Method,
    name: String,
    reference: String,
    req: Request,
) -> ApiResult<Response> {
    let r = match ManifestRef::parse(&reference) {
        // No manifest can have a name that is not a tag: fetching one finds
        // nothing (404, as distribution-spec's conformance suite expects).
        Err(_) if matches!(method, Method::GET | Method::HEAD) && !reference.contains(':') => {
            return Err(ApiError::manifest_unknown(&reference));
        }
        r => r?,
    };
    match method {
        Method::GET | Method::HEAD => {
            let fetched = match &st.proxy {
                Some(p) => p.ensure_manifest(&st.registry, &name, &r).await,
                None => Ok(()),
            };
            let Some(m) = st.registry.manifest_get(&name, &r).await? else {
                // Not cached: say why the upstream did not give it.
                return Err(match fetched {
                    Ok(())
                    | Err(ProxyError::Status {
                        status: StatusCode::NOT_FOUND,
                        ..
                    }) => ApiError::manifest_unknown(&reference),
                    Err(e) => e.into(),
                });
            };
            let b = builder(StatusCode::OK)
                .header(header::CONTENT_TYPE, &m.media_type)
                .header("Docker-Content-Digest", m.digest.to_string())
                .header(header::ETAG, format!("\"{}\"", m.digest))
                .header(header::CONTENT_LENGTH, m.bytes.len());
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(m.bytes)
            };
            Ok(b.body(body).expect("valid response"))
        }
        Method::PUT => {
            let ct = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_string);
            let limit = media::MAX_DOCUMENT_SIZE as usize;
            let declared = header_str(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > 4 * limit as u64) {
                return Err(ApiError::too_large(format!("manifest is larger than {limit} bytes")));
            }
            let bytes = read_limited(req.into_body(), limit)
                .await?
                .ok_or_else(|| ApiError::too_large(format!("manifest is larger than {limit} bytes")))?;
            let (digest, subject) = st.registry.manifest_put(&name, &r, ct.as_deref(), bytes).await?;
            let mut b = builder(StatusCode::CREATED)
                .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
                .header("Docker-Content-Digest", digest.to_string())
                .header(header::CONTENT_LENGTH, "0");
            if let Some(s) = subject {
                b = b.header("OCI-Subject", s.to_string());
            }
            Ok(b.body(Body::empty()).expect("valid response"))
        }
        Method::DELETE => {
            st.registry.manifest_delete(&name, &r).await?;
            Ok(builder(StatusCode::ACCEPTED)
                .header(header::CONTENT_LENGTH, "0")
                .body(Body::empty())
                .expect("valid response"))
        }
        _ => Err(ApiError::unsupported("manifests take GET, HEAD, PUT or DELETE")),
    }
}

async fn blob(st: &Arc<AppState>, method: Method, name: String, digest: String, req: Request) -> ApiResult<Response> {
    let d = parse_digest(&digest)?;
    match method {
        Method::GET | Method::HEAD => {
            let mut size = st.registry.blob_size(&name, &d).await?;
            if size.is_none()
                && let Some(p) = &st.proxy
            {
                p.ensure_blob(&st.registry, &name, &d).await?;
                size = st.registry.blob_size(&name, &d).await?;
            }
            let Some(size) = size else {
                return Err(ApiError::blob_unknown(&d));
            };
            let range = match header_str(req.headers(), header::RANGE) {
                Some(h) => match parse_range(h, size) {
                    Some(r) => Some(r),
                    None => {
                        return Ok(builder(StatusCode::RANGE_NOT_SATISFIABLE)
                            .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                            .body(Body::empty())
                            .expect("valid response"));
                    }
                },
                None => None,
            };
            let mut b = builder(if range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            })
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header("Docker-Content-Digest", d.to_string())
            .header(header::ETAG, format!("\"{d}\""))
            .header(header::ACCEPT_RANGES, "bytes");
            let len = match &range {
                Some(r) => {
                    b = b.header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end - 1));
                    r.end - r.start
                }
                None => size,
            };
            b = b.header(header::CONTENT_LENGTH, len);
            if method == Method::HEAD {
                return Ok(b.body(Body::empty()).expect("valid response"));
            }
            let Some(stream) = st.registry.blob_read(&d, range).await? else {
                return Err(ApiError::blob_unknown(&d));
            };
            Ok(b.body(Body::from_stream(stream)).expect("valid response"))
        }
        Method::DELETE => {
            st.registry.blob_delete(&name, &d).await?;
            Ok(builder(StatusCode::ACCEPTED)
                .header(header::CONTENT_LENGTH, "0")
                .body(Body::empty())
                .expect("valid response"))
        }
        _ => Err(ApiError::unsupported("blobs take GET, HEAD or DELETE")),
    }
}

/// Reads a body of at most `limit` bytes; a larger one is read on (up to
/// 4 × limit, so the client sees the answer rather than a reset) and gives None.
async fn read_limited(body: Body, limit: usize) -> ApiResult<Option<bytes::Bytes>> {
    let mut s = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| ApiError::manifest_invalid(format!("reading the request body: {e}")))?;
        total += chunk.len();
        if total <= limit {
            buf.extend_from_slice(&chunk);
        } else if total > 4 * limit {
            break;
        }
    }
    Ok((total <= limit).then(|| buf.freeze()))
}

fn created(name: &str, d: &Digest) -> Response {
    builder(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{d}"))
        .header("Docker-Content-Digest", d.to_string())
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("valid response")
}

async fn upload(
    st: &Arc<AppState>,
    id: &Identity,
    method: Method,
    name: String,
    up: Option<String>,
    q: Vec<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let reg = &st.registry;
    match (method, up) {
        (Method::POST, None) => {
            if let Some(m) = param(&q, "mount") {
                let d = parse_digest(m)?;
                let from = param(&q, "from");
                let allowed = match from {
                    Some(f) => {
                        check_name(f).is_ok()
                            && st
                                .auth
                                .permits(id, &Scope::Repository(f.to_string(), vec![Action::Pull]))
                    }
                    None => st.anonymous_mount,
                };
                if allowed && reg.mount(&name, &d, from).await? {
                    return Ok(created(&name, &d));
                }
                // Not mountable: an ordinary upload session, as the spec says.
            } else if let Some(ds) = param(&q, "digest") {
                let d = parse_digest(ds)?;
                let headers = req.headers().clone();
                let body = body_stream(st, req.into_body());
                let body: ByteStream = if has_body(&headers) {
                    body
                } else {
                    Box::pin(futures_util::stream::empty())
                };
                reg.blob_put(&name, &d, body).await?;
                st.metrics.upload_completed();
                return Ok(created(&name, &d));
            }
            let uid = reg.upload_start(&name).await?;
            Ok(upload_response(StatusCode::ACCEPTED, &name, &uid, 0))
        }
        (Method::GET, Some(uid)) => {
            let size = reg.upload_size(&name, &uid).await?;
            Ok(upload_response(StatusCode::NO_CONTENT, &name, &uid, size))
        }
        (Method::PATCH, Some(uid)) => {
            let start = chunk_start(req.headers())?;
            let body = body_stream(st, req.into_body());
            let size = reg.upload_patch(&name, &uid, start, body).await?;
            Ok(upload_response(StatusCode::ACCEPTED, &name, &uid, size))
        }
        (Method::PUT, Some(uid)) => {
            let ds = param(&q, "digest").ok_or_else(|| ApiError::digest_invalid("PUT needs ?digest="))?;
            let d = parse_digest(ds)?;
            // A closing chunk's Content-Range must continue the upload (416 if not).
            let start = chunk_start(req.headers())?;
            let body = has_body(req.headers()).then(|| body_stream(st, req.into_body()));
            reg.upload_finish(&name, &uid, &d, start, body).await?;
            st.metrics.upload_completed();
            Ok(created(&name, &d))
        }
        (Method::DELETE, Some(uid)) => {
            reg.upload_cancel(&name, &uid).await?;
            Ok(builder(StatusCode::NO_CONTENT)
                .header(header::CONTENT_LENGTH, "0")
                .body(Body::empty())
                .expect("valid response"))
        }
        (Method::POST, Some(_)) => Err(ApiError::unsupported("POST goes to /blobs/uploads/ without an id")),
        (_, None) => Err(ApiError::unsupported("start an upload with POST")),
        _ => Err(ApiError::unsupported("uploads take POST, PATCH, PUT, GET or DELETE")),
    }
}

/// A chunk's first byte from its `Content-Range` (PATCH, and the closing
/// PUT), checked against its `Content-Length`; 416 when either is wrong.
fn chunk_start(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(h) = header_str(headers, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let (a, b) = parse_content_range(h).ok_or_else(|| {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("invalid Content-Range {h:?}"),
        )
    })?;
    // `0-18446744073709551615` is u64::MAX + 1 bytes: no Content-Length matches it.
    if let Some(n) = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
        && Some(n) != (b - a).checked_add(1)
    {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("Content-Range {h:?} does not match Content-Length {n}"),
        ));
    }
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert!(matches!(parse_target("/v2/"), Some(Target::Ping)));
        assert!(matches!(parse_target("/v2/a/b/tags/list"), Some(Target::Tags(n)) if n == "a/b"));
        assert!(matches!(parse_target("/v2/a/blobs/uploads/"), Some(Target::Upload(n, None)) if n == "a"));
        assert!(matches!(parse_target("/v2/a/blobs/uploads"), Some(Target::Upload(n, None)) if n == "a"));
        assert!(
            matches!(parse_target("/v2/x/blobs/y/blobs/uploads/abc"), Some(Target::Upload(n, Some(i))) if n == "x/blobs/y" && i == "abc")
        );
        assert!(
            matches!(parse_target("/v2/a/manifests/latest"), Some(Target::Manifest(n, r)) if n == "a" && r == "latest")
        );
        assert!(parse_target("/v2/manifests/x").is_none());
        assert!(parse_target("/v3/a/manifests/x").is_none());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, 19)));
        assert_eq!(parse_content_range("9-1"), None);
    }

    /// A suffix range of an empty blob is unsatisfiable, not an overflow.
    #[test]
    fn suffix_range_of_an_empty_blob() {
        assert_eq!(parse_range("bytes=-1", 0), None);
        assert_eq!(parse_range("bytes=-18446744073709551615", 0), None);
        assert_eq!(parse_range("bytes=0-", 0), None);
        assert_eq!(parse_range("bytes=-1", 1), Some(0..1));
    }

    /// A chunk claiming every offset up to u64::MAX is refused (416), not an
    /// overflow, whatever its Content-Length.
    #[test]
    fn content_range_to_u64_max() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("0-18446744073709551615"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let e = chunk_start(&h).unwrap_err();
        assert_eq!(e.into_response().status(), StatusCode::RANGE_NOT_SATISFIABLE);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("1-18446744073709551615"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("18446744073709551615"));
        assert_eq!(chunk_start(&h).unwrap(), Some(1));
    }
}
