use strata_oci::Digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata database: {0}")]
    Db(rusqlite::Error),
    /// A write to a store on a read-only filesystem (see [`crate::Store::is_read_only`]).
    #[error("the store at {} is read-only: {what}", root.display())]
    ReadOnly { root: std::path::PathBuf, what: String },
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content of {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("blob {0} is not in the store")]
    BlobMissing(Digest),
    #[error("blob {digest} is {size} bytes, more than the {max} allowed for a document")]
    TooLarge { digest: Digest, size: u64, max: u64 },
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error; on a read-only store's filesystem (EROFS), [`Error::ReadOnly`].
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        let what = what.into();
        if let Some(root) = READ_ONLY_ROOT.get()
            && source.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error())
        {
            return Error::ReadOnly {
                root: root.clone(),
                what: format!("{what}: {source}"),
            };
        }
        Error::Io { what, source }
    }

    pub fn is_read_only(&self) -> bool {
        matches!(self, Error::ReadOnly { .. })
    }
}

/// The root of the read-only store this process opened (a process opens
/// one store): named by errors that have no path, such as SQLite's.
static READ_ONLY_ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

pub(crate) fn set_read_only_root(root: &std::path::Path) {
    let _ = READ_ONLY_ROOT.set(root.to_path_buf());
}

impl From<rusqlite::Error> for Error {
    /// A write refused by a read-only database is [`Error::ReadOnly`].
    fn from(e: rusqlite::Error) -> Error {
        match (e.sqlite_error_code(), READ_ONLY_ROOT.get()) {
            (Some(rusqlite::ErrorCode::ReadOnly), Some(root)) => Error::ReadOnly {
                root: root.clone(),
                what: format!("the metadata database cannot be changed ({e})"),
            },
            _ => Error::Db(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
