//! Registries on 127.0.0.1 for the tests: `strata registry serve` and
//! Debian's `docker-registry` (CNCF distribution), each on a free port and
//! killed when dropped; `sha256_hex`, and what a registry or the store
//! says of pushed and pulled images.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's docker-registry binary.
const DISTRIBUTION: &str = "/usr/bin/docker-registry";

/// A free port of 127.0.0.1 (free when asked; another test may take it
/// before it is used, which `TestRegistry` notices and retries).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The raw answer to `GET /v2/` on `host` (`127.0.0.1:PORT`), or None when
/// nothing listens there yet.
pub fn get_v2(host: &str) -> Option<String> {
    let mut s = TcpStream::connect(host).ok()?;
    let _ = s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    Some(answer)
}

/// Whether Debian's docker-registry is installed; prints the skip line when not.
pub fn have_distribution() -> bool {
    if !Path::new(DISTRIBUTION).exists() {
        eprintln!("skipped: /usr/bin/docker-registry is not installed (apt-get install docker-registry)");
        return false;
    }
    true
}

/// A registry process on 127.0.0.1, killed (and waited for) when dropped.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Where it keeps its blobs.
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestRegistry {
    /// `strata registry serve --addr 127.0.0.1:PORT --root STORAGE`, with
    /// the default configuration (its access log on stderr, which is not kept).
    pub fn strata() -> TestRegistry {
        TestRegistry::start(
            |_, _| None,
            |port, storage, _| {
                let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
                c.args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}"), "--root"])
                    .arg(storage)
                    .stderr(Stdio::null());
                c
            },
        )
    }

    /// `strata registry serve -c CONFIG`, with `extra` YAML (e.g. auth) in
    /// its config.
    pub fn strata_config(extra: &str) -> TestRegistry {
        TestRegistry::start(
            |port, storage| {
                Some(format!(
                    "http: {{ addr: \"127.0.0.1:{port}\" }}\nstorage: {{ filesystem: {{ rootdirectory: \"{}\" }} }}\nlog: {{ accesslog: {{ disabled: true }} }}\n{extra}",
                    storage.display()
                ))
            },
            |_, _, file| {
                let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
                c.args(["registry", "serve", "-c"]).arg(file).stderr(Stdio::piped());
                c
            },
        )
    }

    /// Debian's docker-registry (CNCF distribution), or None (with the skip
    /// line) when not installed. `delete` turns on its DELETE API;
    /// `extra` is YAML added to its config (e.g. auth).
    pub fn distribution(delete: bool, extra: &str) -> Option<TestRegistry> {
        if !have_distribution() {
            return None;
        }
        let delete = if delete { "  delete: { enabled: true }\n" } else { "" };
        Some(TestRegistry::start(
            |port, storage| {
                Some(format!(
                    "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: true }} }}\nstorage:\n  filesystem: {{ rootdirectory: \"{}\" }}\n{delete}http: {{ addr: \"127.0.0.1:{port}\" }}\n{extra}",
                    storage.display()
                ))
            },
            |_, _, file| {
                let mut c = Command::new(DISTRIBUTION);
                c.arg("serve").arg(file).stderr(Stdio::piped());
                c
            },
        ))
    }

    /// Starts a registry on a free port: `config` makes the config file's
    /// text for that port and storage (None: no file), `command` the
    /// command given port, storage and config file. Tries other ports when
    /// one is lost to another test.
    fn start(
        config: impl Fn(u16, &Path) -> Option<String>,
        command: impl Fn(u16, &Path, &Path) -> Command,
    ) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let file = dir.path().join("config.yml");
        for _ in 0..5 {
            let port = free_port();
            if let Some(text) = config(port, &storage) {
                std::fs::write(&file, text).unwrap();
            }
            let child = command(port, &storage, &file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            if let Some(child) = wait(child, port) {
                return TestRegistry {
                    child,
                    host: format!("127.0.0.1:{port}"),
                    storage,
                    _dir: dir,
                };
            }
        }
        panic!("no registry could be started");
    }
}

/// Waits for `child` to answer `GET /v2/` on `port`; None when it exited
/// (e.g. the port was taken by another test in the meantime).
fn wait(mut child: Child, port: u16) -> Option<Child> {
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            eprintln!("the registry on port {port} exited ({status}): {err}");
            return None;
        }
        if get_v2(&format!("127.0.0.1:{port}")).is_some_and(|answer| answer.starts_with("HTTP/1.1")) {
            // Make sure it is ours that answered and not another test's
            // server that took the port first.
            std::thread::sleep(Duration::from_millis(200));
            if let Ok(None) = child.try_wait() {
                return Some(child);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the registry does not answer on port {port}");
}

/// The SHA-256 of `b` in hex (by sha256sum: there is no sha2 dev-dependency).
pub fn sha256_hex(b: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The manifest the registry serves for `name`, as skopeo reads it: its
/// bytes, and parsed.
pub fn raw_manifest_bytes(name: &str) -> (String, serde_json::Value) {
    let raw = super::sh_ok(&format!("skopeo inspect --raw --tls-verify=false docker://{name}"));
    let v = serde_json::from_str(&raw).unwrap();
    (raw, v)
}

/// The manifest the registry serves for `name`.
pub fn raw_manifest(name: &str) -> serde_json::Value {
    raw_manifest_bytes(name).1
}

/// `REPOSITORY:TAG DIGEST` of every image in `env`'s store.
pub fn repo_digests(env: &super::Env) -> String {
    env.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ])
}
