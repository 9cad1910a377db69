//! Errors of the registry client. Every message names the registry (and the
//! repository when there is one) and, for the spec's error bodies, the code.

use std::fmt;

use strata_oci::{Digest, DocumentError, Platform};

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// One entry of the distribution spec's error body `{"errors":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

impl fmt::Display for ApiErrorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() { "UNKNOWN" } else { &self.code };
        write!(f, "{code}")?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(d) = &self.detail
            && !d.is_null()
        {
            let s = d.to_string();
            if s.len() <= 300 && s != "{}" && s != "[]" {
                write!(f, " ({s})")?;
            }
        }
        Ok(())
    }
}

/// Where an error happened: `registry HOST` and, when known, `repository NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub registry: String,
    pub repository: Option<String>,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registry {}", self.registry)?;
        if let Some(r) = &self.repository {
            write!(f, ", repository {r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with the spec's error body (or a bare status).
    #[error("{site}: {}", describe_api(*status, errors))]
    Api {
        site: Box<Site>,
        status: u16,
        errors: Vec<ApiErrorEntry>,
        /// Its `Retry-After`, in seconds (a 503 may say it).
        retry_after: Option<u64>,
    },
    /// Authentication was required and what we had (or did not have) was refused.
    #[error("{site}: {message}")]
    Unauthorized { site: Box<Site>, message: String },
    /// HTTP 429.
    #[error("{site}: TOOMANYREQUESTS: {message}{}", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    TooManyRequests {
        site: Box<Site>,
        message: String,
        retry_after: Option<u64>,
    },
    /// Could not reach the registry, or the connection broke.
    #[error("{site}: {what}: {cause}")]
    Connection {
        site: Box<Site>,
        what: String,
        cause: String,
    },
    /// Content did not hash to the digest it was asked for by.
    #[error("{site}: {what} {expected}: received content has digest {actual}")]
    DigestMismatch {
        site: Box<Site>,
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// Content was not as long as it was said to be.
    #[error("{site}: blob {digest}: expected {expected} bytes, received {actual}")]
    SizeMismatch {
        site: Box<Site>,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// A response body over its limit.
    #[error("{site}: {what} is larger than the {limit}-byte limit ({size})")]
    TooLarge {
        site: Box<Site>,
        what: String,
        limit: u64,
        size: String,
    },
    /// A manifest or index that strata cannot use.
    #[error("{site}: manifest {reference}: {source}")]
    Document {
        site: Box<Site>,
        reference: String,
        #[source]
        source: DocumentError,
    },
    /// The registry said something the protocol does not allow.
    #[error("{site}: {message}")]
    Protocol { site: Box<Site>, message: String },
    /// No manifest of an index matches the wanted platform.
    #[error(
        "{}no matching manifest for {wanted} in the manifest list entries; the image offers: {}",
        image.as_ref().map(|i| format!("{i}: ")).unwrap_or_default(),
        if available.is_empty() { "no platforms".to_string() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        /// The image, when known (`busybox:latest`).
        image: Option<String>,
        wanted: Box<Platform>,
        available: Vec<String>,
    },
    /// Reading or writing credentials (`config.json`, credential helpers).
    #[error("{0}")]
    Credentials(String),
    /// Local I/O (the writer a blob goes into, the reader it comes from).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad argument (repository name, tag, URL).
    #[error("{0}")]
    Invalid(String),
    /// What was being done when `error` happened.
    #[error("{what}: {error}")]
    Context { what: String, error: Box<RegistryError> },
}

fn describe_api(status: u16, errors: &[ApiErrorEntry]) -> String {
    if errors.is_empty() {
        return format!("HTTP {status} {}", reason(status));
    }
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

impl RegistryError {
    /// The spec's error codes of an API error (`MANIFEST_UNKNOWN`, …).
    pub fn codes(&self) -> Vec<&str> {
        match self {
            RegistryError::Api { errors, .. } => errors.iter().map(|e| e.code.as_str()).collect(),
            RegistryError::TooManyRequests { .. } => vec!["TOOMANYREQUESTS"],
            RegistryError::Unauthorized { .. } => vec!["UNAUTHORIZED"],
            _ => vec![],
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Api { status, .. } => Some(*status),
            RegistryError::Unauthorized { .. } => Some(401),
            RegistryError::TooManyRequests { .. } => Some(429),
            _ => None,
        }
    }

    /// A 404 or one of the `*_UNKNOWN` codes.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || self
                .codes()
                .iter()
                .any(|c| matches!(*c, "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN"))
    }

    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RegistryError::Unauthorized { .. }) || self.codes().contains(&"DENIED")
    }

    /// Worth trying again later (connection trouble, 429, 5xx).
    /// How long the registry asked to wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            RegistryError::TooManyRequests { retry_after, .. } | RegistryError::Api { retry_after, .. } => {
                retry_after.map(std::time::Duration::from_secs)
            }
            _ => None,
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connection { .. } | RegistryError::TooManyRequests { .. } => true,
            RegistryError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Renders an error and its sources in one line (`reqwest` hides the cause).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
