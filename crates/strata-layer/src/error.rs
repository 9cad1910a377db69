use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A name, link or whiteout that would leave the root or is malformed.
    #[error("refusing layer entry {path:?}: {reason}")]
    Unsafe { path: String, reason: String },
    #[error("layer is truncated: {0}")]
    Truncated(String),
    #[error("layer is not a valid tar archive: {0}")]
    NotTar(String),
    #[error("layer {compression} stream is corrupt or truncated: {message}")]
    Compression { compression: &'static str, message: String },
    #[error("{path}: {message}")]
    Unpack { path: PathBuf, message: String },
}

impl LayerError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> LayerError {
        LayerError::Io {
            what: what.into(),
            source,
        }
    }
    pub(crate) fn unsafe_entry(path: impl Into<String>, reason: impl Into<String>) -> LayerError {
        LayerError::Unsafe {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
