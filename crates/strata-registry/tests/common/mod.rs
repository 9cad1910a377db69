//! Test harness: strata-registry-server started in-process on 127.0.0.1 with
//! a free port, and a tiny scripted HTTP server for behaviors a correct
//! registry never shows (redirects elsewhere, broken connections, huge
//! manifests, 429).
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strata_registry::{Client, ClientOptions, Credential, Credentials};
use strata_registry_server::config::{AccessRule, HtpasswdConfig, TokenConfig};
use strata_registry_server::{Config, RunningServer};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SECRET: &str = "a-test-secret-of-enough-length";

pub struct Registry {
    pub server: Option<RunningServer>,
    pub dir: TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
}

impl Registry {
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// A client with no certificates directory and the given credentials.
    pub fn client(&self, credentials: Credentials) -> Client {
        Client::new(&self.host, options(credentials)).expect("client")
    }

    pub fn anonymous(&self) -> Client {
        self.client(Credentials::Anonymous)
    }

    pub fn as_user(&self, user: &str, password: &str) -> Client {
        self.client(Credentials::Explicit(Credential::new(user, password)))
    }
}

/// Options that read nothing from the machine (no certs.d, no ~/.docker).
pub fn options(credentials: Credentials) -> ClientOptions {
    ClientOptions {
        certs_dir: PathBuf::from("/nonexistent/strata-test-certs.d"),
        credentials,
        docker_config_dir: Some(PathBuf::from("/nonexistent/strata-test-docker-config")),
        ..Default::default()
    }
}

pub async fn start(f: impl FnOnce(&mut Config, &Path)) -> Registry {
    let dir = TempDir::new().expect("tempdir");
    let mut c = Config::filesystem(dir.path().join("storage"), "127.0.0.1:0");
    c.log.accesslog.disabled = true;
    f(&mut c, dir.path());
    let server = strata_registry_server::start(c).await.expect("server starts");
    let host = server.addr().to_string();
    Registry {
        server: Some(server),
        dir,
        host,
    }
}

/// A registry without authentication.
pub async fn open_registry() -> Registry {
    start(|_, _| {}).await
}

fn rule(users: &[&str], repos: &[&str], actions: &[&str]) -> AccessRule {
    AccessRule {
        users: users.iter().map(|s| s.to_string()).collect(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn rules() -> Vec<AccessRule> {
    vec![
        rule(&["alice"], &["alice/**"], &["pull", "push", "delete"]),
        rule(&["bob"], &["bob/**"], &["*"]),
        rule(&["bob"], &["alice/**"], &["pull"]),
        rule(&["anonymous"], &["public/*"], &["pull"]),
    ]
}

pub fn write_htpasswd(dir: &Path) -> PathBuf {
    let p = dir.join("htpasswd");
    let lines: Vec<String> = [("alice", "alice-pw"), ("bob", "bob-pw")]
        .iter()
        .map(|(u, pw)| format!("{u}:{}", bcrypt::hash(pw, 4).unwrap()))
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// htpasswd Basic auth with the access rules above.
pub async fn basic_registry() -> Registry {
    start(|c, dir| {
        c.auth.htpasswd = Some(HtpasswdConfig {
            realm: "test".into(),
            path: write_htpasswd(dir),
        });
        c.access = rules();
    })
    .await
}

/// The built-in token service (htpasswd users) with the access rules above.
pub async fn token_registry() -> Registry {
    start(|c, dir| {
        c.auth.htpasswd = Some(HtpasswdConfig {
            realm: "test".into(),
            path: write_htpasswd(dir),
        });
        c.auth.token = Some(TokenConfig {
            secret: Some(SECRET.into()),
            ..Default::default()
        });
        c.access = rules();
    })
    .await
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A request the scripted server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted HTTP/1.1 server: one request per connection, answered with the
/// raw bytes the handler returns, then the connection is closed (so a
/// response shorter than its Content-Length is a connection that broke).
pub struct Fake {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub async fn start(bind: &str, handler: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recs = requests.clone();
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let recs = recs.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    recs.lock().unwrap().push(req.clone());
                    let out = handler(&req);
                    let _ = sock.write_all(&out).await;
                    let _ = sock.flush().await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Fake { addr, requests, task }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

/// Where a `Range: bytes=N-` request starts (0 without one).
pub fn range_start(req: &Recorded) -> usize {
    req.header("range")
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .unwrap_or(0)
}

/// A complete response with Content-Length.
pub fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    truncated(status, headers, body.len(), body)
}

/// A response that announces `announced` bytes and sends only `body`.
pub fn truncated(status: u16, headers: &[(&str, &str)], announced: usize, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {announced}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A tar of regular files (mode 0644, mtime 0).
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
