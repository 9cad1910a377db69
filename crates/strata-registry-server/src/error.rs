//! The distribution spec's error envelope: `{"errors":[{"code","message","detail"}]}`.

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
