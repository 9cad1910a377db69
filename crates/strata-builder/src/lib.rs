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
mod progress;
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
    prune as cache_prune, usage as cache_usage,
};
pub use error::{Error, PullError, Result};
pub use mounts::{SecretSource, SecretSpec, parse_secret};
pub use pattern::{IgnoreRules, glob_match};
pub use progress::Progress;

use crate::error::Ctx;
use crate::stage::StageResult;
use crate::tree::ContextTree;

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
    let mut plans = Vec::new();
    for t in &targets {
        let (shared, target) = plan(
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
        .filter(|k| !used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()) && !predefined.contains_key(*k))
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

/// What every platform's build shares: the Dockerfile, `.dockerignore`, the build args.
struct Loaded {
    context_dir: PathBuf,
    bytes: Vec<u8>,
    df: Dockerfile,
    dockerfile_name: String,
    ignore: IgnoreRules,
    build_args: BTreeMap<String, String>,
}

fn load(opts: &BuildOptions, progress: &Progress, context_dir: PathBuf) -> Result<Loaded> {
    // The Dockerfile.
    let v = progress.start("[internal] load build definition from Dockerfile");
    let (bytes, dockerfile_name, dockerfile_path) = read_dockerfile(opts)?;
    v.log(&format!("transferring dockerfile: {}B done", bytes.len()));
    let df = match strata_build::parse_dockerfile(&bytes) {
        Ok(df) => df,
        Err(e) => {
            let msg = format!(
                "{dockerfile_name}:{}: dockerfile parse error on line {}: {}",
                e.line, e.line, e.message
            );
            v.error(&msg);
            return Err(Error::Parse {
                dockerfile: dockerfile_name,
                line: e.line,
                message: e.message,
            });
        }
    };
    v.done();
    for w in &df.warnings {
        progress.line(format!("[Warning] {w}"));
    }
    let v = progress.start("[internal] load .dockerignore");
    let (ignore, ignore_size) = read_ignore(&context_dir, dockerfile_path.as_deref())?;
    v.log(&format!("transferring context: {ignore_size}B done"));
    v.done();

    // Build arguments.
    let mut build_args = BTreeMap::new();
    for a in &opts.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(Loaded {
        context_dir,
        bytes,
        df,
        dockerfile_name,
        ignore,
        build_args,
    })
}

/// The build for one platform (`None`: the host's, not asked for), ready to run.
#[allow(clippy::too_many_arguments)]
fn plan(
    root: &Path,
    opts: &BuildOptions,
    loaded: &Loaded,
    progress: Arc<Progress>,
    host: &Platform,
    platform: Option<Platform>,
    multi: bool,
    driver_wanted: Option<strata_snapshot::Driver>,
    pulls: Arc<Pulls>,
) -> Result<(Shared, usize)> {
    let df = loaded.df.clone();
    let lex = Lex::new(df.escape);
    let explicit_platform = platform.is_some();
    let target_platform = platform.unwrap_or_else(|| host.clone());
    let predefined = platform_args(&target_platform, host);
    let mut global_scope = predefined.clone();
    let mut used = BTreeSet::new();
    for (name, default) in &df.global_args {
        let value = match loaded.build_args.get(name) {
            Some(v) => {
                used.insert(name.clone());
                Some(v.clone())
            }
            None => match default {
                Some(d) => {
                    let lookup = |n: &str| global_scope.get(n).cloned();
                    Some(lex.process_word(d, &lookup).map_err(|source| Error::GlobalArg {
                        name: name.clone(),
                        source,
                    })?)
                }
                None => None,
            },
        };
        if let Some(v) = value {
            global_scope.insert(name.clone(), v);
        }
    }

    // The target and what it needs.
    let target = match &opts.target {
        Some(t) => df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
            .ok_or_else(|| Error::NoSuchTarget(t.clone()))?,
        None => df.stages.len() - 1,
    };
    let needed = needed_stages(&df, target, &global_scope, &lex, &loaded.dockerfile_name)?;
    let mut no_cache_stages = BTreeSet::new();
    for f in opts.no_cache_filter.iter().flat_map(|f| f.split(',')) {
        let f = f.trim();
        if f.is_empty() {
            continue;
        }
        let i = stage_named(&df, f).ok_or_else(|| Error::NoCacheFilterStage(f.to_string()))?;
        no_cache_stages.insert(i);
    }
    let index_path = root.join("build-index").join(format!(
        "{}.idx",
        Digest::sha256_of(loaded.context_dir.as_os_str().as_encoded_bytes()).hex()
    ));
    let shared = Shared {
        root: root.to_path_buf(),
        driver_wanted,
        driver: OnceLock::new(),
        dockerfile_lines: String::from_utf8_lossy(&loaded.bytes)
            .lines()
            .map(str::to_string)
            .collect(),
        df,
        dockerfile_name: loaded.dockerfile_name.clone(),
        context_dir: loaded.context_dir.clone(),
        context: OnceLock::new(),
        ignore: loaded.ignore.clone(),
        index_path,
        progress,
        build_args: loaded.build_args.clone(),
        used_args: Mutex::new(used),
        platform_label: multi.then(|| platform_string(&target_platform)),
        platform: target_platform,
        build_platform: host.clone(),
        explicit_platform,
        epoch: opts.source_date_epoch,
        no_cache: opts.no_cache,
        no_cache_stages,
        network: opts.network.clone(),
        secrets: mounts::secrets_by_id(&opts.secrets),
        pull: opts.pull,
        puller: opts.puller.clone(),
        pulls,
        materials: Mutex::new(Vec::new()),
        global_scope,
        predefined,
        needed,
        results: Mutex::new(HashMap::new()),
        cond: Condvar::new(),
        failed: std::sync::atomic::AtomicBool::new(false),
    };
    Ok((shared, target))
}

/// One platform's result: its config and layers, not yet an image.
struct Built {
    platform: Platform,
    /// The registry bases it used (provenance materials).
    materials: Vec<attest::Material>,
    config: strata_oci::ImageConfig,
    layers: Vec<strata_store::LayerRecord>,
}

/// Runs one platform's build: one thread per needed stage, each waiting for
/// the stages it uses.
fn execute(shared: &Shared, target: usize, opts: &BuildOptions, store: &Store) -> Result<Built> {
    let first_error: Mutex<Option<(bool, Error)>> = Mutex::new(None);
    std::thread::scope(|s| {
        for &i in &shared.needed {
            let first_error = &first_error;
            s.spawn(move || {
                let r = stage::run_stage(shared, i);
                match r {
                    Ok(res) => shared.finish(i, Ok(Arc::new(res))),
                    Err(e) => {
                        shared.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        let msg = e.chain();
                        let followup = matches!(e, Error::DependencyFailed { .. }) || msg.starts_with("canceled: ");
                        let mut fe = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        // Keep the root cause, not a failure that follows from it.
                        match &*fe {
                            None => *fe = Some((followup, e)),
                            Some((true, _)) if !followup => *fe = Some((followup, e)),
                            _ => {}
                        }
                        drop(fe);
                        shared.finish(i, Err(msg));
                    }
                }
            });
        }
    });
    if let Some(ctx) = shared.context.get().and_then(|c| c.as_ref().ok()) {
        let _ = ctx.save_index();
    }
    if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let result = shared.wait_for(target)?;

    let mut config = result.config.clone();
    // The image is for the platform its stage was built for (a base's
    // variant kept when the platform names none).
    if result.explicit_platform {
        let p = &result.platform;
        if config.architecture != p.architecture || p.variant.is_some() {
            config.variant = p.variant.clone();
        }
        config.os = p.os.clone();
        config.architecture = p.architecture.clone();
    }
    for l in &opts.labels {
        let (k, val) = l.split_once('=').unwrap_or((l.as_str(), ""));
        config
            .config
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(k.to_string(), val.to_string());
    }
    config.created = match shared.epoch {
        Some(_) => Some(shared.now()),
        None => config
            .history
            .iter()
            .rev()
            .find_map(|h| h.created.clone())
            .or_else(|| Some(shared.now())),
    };
    let mut layers = Vec::new();
    for diff_id in &config.rootfs.diff_ids {
        let layer = store.held_layer(diff_id)?;
        layers.push(layer.ok_or_else(|| Error::NoLayerBlob(diff_id.clone()))?);
    }
    Ok(Built {
        platform: shared.platform.clone(),
        materials: shared.materials.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        config,
        layers,
    })
}

/// Checks the needed stages' `COPY`/`ADD` sources before any step runs: a
/// `--from` that is neither a stage nor a local image, a context source that
/// is not there (`../outside`). Words with variables are left to their step.
fn preflight(sh: &Shared, store: &Store) -> Result<()> {
    let fail = |step: &strata_build::Step, e: Error| {
        let mut lines = vec![String::new()];
        lines.extend(sh.snippet(step.start_line, step.end_line));
        sh.progress.lines(&lines);
        Error::Step {
            dockerfile: sh.dockerfile_name.clone(),
            line: step.start_line,
            message: e.chain(),
            error: Box::new(e),
        }
    };
    for &i in &sh.needed {
        preflight_from(sh, store, i)?;
        for step in &sh.df.stages[i].instructions {
            let (c, add) = match &step.instruction {
                Instruction::Copy(c) => (c, false),
                Instruction::Add(c) => (c, true),
                _ => continue,
            };
            let kw = if add { "ADD" } else { "COPY" };
            match &c.flags.from {
                Some(f) if f.contains('$') => {}
                Some(f) => {
                    if sh.stage_ref(f).is_none()
                        && let Err(e) = stage::resolve_from_image(store, kw, f)
                    {
                        return Err(fail(step, e));
                    }
                }
                None if c.flags.parents => {}
                None => {
                    let locals: Vec<String> = c
                        .sources
                        .iter()
                        .filter(|s| !s.contains('$'))
                        .filter(|s| !(add && (fetch::is_url(s) || s.starts_with("git@") || s.ends_with(".git"))))
                        .cloned()
                        .collect();
                    if locals.is_empty() {
                        continue;
                    }
                    let ctx = sh.context()?;
                    if let Err(e) = copy::select(ctx.as_ref(), &locals) {
                        return Err(fail(step, e));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks stage `i`'s `FROM` before any step runs: its `--platform` runs
/// here, and a base image the store holds has the stage's platform (when
/// one was asked for). A base missing altogether, or a multi-platform base
/// whose index names the platform without the store holding it, is left to
/// its step (it may be pulled); the platforms each base is needed for are
/// noted, to pull them at once.
fn preflight_from(sh: &Shared, store: &Store, i: usize) -> Result<()> {
    let stage = &sh.df.stages[i];
    let fail = |e: Error| {
        let mut lines = vec![String::new()];
        lines.extend(sh.snippet(stage.start_line, stage.start_line));
        sh.progress.lines(&lines);
        Error::InvalidFrom {
            line: stage.start_line,
            source: Box::new(e),
        }
    };
    let from_platform = match &stage.platform {
        Some(w) => Some(stage::from_platform(sh, w).map_err(fail)?),
        None => None,
    };
    let lookup = |n: &str| sh.global_scope.get(n).cloned();
    let Ok(name) = sh.lex().process_word(&stage.base, &lookup) else {
        return Ok(());
    };
    let lower = name.to_lowercase();
    let is_stage = sh.df.stages[..i]
        .iter()
        .any(|s| s.name.as_deref() == Some(lower.as_str()));
    if name.is_empty() || is_stage || lower == "scratch" || !(sh.explicit_platform || from_platform.is_some()) {
        return Ok(());
    }
    let platform = from_platform.unwrap_or_else(|| sh.platform.clone());
    {
        let mut wanted = sh.pulls.platforms.lock().unwrap_or_else(|e| e.into_inner());
        let list = wanted.entry(name.clone()).or_default();
        if !list.iter().any(|p| platform_string(p) == platform_string(&platform)) {
            list.push(platform.clone());
        }
    }
    match strata_image::resolve_platform(store, &name, &platform) {
        Ok(_) | Err(strata_image::Error::NoSuchImage(_)) => Ok(()),
        Err(_) if sh.puller.is_some() && stage::platform_absent(store, &name, &platform) => Ok(()),
        Err(source) => Err(fail(Error::BasePlatform {
            name,
            platform: platform_string(&platform),
            source: Box::new(source),
        })),
    }
}

pub(crate) fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}
