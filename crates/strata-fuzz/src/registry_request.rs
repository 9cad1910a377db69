//! `registry_request`: the registry's request handling, driven in memory.
//!
//! Input: a mode byte, then for an even mode a structured [`Parsers`] input
//! for `Range`/`Content-Range` parsing (oracle: the range is non-empty and
//! inside the blob, a chunk's first byte is not after its last), and for an
//! odd one up to four [`Req`]s sent in turn to a fresh registry (filesystem
//! storage in a temporary directory) holding one blob and one tagged
//! manifest. Oracle: no panic, and no 500 (an internal error is a bug when
//! the storage works: a bad request must be told so).

use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use strata_oci::{Digest, media};
use strata_registry_server::{Config, app, parse_content_range, parse_range};
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
struct Parsers {
    range: String,
    size: u64,
    content_range: String,
}

#[derive(Debug, Arbitrary)]
enum PathSpec {
    /// `/v2/` followed by anything.
    Raw(String),
    /// `/v2/<name>/<kind>/<last>`.
    Api { name: Name, kind: u8, last: Last },
    /// The previous response's `Location` (an upload session), if any.
    Location,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Last {
    BlobDigest,
    ManifestDigest,
    Latest,
    Empty,
    Any(String),
}

#[derive(Debug, Arbitrary)]
struct Req {
    method: u8,
    path: PathSpec,
    query: Option<String>,
    headers: Vec<(u8, String)>,
    body: Vec<u8>,
}

const METHODS: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"];
const KINDS: &[&str] = &[
    "manifests",
    "blobs",
    "blobs/uploads",
    "tags/list",
    "referrers",
    "_catalog",
];
const HEADERS: &[&str] = &[
    "content-range",
    "content-length",
    "range",
    "content-type",
    "accept",
    "authorization",
    "transfer-encoding",
    "host",
];
const REPO: &str = "fuzz/repo";
const BLOB: &[u8] = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn manifest() -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
        media::OCI_MANIFEST,
        media::OCI_CONFIG,
        Digest::sha256_of(BLOB),
        BLOB.len()
    )
    .into_bytes()
}

async fn send(router: &axum::Router, req: Request<Body>) -> Response<Body> {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    router.clone().oneshot(req).await.expect("the router is infallible")
}

fn check_parsers(p: &Parsers) {
    if let Some(r) = parse_range(&p.range, p.size) {
        assert!(
            r.start < r.end && r.end <= p.size,
            "{:?} of {} bytes gave {r:?}",
            p.range,
            p.size
        );
    }
    if let Some((a, b)) = parse_content_range(&p.content_range) {
        assert!(a <= b, "{:?} gave {a}-{b}", p.content_range);
    }
    let _ = Digest::parse(&p.range);
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    if mode % 2 == 0 {
        if let Ok(p) = Parsers::arbitrary(&mut u) {
            check_parsers(&p);
        }
        return;
    }
    let mut reqs = Vec::new();
    while reqs.len() < 4 && !u.is_empty() {
        match Req::arbitrary(&mut u) {
            Ok(r) => reqs.push(r),
            Err(_) => break,
        }
    }
    if reqs.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = Config::filesystem(dir.path(), "127.0.0.1:0");
    config.log.accesslog.disabled = true;
    let router = app(&config).expect("the registry's service");
    runtime().block_on(async {
        let blob = Digest::sha256_of(BLOB);
        let manifest = manifest();
        let mdigest = Digest::sha256_of(&manifest);
        let put = |uri: String, body: Vec<u8>, ct: &str| {
            Request::builder()
                .method(if uri.contains("uploads") { "POST" } else { "PUT" })
                .uri(uri)
                .header("content-type", ct)
                .header("content-length", body.len())
                .body(Body::from(body))
                .unwrap()
        };
        let r = send(
            &router,
            put(
                format!("/v2/{REPO}/blobs/uploads/?digest={blob}"),
                BLOB.to_vec(),
                "application/octet-stream",
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED, "seeding the blob");
        let r = send(
            &router,
            put(format!("/v2/{REPO}/manifests/latest"), manifest, media::OCI_MANIFEST),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED, "seeding the manifest");
        let mut location: Option<String> = None;
        for req in reqs {
            let path = match req.path {
                PathSpec::Raw(s) => format!("/v2/{s}"),
                PathSpec::Location => match &location {
                    Some(l) => l.clone(),
                    None => format!("/v2/{REPO}/blobs/uploads/"),
                },
                PathSpec::Api { name, kind, last } => {
                    let name = match name {
                        Name::Known => REPO.to_string(),
                        Name::Other(s) => s,
                    };
                    let last = match last {
                        Last::BlobDigest => blob.to_string(),
                        Last::ManifestDigest => mdigest.to_string(),
                        Last::Latest => "latest".into(),
                        Last::Empty => String::new(),
                        Last::Any(s) => s,
                    };
                    match KINDS[kind as usize % KINDS.len()] {
                        "_catalog" => "/v2/_catalog".into(),
                        "tags/list" => format!("/v2/{name}/tags/list"),
                        k => format!("/v2/{name}/{k}/{last}"),
                    }
                }
            };
            let uri = match &req.query {
                Some(q) if !path.contains('?') => format!("{path}?{q}"),
                Some(q) => format!("{path}&{q}"),
                None => path,
            };
            let mut b = Request::builder()
                .method(METHODS[req.method as usize % METHODS.len()])
                .uri(uri.as_str());
            for (h, v) in &req.headers {
                b = b.header(HEADERS[*h as usize % HEADERS.len()], v.as_str());
            }
            // An invalid URI or header value never reaches the server: hyper refuses it.
            let Ok(request) = b.body(Body::from(req.body)) else {
                continue;
            };
            let resp = send(&router, request).await;
            let status = resp.status();
            if let Some(l) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
                location = Some(l.to_string());
            }
            // Read the body, as a client would (a streamed blob is read here).
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            assert_ne!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{uri} answered 500: {}",
                String::from_utf8_lossy(&body)
            );
        }
    });
}
