//! strata-builder: `strata build`, Dockerfile builds over the local store
//! with a layer cache.
//!
//! Parse (strata-build) → stages needed by the target → one thread per
//! stage, each waiting for the stages it uses → per step: evaluate the
//! instruction (ARG/ENV expansion), compute its cache key (parent key +
//! evaluated instruction + the build args it sees + a content hash of
//! COPY/ADD sources), reuse a cached result or run it: RUN in a writable
//! snapshot (strata-snapshot) with strata-runtime, COPY/ADD by writing into
//! a mounted snapshot, the overlay upper directory written as the step's
//! layer (strata-layer) → the target's config and layers registered as an
//! image (strata-image) and tagged.
//!
//! `--platform` picks the platform built for (TARGETPLATFORM; BUILDPLATFORM
//! is the host's): it must run here, natively or through a binfmt_misc
//! emulator (strata-emulation), so RUN just runs. Bases are resolved (and
//! pulled) for a stage's platform (`FROM --platform=…`, else the target's),
//! which is part of every cache key. Several platforms build the first alone,
//! then the others in parallel, and make a multi-platform image: an OCI
//! index of their images, tagged; a stage for the build platform is a cache
//! hit for every platform after the first.
//!
//! The build context is read in place (never copied or tarred), filtered
//! by `.dockerignore`; file hashes are kept in an index per context and
//! recomputed only for files whose stat changed. Every path taken from the
//! Dockerfile or the context is resolved inside its tree: COPY sources
//! inside the context (or the source stage's root), destinations inside the
//! step's root.
//!
//! Must never: follow a context symlink out of the context, write outside
//! a step's root, leave a snapshot mounted or a half-registered image
//! behind, or print to stdout (the caller decides what goes there).

mod attest;
mod cache;
mod copy;
mod dest;
mod error;
mod fetch;
mod mounts;
mod pattern;
mod plan;
mod progress;
mod remote_cache;
mod stage;
mod tree;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use strata_build::{Dockerfile, Instruction, Lex};
use strata_oci::{Digest, Platform, Reference};
use strata_store::{Store, StoreLock};

pub use attest::{Attestations, Distributable, DistributableFn, ProvenanceMode, SbomFn, SbomGenerator};
pub use cache::{
    CacheEntry, CacheLayerUsers, CacheUsage, PruneReport as CachePruneReport, entries as cache_entries,
    prune as cache_prune, prune_until as cache_prune_until, usage as cache_usage,
};
pub use error::{Error, PullError, Result};
pub use mounts::{SecretSource, SecretSpec, parse_secret};
pub use pattern::{IgnoreRules, glob_match};
pub use progress::Progress;
pub use remote_cache::{CacheExport, CacheImport, parse_cache_from, parse_cache_to};

use crate::error::Ctx;
use crate::plan::{Built, execute, load, plan, preflight};
use crate::stage::StageResult;
use crate::tree::ContextTree;

/// The build arg that asks for an inline cache (BuildKit's).
const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// Dockerfiles larger than this are refused.
pub const MAX_DOCKERFILE_SIZE: u64 = 4 << 20;

/// Build arguments that RUN sees without an ARG (as in Docker).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

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
    /// The build context: a directory.
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    /// `-t`: names to tag the result with.
    pub tags: Vec<String>,
    /// `--build-arg K=V` (or `K`, taking the value from the environment).
    pub build_args: Vec<String>,
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--label K=V` for the image.
    pub labels: Vec<String>,
    /// `--platform`: the platform to build for (default: the host's), or
    /// several, comma-separated (a multi-platform image). Each must run on
    /// this host, natively or through a registered emulator.
    pub platform: Option<String>,
    /// Clamp times in the config and the layers (reproducible builds).
    pub source_date_epoch: Option<i64>,
    /// `--no-cache-filter`: stages built without the cache.
    pub no_cache_filter: Vec<String>,
    /// `--network`: RUN's default network (default/host or none).
    pub network: Option<String>,
    /// `--secret`: secrets RUN can mount.
    pub secrets: Vec<SecretSpec>,
    /// `--pull`: fetch registry bases again (needs `puller`).
    pub pull: bool,
    /// Pulls an image reference into the store (the caller's registry client);
    /// also used for bases missing from the store.
    pub puller: Option<Puller>,
    /// The storage driver (`overlay` or `vfs`); default: `$STRATA_STORAGE_DRIVER`, else detected.
    pub storage_driver: Option<String>,
    /// `--sbom`, `--provenance`: attestations attached to the result, which
    /// is then an index (even of one platform), as BuildKit makes it.
    pub attestations: Attestations,
    /// `--cache-from`: caches to read (BuildKit's format; see `remote_cache`).
    pub cache_from: Vec<CacheImport>,
    /// `--cache-to`: caches to write.
    pub cache_to: Vec<CacheExport>,
    /// How to reach the caches' registries.
    pub cache_client: strata_registry::ClientOptions,
}

/// Pulls a reference into the store at the build's root.
#[derive(Clone)]
pub struct Puller(pub Arc<PullFn>);

/// What a [`Puller`] calls: pull this reference for these platforms (none:
/// the host's, as `pull`; one: as `pull --platform P`; several: as `pull
/// --platform P1,P2`, keeping the index).
pub type PullFn = dyn Fn(&str, &[Platform]) -> std::result::Result<(), PullError> + Send + Sync;

/// Pulls shared by every platform of a build: each base is pulled once,
/// for every platform the build needs it for.
#[derive(Default)]
pub(crate) struct Pulls {
    /// Bases pulled by this build already (and `""` once `--pull` warned).
    pub done: Mutex<BTreeSet<String>>,
    /// The platforms each base (as named, expanded) is needed for; a base
    /// not listed is needed for the host's platform, unasked.
    pub platforms: Mutex<BTreeMap<String, Vec<Platform>>>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Puller")
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            context: PathBuf::from("."),
            dockerfile: DockerfileSource::Default,
            tags: Vec::new(),
            build_args: Vec::new(),
            target: None,
            no_cache: false,
            labels: Vec::new(),
            platform: None,
            source_date_epoch: None,
            no_cache_filter: Vec::new(),
            network: None,
            secrets: Vec::new(),
            pull: false,
            puller: None,
            storage_driver: None,
            attestations: Attestations::default(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            cache_client: strata_registry::ClientOptions::default(),
        }
    }
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The image's ID; of a multi-platform build, the index's digest.
    pub image_id: Digest,
    /// The image's manifest; of a multi-platform build, the index's digest.
    pub manifest: Digest,
    /// The OCI index of a multi-platform build (several `--platform`s).
    pub index: Option<Digest>,
    /// The image built for each platform.
    pub platforms: Vec<PlatformImage>,
    pub tags: Vec<Reference>,
}

/// One platform's image of a build.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    pub image_id: Digest,
    pub manifest: Digest,
}

/// What the stage threads share.
pub(crate) struct Shared {
    pub root: PathBuf,
    /// The storage driver asked for (else detected on first use).
    driver_wanted: Option<strata_snapshot::Driver>,
    driver: OnceLock<strata_snapshot::Driver>,
    pub df: Dockerfile,
    pub dockerfile_name: String,
    pub dockerfile_lines: Vec<String>,
    pub context_dir: PathBuf,
    context: OnceLock<std::result::Result<Arc<ContextTree>, String>>,
    ignore: IgnoreRules,
    index_path: PathBuf,
    pub progress: Arc<Progress>,
    pub build_args: BTreeMap<String, String>,
    pub used_args: Mutex<BTreeSet<String>>,
    /// The platform built for (TARGETPLATFORM).
    pub platform: Platform,
    /// The platform building (BUILDPLATFORM): the host's.
    pub build_platform: Platform,
    /// Whether a platform was asked for (`--platform`): bases are then
    /// resolved for it, and must have it.
    pub explicit_platform: bool,
    /// Shown in the steps' labels in a multi-platform build (`[linux/arm64 stage 1/2]`).
    pub platform_label: Option<String>,
    pub epoch: Option<i64>,
    pub no_cache: bool,
    /// Stages built without the cache (`--no-cache-filter`).
    pub no_cache_stages: BTreeSet<usize>,
    pub network: Option<String>,
    pub secrets: BTreeMap<String, SecretSpec>,
    pub pull: bool,
    pub puller: Option<Puller>,
    /// Bases pulled, and the platforms each is pulled for (every platform's build shares them).
    pub pulls: Arc<Pulls>,
    /// The registry bases this platform's build used (provenance materials).
    pub(crate) materials: Mutex<Vec<attest::Material>>,
    /// Global ARGs (and the predefined platform ones) with their values.
    pub global_scope: BTreeMap<String, String>,
    /// The predefined platform args.
    pub predefined: BTreeMap<String, String>,
    /// Stages to build (the target and what it uses).
    pub needed: BTreeSet<usize>,
    results: Mutex<HashMap<usize, std::result::Result<Arc<StageResult>, String>>>,
    cond: Condvar,
    pub failed: std::sync::atomic::AtomicBool,
    /// The caches read and written (`--cache-from`, `--cache-to`), shared by every platform.
    pub(crate) remote: Option<Arc<remote_cache::RemoteCache>>,
}

impl Shared {
    pub fn lex(&self) -> Lex {
        Lex::new(self.df.escape)
    }

    /// The storage driver: the one asked for, or probed on first use.
    pub fn driver(&self) -> strata_snapshot::Driver {
        *self.driver.get_or_init(|| {
            self.driver_wanted
                .unwrap_or_else(|| strata_snapshot::detect_driver(&self.root).0)
        })
    }

    pub fn snapshotter(&self) -> strata_snapshot::Snapshotter {
        strata_snapshot::Snapshotter::new(&self.root, self.driver())
    }

    /// Whether `.dockerignore` leaves everything in.
    pub fn ignore_is_empty(&self) -> bool {
        self.ignore.is_empty()
    }

    /// The build context, walked on first use.
    pub fn context(&self) -> Result<Arc<ContextTree>> {
        let r = self.context.get_or_init(|| {
            let v = self.progress.start("[internal] load build context");
            match ContextTree::load(&self.context_dir, &self.ignore, Some(self.index_path.clone())) {
                Ok(t) => {
                    v.log(&format!(
                        "transferring context: {} entries, {} done",
                        t.len(),
                        human_bytes(t.total_size)
                    ));
                    v.done();
                    Ok(Arc::new(t))
                }
                Err(e) => {
                    let msg = e.chain();
                    v.error(&msg);
                    Err(msg)
                }
            }
        });
        r.clone().map_err(Error::BuildContext)
    }

    /// The index of the stage named `name` (or numbered), wherever it is
    /// defined (`COPY --from` may name a later stage, as in BuildKit).
    pub fn stage_ref(&self, name: &str) -> Option<usize> {
        stage_named(&self.df, name)
    }

    /// Waits for stage `i` to finish.
    pub fn wait_for(&self, i: usize) -> Result<Arc<StageResult>> {
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = results.get(&i) {
                return r.clone().map_err(|_| Error::DependencyFailed {
                    stage: stage_name(&self.df, i),
                });
            }
            if !self.needed.contains(&i) {
                return Err(Error::Internal(format!("stage {i} is not scheduled")));
            }
            results = self.cond.wait(results).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn finish(&self, i: usize, r: std::result::Result<Arc<StageResult>, String>) {
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        results.insert(i, r);
        self.cond.notify_all();
    }

    /// Lines `start..=end` of the Dockerfile, for error messages.
    pub fn snippet(&self, start: usize, end: usize) -> Vec<String> {
        let mut out = vec![format!("{}:{start}", self.dockerfile_name), "-".repeat(20)];
        let lo = start.saturating_sub(2).max(1);
        let hi = (end + 2).min(self.dockerfile_lines.len());
        for n in lo..=hi {
            // A URL's credentials are not shown (as in the ADD step's history).
            let text = fetch::redact_text(self.dockerfile_lines.get(n - 1).map(String::as_str).unwrap_or(""));
            let mark = if (start..=end).contains(&n) { ">>>" } else { "   " };
            out.push(format!(" {n:>3} | {mark} {text}"));
        }
        out.push("-".repeat(20));
        out
    }

    /// Time for configs and history: SOURCE_DATE_EPOCH or now.
    pub fn now(&self) -> String {
        match self.epoch {
            Some(e) => jiff::Timestamp::from_second(e)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| strata_image::now_rfc3339()),
            None => strata_image::now_rfc3339(),
        }
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n}B")
    } else if n < 1024 * 1024 {
        format!("{:.2}kB", n as f64 / 1000.0)
    } else {
        format!("{:.2}MB", n as f64 / 1e6)
    }
}

/// The predefined platform arguments: `TARGET*` for the platform built
/// for, `BUILD*` for the one building (the host).
fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), platform_string(p));
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default());
    }
    m
}

/// `os/arch[/variant]`.
pub(crate) fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// `--platform P1,P2,…`: each parsed, duplicates dropped, in order.
pub(crate) fn parse_platforms(s: &str) -> Result<Vec<Platform>> {
    let mut out: Vec<Platform> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = Platform::parse(part)?;
        if !out.iter().any(|q| platform_string(q) == platform_string(&p)) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(Error::NoPlatform(s.to_string()));
    }
    Ok(out)
}

/// Checks that this host runs `p` (natively, or through a binfmt_misc
/// emulator with the F flag, which makes RUN just work); the error names
/// the platform and the fix.
pub(crate) fn check_runnable(p: &Platform, host: &Platform) -> Result<()> {
    if p.os == host.os && p.architecture == host.architecture {
        return Ok(());
    }
    strata_emulation::can_run(p)
        .map(|_| ())
        .map_err(|source| Error::CannotRunPlatform {
            platform: platform_string(p),
            source,
        })
}

fn read_dockerfile(opts: &BuildOptions) -> Result<(Vec<u8>, String, Option<PathBuf>)> {
    let path = match &opts.dockerfile {
        DockerfileSource::Bytes(b) => {
            if b.len() as u64 > MAX_DOCKERFILE_SIZE {
                return Err(Error::DockerfileTooLarge { path: None });
            }
            return Ok((b.clone(), "Dockerfile".into(), None));
        }
        DockerfileSource::Default => opts.context.join("Dockerfile"),
        DockerfileSource::Path(p) if p.is_absolute() => p.clone(),
        // Docker resolves a relative -f against the working directory.
        DockerfileSource::Path(p) => p.clone(),
    };
    let md = std::fs::metadata(&path).map_err(|error| Error::ReadDockerfile {
        path: path.clone(),
        error,
    })?;
    if md.len() > MAX_DOCKERFILE_SIZE {
        return Err(Error::DockerfileTooLarge { path: Some(path) });
    }
    let bytes = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    Ok((bytes, name, Some(path)))
}

fn read_ignore(context: &Path, dockerfile: Option<&Path>) -> Result<(IgnoreRules, usize)> {
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile {
        let mut name = df.as_os_str().to_owned();
        name.push(".dockerignore");
        candidates.push(PathBuf::from(name));
    }
    candidates.push(context.join(".dockerignore"));
    for c in candidates {
        match std::fs::read(&c) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                return Ok((
                    IgnoreRules::parse(&text).ctx(|| format!("reading {}", c.display()))?,
                    bytes.len(),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("reading {}", c.display())),
        }
    }
    Ok((IgnoreRules::default(), 0))
}

/// Stage `i` as messages name it: its name, else its index.
pub(crate) fn stage_name(df: &Dockerfile, i: usize) -> String {
    df.stages[i].name.clone().unwrap_or_else(|| i.to_string())
}

/// The stage named `name` (or numbered), anywhere in the Dockerfile.
fn stage_named(df: &Dockerfile, name: &str) -> Option<usize> {
    let lower = name.to_lowercase();
    if let Some(j) = df.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
        return Some(j);
    }
    match name.parse::<usize>() {
        Ok(j) if j < df.stages.len() => Some(j),
        _ => None,
    }
}

/// How one stage uses another.
#[derive(Debug, Clone)]
struct Dep {
    stage: usize,
    /// The Dockerfile line that names it.
    line: usize,
    /// `FROM x`, `COPY --from=x`...: for messages.
    what: String,
}

/// Stages a stage uses: its base (when an earlier stage) and `COPY --from` /
/// `RUN --mount=from=` sources (any other stage). A `FROM` naming a later
/// stage is an image (as in BuildKit) and comes back second, to be checked
/// for a cycle.
fn dependencies(df: &Dockerfile, i: usize, scope: &BTreeMap<String, String>, lex: &Lex) -> (Vec<Dep>, Option<Dep>) {
    let lookup = |n: &str| scope.get(n).cloned();
    let mut deps = Vec::new();
    let mut later_base = None;
    let stage = &df.stages[i];
    if let Ok(base) = lex.process_word(&stage.base, &lookup) {
        let lower = base.to_lowercase();
        if let Some(j) = df.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
            let d = Dep {
                stage: j,
                line: stage.start_line,
                what: format!("FROM {base}"),
            };
            if j < i {
                deps.push(d);
            } else if j > i {
                later_base = Some(d);
            }
        }
    }
    for step in &stage.instructions {
        let mut froms = Vec::new();
        match &step.instruction {
            Instruction::Copy(c) => froms.extend(c.flags.from.clone().map(|f| (f, "COPY"))),
            Instruction::Add(c) => froms.extend(c.flags.from.clone().map(|f| (f, "ADD"))),
            Instruction::Run(r) => {
                for m in &r.flags.mounts {
                    let m = lex.process_word(m, &lookup).unwrap_or_else(|_| m.clone());
                    if let Ok(m) = mounts::parse(&m) {
                        froms.extend(m.from.map(|f| (f, "RUN --mount")));
                    }
                }
            }
            _ => {}
        }
        for (from, kw) in froms {
            let from = lex.process_word(&from, &lookup).unwrap_or_else(|_| from.clone());
            if let Some(j) = stage_named(df, &from) {
                deps.push(Dep {
                    stage: j,
                    line: step.start_line,
                    what: format!("{kw} --from={from}"),
                });
            }
        }
    }
    (deps, later_base)
}

/// The stages `target` needs, in no particular order; a cycle between
/// stages (which would wait forever) is an error naming its line.
fn needed_stages(
    df: &Dockerfile,
    target: usize,
    scope: &BTreeMap<String, String>,
    lex: &Lex,
    dockerfile_name: &str,
) -> Result<BTreeSet<usize>> {
    let n = df.stages.len();
    let all: Vec<(Vec<Dep>, Option<Dep>)> = (0..n).map(|i| dependencies(df, i, scope, lex)).collect();
    let name = |i: usize| stage_name(df, i);
    let cycle = |d: &Dep, on: usize| Error::CircularDependency {
        dockerfile: dockerfile_name.to_string(),
        line: d.line,
        stage: name(on),
        what: d.what.clone(),
        how: if d.stage == on {
            "names the stage itself".into()
        } else {
            "uses a stage that depends on this one".into()
        },
    };
    // Depth-first, with the path on a stack: an edge back into it is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    fn visit(
        i: usize,
        all: &[(Vec<Dep>, Option<Dep>)],
        mark: &mut Vec<Mark>,
        cycle: &dyn Fn(&Dep, usize) -> Error,
    ) -> Result<()> {
        mark[i] = Mark::Open;
        for d in &all[i].0 {
            if d.stage == i {
                return Err(cycle(d, i));
            }
            match mark[d.stage] {
                Mark::Open => return Err(cycle(d, i)),
                Mark::New => visit(d.stage, all, mark, cycle)?,
                Mark::Done => {}
            }
        }
        mark[i] = Mark::Done;
        Ok(())
    }
    visit(target, &all, &mut mark, &cycle)?;
    let needed: BTreeSet<usize> = (0..n).filter(|i| mark[*i] == Mark::Done).collect();
    // `FROM x` naming a later stage x is an image named x, as in BuildKit;
    // when stage x itself uses this stage, that is surely a mistake: a cycle.
    for &i in &needed {
        if let Some(d) = &all[i].1 {
            let mut seen = BTreeSet::new();
            let mut todo = vec![d.stage];
            while let Some(k) = todo.pop() {
                if k == i {
                    return Err(Error::CircularDependency {
                        dockerfile: dockerfile_name.to_string(),
                        line: d.line,
                        stage: name(i),
                        what: d.what.clone(),
                        how: format!(
                            "names the stage {} defined later, which is built from this one",
                            name(d.stage)
                        ),
                    });
                }
                if seen.insert(k) {
                    todo.extend(all[k].0.iter().map(|e| e.stage));
                }
            }
        }
    }
    Ok(needed)
}

/// Runs a build against the store at `root`, writing plain progress to `log`.
pub fn build(root: &Path, opts: &BuildOptions, log: Box<dyn Write + Send>) -> Result<BuildOutput> {
    build_with_progress(root, opts, Progress::new(log))
}

/// Runs a build against the store at `root`, reporting to `progress`
/// (plain lines or a tty display). With several platforms (`--platform
/// P1,P2`) the build runs once per platform (the first alone, then the
/// others in parallel), and the result is a multi-platform image: an OCI
/// index of their manifests.
pub fn build_with_progress(root: &Path, opts: &BuildOptions, progress: Progress) -> Result<BuildOutput> {
    let progress = Arc::new(progress);
    let started = strata_image::now_rfc3339();
    let context_dir = std::fs::canonicalize(&opts.context).map_err(|source| Error::ContextNotFound {
        path: opts.context.clone(),
        source,
    })?;
    if !context_dir.is_dir() {
        return Err(Error::ContextNotADirectory(opts.context.clone()));
    }
    let host = Platform::host();
    let targets: Vec<Option<Platform>> = match &opts.platform {
        None => vec![None],
        Some(s) => parse_platforms(s)?.into_iter().map(Some).collect(),
    };
    // Every platform must run here before anything does.
    for t in targets.iter().flatten() {
        check_runnable(t, &host)?;
    }
    let mut refs = Vec::new();
    for t in &opts.tags {
        let r = Reference::parse(t)
            .map_err(|source| Error::InvalidTag { tag: t.clone(), source })?
            .with_default_tag();
        refs.push(r);
    }
    let loaded = load(opts, &progress, context_dir)?;

    let wanted = opts
        .storage_driver
        .clone()
        .or_else(|| std::env::var("STRATA_STORAGE_DRIVER").ok())
        .filter(|d| !d.is_empty());
    let driver_wanted = wanted.as_deref().map(strata_snapshot::Driver::parse).transpose()?;
    // Listing and removing snapshots needs no driver probe (which mounts, and costs more
    // than a whole cached build).
    let stale_driver = driver_wanted.unwrap_or(strata_snapshot::Driver::Overlay);
    if let Some(n) = &opts.network
        && !matches!(n.as_str(), "default" | "host" | "none")
    {
        return Err(Error::Unsupported(format!(
            "--network={n} is not supported (use default, host or none)"
        )));
    }
    let mut store = Store::open(root).map_err(|source| Error::OpenStore {
        root: root.to_path_buf(),
        source,
    })?;
    cache::init(&store)?;
    let _lock = StoreLock::shared(store.root())?;
    stage::remove_stale_snapshots(&strata_snapshot::Snapshotter::new(root, stale_driver));

    // One plan per platform, each checked before anything runs: nothing is written
    // when one of them is wrong.
    let multi = targets.len() > 1;
    let pulls = Arc::new(Pulls::default());
    // `--build-arg BUILDKIT_INLINE_CACHE=1` asks for an inline cache, as BuildKit's frontend reads it.
    let mut cache_to = opts.cache_to.clone();
    if loaded
        .build_args
        .get(INLINE_CACHE_ARG)
        .is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true"))
        && !cache_to.iter().any(|c| c.name() == "the image (inline)")
    {
        cache_to.push(parse_cache_to("type=inline")?);
    }
    let remote = remote_cache::RemoteCache::open(&opts.cache_from, &cache_to, opts.cache_client.clone(), &progress)?
        .map(Arc::new);
    let mut plans = Vec::new();
    for t in &targets {
        let (mut shared, target) = plan(
            root,
            opts,
            &loaded,
            progress.clone(),
            &host,
            t.clone(),
            multi,
            driver_wanted,
            pulls.clone(),
        )?;
        shared.remote = remote.clone();
        preflight(&shared, &store)?;
        plans.push((shared, target));
    }

    // The first platform alone, then the others side by side: a stage built
    // for the build platform (`FROM --platform=$BUILDPLATFORM`) by the first
    // is a cache hit for the rest, which run at once (emulated RUN steps are
    // CPU-bound; each platform's stages already run in parallel).
    let mut built = Vec::new();
    let mut rest = plans.iter();
    if let Some((shared, target)) = rest.next() {
        built.push(execute(shared, *target, opts, &store)?);
    }
    let others: Vec<Result<Built>> = std::thread::scope(|s| {
        let running: Vec<_> = rest
            .map(|(shared, target)| {
                s.spawn(move || {
                    let store = Store::open(root).map_err(|source| Error::OpenStore {
                        root: root.to_path_buf(),
                        source,
                    })?;
                    execute(shared, *target, opts, &store)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("a platform's build panicked".into())))
            })
            .collect()
    });
    for b in others {
        built.push(b?);
    }
    let finals: Vec<String> = built.iter().map(|b| b.key.clone()).collect();
    if let Some(r) = remote.as_ref().filter(|r| r.wants_inline()) {
        for b in &mut built {
            r.inline_into(&mut b.config, &b.key)?;
        }
    }

    // The image.
    let v = progress.start("exporting to image");
    v.log("exporting layers done");
    // Attestations make the result an index even of one platform (as BuildKit).
    let attesting = opts.attestations.any();
    // What the names led to before: an attested index they leave is forgotten.
    let previous: Vec<Digest> = refs
        .iter()
        .filter_map(|r| store.tag_target(r).ok().flatten().map(|(m, _)| m))
        .collect();
    let out = if !multi && !attesting {
        let b = built.pop().expect("one build");
        let imported = strata_image::register(&mut store, &b.config, b.layers, refs.first())?;
        v.log(&format!("writing image {} done", imported.id));
        for r in refs.iter().skip(1) {
            store.set_tag(r, &imported.manifest)?;
        }
        BuildOutput {
            platforms: vec![PlatformImage {
                platform: b.platform,
                image_id: imported.id.clone(),
                manifest: imported.manifest.clone(),
            }],
            image_id: imported.id,
            manifest: imported.manifest,
            index: None,
            tags: refs.clone(),
        }
    } else {
        let mut platforms = Vec::new();
        let mut members = Vec::new();
        let mut attested = Vec::new();
        for b in built {
            let imported = strata_image::register(&mut store, &b.config, b.layers, None)?;
            v.log(&format!(
                "exporting manifest {} for {} done",
                imported.manifest,
                platform_string(&b.platform)
            ));
            let size = store
                .blob_size(&imported.manifest)
                .ok_or_else(|| Error::Internal(format!("manifest {} is not in the store", imported.manifest)))?;
            let mut desc =
                strata_oci::Descriptor::new(strata_oci::media::OCI_MANIFEST, imported.manifest.clone(), size);
            if let Some(d) = attesting.then_some(()).and(opts.attestations.distributable.as_ref()) {
                desc = (d.0)(&imported.id, &imported.manifest).map_err(Error::Attestation)?;
                v.log(&format!("exporting manifest {} (compressed layers) done", desc.digest));
            }
            desc.platform = Some(b.platform.clone());
            let manifest = desc.digest.clone();
            attested.push((desc.clone(), b.materials));
            members.push((desc, b.platform.clone()));
            platforms.push(PlatformImage {
                platform: b.platform,
                image_id: imported.id,
                manifest,
            });
        }
        if attesting {
            let invocation = format!("{started} {} {:?}", std::process::id(), std::time::SystemTime::now());
            let facts = attest::BuildFacts {
                dockerfile_name: &loaded.dockerfile_name,
                dockerfile: &loaded.bytes,
                build_args: &loaded.build_args,
                labels: &opts.labels,
                target: opts.target.as_deref(),
                secrets: opts.secrets.iter().map(|s| s.id.clone()).collect(),
                invocation_id: Digest::sha256_of(invocation.as_bytes()).hex()[..25].to_string(),
                started: started.clone(),
                finished: strata_image::now_rfc3339(),
                build_platform: &host,
            };
            // After every image's manifest, one attestation manifest each.
            for (p, (desc, materials)) in platforms.iter().zip(&attested) {
                let a = attest::write(
                    &store,
                    &opts.attestations,
                    &facts,
                    &refs,
                    &attest::Attested {
                        platform: &p.platform,
                        image_id: &p.image_id,
                        manifest: desc,
                        materials,
                    },
                )?;
                v.log(&format!("exporting attestation manifest {} done", a.digest));
                members.push((a, attest::unknown_platform()));
            }
        }
        let index = strata_oci::Index {
            schema_version: 2,
            media_type: Some(strata_oci::media::OCI_INDEX.into()),
            artifact_type: None,
            manifests: members.iter().map(|(d, _)| d.clone()).collect(),
            subject: None,
            annotations: None,
        };
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::Internal(format!("writing the index: {e}")))?;
        let digest = Digest::sha256_of(&bytes);
        store.put_blob_verified(&digest, Some(bytes.len() as u64), &bytes[..])?;
        let desc = strata_oci::Descriptor::new(strata_oci::media::OCI_INDEX, digest.clone(), bytes.len() as u64);
        // The name resolves to the host's platform by default, else the first.
        let representative = platforms
            .iter()
            .find(|p| p.platform.os == host.os && p.platform.architecture == host.architecture)
            .unwrap_or(&platforms[0])
            .image_id
            .clone();
        store.add_index_image(&desc, &representative, &members)?;
        v.log(&format!("exporting manifest list {digest} done"));
        let image_id = match multi {
            true => digest.clone(),
            false => platforms[0].image_id.clone(),
        };
        for r in &refs {
            store.set_tag(r, &digest)?;
        }
        BuildOutput {
            image_id,
            manifest: digest.clone(),
            index: Some(digest),
            platforms,
            tags: refs.clone(),
        }
    };
    for r in &refs {
        v.log(&format!("naming to {r} done"));
    }
    for p in previous.iter().filter(|p| **p != out.manifest) {
        store.forget_untagged_attested_index(p)?;
    }
    v.done();
    if let Some(r) = &remote {
        r.export(&mut store, &finals, &progress)?;
    }
    let mut used = BTreeSet::new();
    for (shared, _) in &plans {
        used.extend(
            shared
                .used_args
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
    }
    let predefined = &plans[0].0.predefined;
    let unused: Vec<&String> = loaded
        .build_args
        .keys()
        .filter(|k| {
            !used.contains(*k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !predefined.contains_key(*k)
                && k.as_str() != INLINE_CACHE_ARG
        })
        .collect();
    if !unused.is_empty() {
        progress.line(format!(
            "[Warning] One or more build-args [{}] were not consumed",
            unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        ));
    }
    drop(plans);
    Ok(out)
}

pub(crate) fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}
