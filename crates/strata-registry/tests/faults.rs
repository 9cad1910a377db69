//! What a correct registry never shows, from a scripted server: redirects to
//! another host, connections closed mid-blob, oversized and schema 1
//! manifests, wrong digests, 429, chunked uploads that move, token refresh.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use strata_oci::{Algorithm, Digest, media};
use strata_registry::{Client, ClientOptions, Credential, Credentials, PartialBlob, Protocol, RegistryError};

fn client(host: &str, credentials: Credentials) -> Client {
    Client::new(host, options(credentials)).unwrap()
}

fn authorized(r: &Recorded) -> bool {
    r.header("authorization").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_another_host_drops_authorization() {
    let blob = data(50_000, 1);
    let d = Digest::sha256_of(&blob);
    // The storage host, on another loopback address.
    let storage_blob = blob.clone();
    let storage = Fake::start("127.0.0.2:0", move |req| {
        if let Some(range) = req.header("range") {
            let start: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let cr = format!("bytes {start}-{}/{}", storage_blob.len() - 1, storage_blob.len());
            reply(206, &[("Content-Range", &cr)], &storage_blob[start..])
        } else {
            reply(200, &[], &storage_blob)
        }
    })
    .await;
    let storage_host = storage.host();
    let dd = d.clone();
    let registry = Fake::start("127.0.0.1:0", move |req| {
        if !authorized(req) {
            return reply(401, &[("WWW-Authenticate", r#"Basic realm="fake""#)], b"");
        }
        if req.path == "/v2/" {
            reply(200, &[], b"{}")
        } else if req.path == format!("/v2/lib/app/blobs/{dd}") {
            // First a redirect on the same host, which keeps credentials...
            reply(307, &[("Location", &format!("/internal/{dd}"))], b"")
        } else if req.path.starts_with("/internal/") {
            // ... then one to the storage host, which must not get them.
            let loc = format!("http://{storage_host}/storage/{dd}?signature=abc");
            reply(307, &[("Location", &loc)], b"")
        } else {
            reply(404, &[], b"")
        }
    })
    .await;
    let c = client(
        &registry.host(),
        Credentials::Explicit(Credential::new("user", "secret-pw")),
    );
    let mut out = Vec::new();
    c.get_blob("lib/app", &d, Some(blob.len() as u64), &mut out)
        .await
        .unwrap();
    assert_eq!(out, blob);

    // Resuming through the redirects keeps the Range header.
    let mut partial = PartialBlob::from_reader(Algorithm::Sha256, &blob[..20_000]).unwrap();
    let mut rest = blob[..20_000].to_vec();
    c.get_blob_resumable("lib/app", &d, Some(blob.len() as u64), &mut partial, &mut rest)
        .await
        .unwrap();
    assert_eq!(rest, blob);

    let reg = registry.recorded();
    assert!(
        reg.iter().filter(|r| r.path != "/v2/" || authorized(r)).all(authorized),
        "every registry request but the first ping carries credentials"
    );
    assert!(reg.iter().any(|r| r.path.starts_with("/internal/") && authorized(r)));
    let st = storage.recorded();
    assert_eq!(st.len(), 2);
    for r in &st {
        assert!(r.path.starts_with("/storage/"), "{r:?}");
        assert!(!authorized(r), "Authorization leaked to the storage host: {r:?}");
    }
    assert_eq!(st[1].header("range"), Some("bytes=20000-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_mid_blob() {
    let blob = data(10_000, 2);
    let d = Digest::sha256_of(&blob);
    let calls = Arc::new(AtomicUsize::new(0));
    let (b, n) = (blob.clone(), calls.clone());
    let path = format!("/v2/lib/app/blobs/{d}");
    let fake = Fake::start("127.0.0.1:0", move |req| {
        if req.path == "/v2/" {
            return reply(200, &[], b"");
        }
        assert_eq!(req.path, path);
        match n.fetch_add(1, Ordering::SeqCst) {
            // Announces everything, sends 4000 bytes, hangs up.
            0 | 1 => truncated(200, &[], b.len(), &b[..4000]),
            // Then honours the range.
            _ => {
                let start: usize = req
                    .header("range")
                    .expect("a resumed request")
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                let cr = format!("bytes {start}-{}/{}", b.len() - 1, b.len());
                reply(206, &[("Content-Range", &cr)], &b[start..])
            }
        }
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);

    let mut out = Vec::new();
    let err = c
        .get_blob("lib/app", &d, Some(blob.len() as u64), &mut out)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Connection { .. }), "{msg}");
    assert!(err.is_transient());
    assert!(
        msg.contains(&format!("the connection broke while receiving blob {d}"))
            && msg.contains("of 10000 bytes")
            && msg.contains("incomplete"),
        "{msg}"
    );

    // The partial state says what the writer holds; the next call resumes.
    let mut partial = PartialBlob::new(Algorithm::Sha256);
    let mut out = Vec::new();
    assert!(
        c.get_blob_resumable("lib/app", &d, Some(blob.len() as u64), &mut partial, &mut out)
            .await
            .is_err()
    );
    assert_eq!(partial.written(), out.len() as u64);
    assert!(partial.written() < blob.len() as u64);
    let n = c
        .get_blob_resumable("lib/app", &d, Some(blob.len() as u64), &mut partial, &mut out)
        .await
        .unwrap();
    assert_eq!(n, blob.len() as u64);
    assert_eq!(out, blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_or_wrong_blobs_are_never_complete() {
    let blob = data(8000, 3);
    let d = Digest::sha256_of(&blob);
    let b = blob.clone();
    let fake = Fake::start("127.0.0.1:0", move |req| {
        if req.path == "/v2/" {
            return reply(200, &[], b"");
        }
        if req.path.contains("/x/short/") {
            // No Content-Length: the body ends where the connection does.
            let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            out.extend_from_slice(&b[..5000]);
            return out;
        }
        // Wrong content for the digest.
        let mut other = b.clone();
        other[0] ^= 0xff;
        reply(200, &[], &other)
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);
    // Served under a path that is not the digest's: rewrite via a repository named "x/short".
    let err = c
        .get_blob("x/short", &d, Some(8000), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::SizeMismatch {
                expected: 8000,
                actual: 5000,
                ..
            }
        ),
        "{err}"
    );
    let err = c.get_blob("x/short", &d, None, &mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let err = c
        .get_blob("x/wrong", &d, Some(8000), &mut Vec::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("blob {d}: received content has digest sha256:")),
        "{msg}"
    );
    let mut rd = c.open_blob("x/wrong", &d, None).await.unwrap();
    let mut last = Ok(None);
    for _ in 0..100 {
        last = rd.chunk().await;
        if !matches!(last, Ok(Some(_))) {
            break;
        }
    }
    assert!(matches!(last, Err(RegistryError::DigestMismatch { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_schema1_and_wrong_digest_manifests() {
    let good = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec();
    let good_digest = Digest::sha256_of(&good);
    let g = good.clone();
    let fake = Fake::start("127.0.0.1:0", move |req| {
        let ct = ("Content-Type", media::OCI_INDEX);
        match req.path.rsplit('/').next().unwrap() {
            "" => reply(200, &[], b""),
            "big" => {
                let mut body = b"{\"schemaVersion\":2,\"manifests\":[],\"pad\":\"".to_vec();
                body.resize(5 * 1024 * 1024, b'a');
                body.extend_from_slice(b"\"}");
                reply(200, &[ct], &body)
            }
            "big-unannounced" => {
                let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                out.resize(out.len() + 4 * 1024 * 1024 + 10, b' ');
                out
            }
            "old" => reply(
                200,
                &[("Content-Type", media::DOCKER_SCHEMA1_SIGNED)],
                br#"{"schemaVersion":1,"name":"x","tag":"old","fsLayers":[]}"#,
            ),
            "lying" => reply(
                200,
                &[ct, ("Docker-Content-Digest", &Digest::sha256_of(b"x").to_string())],
                &g,
            ),
            _ => reply(200, &[ct], &g),
        }
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);
    for tag in ["big", "big-unannounced"] {
        let err = c.get_manifest("lib/app", tag).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RegistryError::TooLarge { .. }), "{msg}");
        assert!(
            msg.contains("4194304-byte limit") && msg.contains(&format!("manifest {tag}")),
            "{msg}"
        );
    }
    let err = c.get_manifest("lib/app", "old").await.unwrap_err();
    assert!(
        err.to_string().contains("schema 1 manifests are not supported"),
        "{err}"
    );
    let err = c.get_manifest("lib/app", "lying").await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    // By tag without a digest header: fine, and its sha256 is computed.
    assert_eq!(c.get_manifest("lib/app", "fine").await.unwrap().digest, good_digest);
    // By a digest the content does not have.
    let wanted = Digest::sha256_of(b"what was asked for");
    let err = c.get_manifest("lib/app", &wanted.to_string()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("manifest {wanted}: received content has digest {good_digest}")),
        "{err}"
    );
}

/// 503, 429 and 500 are tried again, after the `Retry-After` the registry
/// asked for (an HTTP date too) or the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after_and_back_off() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let fake = Fake::start("127.0.0.1:0", move |req| {
        if req.path == "/v2/" {
            return reply(200, &[], b"");
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => reply(503, &[("Retry-After", "1")], b"down"),
            1 => {
                let soon = httpdate_in(1);
                reply(429, &[("Retry-After", soon.as_str())], b"slow down")
            }
            2 => reply(500, &[], b"oops"),
            _ => reply(
                200,
                &[("Content-Type", "application/json")],
                br#"{"name":"lib/app","tags":["a","b"]}"#,
            ),
        }
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);
    let t = std::time::Instant::now();
    let tags = c.list_tags("lib/app", None).await.unwrap();
    assert_eq!(tags, ["a", "b"]);
    assert_eq!(n.load(Ordering::SeqCst), 4);
    // It waited what it was asked to (a lower bound, not a speed limit).
    assert!(t.elapsed() >= std::time::Duration::from_secs(1), "{:?}", t.elapsed());

    // A registry that keeps answering 503 is given up on after the
    // policy's tries, with its message.
    let fake = Fake::start("127.0.0.1:0", |req| match req.path.as_str() {
        "/v2/" => reply(200, &[], b""),
        _ => reply(
            503,
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}"#,
        ),
    })
    .await;
    let mut opts = options(Credentials::Anonymous);
    opts.retry = strata_registry::RetryPolicy {
        attempts: 3,
        base: std::time::Duration::from_millis(10),
        ..Default::default()
    };
    let c = Client::new(&fake.host(), opts).unwrap();
    let err = c.list_tags("lib/app", None).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().contains("UNAVAILABLE: maintenance"), "{err}");
    assert_eq!(
        fake.recorded().iter().filter(|r| r.path != "/v2/").count(),
        3,
        "three tries in all"
    );
}

/// A closing PUT whose answer was lost is tried again and finds the
/// session closed (404): the blob is there, so the upload is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_put_tried_again_after_its_answer_was_lost() {
    let puts = Arc::new(AtomicUsize::new(0));
    let seen = puts.clone();
    let data = b"a blob whose upload took".to_vec();
    let d = Digest::sha256_of(&data);
    let blob_path = format!("/v2/lib/app/blobs/{d}");
    let fake = Fake::start("127.0.0.1:0", move |req| {
        match (req.method.as_str(), req.path.as_str()) {
            (_, "/v2/") => reply(200, &[], b""),
            ("POST", _) => reply(202, &[("Location", "/v2/lib/app/blobs/uploads/u1")], b""),
            ("PUT", _) => match seen.fetch_add(1, Ordering::SeqCst) {
                // Taken, but the answer is lost: the connection closes.
                0 => Vec::new(),
                _ => reply(
                    404,
                    &[("Content-Type", "application/json")],
                    br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}"#,
                ),
            },
            ("HEAD", p) if p == blob_path => reply(200, &[("Content-Length", "24")], b""),
            _ => reply(404, &[], b""),
        }
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);
    assert_eq!(c.push_blob_bytes("lib/app", data).await.unwrap(), d);
    assert_eq!(puts.load(Ordering::SeqCst), 2);
}

/// An HTTP date `secs` from now.
fn httpdate_in(secs: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("+{secs} seconds"), "+%a, %d %b %Y %H:%M:%S GMT"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_429_and_connection_refused() {
    let fake = Fake::start("127.0.0.1:0", |req| match req.path.as_str() {
        "/v2/" => reply(200, &[], b""),
        p if p.starts_with("/v2/limited/") => reply(
            429,
            // Longer than the client waits (RetryPolicy::max_retry_after):
            // it fails at once, with the registry's message.
            &[("Retry-After", "3600"), ("Content-Type", "application/json")],
            br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit"}]}"#,
        ),
        p if p.starts_with("/v2/denied/") => reply(
            403,
            &[("Content-Type", "application/json")],
            br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied","detail":{"name":"denied/app"}}]}"#,
        ),
        _ => reply(502, &[("Content-Type", "text/html")], b"<html>bad gateway</html>"),
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);
    let err = c.get_manifest("limited/app", "latest").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            RegistryError::TooManyRequests {
                retry_after: Some(3600),
                ..
            }
        ),
        "{msg}"
    );
    assert!(err.is_transient());
    assert!(
        msg.contains("TOOMANYREQUESTS")
            && msg.contains("pull rate limit")
            && msg.contains(&fake.host())
            && msg.contains("limited/app"),
        "{msg}"
    );
    let err = c.get_manifest("denied/app", "latest").await.unwrap_err();
    assert_eq!(err.codes(), ["DENIED"]);
    assert!(
        err.to_string()
            .contains("DENIED: requested access to the resource is denied"),
        "{err}"
    );
    let err = c.list_tags("other/app", None).await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.to_string().contains("HTTP 502 Bad Gateway"), "{err}");

    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("127.0.0.1:{port}"), Credentials::Anonymous);
    let err = c.get_manifest("lib/app", "latest").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Connection { .. }), "{msg}");
    assert!(
        msg.contains(&format!("cannot connect to http://127.0.0.1:{port}/v2/")),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_follows_every_location() {
    let fake = Fake::start("127.0.0.1:0", |req| {
        let host = req.header("host").unwrap().to_string();
        let range = |end: usize| format!("0-{end}");
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => reply(200, &[], b""),
            ("POST", "/v2/lib/app/blobs/uploads/") => reply(202, &[("Location", "/up/1")], b""),
            ("PATCH", "/up/1") => reply(
                202,
                &[
                    ("Location", &format!("http://{host}/up/2?_state=abc")),
                    ("Range", &range(99)),
                ],
                b"",
            ),
            ("PATCH", "/up/2?_state=abc") => reply(202, &[("Location", "3"), ("Range", &range(199))], b""),
            ("PATCH", "/up/3") => reply(202, &[("Location", "/up/4"), ("Range", &range(249))], b""),
            ("PUT", p) if p.starts_with("/up/4?digest=") => reply(201, &[], b""),
            _ => reply(400, &[], b"unexpected"),
        }
    })
    .await;
    let opts = ClientOptions {
        monolithic_max: 10,
        chunk_size: Some(100),
        ..options(Credentials::Anonymous)
    };
    let c = Client::new(&fake.host(), opts).unwrap();
    let blob = data(250, 4);
    let d = Digest::sha256_of(&blob);
    c.push_blob("lib/app", &d, 250, &blob[..]).await.unwrap();
    let recs = fake.recorded();
    let patches: Vec<&Recorded> = recs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(
        patches
            .iter()
            .map(|r| r.header("content-range").unwrap())
            .collect::<Vec<_>>(),
        ["0-99", "100-199", "200-249"]
    );
    assert_eq!(patches.iter().flat_map(|r| r.body.clone()).collect::<Vec<u8>>(), blob);
    let put = recs.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.path, format!("/up/4?digest={}", d.to_string().replace(':', "%3A")));
    assert!(put.body.is_empty());
}

/// A registry with a token service that hands out `tok-N` and a refresh token.
fn token_fake(reject_first_token_for: &'static str) -> impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static {
    let issued = Arc::new(AtomicUsize::new(0));
    move |req| {
        let host = req.header("host").unwrap().to_string();
        let challenge = |scope: &str| format!(r#"Bearer realm="http://{host}/token",service="fake",scope="{scope}""#);
        if req.path.starts_with("/token") {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(r#"{{"access_token":"tok-{n}","expires_in":300,"refresh_token":"refresh-{n}"}}"#);
            return reply(200, &[("Content-Type", "application/json")], body.as_bytes());
        }
        let token = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_string);
        if req.path == "/v2/" {
            return match token {
                Some(_) => reply(200, &[], b""),
                None => reply(401, &[("WWW-Authenticate", &challenge(""))], b""),
            };
        }
        let repo = req
            .path
            .trim_start_matches("/v2/")
            .split("/manifests/")
            .next()
            .unwrap()
            .to_string();
        let scope = format!("repository:{repo}:pull");
        match token {
            None => reply(401, &[("WWW-Authenticate", &challenge(&scope))], b""),
            Some(t) if repo == reject_first_token_for && t == "tok-1" => reply(
                401,
                &[("WWW-Authenticate", &(challenge(&scope) + r#",error="invalid_token""#))],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}"#,
            ),
            Some(_) => reply(
                404,
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_cached_per_scope_refreshed_and_retried_once() {
    let fake = Fake::start("127.0.0.1:0", token_fake("expiring/app")).await;
    let c = client(&fake.host(), Credentials::Explicit(Credential::new("alice", "pw")));
    // Allowed (a token for a/app), then cached: a second request fetches none.
    for _ in 0..2 {
        let err = c.get_manifest("a/app", "latest").await.unwrap_err();
        assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    }
    let tokens: Vec<Recorded> = fake
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    // The first token: GET with Basic credentials, the scope and the service.
    assert_eq!(tokens[0].method, "GET");
    assert!(tokens[0].header("authorization").unwrap().starts_with("Basic "));
    assert!(
        tokens[0].path.contains("service=fake") && tokens[0].path.contains("scope=repository%3Aa%2Fapp%3Apull"),
        "{}",
        tokens[0].path
    );
    // Another scope: the refresh token the service offered, by OAuth2 POST.
    c.get_manifest("b/app", "latest").await.unwrap_err();
    let tokens: Vec<Recorded> = fake
        .recorded()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[1].method, "POST");
    let form = String::from_utf8(tokens[1].body.clone()).unwrap();
    assert!(
        form.contains("grant_type=refresh_token")
            && form.contains("refresh_token=refresh-1")
            && form.contains("scope=repository%3Ab%2Fapp%3Apull"),
        "{form}"
    );
    assert!(tokens[1].header("authorization").is_none());

    // A token the registry refuses is dropped and a fresh one fetched, once.
    let fake = Fake::start("127.0.0.1:0", token_fake("expiring/app")).await;
    let c = client(&fake.host(), Credentials::Anonymous);
    let err = c.get_manifest("expiring/app", "latest").await.unwrap_err();
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    let recs = fake.recorded();
    assert_eq!(recs.iter().filter(|r| r.path.starts_with("/token")).count(), 2);
    assert!(
        recs.iter()
            .filter(|r| r.path.starts_with("/token"))
            .all(|r| r.header("authorization").is_none())
    );

    // An identity token from a login goes straight to the OAuth2 POST.
    let fake = Fake::start("127.0.0.1:0", token_fake("")).await;
    let c = client(&fake.host(), Credentials::Explicit(Credential::identity_token("idtok")));
    c.get_manifest("c/app", "latest").await.unwrap_err();
    let t = fake
        .recorded()
        .into_iter()
        .find(|r| r.path.starts_with("/token"))
        .unwrap();
    assert_eq!(t.method, "POST");
    assert!(String::from_utf8(t.body).unwrap().contains("refresh_token=idtok"));
}

fn openssl(args: &[&str], dir: &std::path::Path) -> bool {
    std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_certs_d_or_insecure() {
    let tmp = tempfile::TempDir::new().unwrap();
    // A CA, and a server certificate it signed (as one sets up a registry).
    std::fs::write(
        tmp.path().join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let ok = openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=strata test CA",
            ],
        ]
        .concat(),
        tmp.path(),
    ) && openssl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
        tmp.path(),
    ) && openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        tmp.path(),
    );
    if !ok {
        println!("SKIPPED: the openssl command is not available to make test certificates");
        return;
    }
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let r = start(|c, _| {
        c.http.tls = Some(strata_registry_server::config::TlsConfig { certificate: cert, key });
    })
    .await;
    let https = |certs_dir: std::path::PathBuf, insecure: bool| ClientOptions {
        protocol: Protocol::Https,
        certs_dir,
        insecure,
        ..options(Credentials::Anonymous)
    };
    // Unknown CA: refused, saying so.
    let c = Client::new(&r.host, https(tmp.path().join("empty"), false)).unwrap();
    let err = c.ping().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Connection { .. }), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    // The CA in certs.d/HOST:PORT/ca.crt: trusted.
    let certs_d = tmp.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&r.host)).unwrap();
    std::fs::copy(tmp.path().join("ca.pem"), certs_d.join(&r.host).join("ca.crt")).unwrap();
    let c = Client::new(&r.host, https(certs_d.clone(), false)).unwrap();
    c.ping().await.unwrap();
    assert!(c.base_url().await.unwrap().as_str().starts_with("https://"));
    let d = c.push_blob_bytes("tls/app", b"over tls".to_vec()).await.unwrap();
    assert!(c.blob_exists("tls/app", &d).await.unwrap());
    // --tls-verify=false: any certificate.
    let c = Client::new(&r.host, https(tmp.path().join("empty"), true)).unwrap();
    c.ping().await.unwrap();
    // Listed as an insecure registry (by HOST:PORT, or a CIDR holding its
    // address): the same, without the flag; a list naming others: refused.
    for list in [
        vec![r.host.clone()],
        vec!["10.0.0.0/8".to_string(), "127.0.0.0/8".to_string()],
    ] {
        let opts = ClientOptions {
            insecure_registries: list,
            ..https(tmp.path().join("empty"), false)
        };
        Client::new(&r.host, opts).unwrap().ping().await.unwrap();
    }
    let opts = ClientOptions {
        insecure_registries: vec!["10.0.0.0/8".into(), "127.0.0.1:1".into()],
        ..https(tmp.path().join("empty"), false)
    };
    let err = Client::new(&r.host, opts).unwrap().ping().await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    // A client certificate and key beside the CA are picked up (this server
    // does not ask for one); a certificate without its key is an error.
    std::fs::copy(tmp.path().join("cert.pem"), certs_d.join(&r.host).join("client.cert")).unwrap();
    std::fs::copy(tmp.path().join("key.pem"), certs_d.join(&r.host).join("client.key")).unwrap();
    let c = Client::new(&r.host, https(certs_d.clone(), false)).unwrap();
    c.ping().await.unwrap();
    std::fs::remove_file(certs_d.join(&r.host).join("client.key")).unwrap();
    let err = Client::new(&r.host, https(certs_d.clone(), false)).err().unwrap();
    assert!(err.to_string().contains("client certificate without its key"), "{err}");
    std::fs::remove_file(certs_d.join(&r.host).join("client.cert")).unwrap();
    // A broken certificate file is an error naming it.
    std::fs::write(certs_d.join(&r.host).join("bad.crt"), "not a certificate").unwrap();
    let err = Client::new(&r.host, https(certs_d.clone(), false)).err().unwrap();
    assert!(err.to_string().contains("bad.crt"), "{err}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_when_the_registry_ignores_range() {
    let blob = data(30_000, 7);
    let d = Digest::sha256_of(&blob);
    let b = blob.clone();
    // Always the whole blob with 200, whatever the Range says.
    let fake = Fake::start("127.0.0.1:0", move |req| {
        if req.path == "/v2/" {
            reply(200, &[], b"")
        } else {
            reply(200, &[], &b)
        }
    })
    .await;
    let c = client(&fake.host(), Credentials::Anonymous);
    let mut partial = PartialBlob::from_reader(Algorithm::Sha256, &blob[..12_345]).unwrap();
    let mut out = blob[..12_345].to_vec();
    c.get_blob_resumable("lib/app", &d, Some(30_000), &mut partial, &mut out)
        .await
        .unwrap();
    assert!(out == blob, "the prefix is not written twice");
    assert_eq!(fake.recorded().last().unwrap().header("range"), Some("bytes=12345-"));

    // What the writer holds differs from the registry's content: refused, not mixed.
    let mut bad = blob[..100].to_vec();
    bad[0] ^= 1;
    let mut partial = PartialBlob::from_reader(Algorithm::Sha256, &bad[..]).unwrap();
    let mut out = bad.clone();
    let err = c
        .get_blob_resumable("lib/app", &d, Some(30_000), &mut partial, &mut out)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot resume"), "{err}");
    assert_eq!(out, bad);
}

/// `max_concurrent_transfers` bounds the blob downloads in flight (pull's
/// `--max-concurrent-downloads`), and more than one runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 12)]
async fn blob_downloads_in_flight_stay_within_the_bound() {
    let blobs: Vec<Vec<u8>> = (0..10).map(|i| data(10_000, 40 + i)).collect();
    let by_digest: Vec<(String, Vec<u8>)> = blobs
        .iter()
        .map(|b| (Digest::sha256_of(b).to_string(), b.clone()))
        .collect();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, top) = (in_flight.clone(), most.clone());
    // Each blob answer waits a little, blocking its worker thread (the
    // runtime has more workers than the bound), so that downloads overlap.
    let fake = Fake::start("127.0.0.1:0", move |req| {
        let Some((_, b)) = by_digest.iter().find(|(d, _)| req.path.ends_with(d.as_str())) else {
            return reply(200, &[], b"");
        };
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        top.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(150));
        now.fetch_sub(1, Ordering::SeqCst);
        reply(200, &[], b)
    })
    .await;
    for bound in [3usize, 1] {
        most.store(0, Ordering::SeqCst);
        let opts = ClientOptions {
            max_concurrent_transfers: bound,
            ..options(Credentials::Anonymous)
        };
        let c = Client::new(&fake.host(), opts).unwrap();
        let items = blobs
            .iter()
            .map(|b| {
                (
                    strata_oci::Descriptor::new(media::OCI_LAYER_GZIP, Digest::sha256_of(b), b.len() as u64),
                    Vec::new(),
                )
            })
            .collect();
        for (got, want) in c.fetch_blobs("many/app", items).await.into_iter().zip(&blobs) {
            assert_eq!(&got.unwrap(), want);
        }
        let m = most.load(Ordering::SeqCst);
        assert!(m <= bound, "{m} downloads at once with a bound of {bound}");
        if bound > 1 {
            assert!(m >= 2, "downloads never overlapped (at most {m} at once)");
        }
    }
}
