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
    /// Tar metadata (a PAX header, a GNU long name, a sparse map) over a
    /// limit that bounds the reader's memory; see [`crate::TarGuard`].
    #[error("refusing layer {0}")]
    TarLimit(crate::MetadataLimit),
    /// The layer's files add up to more than
    /// [`crate::UnpackOptions::max_unpacked_size`] (apparent sizes: a
    /// sparse file counts in full).
    #[error(
        "unpacking into {}: entry {entry:?} brings the layer's unpacked size to {total} bytes, over the cap of {cap} bytes",
        root.display()
    )]
    UnpackedTooLarge {
        root: PathBuf,
        entry: String,
        total: u64,
        cap: u64,
    },
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
