//! The distribution spec's error envelope: `{"errors":[{"code","message","detail"}]}`
//! ([`ApiError`], what a request gets), and [`Error`], why the registry
//! could not be set up or a maintenance run (`gc`) failed.

use std::io;
use std::path::PathBuf;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<Box<Value>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }
    pub fn with_detail(mut self, detail: Value) -> ApiError {
        self.detail = Some(Box::new(detail));
        self
    }
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn blob_unknown(digest: &impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry")
            .with_detail(json!({ "digest": digest.to_string() }))
    }
    pub fn upload_unknown() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        )
    }
    pub fn upload_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", msg)
    }
    pub fn digest_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
    }
    pub fn manifest_unknown(reference: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown")
            .with_detail(json!({ "reference": reference }))
    }
    pub fn manifest_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", msg)
    }
    pub fn manifest_blob_unknown(digest: &impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            format!("manifest references a blob that is not in this repository: {digest}"),
        )
        .with_detail(json!({ "digest": digest.to_string() }))
    }
    pub fn name_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", msg)
    }
    pub fn name_unknown(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .with_detail(json!({ "name": name }))
    }
    pub fn tag_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", msg)
    }
    pub fn size_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "SIZE_INVALID", msg)
    }
    pub fn too_large(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", msg)
    }
    pub fn range_invalid(current: u64) -> ApiError {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("chunk does not start at the upload's current size ({current} bytes)"),
        )
        .with_header(axum::http::header::RANGE, &upload_range(current))
    }
    pub fn unauthorized(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", msg)
    }
    pub fn denied(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "DENIED", msg)
    }
    pub fn unsupported(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg)
    }
    pub fn pagination_invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID", msg)
    }
    pub fn too_many_requests(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", msg)
    }
    pub fn unavailable(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", msg)
    }
    pub fn internal(msg: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("internal error: {msg}"),
        )
    }
}

/// The `Range` header value of an upload holding `size` bytes (`0-<last byte>`).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(format!("storage: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.detail {
            err["detail"] = *d;
        }
        let body = serde_json::to_vec(&json!({ "errors": [err] })).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in self.headers {
            h.append(k, v);
        }
        resp
    }
}

/// Why the registry could not be configured, started, or collected: each
/// names the file, setting, address or operation concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("reading config file {}: {source}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The config file was read but is not a usable config.
    #[error("config file {}: {source}", path.display())]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// The config is not valid YAML of the config's shape.
    #[error(transparent)]
    Yaml(#[from] serde_norway::Error),
    /// A setting that is missing, out of range, or contradicts another.
    #[error("{0}")]
    InvalidConfig(String),
    /// The htpasswd file could not be read.
    #[error("reading htpasswd {}: {source}", path.display())]
    ReadHtpasswd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of the htpasswd file that cannot be used.
    #[error("htpasswd {} line {line}: {problem}", path.display())]
    Htpasswd {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
    /// A token signing key (`what`: `key` or `public key`) could not be read.
    #[error("reading token {what} {}: {source}", path.display())]
    ReadTokenKey {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The filesystem storage directory could not be opened.
    #[error("opening storage directory {}: {source}", path.display())]
    StorageDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The S3 storage driver rejected its configuration.
    #[error("configuring the s3 storage driver: {source}")]
    S3Config {
        #[source]
        source: object_store::Error,
    },
    /// The HTTP client of the pull-through cache could not be built.
    #[error("proxy HTTP client: {source}")]
    ProxyClient {
        #[source]
        source: reqwest::Error,
    },
    /// A TLS certificate or key file (`what`: `reading certificate`,
    /// `parsing certificate`, `reading key`) could not be used.
    #[error("{what} {}: {source}", path.display())]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the certificate and key.
    #[error("certificate and key do not form a usable pair: {source}")]
    TlsPair {
        #[source]
        source: rustls::Error,
    },
    /// The listening socket could not be bound (or its address read).
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The storage driver failed (garbage collection).
    #[error(transparent)]
    Storage(#[from] io::Error),
    /// The registry answered an operation (garbage collection) with an API
    /// error; the message is the API error's.
    #[error("{message}")]
    Api { code: &'static str, message: String },
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        Error::Api {
            code: e.code,
            message: e.message,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources in one line, `a: b: c` (a source whose text is
/// already shown is left out).
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
