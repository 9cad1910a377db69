//! Resource limits: a hostile upstream behind the pull-through cache, and
//! slow clients holding connections.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
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

// ---- slow clients ----

/// A TCP connection to `addr` from the loopback address `from` (all of
/// 127/8 is local on Linux, so each is another client IP address).
async fn connect_from(from: &str, addr: &str) -> TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    s.connect(addr.parse().unwrap()).await.unwrap()
}

/// `n` connections from `from` that each send half a request line and stop.
async fn slow_clients(from: &str, addr: &str, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut s = connect_from(from, addr).await;
        // The server may already have refused it; the write may then fail.
        let _ = s.write_all(b"GET /v2/ HTT").await;
        out.push(s);
    }
    out
}

/// Reads each connection to its end in the background; reports (index, what was read).
fn watch_ends(conns: Vec<TcpStream>) -> tokio::sync::mpsc::UnboundedReceiver<(usize, String)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, mut s) in conns.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            // A reset (refused while the request was unread) also ends it.
            let _ = s.read_to_end(&mut out).await;
            let _ = tx.send((i, String::from_utf8_lossy(&out).to_string()));
        });
    }
    rx
}

/// The next connection end, or a panic after `patience` (far longer than
/// the server-side timeout being waited for: this is no speed criterion).
async fn next_end(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, String)>, what: &str) -> (usize, String) {
    let patience = Duration::from_secs(60);
    match tokio::time::timeout(patience, rx.recv()).await {
        Ok(Some(x)) => x,
        _ => panic!("{what}: the server kept the connection open"),
    }
}

fn client_from(ip: &str) -> reqwest::Client {
    strata_registry_server::util::install_crypto_provider();
    // No keep-alive: every request its own connection, closed after it.
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn metric(e: &Env, name: &str) -> u64 {
    let text = client_from("127.0.0.2")
        .get(format!("{}/metrics", e.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// `(soft, hard)` RLIMIT_NOFILE of this process.
fn nofile() -> (String, String) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_string(), f[4].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_capped_and_others_are_served() {
    let dir = tempfile::TempDir::new().unwrap();
    let c = yaml_config(
        dir.path(),
        "limits: { maxconnections: 20, maxconnectionsperip: 8, headertimeout: 600 }",
    );
    // A low soft limit (as from a login shell), raised by the server at start.
    // (nextest runs each test in a process of its own.)
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: hard,
        },
    )
    .unwrap();
    assert_eq!(nofile().0, "256");
    let e = start_with(c, Some(dir)).await;
    let (soft, hard) = nofile();
    assert_eq!(soft, hard, "RLIMIT_NOFILE is raised to its hard limit");
    let addr = e.url.trim_start_matches("http://").to_string();

    // 20 slow clients on one address: the 12 over its cap are closed (with a 503) ...
    let mut ends = watch_ends(slow_clients("127.0.0.1", &addr, 20).await);
    for _ in 0..12 {
        let (i, text) = next_end(&mut ends, "a connection over the per-address cap").await;
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 503"), "{i}: {text}");
    }
    // ... the 8 others are held, and another client is served meanwhile.
    let other = client_from("127.0.0.2");
    for _ in 0..3 {
        let r = other.get(format!("{}/v2/", e.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert!(ends.try_recv().is_err(), "a connection under the cap was closed");
    assert_eq!(
        metric(&e, "registry_connections_refused_total{reason=\"per_ip\"}").await,
        12
    );

    // The global cap: 8 + 8 from a second address + 4 from a third fill it
    // (once the connections of the requests above are gone: the 8 slow ones
    // and the one asking are open) ...
    let mut settled = false;
    for _ in 0..100 {
        if metric(&e, "registry_connections_open").await == 9 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "connections of finished requests stay counted");
    let second = slow_clients("127.0.0.3", &addr, 8).await;
    let mut third = watch_ends(slow_clients("127.0.0.4", &addr, 8).await);
    for _ in 0..4 {
        next_end(&mut third, "a connection over the global cap").await;
    }
    // ... so that everyone is turned away (promptly, not left hanging) ...
    let refused = other.get(format!("{}/v2/", e.url)).send().await;
    assert!(
        refused
            .as_ref()
            .map_or(true, |r| r.status() == StatusCode::SERVICE_UNAVAILABLE),
        "{refused:?}"
    );
    // ... until slow connections go away.
    drop(second);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(r) = other.get(format!("{}/v2/", e.url)).send().await
            && r.status() == StatusCode::OK
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the server stays full after slow clients left");
    assert!(metric(&e, "registry_connections_refused_total{reason=\"global\"}").await >= 4);
    drop(ends);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_closes_slow_and_idle_connections() {
    let dir = tempfile::TempDir::new().unwrap();
    let c = yaml_config(dir.path(), "limits: { headertimeout: 1 }");
    let e = start_with(c, Some(dir)).await;
    let addr = e.url.trim_start_matches("http://").to_string();
    // Half a request line; nothing at all; a keep-alive connection after one request.
    let mut conns = slow_clients("127.0.0.1", &addr, 1).await;
    conns.push(connect_from("127.0.0.1", &addr).await);
    let mut kept = connect_from("127.0.0.1", &addr).await;
    kept.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    conns.push(kept);
    let mut ends = watch_ends(conns);
    for _ in 0..3 {
        next_end(&mut ends, "a connection without a complete request").await;
    }
    assert!(metric(&e, "registry_connections_timed_out_total{kind=\"header\"}").await >= 3);
    // Clients that send their requests are unaffected.
    let r = e.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_a_stalled_download() {
    let dir = tempfile::TempDir::new().unwrap();
    let c = yaml_config(dir.path(), "limits: { idletimeout: 1 }");
    let e = start_with(c, Some(dir)).await;
    let size = 32 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    // Pushed on a connection that is closed at once: a pooled one would
    // idle out too and count in the metric this test waits for.
    let d = strata_oci::Digest::sha256_of(&data);
    let r = e
        .req(Method::POST, &format!("/v2/big/blobs/uploads/?digest={d}"))
        .header("connection", "close")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    drop(r);
    let addr = e.url.trim_start_matches("http://").to_string();
    // A client that asks for the blob and never reads it.
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(64 * 1024).unwrap();
    let mut stalled = s.connect(addr.parse().unwrap()).await.unwrap();
    stalled
        .write_all(format!("GET /v2/big/blobs/{d} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let name = "registry_connections_timed_out_total{kind=\"idle\"}";
    let mut closed = false;
    for _ in 0..600 {
        if metric(&e, name).await >= 1 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the stalled download was never closed");
    let mut got = Vec::new();
    let _ = stalled.read_to_end(&mut got).await;
    assert!(got.len() < size, "the whole blob arrived after all");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_are_capped_and_timed_out() {
    let dir = tempfile::TempDir::new().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .current_dir(dir.path())
        .output()
        .is_ok_and(|o| o.status.success());
    if !made {
        println!("SKIPPED: the openssl command is not available to make a test certificate");
        return;
    }
    let tls = format!(
        "http: {{ addr: \"127.0.0.1:0\", tls: {{ certificate: \"{0}/cert.pem\", key: \"{0}/key.pem\" }} }}\n",
        dir.path().display()
    );
    let mut c = yaml_config(dir.path(), "limits: { headertimeout: 1, maxconnectionsperip: 2 }");
    c.http = Config::from_yaml(&tls).unwrap().http;
    let e = start_with(c, Some(dir)).await;
    let addr = e.server.as_ref().unwrap().addr().to_string();
    // Three clients that never start their handshake: one over the cap is
    // closed at once, the two others when the header timeout ends.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(connect_from("127.0.0.1", &addr).await);
    }
    let mut ends = watch_ends(conns);
    for _ in 0..3 {
        let (_, text) = next_end(&mut ends, "a TLS connection without a handshake").await;
        assert!(text.is_empty(), "{text}");
    }
    assert_eq!(
        metric_tls(&addr, "registry_connections_refused_total{reason=\"per_ip\"}").await,
        1
    );
    assert_eq!(
        metric_tls(&addr, "registry_connections_timed_out_total{kind=\"header\"}").await,
        2
    );
    e.stop().await;
}

async fn metric_tls(addr: &str, name: &str) -> u64 {
    // From another loopback address: the connections just closed may still
    // count against 127.0.0.1's cap for a moment (the client sees the close
    // before the server's task that held it ends), and a refusal here
    // would count in the metric read.
    let resp = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap()
        .get(format!("https://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}
