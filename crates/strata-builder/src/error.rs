//! The builder's errors: each names the Dockerfile line, stage, step,
//! source, mount, path or image concerned. Those a user sees keep
//! BuildKit's words (`failed to solve: Dockerfile:3: ...`, `process "..."
//! did not complete successfully: exit code: 1`).
//!
//! A step's failure becomes [`Error::Step`], whose message is the whole
//! chain of what went wrong (see [`Error::chain`]) after the Dockerfile
//! name and line; the error itself is kept in it.

use std::io;
use std::path::PathBuf;

use strata_oci::Digest;

/// What a [`crate::Puller`] fails with: the caller's error, its chain kept.
pub type PullError = Box<dyn std::error::Error + Send + Sync>;

/// A failure of a build.
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
    /// An error of the builder, with what it was doing.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },

    // ---- the build's inputs ----
    #[error("unable to prepare context: path {:?} not found", .path.display().to_string())]
    ContextNotFound {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unable to prepare context: {} is not a directory", .0.display())]
    ContextNotADirectory(PathBuf),
    /// Walking the build context failed (the message as first reported).
    #[error("{0}")]
    BuildContext(String),
    /// A file COPY read from the build context that its walk did not list.
    #[error("{0:?} is not in the build context")]
    NotInContext(String),
    #[error("walking the build context panicked")]
    ContextWalkPanicked,
    /// `-f`: the Dockerfile cannot be read (the error worded as Docker's,
    /// `no such file or directory`, hence in the message, not a source).
    #[error("failed to read dockerfile: open {}: {}", path.display(), not_found_as_docker(error))]
    ReadDockerfile { path: PathBuf, error: io::Error },
    /// The Dockerfile (read from `path`, or from stdin) is over [`crate::MAX_DOCKERFILE_SIZE`].
    #[error("the Dockerfile {}is larger than {} bytes",
        path.as_ref().map(|p| format!("{} ", p.display())).unwrap_or_default(), crate::MAX_DOCKERFILE_SIZE)]
    DockerfileTooLarge { path: Option<PathBuf> },
    #[error("failed to solve: {dockerfile}:{line}: dockerfile parse error on line {line}: {message}")]
    Parse {
        dockerfile: String,
        line: usize,
        message: String,
    },
    /// A global `ARG`'s default that does not expand.
    #[error("failed to solve: ARG {name}")]
    GlobalArg {
        name: String,
        #[source]
        source: strata_build::ShellError,
    },
    /// A word of the Dockerfile that does not expand (`${x`, `${x:?unset}`).
    #[error(transparent)]
    Shell(#[from] strata_build::ShellError),
    #[error("failed to solve: target stage \"{0}\" could not be found")]
    NoSuchTarget(String),
    /// Stages that would wait for each other; `how` says how `what` closes the cycle.
    #[error("failed to solve: {dockerfile}:{line}: circular dependency detected on stage: {stage}: {what} {how}")]
    CircularDependency {
        dockerfile: String,
        line: usize,
        stage: String,
        what: String,
        how: String,
    },
    #[error("--no-cache-filter: no stage named {0:?}")]
    NoCacheFilterStage(String),
    #[error(transparent)]
    Platform(#[from] strata_oci::platform::PlatformError),
    /// `--platform` (or `FROM --platform`) names a platform this host cannot
    /// run (natively or through a registered emulator); the source names the
    /// fix (`strata buildx install-emulators ARCH`).
    #[error("cannot build for {platform}")]
    CannotRunPlatform {
        platform: String,
        #[source]
        source: strata_emulation::EmulationError,
    },
    /// `--platform` with no platform in it (`--platform ,`).
    #[error("--platform {0:?} names no platform (give os/arch[/variant], comma-separated)")]
    NoPlatform(String),
    /// A base that the store (after any pull) holds, but not for the stage's platform.
    #[error("base image {name} for platform {platform}")]
    BasePlatform {
        name: String,
        platform: String,
        #[source]
        source: Box<strata_image::Error>,
    },
    #[error("invalid tag {tag:?}")]
    InvalidTag {
        tag: String,
        #[source]
        source: strata_oci::ReferenceError,
    },
    /// A feature or flag strata build does not have; the message says which.
    #[error("{0}")]
    Unsupported(String),
    /// `--cache-to` could not be written.
    #[error("exporting the build cache to {name}: {message}")]
    CacheExport { name: String, message: String },
    #[error("opening the store at {}", root.display())]
    OpenStore {
        root: PathBuf,
        #[source]
        source: strata_store::Error,
    },

    // ---- stages ----
    /// A stage failed because a stage it uses did.
    #[error("stage {stage} failed")]
    DependencyFailed { stage: String },
    /// Another stage failed first: this one stopped.
    #[error("canceled: another stage failed")]
    Canceled,
    /// A step failed: the Dockerfile line and the chain of what went wrong
    /// (`message`); `error` is that failure.
    #[error("failed to solve: {dockerfile}:{line}: {message}")]
    Step {
        dockerfile: String,
        line: usize,
        message: String,
        error: Box<Error>,
    },
    /// `FROM`'s base name or platform does not expand or check out.
    #[error("failed to solve: Dockerfile:{line}")]
    InvalidFrom {
        line: usize,
        #[source]
        source: Box<Error>,
    },
    #[error("failed to solve: Dockerfile:{line}: base name ({base}) should not be blank")]
    BlankBaseName { line: usize, base: String },
    #[error("failed to solve: invalid ONBUILD trigger {trigger:?} in {image}: {message}")]
    OnbuildTrigger {
        trigger: String,
        image: String,
        message: String,
    },
    /// The base is in no store: pulling it was not possible.
    #[error(
        "failed to solve: pull access denied for {0}: the image is not found in the local store; import, load or pull it first"
    )]
    BaseNotFound(String),
    /// Pulling the base failed (the puller's chain is in the message).
    #[error(
        "failed to solve: pull access denied for {name}: pulling it failed ({}); check the name, or import or load it first",
        chain_of(source.as_ref())
    )]
    PullFailed {
        name: String,
        #[source]
        source: PullError,
    },
    #[error("failed to solve: {name}")]
    ResolveBase {
        name: String,
        #[source]
        source: Box<strata_image::Error>,
    },
    /// `--from` names the stage it is in.
    #[error("{kw} --from={from}: circular dependency detected on stage: {from}: a stage cannot copy from itself")]
    CopyFromItself { kw: String, from: String },
    /// `--from` names neither a stage nor an image in the store.
    #[error(
        "{kw} --from={from}: no stage or image named {from}: pull access denied for {from}: the image is not found in the local store; import or load it first"
    )]
    FromImageNotFound { kw: String, from: String },
    #[error("{kw} --from={from}")]
    FromImage {
        kw: String,
        from: String,
        #[source]
        source: Box<strata_image::Error>,
    },

    // ---- RUN ----
    #[error("RUN needs a command")]
    EmptyRun,
    #[error("invalid heredoc name {0:?} for a script")]
    InvalidHeredocName(String),
    /// The step's user is not in its root.
    #[error("unable to find user {user}")]
    UnknownUser {
        user: String,
        #[source]
        source: strata_runtime::Error,
    },
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    RunExit { command: String, code: i32 },
    /// The process could not be run (the runtime's exit code and words).
    #[error("process \"{command}\" did not complete successfully: exit code: {}: {}", source.code, source.message)]
    RunFailed {
        command: String,
        #[source]
        source: strata_runtime::RunError,
    },
    /// A `RUN --mount` value that does not parse; the message says which field and why.
    #[error("{0}")]
    InvalidMount(String),
    #[error("cannot mount on the root directory /")]
    MountOnRoot,
    #[error("RUN --mount source {path:?}: not found in {from}")]
    MountSourceNotFound { path: String, from: String },
    #[error("RUN --mount source {path:?}")]
    MountSource {
        path: String,
        #[source]
        source: Box<Error>,
    },
    #[error("cannot mount on /{target}: /{path} is not a directory")]
    MountPathNotADirectory { target: String, path: String },
    #[error("cannot mount a directory on /{0}: it is not a directory in the image")]
    MountDirectoryOnFile(String),
    #[error("cannot mount on /{target}: /{link} is a dangling symlink")]
    MountOnDanglingSymlink { target: String, link: String },
    #[error("secret {0} not found: give it with --secret id={0},src=FILE (or env=VAR)")]
    SecretNotFound(String),
    #[error("the secret {id} is larger than {max} bytes")]
    SecretTooLarge { id: String, max: u64 },
    /// `--secret` that does not parse.
    #[error("invalid --secret {spec:?}: {reason}")]
    InvalidSecret { spec: String, reason: String },

    // ---- COPY / ADD ----
    /// A source that matches nothing.
    #[error("failed to compute cache key: \"/{0}\": not found")]
    SourceNotFound(String),
    /// A directory copied where the destination (or an entry in it) is not a directory.
    #[error("cannot copy to non-directory: /{0}")]
    CopyToNonDirectory(String),
    /// `COPY http://...` (only ADD fetches URLs).
    #[error("source can't be a URL for COPY")]
    CopyFromUrl,
    #[error("cannot copy {0} onto the root directory")]
    CopyOntoRoot(String),
    #[error("invalid --chmod value {0:?}: expected an octal mode such as 755")]
    InvalidChmod(String),
    #[error("unable to convert uid/gid chown string to host mapping: {spec}")]
    Chown {
        spec: String,
        #[source]
        source: strata_runtime::Error,
    },
    #[error("{kw} --exclude")]
    Exclude {
        kw: &'static str,
        #[source]
        source: Box<Error>,
    },
    #[error("{0} --from cannot be used with URL sources")]
    FromWithUrls(&'static str),
    #[error("ADD --checksum needs exactly one URL source")]
    ChecksumNeedsOneUrl,
    #[error("invalid --checksum {0:?}: expected sha256:<64 hex digits>")]
    InvalidChecksum(String),
    #[error("unpacking {name} into /{dest}")]
    UnpackArchive {
        name: String,
        dest: String,
        #[source]
        source: Box<strata_layer::LayerError>,
    },
    #[error("too many levels of symbolic links resolving {0:?}")]
    SymlinkLoop(String),
    #[error("invalid pattern {pattern:?}")]
    InvalidPattern {
        pattern: String,
        #[source]
        source: Box<Error>,
    },
    /// A wildcard that does not parse (Go's `filepath.ErrBadPattern`).
    #[error("syntax error in pattern")]
    BadPattern,
    #[error("invalid .dockerignore pattern {0:?}: syntax error")]
    BadIgnorePattern(String),
    /// A `.dockerignore` (or `--exclude`) line that is `!` alone.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// Writing into the step's root: a file where a directory is needed.
    #[error("mkdir /{0}: not a directory (a file is in the way)")]
    FileInTheWay(String),
    #[error("cannot replace directory /{0} with a file")]
    ReplaceDirectory(String),
    #[error("cannot write a file at the root")]
    FileAtRoot,
    #[error("the build root {} is gone", .0.display())]
    BuildRootGone(PathBuf),

    // ---- ADD <URL> ----
    #[error("setting up HTTP: {0}")]
    HttpSetup(#[source] reqwest::Error),
    /// The download failed (the client's chain, the status or the size in `reason`).
    #[error("failed to load {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("reading {url}: {reason}")]
    DownloadRead { url: String, reason: String },
    #[error("digest mismatch for {url}: expected {expected}, got {got}")]
    DigestMismatch { url: String, expected: String, got: String },

    // ---- metadata instructions ----
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// An `EXPOSE` word that is no port, range or protocol (BuildKit's message).
    #[error("{0}")]
    InvalidPort(String),
    #[error("{0} is not allowed here")]
    NotAllowedHere(String),

    // ---- the image ----
    #[error("layer {0} has no blob in the store")]
    NoLayerBlob(Digest),
    #[error("writing the step's layer")]
    StepLayer(#[source] strata_snapshot::Error),
    /// An attestation (`--sbom`, `--provenance`) could not be made.
    #[error("attaching attestations: {0}")]
    Attestation(String),
    /// Something that cannot happen did.
    #[error("internal error: {0}")]
    Internal(String),

    // ---- the crates below ----
    #[error(transparent)]
    Store(#[from] strata_store::Error),
    #[error(transparent)]
    Image(#[from] strata_image::Error),
    #[error(transparent)]
    Snapshot(#[from] strata_snapshot::Error),
    #[error(transparent)]
    Container(Box<strata_container::Error>),
    #[error(transparent)]
    Layer(#[from] strata_layer::LayerError),
    #[error(transparent)]
    Document(#[from] strata_oci::DocumentError),
    /// The build cache's database.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl From<strata_container::Error> for Error {
    fn from(e: strata_container::Error) -> Error {
        Error::Container(Box::new(e))
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::Sys(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The message and the sources not already in it, `: `-separated (as
    /// the CLI prints an error): what a failed step reports.
    pub fn chain(&self) -> String {
        chain_of(self)
    }
}

/// `e`'s message and each source whose text it does not already hold.
pub(crate) fn chain_of(e: &(dyn std::error::Error + 'static)) -> String {
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

fn not_found_as_docker(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        "no such file or directory".to_string()
    } else {
        e.to_string()
    }
}

/// `.ctx(|| "what")` on results of file and system calls and of the
/// builder itself: the message says what was being done, the source why
/// it failed.
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

impl<T> Ctx<T> for Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            what: what().into(),
            source: Box::new(e),
        })
    }
}
