//! Credentials as Docker keeps them: `config.json` in `$DOCKER_CONFIG` (or
//! `~/.docker`), with `auths` (base64 `user:password`, or an identity token),
//! `credsStore` and `credHelpers` naming `docker-credential-NAME` programs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{RegistryError, Result};

/// The key Docker files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and its secret. A user name of `<token>` marks the secret
/// as an identity (refresh) token, as credential helpers do.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credential {
    pub fn new(username: &str, secret: &str) -> Credential {
        Credential {
            username: username.into(),
            secret: secret.into(),
        }
    }

    pub fn identity_token(token: &str) -> Credential {
        Credential::new("<token>", token)
    }

    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>" || self.username.is_empty()
    }
}

/// Is `registry` Docker Hub under one of its names?
pub fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The key of `registry` in `config.json` and for credential helpers:
/// `https://index.docker.io/v1/` for Docker Hub, else `host[:port]`.
pub fn server_key(registry: &str) -> String {
    let host = hostname_of_key(registry);
    if is_docker_hub(&host) {
        DOCKER_HUB_KEY.to_string()
    } else {
        host
    }
}

/// `https://host:port/v1/` → `host:port` (Docker's `ConvertToHostname`).
fn hostname_of_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k).to_ascii_lowercase()
}

/// The directory of `config.json`: `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn default_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker"))
}

/// Reads and writes credentials in one Docker config directory.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

fn cred_err(msg: String) -> RegistryError {
    RegistryError::Credentials(msg)
}

impl CredentialStore {
    pub fn new(dir: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { dir: dir.into() }
    }

    /// The store of `$DOCKER_CONFIG` or `~/.docker`.
    pub fn from_env() -> Result<CredentialStore> {
        default_config_dir().map(CredentialStore::new).ok_or_else(|| {
            cred_err("cannot find the Docker config directory: neither DOCKER_CONFIG nor HOME is set".into())
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn read(&self) -> Result<Map<String, Value>> {
        let p = self.config_path();
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(cred_err(format!("reading {}: {e}", p.display()))),
        };
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(cred_err(format!("{}: top level is not a JSON object", p.display()))),
            Err(e) => Err(cred_err(format!("{} is not valid JSON: {e}", p.display()))),
        }
    }

    /// The credential helper configured for `registry`, if any.
    fn helper_for(&self, cfg: &Map<String, Value>, registry: &str) -> Result<Option<String>> {
        let key = server_key(registry);
        let host = hostname_of_key(&key);
        let from_helpers = cfg.get("credHelpers").and_then(Value::as_object).and_then(|h| {
            h.iter()
                .find(|(k, _)| **k == key || hostname_of_key(k) == host)
                .and_then(|(_, v)| v.as_str())
        });
        let name = from_helpers.or_else(|| cfg.get("credsStore").and_then(Value::as_str));
        match name.filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(n) if n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) && !n.starts_with('.') => {
                Ok(Some(n.to_string()))
            }
            Some(n) => Err(cred_err(format!(
                "{}: credential helper name {n:?} is not a plain name",
                self.config_path().display()
            ))),
        }
    }

    /// Credentials for `registry` (a host, `host:port`, or `docker.io`).
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let cfg = self.read()?;
        let key = server_key(registry);
        if let Some(helper) = self.helper_for(&cfg, registry)?
            && let Some(c) = helper_get(&helper, &key)?
        {
            return Ok(Some(c));
        }
        let Some(auths) = cfg.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let host = hostname_of_key(&key);
        let entry = auths
            .get(&key)
            .or_else(|| auths.iter().find(|(k, _)| hostname_of_key(k) == host).map(|(_, v)| v))
            .or_else(|| {
                // Docker Hub under any of its names.
                is_docker_hub(&host)
                    .then(|| {
                        auths
                            .iter()
                            .find(|(k, _)| is_docker_hub(&hostname_of_key(k)))
                            .map(|(_, v)| v)
                    })
                    .flatten()
            });
        let Some(entry) = entry.and_then(Value::as_object) else {
            return Ok(None);
        };
        if let Some(t) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credential::identity_token(t)));
        }
        if let Some(a) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| {
                    cred_err(format!(
                        "{}: the \"auth\" of {key} is not valid base64: {e}",
                        self.config_path().display()
                    ))
                })?;
            let s = String::from_utf8(raw).map_err(|_| {
                cred_err(format!(
                    "{}: the \"auth\" of {key} is not UTF-8",
                    self.config_path().display()
                ))
            })?;
            let (u, p) = s.split_once(':').ok_or_else(|| {
                cred_err(format!(
                    "{}: the \"auth\" of {key} is not base64 of USER:PASSWORD",
                    self.config_path().display()
                ))
            })?;
            return Ok(Some(Credential::new(u, p)));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Credential::new(u, p)));
        }
        Ok(None)
    }

    /// Stores credentials for `registry`: with its credential helper when one
    /// is configured, else as base64 `auth` in `config.json` (mode 0600).
    /// Returns where they went.
    pub fn store(&self, registry: &str, cred: &Credential) -> Result<String> {
        let mut cfg = self.read()?;
        let key = server_key(registry);
        if let Some(helper) = self.helper_for(&cfg, registry)? {
            let input = serde_json::json!({"ServerURL": key, "Username": cred.username, "Secret": cred.secret});
            run_helper(&helper, "store", input.to_string().as_bytes())?;
            return Ok(format!("credential helper docker-credential-{helper}"));
        }
        let auths = cfg.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("just made an object");
        // One entry per registry: drop other spellings of the same host.
        let host = hostname_of_key(&key);
        auths.retain(|k, _| hostname_of_key(k) != host);
        let mut entry = Map::new();
        if cred.is_identity_token() {
            entry.insert("auth".into(), Value::String(String::new()));
            entry.insert("identitytoken".into(), Value::String(cred.secret.clone()));
        } else {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", cred.username, cred.secret));
            entry.insert("auth".into(), Value::String(b64));
        }
        auths.insert(key, Value::Object(entry));
        self.write(&cfg)?;
        Ok(self.config_path().display().to_string())
    }

    /// Removes credentials for `registry`; false when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let mut cfg = self.read()?;
        let key = server_key(registry);
        let mut found = false;
        if let Some(helper) = self.helper_for(&cfg, registry)? {
            found = helper_get(&helper, &key)?.is_some();
            if found {
                run_helper(&helper, "erase", key.as_bytes())?;
            }
        }
        let host = hostname_of_key(&key);
        if let Some(auths) = cfg.get_mut("auths").and_then(Value::as_object_mut) {
            let before = auths.len();
            auths.retain(|k, _| hostname_of_key(k) != host);
            if auths.len() != before {
                found = true;
                self.write(&cfg)?;
            }
        }
        Ok(found)
    }

    /// Writes `config.json` atomically with mode 0600 (directory 0700 when made).
    fn write(&self, cfg: &Map<String, Value>) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let p = self.config_path();
        if !self.dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| cred_err(format!("creating {}: {e}", self.dir.display())))?;
        }
        let mut text = serde_json::to_vec_pretty(&Value::Object(cfg.clone())).expect("JSON serializes");
        text.push(b'\n');
        let tmp = self.dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let res = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(cred_err(format!("writing {}: {e}", p.display())));
        }
        Ok(())
    }

    /// Every registry with credentials in `auths` (for listing; helpers not asked).
    pub fn registries(&self) -> Result<Vec<String>> {
        let cfg = self.read()?;
        let m: BTreeMap<String, ()> = cfg
            .get("auths")
            .and_then(Value::as_object)
            .map(|a| a.keys().map(|k| (k.clone(), ())).collect())
            .unwrap_or_default();
        Ok(m.into_keys().collect())
    }
}

/// Runs `docker-credential-NAME ACTION` with `input` on stdin; returns stdout.
fn run_helper(name: &str, action: &str, input: &[u8]) -> Result<Vec<u8>> {
    let prog = format!("docker-credential-{name}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                cred_err(format!(
                    "credential helper {prog} is configured but not found in PATH; install it or remove it from the Docker config"
                ))
            } else {
                cred_err(format!("running credential helper {prog}: {e}"))
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading; a broken pipe is then not our error.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cred_err(format!("running credential helper {prog}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string() + String::from_utf8_lossy(&out.stderr).trim();
        return Err(cred_err(format!(
            "credential helper {prog} {action} failed ({}): {}",
            out.status,
            if msg.is_empty() { "no message" } else { &msg }
        )));
    }
    Ok(out.stdout)
}

/// `get` from a helper; None when it has nothing for `key`.
fn helper_get(name: &str, key: &str) -> Result<Option<Credential>> {
    let out = match run_helper(name, "get", key.as_bytes()) {
        Ok(o) => o,
        Err(RegistryError::Credentials(m)) if m.contains("credentials not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    #[derive(serde::Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let h: HelperOut = serde_json::from_slice(&out).map_err(|e| {
        cred_err(format!(
            "credential helper docker-credential-{name} get printed something that is not its JSON: {e}"
        ))
    })?;
    if h.secret.is_empty() && h.username.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: h.username,
        secret: h.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(server_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_key("index.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_key("https://index.docker.io/v1/"), DOCKER_HUB_KEY);
        assert_eq!(server_key("localhost:5000"), "localhost:5000");
        assert_eq!(server_key("https://Quay.io/v2/"), "quay.io");
    }

    #[test]
    fn reads_auths_in_any_spelling() {
        let d = tempfile::TempDir::new().unwrap();
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            d.path().join("config.json"),
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": b("hubuser:hubpw")},
                "http://reg.example:5000/v2/": {"auth": b("u:p:with:colons")},
                "tok.example": {"auth": "", "identitytoken": "refresh-me"},
            }})
            .to_string(),
        )
        .unwrap();
        let s = CredentialStore::new(d.path());
        assert_eq!(s.get("docker.io").unwrap(), Some(Credential::new("hubuser", "hubpw")));
        assert_eq!(
            s.get("reg.example:5000").unwrap(),
            Some(Credential::new("u", "p:with:colons"))
        );
        assert!(s.get("tok.example").unwrap().unwrap().is_identity_token());
        assert_eq!(s.get("other.example").unwrap(), None);
        std::fs::write(d.path().join("config.json"), "{not json").unwrap();
        let e = s.get("docker.io").unwrap_err().to_string();
        assert!(e.contains("config.json is not valid JSON"), "{e}");
    }
}
