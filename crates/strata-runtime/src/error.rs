//! Errors of the runtime's setup steps (parsing what to run, resolving the
//! user, building the root, reading logs): each names the path, value or
//! step concerned. [`crate::RunError`] is what a run reports, with Docker's
//! exit code; these become its message.

use std::io;
use std::path::PathBuf;

/// Why a step of the runtime failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or system call failed; `what` says on what.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A system call failed below a step that names the path (see [`Error::Context`]).
    #[error(transparent)]
    Sys(#[from] io::Error),
    /// A value the runtime cannot use (a volume, device, network,
    /// capability, user or spec field); the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// A user or group ID that is not a number.
    #[error("invalid {what} {value:?}: {source}")]
    BadId {
        what: &'static str,
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// A user or group ID outside 0..=2147483647.
    #[error("{what} {id} is out of range (0-2147483647)")]
    IdOutOfRange { what: &'static str, id: i64 },
    /// A user name the image's /etc/passwd does not have.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name the image's /etc/group does not have.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// A volume whose host path is missing.
    #[error("volume source {} does not exist: {source}", path.display())]
    VolumeSource {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `--device` named something that is not a device node.
    #[error("{} is not a device node", path.display())]
    NotADevice { path: PathBuf },
    /// The OCI runtime spec of a run could not be built.
    #[error("building the OCI runtime spec: {0}")]
    OciSpec(#[from] oci_spec::OciSpecError),
    /// The OCI runtime spec could not be encoded as `config.json`.
    #[error("encoding config.json: {0}")]
    EncodeBundle(#[source] serde_json::Error),
    /// A line of the container's log that is not a log entry.
    #[error("bad line in {}: {source}", path.display())]
    BadLogLine {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An error of the runtime, with what it was doing.
    #[error("{what}: {source}")]
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
    /// The message with every source not already in it (`a: b: c`), as a
    /// [`crate::RunError`] or the report of a failed setup carries it.
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur = std::error::Error::source(self);
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
}

/// `.context("what")` / `.with_context(|| format!(..))` on the results of
/// file and system calls and of the runtime's own steps: the error then says
/// what was being done, its source why it failed.
pub(crate) trait Context<T> {
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;

    fn context(self, what: &'static str) -> Result<T>
    where
        Self: Sized,
    {
        self.with_context(|| what)
    }
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what().into(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: what().into(),
            source: e.into(),
        })
    }
}

impl<T> Context<T> for Result<T> {
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what().into(),
            source: Box::new(e),
        })
    }
}
