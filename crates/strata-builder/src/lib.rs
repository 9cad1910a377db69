//! strata-builder: `strata build`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use strata_oci::{Digest, Reference};

/// Dockerfiles larger than this are refused.
pub const MAX_DOCKERFILE_SIZE: u64 = 4 << 20;

/// Where the Dockerfile comes from.
#[derive(Debug, Clone)]
pub enum DockerfileSource {
    /// `<context>/Dockerfile`.
    Default,
    /// `-f PATH`.
    Path(PathBuf),
    /// `-f -`: read already.
    Bytes(Vec<u8>),
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    pub tags: Vec<String>,
    pub build_args: Vec<String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub labels: Vec<String>,
    pub platform: Option<String>,
    pub source_date_epoch: Option<i64>,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    pub image_id: Digest,
    pub manifest: Digest,
    pub tags: Vec<Reference>,
}

/// Runs a build against the store at `root`, writing progress to `log`.
pub fn build(_root: &Path, _opts: &BuildOptions, _log: Box<dyn Write + Send>) -> Result<BuildOutput> {
    bail!("strata build is not implemented yet")
}
