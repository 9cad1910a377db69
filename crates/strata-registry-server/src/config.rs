//! Configuration, read from YAML in the style of distribution's `config.yml`
//! (unknown keys are ignored so that an existing file mostly works).
//!
//! ```yaml
//! http: { addr: 127.0.0.1:5000, tls: { certificate: cert.pem, key: key.pem } }
//! storage:
//!   filesystem: { rootdirectory: /var/lib/registry }
//!   # or s3: { bucket, region, regionendpoint, accesskey, secretkey, rootdirectory, forcepathstyle, chunksize }
//!   delete: { enabled: true }
//!   maintenance: { readonly: { enabled: false } }
//! auth:
//!   htpasswd: { realm: strata, path: /etc/registry/htpasswd }
//!   token: { service: strata-registry, issuer: strata, secret: "...", expiration: 300 }
//! access:
//!   - { users: [alice], repositories: ["alice/**"], actions: [pull, push, delete] }
//!   - { users: [anonymous], repositories: ["public/*"], actions: [pull] }
//! proxy: { remoteurl: https://registry.example, username: u, password: p }
//! validation: { manifests: { referencedblobs: true, indexchildren: true } }
//! limits:
//!   { maxpagesize: 1000, bodytimeout: 300, headertimeout: 30, idletimeout: 120,
//!     maxconnections: 4096, maxconnectionsperip: 256 }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub access: Vec<AccessRule>,
    pub proxy: Option<ProxyConfig>,
    pub validation: ValidationConfig,
    pub log: LogConfig,
    pub limits: Limits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// `host:port`; `:5000` means every interface. Port 0 picks a free port.
    pub addr: String,
    /// The externally visible base URL (e.g. `https://registry.example`), for
    /// the token realm; default: from the request's Host header.
    pub host: Option<String>,
    pub tls: Option<TlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "127.0.0.1:5000".into(),
            host: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub filesystem: Option<FsConfig>,
    pub s3: Option<S3Config>,
    pub delete: DeleteConfig,
    pub maintenance: Maintenance,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FsConfig {
    pub rootdirectory: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct S3Config {
    pub bucket: String,
    pub region: Option<String>,
    pub regionendpoint: Option<String>,
    pub accesskey: Option<String>,
    pub secretkey: Option<String>,
    pub rootdirectory: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); default true with a custom endpoint.
    pub forcepathstyle: Option<bool>,
    /// Multipart part size in bytes (at least 5 MiB; default 10 MiB).
    pub chunksize: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeleteConfig {
    pub enabled: bool,
}

impl Default for DeleteConfig {
    fn default() -> Self {
        DeleteConfig { enabled: true }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Maintenance {
    pub readonly: ReadOnly,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReadOnly {
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub htpasswd: Option<HtpasswdConfig>,
    pub token: Option<TokenConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HtpasswdConfig {
    #[serde(default = "default_realm")]
    pub realm: String,
    pub path: PathBuf,
}

fn default_realm() -> String {
    "strata-registry".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TokenConfig {
    /// Where clients get tokens; default `<base URL>/token` (served here).
    pub realm: Option<String>,
    pub service: String,
    pub issuer: String,
    /// HS256 shared secret (several processes serving one bucket must share it).
    pub secret: Option<String>,
    /// Or a PEM private key (RSA → RS256, EC P-256 → ES256) with its public key.
    pub key: Option<PathBuf>,
    pub publickey: Option<PathBuf>,
    /// Token lifetime in seconds.
    pub expiration: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            realm: None,
            service: "strata-registry".into(),
            issuer: "strata-registry".into(),
            secret: None,
            key: None,
            publickey: None,
            expiration: 300,
        }
    }
}

/// Grants `actions` on repositories matching one of `repositories` (globs:
/// `*` within a path component, `**` across components) to `users`
/// (`anonymous` is a request without credentials, `*` any signed-in user).
#[derive(Debug, Clone, Deserialize)]
pub struct AccessRule {
    pub users: Vec<String>,
    pub repositories: Vec<String>,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProxyConfig {
    #[serde(alias = "remote")]
    pub remoteurl: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ValidationConfig {
    pub manifests: ManifestValidation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ManifestValidation {
    /// Refuse a manifest whose config or layers are not in the repository.
    pub referencedblobs: bool,
    /// Refuse an index whose manifests are not in the repository (turn off
    /// for sparse indexes).
    pub indexchildren: bool,
}

impl Default for ManifestValidation {
    fn default() -> Self {
        ManifestValidation {
            referencedblobs: true,
            indexchildren: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub accesslog: AccessLogConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessLogConfig {
    pub disabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest `n` accepted by tag and catalog listings.
    pub maxpagesize: usize,
    /// Cross-repository mount without `from` (by digest alone). Default: on
    /// only when there is no authentication, since a digest is not a secret.
    pub anonymousmount: Option<bool>,
    /// Seconds a request body may stay silent before the upload is dropped.
    pub bodytimeout: u64,
    /// Seconds a client has to send a request's headers (and a TLS
    /// handshake), counted from the connection's start or the end of the
    /// previous response; so also how long an idle keep-alive connection lives.
    pub headertimeout: u64,
    /// Seconds a connection may go without a byte read or written while no
    /// request is being handled (e.g. a client that stops reading a response).
    pub idletimeout: u64,
    /// Open connections at most; more are answered 503 and closed. Lowered
    /// at start to what RLIMIT_NOFILE allows (two descriptors a connection).
    pub maxconnections: usize,
    /// Open connections at most from one client IP address (an IPv6 /64);
    /// more are answered 503 and closed.
    pub maxconnectionsperip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            maxpagesize: 1000,
            anonymousmount: None,
            bodytimeout: 300,
            headertimeout: 30,
            idletimeout: 120,
            maxconnections: 4096,
            maxconnectionsperip: 256,
        }
    }
}

impl Config {
    pub fn from_yaml(text: &str) -> Result<Config> {
        let c: Config = serde_norway::from_str(text)?;
        c.check()?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// A filesystem-backed config on `root` listening on `addr`.
    pub fn filesystem(root: impl Into<PathBuf>, addr: &str) -> Config {
        let mut c = Config::default();
        c.http.addr = addr.into();
        c.storage.filesystem = Some(FsConfig {
            rootdirectory: root.into(),
        });
        c
    }

    pub fn check(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::InvalidConfig(m));
        if self.storage.filesystem.is_some() && self.storage.s3.is_some() {
            return invalid("storage: configure either filesystem or s3, not both".into());
        }
        if let Some(s3) = &self.storage.s3
            && s3.bucket.is_empty()
        {
            return invalid("storage.s3.bucket is required".into());
        }
        for r in &self.access {
            for a in &r.actions {
                if !matches!(a.as_str(), "pull" | "push" | "delete" | "*") {
                    return invalid(format!("access: unknown action {a:?} (use pull, push, delete or *)"));
                }
            }
        }
        if let Some(t) = &self.auth.token
            && t.key.is_some() != t.publickey.is_some()
        {
            return invalid("auth.token: key and publickey go together".into());
        }
        let l = &self.limits;
        for (key, v) in [
            ("maxpagesize", l.maxpagesize as u64),
            ("headertimeout", l.headertimeout),
            ("idletimeout", l.idletimeout),
            ("maxconnections", l.maxconnections as u64),
            ("maxconnectionsperip", l.maxconnectionsperip as u64),
        ] {
            if v == 0 {
                return invalid(format!("limits.{key} must be positive"));
            }
        }
        Ok(())
    }

    pub fn auth_enabled(&self) -> bool {
        self.auth.htpasswd.is_some() || self.auth.token.is_some()
    }
}
