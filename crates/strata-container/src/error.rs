//! The container engine's errors: each names the container, volume, path,
//! option or layer concerned. The words of those a user sees follow
//! Docker's (`No such container: x`, `container x is not running`...).

use std::io;
use std::path::PathBuf;

use strata_oci::Digest;

/// A failure of the container engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or system call failed; `what` says on what.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A system call failed where nothing more is known to name.
    #[error(transparent)]
    Sys(#[from] io::Error),

    // ---- finding containers ----
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers found with provided prefix: {0}")]
    AmbiguousPrefix(String),

    // ---- create options ----
    /// Neither the image nor the caller gave a command.
    #[error("no command specified")]
    NoCommand,
    #[error("invalid environment variable: {0}")]
    InvalidEnv(String),
    /// A `--restart` Docker refuses (its message).
    #[error("{0}")]
    InvalidRestart(String),
    /// A resource limit Docker refuses (its message).
    #[error("{0}")]
    InvalidResources(String),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkdir(String),
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// The options part of a `-v` (`ro`, `rw`, `z`, `Z`).
    #[error("invalid mode: {0}")]
    InvalidVolumeMode(String),
    #[error("invalid volume specification: '{0}'")]
    InvalidVolumeSpec(String),
    #[error("invalid volume specification: '{0}': the container path must be absolute")]
    RelativeVolumeDestination(String),
    #[error("Duplicate mount point: {0}")]
    DuplicateMountPoint(String),
    #[error("{0}")]
    InvalidPlatform(String),
    /// `--platform` names another platform than the image's.
    #[error(
        "image with reference {reference} was found but its platform ({found}) does not match the specified platform ({wanted})"
    )]
    PlatformMismatch {
        reference: String,
        found: String,
        wanted: String,
    },
    /// The image's platform is not one this host runs (no emulator).
    #[error(transparent)]
    Emulation(#[from] strata_emulation::EmulationError),
    /// Networking: a network that does not exist, a port in use...
    #[error(transparent)]
    Network(#[from] strata_network::Error),
    /// The user to run as is not in the container's root.
    #[error("unable to find user {user}")]
    UnknownUser {
        user: String,
        #[source]
        source: strata_runtime::Error,
    },

    // ---- security options ----
    #[error("invalid --security-opt: {0:?}")]
    InvalidSecurityOpt(String),
    #[error("opening seccomp profile ({path}) failed")]
    SeccompProfile {
        path: String,
        #[source]
        source: strata_seccomp::SeccompError,
    },
    #[error("seccomp profile ({0}) is larger than 4 MiB")]
    SeccompProfileTooLarge(String),
    /// `--device` names a host path that does not exist.
    #[error("error gathering device information while adding custom device {0:?}: no such file or directory")]
    NoSuchDevice(String),

    // ---- lifecycle ----
    #[error("container {0} has not been started")]
    NotStarted(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("cannot kill container: {name}: container {id} is not running")]
    KillNotRunning { name: String, id: String },
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    RemoveRunning(String),
    #[error("invalid signal: {0}")]
    InvalidSignal(String),
    /// The container's process could not be started or run; carries Docker's
    /// exit code (see [`Error::exit_code`]).
    #[error(transparent)]
    Run(#[from] RunFailed),

    // ---- volumes ----
    #[error(
        "\"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )]
    InvalidVolumeName(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error("remove {0}: volume is in use")]
    VolumeInUse(String),
    /// A volume's `meta.json` that does not parse.
    #[error("reading {}", path.display())]
    BadVolumeRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    // ---- cp ----
    #[error("copying between containers is not supported: one side of cp must be a local path")]
    CopyBetweenContainers,
    #[error("destination directory {} does not exist", .0.display())]
    NoHostDestination(PathBuf),
    #[error("destination directory {0} does not exist in the container")]
    NoContainerDestination(String),
    #[error("source {} is not a directory", .0.display())]
    SourceNotADirectory(PathBuf),
    /// A host path with no file name to copy it as.
    #[error("invalid destination")]
    InvalidDestination,
    #[error("invalid source")]
    InvalidSource,
    #[error("the copy thread panicked")]
    CopyThreadPanicked,

    // ---- layers and commit ----
    /// A layer of the container's image whose blob the store lost.
    #[error("layer {0} has no blob in the store")]
    NoLayerBlob(Digest),
    /// `commit`: a layer of the container's image the store holds no blob for.
    #[error("layer {0} has no blob")]
    CommitLayerMissing(Digest),
    #[error("unpacking layer {diff_id}")]
    Unpack {
        diff_id: Digest,
        #[source]
        source: strata_layer::LayerError,
    },
    #[error("layer blob {blob} unpacks to {got}, not the diff ID {diff_id}")]
    DiffIdMismatch { blob: Digest, got: Digest, diff_id: Digest },
    /// `commit`: the image the container was created from was removed.
    #[error("the container's image is gone")]
    ImageGone { image_id: Digest },
    #[error("writing the changes of {name}")]
    Commit {
        name: String,
        #[source]
        source: strata_snapshot::Error,
    },

    // ---- the crates below ----
    #[error(transparent)]
    Store(#[from] strata_store::Error),
    #[error(transparent)]
    Image(#[from] strata_image::Error),
    #[error(transparent)]
    Change(#[from] strata_image::ChangeError),
    #[error(transparent)]
    Snapshot(#[from] strata_snapshot::Error),
    #[error(transparent)]
    Layer(#[from] strata_layer::LayerError),
    /// A runtime setup step (a network, bind mount or device spec, a log).
    #[error(transparent)]
    Runtime(#[from] strata_runtime::Error),
    /// Signalling, waiting for or reading the state of a container's process.
    #[error(transparent)]
    Process(#[from] strata_runtime::RunError),
    #[error(transparent)]
    Document(#[from] strata_oci::DocumentError),
    #[error(transparent)]
    Digest(#[from] strata_oci::DigestError),
    /// A container record or state file that does not encode or decode.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::Sys(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit status Docker gives for this error when it ends `run`,
    /// `start` or `exec`: the runtime's (125, 126, 127) for a process that
    /// could not be run, else none (the caller's default, 125).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Error::Run(r) => Some(r.code()),
            _ => None,
        }
    }
}

/// A runtime error that carries Docker's exit code (125/126/127).
#[derive(Debug)]
pub struct RunFailed(pub strata_runtime::RunError);

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for RunFailed {}

impl RunFailed {
    pub fn code(&self) -> i32 {
        self.0.code
    }
}

/// `.ctx(|| "what")` on results of file and system calls: the message says
/// what was being done, the source why it failed.
pub(crate) trait Ctx<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, io::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what().into(),
            source,
        })
    }
}

impl<T> Ctx<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: what().into(),
            source: e.into(),
        })
    }
}
