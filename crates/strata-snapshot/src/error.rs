//! The snapshotter's errors: each names the snapshot, layer or path.

use std::io;
use std::path::PathBuf;

use strata_oci::Digest;

/// A failure of the snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem call failed; `what` says on what.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A system call failed below a step that names the path (see [`Error::Context`]).
    #[error(transparent)]
    Sys(#[from] io::Error),
    #[error("unknown storage driver {0:?} (supported: overlay, vfs)")]
    UnknownDriver(String),
    #[error("invalid snapshot key {0:?}: use 1 to 128 of [A-Za-z0-9_.-], not starting with '.'")]
    InvalidKey(String),
    #[error("no snapshot named {key:?} ({})", path.display())]
    NotFound {
        key: String,
        path: PathBuf,
        #[source]
        source: Option<io::Error>,
    },
    #[error("a snapshot named {key:?} already exists ({})", path.display())]
    Exists { key: String, path: PathBuf },
    #[error("cannot prepare snapshot {key:?}: layer {chain_id} is not unpacked (expected {})", path.display())]
    LayerNotUnpacked {
        key: String,
        chain_id: Digest,
        path: PathBuf,
    },
    #[error("snapshot {key:?} is still mounted on {}", path.display())]
    StillMounted { key: String, path: PathBuf },
    #[error("the record of snapshot {key:?} ({}) is unreadable", path.display())]
    BadRecord {
        key: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A mount, unmount or mount probe failed (the kernel's words included).
    #[error("{0}")]
    Mount(String),
    #[error("refusing to remove {0:?}: it is a mount point")]
    MountPointInTree(String),
    #[error("unsupported file type {0}")]
    UnsupportedFileType(String),
    /// The caller's fill of a layer directory failed.
    #[error("unpacking layer {chain_id}")]
    Fill {
        chain_id: Digest,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Writing a snapshot's changes as a layer failed.
    #[error("writing the changes of snapshot {key:?} as a layer")]
    Commit {
        key: String,
        #[source]
        source: strata_layer::LayerError,
    },
    /// An error of the snapshotter, with what it was doing.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::Sys(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// `.ctx(|| "what")` on results of io calls and of the snapshotter itself:
/// the message says what was being done, the source says why it failed.
pub(crate) trait Ctx<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, io::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Ctx<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Ctx<T> for Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what().into(),
            source: Box::new(e),
        })
    }
}
