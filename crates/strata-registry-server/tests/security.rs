//! Authentication and authorization: htpasswd Basic, the token service,
//! forged tokens, repository isolation, and path-like names and digests.

mod common;

use base64::Engine;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use strata_registry_server::config::{AccessRule, HtpasswdConfig, TokenConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "a-test-secret-of-enough-length";

fn rules() -> Vec<AccessRule> {
    let rule = |users: &[&str], repos: &[&str], actions: &[&str]| AccessRule {
        users: users.iter().map(|s| s.to_string()).collect(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        rule(&["alice"], &["alice/**"], &["pull", "push", "delete"]),
        rule(&["bob"], &["bob/**"], &["*"]),
        rule(&["bob"], &["alice/**"], &["pull"]),
        rule(&["anonymous"], &["public/*"], &["pull"]),
        rule(&["*"], &["shared/*"], &["pull", "push"]),
    ]
}

fn write_htpasswd(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("htpasswd");
    let lines: Vec<String> = [("alice", "alice-pw"), ("bob", "bob-pw")]
        .iter()
        .map(|(u, pw)| format!("{u}:{}", bcrypt::hash(pw, 4).unwrap()))
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

async fn basic_env() -> Env {
    let dir = tempfile::TempDir::new().unwrap();
    let path = write_htpasswd(dir.path());
    let mut c = fs_config(&dir);
    c.auth.htpasswd = Some(HtpasswdConfig {
        realm: "test".into(),
        path,
    });
    c.access = rules();
    start_with(c, Some(dir)).await
}

async fn token_env() -> Env {
    let dir = tempfile::TempDir::new().unwrap();
    let path = write_htpasswd(dir.path());
    let mut c = fs_config(&dir);
    c.auth.htpasswd = Some(HtpasswdConfig {
        realm: "test".into(),
        path,
    });
    c.auth.token = Some(TokenConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    });
    c.access = rules();
    start_with(c, Some(dir)).await
}

async fn push_blob_as(e: &Env, auth: &str, repo: &str, data: &[u8]) -> StatusCode {
    let d = strata_oci::Digest::sha256_of(data);
    e.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("authorization", auth)
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

fn basic(u: &str, p: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

async fn token(e: &Env, creds: Option<(&str, &str)>, scope: &str) -> String {
    let mut r = e.req(Method::GET, &format!("/token?service=strata-registry&scope={scope}"));
    if let Some((u, p)) = creds {
        r = r.header("authorization", basic(u, p));
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = r.json_value().await;
    format!("Bearer {}", v["token"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth_and_rules() {
    let e = basic_env().await;
    let r = e.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"test\"");
    let r = e
        .req(Method::GET, "/v2/")
        .header("authorization", basic("alice", "alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = e
        .req(Method::GET, "/v2/")
        .header("authorization", basic("alice", "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = e
        .req(Method::GET, "/v2/")
        .header("authorization", basic("mallory", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        push_blob_as(&e, &basic("alice", "alice-pw"), "alice/app", b"a").await,
        StatusCode::CREATED
    );
    // bob may pull alice/* but not push there.
    assert_eq!(
        push_blob_as(&e, &basic("bob", "bob-pw"), "alice/app", b"b").await,
        StatusCode::FORBIDDEN
    );
    let d = strata_oci::Digest::sha256_of(b"a");
    let r = e
        .req(Method::HEAD, &format!("/v2/alice/app/blobs/{d}"))
        .header("authorization", basic("bob", "bob-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Anonymous: public/* pull only.
    let r = e.req(Method::GET, "/v2/public/x/tags/list").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "allowed, but nothing there");
    let r = e
        .req(Method::HEAD, &format!("/v2/alice/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // "*" is any signed-in user.
    assert_eq!(
        push_blob_as(&e, &basic("bob", "bob-pw"), "shared/x", b"s").await,
        StatusCode::CREATED
    );
    // Deleting needs the delete action.
    let r = e
        .req(Method::DELETE, &format!("/v2/alice/app/blobs/{d}"))
        .header("authorization", basic("bob", "bob-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "DENIED");
    // Catalog lists only what the user may pull.
    e.push_image_as("bob/app", &basic("bob", "bob-pw")).await;
    e.push_image_as("alice/app", &basic("alice", "alice-pw")).await;
    let v = e
        .req(Method::GET, "/v2/_catalog")
        .header("authorization", basic("alice", "alice-pw"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(
        v["repositories"],
        json!(["alice/app", "shared/x"]),
        "bob/app is not alice's to see"
    );
    e.stop().await;
}

trait PushAs {
    async fn push_image_as(&self, repo: &str, auth: &str);
}

impl PushAs for Env {
    async fn push_image_as(&self, repo: &str, auth: &str) {
        let cfg = br#"{"architecture":"amd64","os":"linux"}"#;
        assert_eq!(push_blob_as(self, auth, repo, cfg).await, StatusCode::CREATED);
        let cd = strata_oci::Digest::sha256_of(cfg);
        let m = manifest(&cd, cfg.len(), &[], None);
        let r = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/latest"))
            .header("authorization", auth)
            .header("content-type", strata_oci::media::OCI_MANIFEST)
            .body(m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_service_scopes_and_isolation() {
    let e = token_env().await;
    // The challenge names the realm, the service and the scope.
    let r = e.req(Method::GET, "/v2/alice/app/tags/list").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let ch = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert_eq!(
        ch,
        format!(
            "Bearer realm=\"{}/token\",service=\"strata-registry\",scope=\"repository:alice/app:pull\"",
            e.url
        )
    );
    // Wrong password: no token.
    let r = e
        .req(
            Method::GET,
            "/token?service=strata-registry&scope=repository:alice/app:pull",
        )
        .header("authorization", basic("alice", "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let ta = token(&e, Some(("alice", "alice-pw")), "repository:alice/app:pull,push").await;
    assert_eq!(
        push_blob_as(&e, &ta, "alice/app", b"alice data").await,
        StatusCode::CREATED
    );
    // The same token opens no other repository.
    assert_eq!(
        push_blob_as(&e, &ta, "alice/other", b"x").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(push_blob_as(&e, &ta, "bob/app", b"x").await, StatusCode::UNAUTHORIZED);
    let r = e
        .req(Method::GET, "/v2/alice/other/tags/list")
        .header("authorization", &ta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    // bob's private blob cannot be mounted with a token for alice/app only.
    let tb = token(&e, Some(("bob", "bob-pw")), "repository:bob/private:push,pull").await;
    assert_eq!(
        push_blob_as(&e, &tb, "bob/private", b"bob secret").await,
        StatusCode::CREATED
    );
    let bd = strata_oci::Digest::sha256_of(b"bob secret");
    let r = e
        .req(
            Method::POST,
            &format!("/v2/alice/app/blobs/uploads/?mount={bd}&from=bob/private"),
        )
        .header("authorization", &ta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "no mount: an upload session instead");
    // Nor by anonymous mount (off when auth is on).
    let r = e
        .req(Method::POST, &format!("/v2/alice/app/blobs/uploads/?mount={bd}"))
        .header("authorization", &ta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = e
        .req(Method::HEAD, &format!("/v2/alice/app/blobs/{bd}"))
        .header("authorization", &ta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // alice asking for push on bob's repository gets a token without it.
    let t = token(&e, Some(("alice", "alice-pw")), "repository:bob/private:pull,push").await;
    assert_eq!(
        push_blob_as(&e, &t, "bob/private", b"y").await,
        StatusCode::UNAUTHORIZED
    );
    // Anonymous tokens: public pull only.
    let t = token(&e, None, "repository:public/x:pull").await;
    let r = e
        .req(Method::GET, "/v2/public/x/tags/list")
        .header("authorization", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "allowed, but nothing there");
    let t = token(&e, None, "repository:alice/app:pull").await;
    let r = e
        .req(Method::GET, "/v2/alice/app/tags/list")
        .header("authorization", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // OAuth2 form POST works too.
    let r = e
        .req(Method::POST, "/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=alice&password=alice-pw&service=strata-registry&scope=repository:alice/app:pull")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    e.stop().await;
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn hs256(header: &Value, claims: &Value, secret: &str) -> String {
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = ring::hmac::sign(&key, signing.as_bytes());
    format!("Bearer {signing}.{}", b64(sig.as_ref()))
}

fn claims(repo: &str, exp_offset: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({
        "iss": "strata-registry", "sub": "alice", "aud": "strata-registry",
        "exp": now + exp_offset, "nbf": now - 10, "iat": now - 10, "jti": "x",
        "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused() {
    let e = token_env().await;
    let hdr = json!({"alg": "HS256", "typ": "JWT"});
    // Control: a token made the way the server makes them is accepted.
    let good = hs256(&hdr, &claims("alice/app", 300), SECRET);
    assert_eq!(push_blob_as(&e, &good, "alice/app", b"ok").await, StatusCode::CREATED);
    // Signed by another key.
    let other = hs256(&hdr, &claims("alice/app", 300), "another-secret-entirely!!");
    assert_eq!(
        push_blob_as(&e, &other, "alice/app", b"1").await,
        StatusCode::UNAUTHORIZED
    );
    // alg: none, with and without a signature part.
    let none_hdr = json!({"alg": "none", "typ": "JWT"});
    let body = format!(
        "{}.{}",
        b64(none_hdr.to_string().as_bytes()),
        b64(claims("alice/app", 300).to_string().as_bytes())
    );
    for t in [format!("Bearer {body}."), format!("Bearer {body}")] {
        assert_eq!(push_blob_as(&e, &t, "alice/app", b"2").await, StatusCode::UNAUTHORIZED);
    }
    // A header carrying its own key is refused even when the signature checks out.
    let jwk_hdr = json!({"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": b64(SECRET.as_bytes())}});
    let t = hs256(&jwk_hdr, &claims("alice/app", 300), SECRET);
    assert_eq!(push_blob_as(&e, &t, "alice/app", b"3").await, StatusCode::UNAUTHORIZED);
    let jku_hdr = json!({"alg": "HS256", "typ": "JWT", "jku": "http://127.0.0.1:1/keys"});
    let t = hs256(&jku_hdr, &claims("alice/app", 300), SECRET);
    assert_eq!(push_blob_as(&e, &t, "alice/app", b"4").await, StatusCode::UNAUTHORIZED);
    // Another algorithm than the configured one.
    let hs512 = json!({"alg": "HS512", "typ": "JWT"});
    let t = hs256(&hs512, &claims("alice/app", 300), SECRET);
    assert_eq!(push_blob_as(&e, &t, "alice/app", b"5").await, StatusCode::UNAUTHORIZED);
    // Expired.
    let t = hs256(&hdr, &claims("alice/app", -3600), SECRET);
    assert_eq!(push_blob_as(&e, &t, "alice/app", b"6").await, StatusCode::UNAUTHORIZED);
    // Wrong audience.
    let mut c = claims("alice/app", 300);
    c["aud"] = json!("some-other-service");
    let t = hs256(&hdr, &c, SECRET);
    assert_eq!(push_blob_as(&e, &t, "alice/app", b"7").await, StatusCode::UNAUTHORIZED);
    // Garbage.
    assert_eq!(
        push_blob_as(&e, "Bearer x.y.z", "alice/app", b"8").await,
        StatusCode::UNAUTHORIZED
    );
    e.stop().await;
}

/// Sends a request line as given (no client-side URL normalization).
async fn raw_status(e: &Env, method: &str, path: &str) -> u16 {
    let addr = e.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_like_names_and_digests_are_refused() {
    let e = fs_env().await;
    e.push_image("victim", "latest", "v").await;
    for (method, path) in [
        ("GET", "/v2/a/../victim/tags/list"),
        ("GET", "/v2/../victim/tags/list"),
        ("GET", "/v2/a/%2e%2e/victim/tags/list"),
        ("GET", "/v2/a/%2E%2E/victim/tags/list"),
        ("GET", "/v2/..%2fvictim/tags/list"),
        ("GET", "/v2/victim/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd"),
        ("GET", "/v2/victim/blobs/sha256%3A..%2F..%2Fx"),
        ("GET", "/v2/victim/manifests/..%2f..%2fx"),
        ("GET", "/v2/victim/manifests/sha256:../../x"),
        ("POST", "/v2/../../tmp/x/blobs/uploads/"),
        ("POST", "/v2/%2e%2e/%2e%2e/tmp/blobs/uploads/"),
        ("PUT", "/v2/victim/manifests/..%2F..%2Fescape"),
        ("GET", "/v2/victim/blobs/uploads/..%2f..%2f_uploads"),
        ("GET", "/v2/victim/referrers/sha256:..%2f..%2f"),
        ("POST", "/v2/victim/blobs/uploads/?digest=sha256:..%2f..%2fx"),
        ("POST", "/v2/victim/blobs/uploads/?mount=sha256:abc&from=..%2f..%2fx"),
    ] {
        let status = raw_status(&e, method, path).await;
        assert!(
            status == 400 || status == 404 || status == 202,
            "{method} {path}: status {status}"
        );
        // 202 only for the mount case (a new session in victim, never a mount).
        if status == 202 {
            assert!(path.contains("mount="), "{method} {path}");
        }
    }
    // Nothing was written outside the storage layout.
    let mut names: Vec<String> = std::fs::read_dir(e.root())
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["_tmp", "_uploads", "blobs", "repositories"]);
    let mut repos = Vec::new();
    for entry in walk(&e.root().join("repositories")) {
        if entry.ends_with("_manifests") || entry.ends_with("_layers") {
            repos.push(entry);
        }
    }
    assert!(repos.iter().all(|r| r.contains("/repositories/victim/")), "{repos:?}");
    e.stop().await;
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

fn rule(users: &[&str], repos: &[&str], actions: &[&str]) -> AccessRule {
    AccessRule {
        users: users.iter().map(|s| s.to_string()).collect(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    }
}

async fn blob(e: &Env, repo: &str, data: &str) -> (strata_oci::Digest, usize) {
    (e.push_blob(repo, data.as_bytes()).await, data.len())
}

async fn status_as(e: &Env, method: Method, auth: &str, path: &str) -> StatusCode {
    e.req(method, path)
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .status()
}

/// A blob the pull-through cache fetched for `alice/app` must not become
/// readable through `public/app` by a user who may only pull `public/**`:
/// a cached blob is linked into another repository only when the upstream
/// has it in that repository, or a manifest of that repository names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_cache_does_not_cross_repositories() {
    // The upstream: filled without auth, then restarted on the same storage
    // with token auth, where the proxy's account (bob) may pull both repositories.
    let mut up = fs_env().await;
    let secret = blob(&up, "alice/app", "alice's secret layer").await;
    let shared_x = blob(&up, "alice/app", "a shared layer x").await;
    let shared_y = blob(&up, "alice/app", "a shared layer y").await;
    let ca = blob(&up, "alice/app", r#"{"architecture":"amd64","os":"linux"}"#).await;
    let m = manifest(&ca.0, ca.1, &[secret.clone(), shared_x.clone(), shared_y.clone()], None);
    let r = up
        .put_manifest("alice/app", "v1", strata_oci::media::OCI_MANIFEST, &m)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let public = blob(&up, "public/app", "a public layer").await;
    blob(&up, "public/app", "a shared layer x").await;
    blob(&up, "public/app", "a shared layer y").await;
    let cp = blob(&up, "public/app", r#"{"architecture":"arm64","os":"linux"}"#).await;
    let m = manifest(&cp.0, cp.1, &[public.clone(), shared_x.clone(), shared_y.clone()], None);
    let r = up
        .put_manifest("public/app", "v1", strata_oci::media::OCI_MANIFEST, &m)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let dir = up.dir.take().unwrap();
    up.stop().await;
    let mut c = fs_config(&dir);
    c.auth.htpasswd = Some(HtpasswdConfig {
        realm: "upstream".into(),
        path: write_htpasswd(tempfile::TempDir::new().unwrap().keep().as_path()),
    });
    c.auth.token = Some(TokenConfig {
        secret: Some(SECRET.into()),
        ..Default::default()
    });
    c.access = vec![rule(&["bob"], &["alice/**", "public/**"], &["pull"])];
    let up = start_with(c, Some(dir)).await;
    assert_eq!(
        up.req(Method::GET, "/v2/").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The proxy: alice may pull alice/**, bob only public/**.
    let cache_dir = tempfile::TempDir::new().unwrap();
    let mut c = fs_config(&cache_dir);
    c.auth.htpasswd = Some(HtpasswdConfig {
        realm: "cache".into(),
        path: write_htpasswd(cache_dir.path()),
    });
    c.access = vec![
        rule(&["alice"], &["alice/**"], &["pull"]),
        rule(&["bob"], &["public/**"], &["pull"]),
    ];
    c.proxy = Some(strata_registry_server::config::ProxyConfig {
        remoteurl: up.url.clone(),
        username: Some("bob".into()),
        password: Some("bob-pw".into()),
    });
    let cache = start_with(c, Some(cache_dir)).await;
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");

    // alice pulls her image through the cache.
    assert_eq!(
        status_as(&cache, Method::GET, &alice, "/v2/alice/app/manifests/v1").await,
        StatusCode::OK
    );
    for (d, _) in [&secret, &shared_x, &shared_y, &ca] {
        let s = status_as(&cache, Method::GET, &alice, &format!("/v2/alice/app/blobs/{d}")).await;
        assert_eq!(s, StatusCode::OK, "{d}");
    }
    // bob may not read it directly ...
    let s = status_as(&cache, Method::GET, &bob, &format!("/v2/alice/app/blobs/{}", secret.0)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // ... nor through a repository he may pull.
    for method in [Method::HEAD, Method::GET] {
        let s = status_as(
            &cache,
            method.clone(),
            &bob,
            &format!("/v2/public/app/blobs/{}", secret.0),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{method} alice's cached blob through public/app"
        );
    }
    // A cached blob the upstream has in public/app is served there.
    let s = status_as(
        &cache,
        Method::GET,
        &bob,
        &format!("/v2/public/app/blobs/{}", shared_x.0),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let s = status_as(&cache, Method::GET, &bob, "/v2/public/app/manifests/v1").await;
    assert_eq!(s, StatusCode::OK);

    // With the upstream gone, a cached blob is linked only when a cached
    // manifest of the repository names it.
    up.stop().await;
    let s = status_as(
        &cache,
        Method::GET,
        &bob,
        &format!("/v2/public/app/blobs/{}", shared_y.0),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "named by public/app's cached manifest");
    let s = status_as(&cache, Method::GET, &bob, &format!("/v2/public/app/blobs/{}", secret.0)).await;
    assert!(!s.is_success(), "alice's blob with the upstream down: {s}");
    let s = status_as(
        &cache,
        Method::GET,
        &alice,
        &format!("/v2/alice/app/blobs/{}", secret.0),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "alice still reads her cached blob");
    cache.stop().await;
}
