//! Resource limits: a hostile upstream behind the pull-through cache, and
//! slow clients holding connections.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use reqwest::Method;
use strata_registry_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A config read from YAML like an operator's file (filesystem storage on `root`).
fn yaml_config(root: &std::path::Path, extra: &str) -> Config {
    Config::from_yaml(&format!(
        "http: {{ addr: \"127.0.0.1:0\" }}\nstorage: {{ filesystem: {{ rootdirectory: \"{}\" }} }}\nlog: {{ accesslog: {{ disabled: true }} }}\n{extra}",
        root.display()
    ))
    .expect("config parses")
}

// ---- a hostile upstream ----

/// What the hostile upstream sends as a body: far more than any bound, but
/// finite, so that an unbounded reader finishes (and the test can fail).
const HOSTILE_BODY: u64 = 256 << 20;

/// Per connection: (request method and path, body bytes the server managed to send).
type Sent = Arc<Mutex<Vec<(String, u64)>>>;

/// A registry that answers every manifest and token request with an
/// enormous body: chunked (`/v2/chunked/…`, and its token endpoint
/// `/token-chunked`) or with a huge Content-Length (`/v2/declared/…`,
/// `/token-declared`). `/v2/tok-*/…` demands a bearer token first.
async fn hostile_upstream() -> (String, Sent) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let sent: Sent = Arc::default();
    let (a, s) = (addr.clone(), sent.clone());
    tokio::spawn(async move {
        loop {
            let Ok((c, _)) = l.accept().await else { return };
            let (a, s) = (a.clone(), s.clone());
            tokio::spawn(async move {
                let (path, n) = hostile_conn(c, &a).await;
                s.lock().unwrap().push((path, n));
            });
        }
    });
    (format!("http://{addr}"), sent)
}

async fn hostile_conn(mut c: TcpStream, addr: &str) -> (String, u64) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return (String::new(), 0),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let request = format!("{method} {path}");
    let authorized = text.to_ascii_lowercase().contains("\r\nauthorization:");
    const MT: &str = "application/vnd.oci.image.manifest.v1+json";
    let (head, chunked) = if method == "HEAD" {
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".to_string(), None)
    } else if path.starts_with("/v2/tok-") && !authorized {
        let realm = if path.starts_with("/v2/tok-chunked/") {
            "token-chunked"
        } else {
            "token-declared"
        };
        (
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{addr}/{realm}\",service=\"hostile\"\r\nContent-Length: 0\r\n"
            ),
            None,
        )
    } else if path.starts_with("/v2/chunked/") || path.starts_with("/token-chunked") {
        (
            format!("HTTP/1.1 200 OK\r\nContent-Type: {MT}\r\nTransfer-Encoding: chunked\r\n"),
            Some(true),
        )
    } else if path.starts_with("/v2/declared/") || path.starts_with("/token-declared") {
        (
            format!("HTTP/1.1 200 OK\r\nContent-Type: {MT}\r\nContent-Length: {HOSTILE_BODY}\r\n"),
            Some(false),
        )
    } else {
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".to_string(), None)
    };
    if c.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .is_err()
    {
        return (request, 0);
    }
    let Some(chunked) = chunked else { return (request, 0) };
    // JSON whitespace: an unbounded reader would keep all of it and parse on.
    let chunk = vec![b' '; 64 * 1024];
    let mut n = 0u64;
    while n < HOSTILE_BODY {
        let r = if chunked {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            c.write_all(&framed).await
        } else {
            c.write_all(&chunk).await
        };
        if r.is_err() {
            return (request, n);
        }
        n += chunk.len() as u64;
    }
    if chunked {
        let _ = c.write_all(b"0\r\n\r\n").await;
    }
    (request, n)
}

/// Waits (the hostile server notices the proxy hanging up) for the
/// connection that served `GET path…`; returns the bytes it sent.
async fn sent_for(sent: &Sent, path: &str) -> u64 {
    let request = format!("GET {path}");
    for _ in 0..600 {
        if let Some((_, n)) = sent.lock().unwrap().iter().find(|(r, _)| r.starts_with(&request)) {
            return *n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hostile upstream never finished serving {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_bounds_upstream_manifests_and_tokens() {
    let (upstream, sent) = hostile_upstream().await;
    let dir = tempfile::TempDir::new().unwrap();
    let c = yaml_config(dir.path(), &format!("proxy: {{ remoteurl: \"{upstream}\" }}"));
    let cache = start_with(c, Some(dir)).await;
    let digest = strata_oci::Digest::sha256_of(b"x");
    for (path, upstream_path, problem) in [
        (
            "/v2/chunked/app/manifests/latest".to_string(),
            "/v2/chunked/app/manifests/latest".to_string(),
            "upstream manifest exceeds 4 MiB",
        ),
        (
            format!("/v2/declared/app/manifests/{digest}"),
            format!("/v2/declared/app/manifests/{digest}"),
            "upstream manifest exceeds 4 MiB",
        ),
        (
            "/v2/tok-chunked/app/manifests/latest".to_string(),
            "/token-chunked".to_string(),
            "upstream token response exceeds 1 MiB",
        ),
        (
            "/v2/tok-declared/app/manifests/latest".to_string(),
            "/token-declared".to_string(),
            "upstream token response exceeds 1 MiB",
        ),
    ] {
        let r = cache.req(Method::GET, &path).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        let n = sent_for(&sent, &upstream_path).await;
        assert!(
            n < 64 << 20,
            "{path}: the proxy read {} MiB of the upstream's body",
            n >> 20
        );
        assert!(status.is_server_error(), "{path}: {status} {body}");
        assert!(body.contains(problem), "{path}: {status} {body}");
    }
    cache.stop().await;
}
