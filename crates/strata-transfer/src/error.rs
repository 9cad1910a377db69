use strata_oci::Digest;

/// Why a transfer failed: each names the blob, document or location concerned.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {digest}: the source's bytes do not match (their digest is {actual}, {size} bytes)")]
    DigestMismatch { digest: Digest, actual: Digest, size: u64 },
    #[error("blob {digest}: expected {expected} bytes, the source gave {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("document {digest} is larger than 4 MiB")]
    DocumentTooLarge { digest: Digest },
    #[error("{0}")]
    Invalid(String),
    /// An unpacked layer is not the one the image config names.
    #[error("the layer's content has diff ID {actual}, but the image config says {expected}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    /// The layer check (decompression, tar checks, unpacking) refused a
    /// layer; the message carries the whole chain of why.
    #[error("the layer was refused: {}", chain(source.as_ref()))]
    LayerRefused {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("no image in the index matches {wanted} (it has {available})")]
    NoMatchingPlatform { wanted: String, available: String },
    /// A location's own error (a registry's, the store's), with its message.
    #[error("{0}")]
    Location(String),
    /// A location's error that may pass when tried again (the connection
    /// broke, 429, 5xx): [`crate::copy`] moves the blob again.
    #[error("{0}")]
    Transient(String),
    /// What was being done when `error` happened.
    #[error("{what}: {error}")]
    Context { what: String, error: Box<TransferError> },
}

impl TransferError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> TransferError {
        TransferError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn location(e: impl std::fmt::Display) -> TransferError {
        TransferError::Location(e.to_string())
    }

    /// Whether trying again may succeed (see [`TransferError::Transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            TransferError::Transient(_) => true,
            TransferError::Context { error, .. } => error.is_transient(),
            _ => false,
        }
    }

    /// This error, saying what was being done.
    pub fn context(self, what: impl Into<String>) -> TransferError {
        TransferError::Context {
            what: what.into(),
            error: Box::new(self),
        }
    }
}

/// An error and its sources in one line, `a: b: c` (a source whose text
/// its parent already shows is left out).
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
