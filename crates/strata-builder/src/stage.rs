//! Building one stage: its base, then each instruction, through the cache.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use strata_build::{CommandForm, CopyInstruction, Healthcheck, Instruction, Lex, RunInstruction, Step};
use strata_layer::{Compression, WriteOptions};
use strata_oci::{ContainerConfig, Descriptor, Digest, History, ImageConfig, media};
use strata_snapshot::{Snapshot, Snapshotter};
use strata_store::Store;

use crate::Shared;
use crate::cache::{self, StepInputs};
use crate::copy::{self, CopyAttrs};
use crate::dest::DestRoot;
use crate::fetch;
use crate::mounts::{self, Cleanup, MountType, RunMount, Sharing};
use crate::pattern::clean_rel;
use crate::progress::Vertex;
use crate::tree::{DirTree, SourceTree as _};

/// A finished stage.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub config: ImageConfig,
    pub key: String,
}

/// A failure that follows from another stage's failure.
#[derive(Debug)]
pub struct DependencyFailed(pub String);

impl std::fmt::Display for DependencyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stage {} failed", self.0)
    }
}

impl std::error::Error for DependencyFailed {}

const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Where a `RUN <<EOF` script with a `#!` line is put (BuildKit's place).
const PIPES_DIR: &str = "/dev/pipes";

struct StageRun<'a> {
    sh: &'a Shared,
    index: usize,
    store: Store,
    /// Made on first use: finding the storage driver mounts a probe, which a cached build never needs.
    snap: std::sync::OnceLock<Snapshotter>,
    /// `[name i/n]` prefix parts.
    label: Option<String>,
    total: usize,
    shown: usize,
    config: ImageConfig,
    key: String,
    /// ARGs declared in this stage, with their values (None: declared without one).
    args: BTreeMap<String, Option<String>>,
    cmd_set: bool,
    /// Some step of this stage was rebuilt (later misses follow from it).
    missed: bool,
    /// Why a hidden (metadata) step missed, told with the next shown step.
    pending_reason: Option<String>,
    /// The base as named (after expansion).
    base_name: String,
}

pub fn run_stage(sh: &Shared, index: usize) -> Result<StageResult> {
    let store = Store::open(&sh.root)?;
    let snap = std::sync::OnceLock::new();
    let stage = &sh.df.stages[index];
    let label = if sh.df.stages.len() > 1 {
        Some(stage.name.clone().unwrap_or_else(|| format!("stage-{index}")))
    } else {
        None
    };
    let mut run = StageRun {
        sh,
        index,
        store,
        snap,
        label,
        total: 0,
        shown: 0,
        config: ImageConfig::default(),
        key: String::new(),
        args: BTreeMap::new(),
        cmd_set: false,
        missed: false,
        pending_reason: None,
        base_name: String::new(),
    };
    let mut steps = run.base()?;
    steps.extend(stage.instructions.iter().cloned());
    run.total = 1 + steps.iter().filter(|s| shows(&s.instruction)).count();
    run.show_from()?;
    for (i, step) in steps.iter().enumerate() {
        if sh.failed.load(Ordering::SeqCst) {
            bail!("canceled: another stage failed");
        }
        run.step(i, step)?;
    }
    Ok(StageResult {
        config: run.config,
        key: run.key,
    })
}

/// Whether a step is shown as a vertex (it touches the filesystem).
fn shows(i: &Instruction) -> bool {
    matches!(
        i,
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
    )
}

fn sha(parts: &[&str]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    strata_oci::digest::to_hex(&h.finalize())
}

/// The working directory a config sets (`/` when none).
fn workdir_of(cc: Option<&ContainerConfig>) -> String {
    cc.and_then(|c| c.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// The shell a config sets for shell forms (`/bin/sh -c` when none).
fn shell_of(cc: &ContainerConfig) -> Vec<String> {
    cc.shell
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// A writable snapshot mounted for one step, unmounted and removed when dropped.
struct StepRoot<'a> {
    snap: &'a Snapshotter,
    snapshot: Snapshot,
    mounted: bool,
}

impl<'a> StepRoot<'a> {
    /// Takes charge of `snapshot` (not mounted yet).
    fn new(snap: &'a Snapshotter, snapshot: Snapshot) -> StepRoot<'a> {
        StepRoot {
            snap,
            snapshot,
            mounted: false,
        }
    }

    /// A snapshot over `chain`, mounted: a read-only view, or a writable
    /// one whose changes are thrown away.
    fn mounted_over(snap: &'a Snapshotter, chain: &[Digest], readonly: bool) -> Result<StepRoot<'a>> {
        let snapshot = if readonly {
            snap.view(&snapshot_key("view"), chain)?
        } else {
            snap.prepare(&snapshot_key("bind"), chain)?
        };
        let mut root = StepRoot::new(snap, snapshot);
        root.mount(readonly)?;
        Ok(root)
    }

    fn mount(&mut self, readonly: bool) -> Result<()> {
        self.snap.mount(&self.snapshot, &self.merged(), readonly)?;
        self.mounted = true;
        Ok(())
    }

    fn merged(&self) -> std::path::PathBuf {
        self.snapshot.merged_dir()
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            self.snap.unmount(&self.snapshot.merged_dir())?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for StepRoot<'_> {
    fn drop(&mut self) {
        let _ = self.unmount();
        let _ = self.snap.remove(&self.snapshot.key);
    }
}

struct LayerMade {
    diff_id: Digest,
}

impl<'a> StageRun<'a> {
    fn lex(&self) -> Lex {
        self.sh.lex()
    }

    fn cc(&mut self) -> &mut ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    /// Variables for expansion: the stage's ENV, then its ARGs.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.args {
            if let Some(v) = v {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Some(env) = self.config.config.as_ref().and_then(|c| c.env.as_ref()) {
            for e in env {
                let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                m.insert(k.to_string(), v.to_string());
            }
        }
        m
    }

    /// Expands one word; returns it and the ARG names it used.
    fn expand(&self, word: &str) -> Result<(String, BTreeSet<String>)> {
        let vars = self.vars();
        let lookup = |n: &str| vars.get(n).cloned();
        let ex = self.lex().process(word, &lookup).map_err(|e| anyhow!("{e}"))?;
        let env_names: BTreeSet<String> = self
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .map(|env| {
                env.iter()
                    .map(|e| e.split('=').next().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let used = ex
            .matched
            .into_iter()
            .filter(|n| self.args.contains_key(n) && !env_names.contains(n))
            .collect();
        Ok((ex.result, used))
    }

    fn arg_values(&self, names: &BTreeSet<String>) -> BTreeMap<String, String> {
        names
            .iter()
            .filter_map(|n| self.args.get(n).cloned().flatten().map(|v| (n.clone(), v)))
            .collect()
    }

    fn prefix(&mut self) -> String {
        self.shown += 1;
        match &self.label {
            Some(l) => format!("[{l} {}/{}]", self.shown, self.total),
            None => format!("[{}/{}]", self.shown, self.total),
        }
    }

    fn history(&mut self, created_by: String, empty_layer: bool) {
        let created = self.sh.now();
        self.config.history.push(History {
            created: Some(created),
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer,
        });
    }

    // ---- FROM ----

    /// Sets the base config and key; returns the ONBUILD triggers to run first.
    fn base(&mut self) -> Result<Vec<Step>> {
        let sh = self.sh;
        let stage = &sh.df.stages[self.index];
        let lookup = |n: &str| sh.global_scope.get(n).cloned();
        let name = sh
            .lex()
            .process_word(&stage.base, &lookup)
            .map_err(|e| anyhow!("failed to solve: Dockerfile:{}: {e}", stage.start_line))?;
        if name.is_empty() {
            bail!(
                "failed to solve: Dockerfile:{}: base name ({}) should not be blank",
                stage.start_line,
                stage.base
            );
        }
        if let Some(p) = &stage.platform {
            let p = sh
                .lex()
                .process_word(p, &lookup)
                .map_err(|e| anyhow!("failed to solve: Dockerfile:{}: {e}", stage.start_line))?;
            crate::check_platform(&p, &sh.platform)
                .map_err(|e| anyhow!("failed to solve: Dockerfile:{}: {e}", stage.start_line))?;
        }
        let lower = name.to_lowercase();
        let stage_base = sh.df.stages[..self.index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        if let Some(j) = stage_base {
            let r = self.wait_for_stage(j)?;
            self.config = r.config.clone();
            self.key = r.key.clone();
        } else if lower == "scratch" {
            self.config = ImageConfig {
                architecture: sh.platform.architecture.clone(),
                os: sh.platform.os.clone(),
                variant: sh.platform.variant.clone(),
                config: Some(ContainerConfig::default()),
                ..Default::default()
            };
            self.key = sha(&["scratch", &sh.platform.architecture, &sh.platform.os]);
        } else {
            let resolved = self.resolve_base(&name)?;
            let bytes = self.store.read_blob(&resolved.image.id, media::MAX_DOCUMENT_SIZE)?;
            self.config = ImageConfig::parse(&bytes)?;
            self.key = sha(&["image", &resolved.image.id.to_string()]);
        }
        // Every stage has a PATH.
        let cc = self.cc();
        let has_path = cc.env.iter().flatten().any(|e| e.starts_with("PATH="));
        if !has_path {
            cc.set_env("PATH", strata_runtime::DEFAULT_PATH);
        }
        // ONBUILD triggers of the base run first, then are gone.
        let triggers = cc.on_build.take().unwrap_or_default();
        let mut steps = Vec::new();
        for t in &triggers {
            let df = strata_build::parse_dockerfile(format!("FROM scratch\n{t}\n").as_bytes()).map_err(|e| {
                anyhow!(
                    "failed to solve: invalid ONBUILD trigger {t:?} in {name}: {}",
                    e.message
                )
            })?;
            for mut s in df.stages.into_iter().flat_map(|s| s.instructions) {
                s.start_line = stage.start_line;
                s.end_line = stage.start_line;
                s.original = format!("ONBUILD {}", s.original);
                steps.push(s);
            }
        }
        self.base_name = name;
        Ok(steps)
    }

    /// Resolves a registry base in the store: pulled first with `--pull`
    /// (once per build), or when missing and a puller is there.
    fn resolve_base(&mut self, name: &str) -> Result<strata_image::Resolved> {
        let sh = self.sh;
        let pull = |why: &str| -> Result<()> {
            let Some(p) = &sh.puller else {
                return Ok(());
            };
            let mut pulled = sh.pulled.lock().unwrap_or_else(|e| e.into_inner());
            if pulled.contains(name) {
                return Ok(());
            }
            let v = sh
                .progress
                .start(&format!("[internal] load metadata for {name} ({why})"));
            match (p.0)(name) {
                Ok(()) => {
                    v.done();
                    pulled.insert(name.to_string());
                    Ok(())
                }
                Err(e) => {
                    v.error(&format!("{e:#}"));
                    Err(anyhow!(
                        "failed to solve: pull access denied for {name}: pulling it failed ({e:#}); check the name, or import or load it first"
                    ))
                }
            }
        };
        if sh.pull {
            if sh.puller.is_none() {
                let mut warned = sh.pulled.lock().unwrap_or_else(|e| e.into_inner());
                if warned.insert(String::new()) {
                    sh.progress
                        .line("[Warning] --pull: no registry client is available; using the local images");
                }
            } else {
                pull("--pull")?;
            }
        }
        match strata_image::resolve(&self.store, name) {
            Ok(r) => Ok(r),
            Err(strata_image::Error::NoSuchImage(_)) if sh.puller.is_some() && !sh.pull => {
                pull("not in the local store")?;
                strata_image::resolve(&self.store, name).map_err(|e| anyhow!("failed to solve: {name}: {e}"))
            }
            Err(strata_image::Error::NoSuchImage(_)) => Err(anyhow!(
                "failed to solve: pull access denied for {name}: the image is not found in the local store; import, load or pull it first"
            )),
            Err(other) => Err(anyhow!("failed to solve: {name}: {other}")),
        }
    }

    fn show_from(&mut self) -> Result<()> {
        let p = self.prefix();
        let name = self.base_name.clone();
        let is_stage = self.sh.df.stages[..self.index]
            .iter()
            .any(|s| s.name.as_deref() == Some(name.to_lowercase().as_str()));
        let shown = match strata_oci::Reference::parse(&name) {
            Ok(r) if !is_stage && !name.eq_ignore_ascii_case("scratch") => r.with_default_tag().to_string(),
            _ => name,
        };
        self.sh.progress.start(&format!("{p} FROM {shown}")).done();
        Ok(())
    }

    fn step(&mut self, i: usize, step: &Step) -> Result<()> {
        let position = format!("{}/{i}", crate::stage_name(&self.sh.df, self.index));
        let r = match &step.instruction {
            Instruction::Run(r) => self.run(step, r, &position),
            Instruction::Copy(c) => self.copy(step, c, false, &position),
            Instruction::Add(c) => self.copy(step, c, true, &position),
            Instruction::Workdir(w) => self.workdir(step, w, &position),
            _ => self.metadata(step, &position),
        };
        r.map_err(|e| {
            if e.downcast_ref::<DependencyFailed>().is_some() {
                return e;
            }
            let msg = format!("{e:#}");
            let mut lines = vec![String::new()];
            lines.extend(self.sh.snippet(step.start_line, step.end_line));
            self.sh.progress.lines(&lines);
            let msg = msg.strip_prefix("failed to solve: ").unwrap_or(&msg).to_string();
            anyhow!(
                "failed to solve: {}:{}: {msg}",
                self.sh.dockerfile_name,
                step.start_line
            )
        })
    }

    /// Runs a step through the cache: a hit takes the cached config; a miss
    /// says why, runs `exec` (which updates `self.config` and returns the new
    /// layer, if any) and records the result.
    fn cached(
        &mut self,
        step: &Step,
        position: &str,
        inputs: StepInputs,
        vertex: Option<Vertex<'a>>,
        exec: impl FnOnce(&mut Self, Option<&Vertex<'a>>) -> Result<Option<Digest>>,
    ) -> Result<()> {
        let parent = self.key.clone();
        let key = inputs.key(&parent);
        let no_cache = self.sh.no_cache || self.sh.no_cache_stages.contains(&self.index);
        if !no_cache && let Some(hit) = cache::lookup(&self.store, &key)? {
            self.config = hit.config;
            self.key = key;
            if let Some(v) = vertex {
                v.cached();
            }
            return Ok(());
        }
        if !no_cache {
            let prev = cache::previous_inputs(&self.store, &parent, position)?;
            let known_change = prev.is_some();
            match (&vertex, prev) {
                (Some(v), Some(prev)) => {
                    v.log(&format!("cache miss: {}", cache::explain(&prev, &inputs)));
                    self.pending_reason = None;
                }
                (Some(v), None) => {
                    let why = self.pending_reason.take().unwrap_or_else(|| {
                        if self.missed {
                            "a previous step was rebuilt".into()
                        } else {
                            "first build of this step".into()
                        }
                    });
                    v.log(&format!("cache miss: {why}"));
                }
                (None, Some(prev)) => {
                    self.pending_reason = Some(format!(
                        "{} changed: {}",
                        cache::one_line(&fetch::redact_text(&step.original), 80),
                        cache::explain(&prev, &inputs)
                    ));
                }
                (None, None) => {}
            }
            // Later misses follow from this one (a first build misses everywhere for its own reason).
            self.missed |= known_change;
        }
        let diff_id = match exec(self, vertex.as_ref()) {
            Ok(d) => d,
            Err(e) => {
                if let Some(v) = vertex {
                    v.error(&format!("{e:#}"));
                }
                return Err(e);
            }
        };
        cache::record(&self.store, &key, diff_id.as_ref(), &self.config)?;
        cache::record_inputs(&self.store, &parent, position, &key, &inputs)?;
        self.key = key;
        if let Some(v) = vertex {
            v.done();
        }
        Ok(())
    }

    fn layer_options(&self) -> WriteOptions {
        WriteOptions {
            compression: Compression::None,
            level: None,
            source_date_epoch: self.sh.epoch,
        }
    }

    fn add_layer(&mut self, layer: &LayerMade) {
        self.config.rootfs.diff_ids.push(layer.diff_id.clone());
    }

    // ---- RUN ----

    fn run(&mut self, step: &Step, r: &RunInstruction, position: &str) -> Result<()> {
        if r.flags.security.as_deref().is_some_and(|s| s != "sandbox") {
            bail!(
                "RUN --security={} is not supported",
                r.flags.security.as_deref().unwrap_or("")
            );
        }
        if !r.flags.devices.is_empty() {
            bail!("RUN --device is not supported");
        }
        let network = match r.flags.network.as_deref().or(self.sh.network.as_deref()) {
            None | Some("default") | Some("host") => strata_runtime::Network::Host,
            Some("none") => strata_runtime::Network::None,
            Some(other) => bail!("RUN --network={other} is not supported (use default, host or none)"),
        };
        let cc = self.config.config.clone().unwrap_or_default();
        let shell = shell_of(&cc);
        // `RUN <<EOF` whose body starts with `#!`: run by its interpreter, as
        // BuildKit does (an executable file in a read-only /dev/pipes).
        let mut script_file: Option<(String, String)> = None;
        let args: Vec<String> = match &r.command {
            CommandForm::Exec(v) => v.clone(),
            CommandForm::Shell(cmd) => {
                let single = r.heredocs.len() == 1
                    && strata_build::parser::parse_heredoc(cmd.trim())
                        .ok()
                        .flatten()
                        .is_some_and(|h| h.name == r.heredocs[0].name);
                let script = if r.heredocs.is_empty() {
                    cmd.clone()
                } else if single && r.heredocs[0].content.starts_with("#!") {
                    let name = r.heredocs[0].name.clone();
                    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                        bail!("invalid heredoc name {name:?} for a script");
                    }
                    script_file = Some((name.clone(), r.heredocs[0].processed_content()));
                    String::new()
                } else if single {
                    // `RUN <<EOF`: the heredoc is the script.
                    r.heredocs[0].processed_content()
                } else {
                    let mut s = cmd.clone();
                    for h in &r.heredocs {
                        s.push('\n');
                        s.push_str(&h.content);
                        s.push_str(&h.name);
                    }
                    s
                };
                match &script_file {
                    Some((name, _)) => vec![format!("{PIPES_DIR}/{name}")],
                    None => {
                        let mut a = shell.clone();
                        a.push(script);
                        a
                    }
                }
            }
        };
        if args.is_empty() {
            bail!("RUN needs a command");
        }
        // Build arguments in scope become environment variables of the process.
        let run_args: BTreeMap<String, String> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        // Proxy arguments reach the process without an ARG, but (unless
        // declared) stay out of the cache key and the history, as in
        // BuildKit: a proxy URL may carry credentials.
        let mut proxy_env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.sh.build_args {
            if crate::is_proxy_arg(k) && !run_args.contains_key(k) {
                proxy_env.insert(k.clone(), v.clone());
                self.sh
                    .used_args
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(k.clone());
            }
        }
        let mut text = step.original.clone();
        for h in &r.heredocs {
            text.push('\n');
            text.push_str(&h.content);
            text.push_str(&h.name);
        }
        let cwd = workdir_of(Some(&cc));
        // --mount: parsed, and the content of bind sources keyed.
        let mut mounts = Vec::new();
        let mut mount_content = Vec::new();
        let mut from_descs = Vec::new();
        let mut context_binds = false;
        for m in &r.flags.mounts {
            let (spec, _) = self.expand(m)?;
            let m = mounts::parse(&spec)?;
            let target = match &m.target {
                Some(t) => Some(mounts::target_rel(t, &cwd)?),
                None => None,
            };
            let src = match (m.kind, &m.from) {
                (MountType::Bind, Some(f)) => {
                    let diff_ids = self.other_root("RUN --mount", f)?;
                    // Keyed by the content of the mounted source, owners included.
                    let source = m.source.clone().unwrap_or_default();
                    let fspec = FromSpec {
                        kind: "mount",
                        sources: std::slice::from_ref(&source),
                        exclude: &[],
                        parents: false,
                        owners: true,
                    };
                    let (digest, _) = self.source_content(
                        &diff_ids,
                        &fspec,
                        f,
                        &|_| Ok(false),
                        &|tree| {
                            let rel = crate::tree::resolve(tree, &clean_rel(&source), true)?
                                .ok_or_else(|| anyhow!("RUN --mount source {source:?}: not found in {f}"))?;
                            let meta = tree
                                .lstat(&rel)?
                                .ok_or_else(|| anyhow!("RUN --mount source {source:?}: not found in {f}"))?;
                            Ok(vec![copy::Selected {
                                name: String::new(),
                                rel,
                                meta,
                                parent: String::new(),
                            }])
                        },
                        None,
                    )?;
                    mount_content.push(format!("bind:{spec}:root-content:{digest}"));
                    from_descs.push(self.describe_from(f));
                    MountSrc::Root(diff_ids)
                }
                (MountType::Bind, None) => {
                    let ctx = self.sh.context()?;
                    let source = m.source.clone().unwrap_or_default();
                    let selected = copy::select(ctx.as_ref(), std::slice::from_ref(&source))
                        .map_err(|e| anyhow!("RUN --mount source {source:?}: {e:#}"))?;
                    let (digest, _) =
                        copy::content_digest(ctx.as_ref(), &selected, &|p| ctx.file_hash(p), None, false, false)?;
                    mount_content.push(format!("bind:{spec}:context:{digest}"));
                    context_binds = true;
                    MountSrc::Context(ctx, selected)
                }
                _ => MountSrc::None,
            };
            mounts.push((m, target, src));
        }
        let inputs = StepInputs {
            text,
            args: run_args.clone(),
            content: if mount_content.is_empty() {
                None
            } else {
                Some(sha(&mount_content.iter().map(String::as_str).collect::<Vec<_>>()))
            },
            epoch: self.sh.epoch,
            from: if from_descs.is_empty() || context_binds {
                None
            } else {
                Some(format!("mounted from {}", from_descs.join(", ")))
            },
            ..Default::default()
        };
        let created_by = if run_args.is_empty() {
            format!("RUN {} # buildkit", args.join(" "))
        } else {
            format!(
                "RUN |{} {} {} # buildkit",
                run_args.len(),
                run_args
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                args.join(" ")
            )
        };
        let mut env = cc.env.clone().unwrap_or_default();
        for (k, v) in run_args.iter().chain(&proxy_env) {
            if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                env.push(format!("{k}={v}"));
            }
        }
        let user_spec = cc.user.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| "0".into());
        let title = format!("{} {}", self.prefix(), cache::one_line(&step.original, 400));
        let vertex = self.sh.progress.start(&title);
        self.cached(step, position, inputs, Some(vertex), move |me, v| {
            let opts = me.layer_options();
            let diff_ids = me.config.rootfs.diff_ids.clone();
            // Roots to bind from are unpacked before the step's own root is made.
            let mut from_chains = Vec::new();
            for (_, _, src) in &mounts {
                from_chains.push(match src {
                    MountSrc::Root(d) => Some(strata_container::ensure_unpacked(
                        &me.store,
                        me.snap.get_or_init(|| me.sh.snapshotter()),
                        d,
                    )?),
                    _ => None,
                });
            }
            let sh = me.sh;
            let snap = me.snap.get_or_init(|| sh.snapshotter());
            let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, false, |merged, changes| {
                let resolved = strata_runtime::resolve_user(merged, &user_spec)
                    .map_err(|e| anyhow!("unable to find user {user_spec}: {e:#}"))?;
                let mut spec = strata_runtime::RunSpec::new(merged, args.clone());
                let mut env = env.clone();
                let mut cleanup = Cleanup::default();
                let mut held = Held::default();
                for ((m, target, src), chain) in mounts.iter().zip(&from_chains) {
                    prepare_mount(
                        sh,
                        snap,
                        (merged, changes),
                        m,
                        target.as_deref(),
                        src,
                        chain.as_deref(),
                        &mut spec,
                        &mut env,
                        &mut cleanup,
                        &mut held,
                    )?;
                }
                if let Some((name, body)) = &script_file {
                    // Mounted over the container's /dev (a tmpfs): never in the layer.
                    let t = scratch_dir(&sh.root, "heredoc-")?;
                    chown_mode(t.path(), None, None, 0o755)?;
                    let f = t.path().join(name);
                    std::fs::write(&f, body).with_context(|| format!("writing {}", f.display()))?;
                    chown_mode(&f, None, None, 0o755)?;
                    spec.mounts.push(strata_runtime::BindMount {
                        source: t.path().to_path_buf(),
                        destination: PIPES_DIR.into(),
                        readonly: true,
                    });
                    held.dirs.push(t);
                }
                if !env.iter().any(|e| e.starts_with("HOME=")) {
                    env.push(format!("HOME={}", resolved.home));
                }
                spec.env = env;
                spec.cwd = cwd.clone();
                spec.user = resolved.user;
                spec.hostname = "buildkitsandbox".into();
                spec.network = network;
                let r = run_process(&spec, v);
                drop(held);
                r.map_err(|e| match e {
                    RunOutcome::Exit(code) => anyhow!(
                        "process \"{}\" did not complete successfully: exit code: {code}",
                        args.join(" ")
                    ),
                    RunOutcome::Failed(e) => anyhow!(
                        "process \"{}\" did not complete successfully: exit code: {}: {}",
                        args.join(" "),
                        e.code,
                        e.message
                    ),
                })?;
                Ok(((), cleanup))
            })?;
            let layer = layer.expect("RUN always makes a layer");
            me.add_layer(&layer);
            me.history(created_by, false);
            Ok(Some(layer.diff_id))
        })
    }

    /// The layers of the stage or image `f` (`COPY --from`, `RUN --mount=from=`).
    fn other_root(&self, kw: &str, f: &str) -> Result<Vec<Digest>> {
        if let Some(j) = self.sh.stage_ref(f) {
            if j == self.index {
                bail!("{kw} --from={f}: circular dependency detected on stage: {f}: a stage cannot copy from itself");
            }
            let r = self.wait_for_stage(j)?;
            return Ok(r.config.rootfs.diff_ids.clone());
        }
        Ok(resolve_from_image(&self.store, kw, f)?.image.diff_ids)
    }

    /// Waits for stage `j`, which this one uses: its failure fails this one as a follow-up.
    fn wait_for_stage(&self, j: usize) -> Result<std::sync::Arc<StageResult>> {
        self.sh
            .wait_for(j)
            .map_err(|_| anyhow::Error::new(DependencyFailed(crate::stage_name(&self.sh.df, j))))
    }

    /// "stage one" or "image busybox", for explanations.
    fn describe_from(&self, f: &str) -> String {
        if self.sh.stage_ref(f).is_some() {
            format!("stage {f}")
        } else {
            format!("image {f}")
        }
    }

    /// The content digest of a selection in the root of the stage or image
    /// `f` (layers `diff_ids`), and its per-file summary (paths from its
    /// root). Memoized per (chain ID, selection): an unchanged source is
    /// neither mounted nor read. Otherwise the root is mounted read-only and
    /// `select` picks the sources in it. `need_files` says, given the digest,
    /// whether a summary the memo does not hold must be made (a miss to explain).
    fn source_content(
        &self,
        diff_ids: &[Digest],
        spec: &FromSpec<'_>,
        f: &str,
        need_files: &dyn Fn(&str) -> Result<bool>,
        select: &dyn Fn(&DirTree) -> Result<Vec<copy::Selected>>,
        exclude: Option<&crate::IgnoreRules>,
    ) -> Result<(String, BTreeMap<String, String>)> {
        let chain = strata_oci::chain_ids(diff_ids)
            .last()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "empty".into());
        let spec_json = format!("v1:{}", serde_json::to_string(spec)?);
        if let Some(memo) = cache::from_hash(&self.store, &chain, &spec_json)? {
            match memo.files {
                Some(files) => return Ok((memo.hash, files)),
                None if !need_files(&memo.hash)? => return Ok((memo.hash, BTreeMap::new())),
                None => {}
            }
        }
        let snap = self.snap.get_or_init(|| self.sh.snapshotter());
        let chain_ids = strata_container::ensure_unpacked(&self.store, snap, diff_ids)?;
        let mut guard = StepRoot::mounted_over(snap, &chain_ids, true)?;
        let tree = DirTree::open(&guard.merged(), format!("--from={f}"))?;
        let hashed = select(&tree).and_then(|selected| {
            copy::content_digest(&tree, &selected, &|p| tree.file_hash(p), exclude, true, spec.owners)
        });
        drop(tree);
        guard.unmount()?;
        let (hash, files) = hashed?;
        let files: BTreeMap<String, String> = files
            .into_iter()
            .map(|(k, v)| (if k == "." { "/".into() } else { format!("/{k}") }, v))
            .collect();
        cache::record_from_hash(&self.store, &chain, &spec_json, &hash, &files)?;
        Ok((hash, files))
    }

    // ---- COPY / ADD ----

    fn copy(&mut self, step: &Step, c: &CopyInstruction, add: bool, position: &str) -> Result<()> {
        let kw = if add { "ADD" } else { "COPY" };
        let mut used = BTreeSet::new();
        let mut ex = |w: &str| -> Result<String> {
            let (s, u) = self.expand(w)?;
            used.extend(u);
            Ok(s)
        };
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(ex(s)?);
        }
        let dest = ex(&c.dest)?;
        let chown = c
            .flags
            .chown
            .as_deref()
            .map(&mut ex)
            .transpose()?
            .filter(|s| !s.is_empty());
        let chmod = c
            .flags
            .chmod
            .as_deref()
            .map(&mut ex)
            .transpose()?
            .filter(|s| !s.is_empty());
        let from = c.flags.from.as_deref().map(&mut ex).transpose()?;
        let mut excludes = Vec::new();
        for e in &c.flags.exclude {
            excludes.push(ex(e)?);
        }
        let checksum = c.flags.checksum.as_deref().map(&mut ex).transpose()?;
        let chmod_bits = chmod.as_deref().map(copy::parse_chmod).transpose()?;
        let exclude_rules = if excludes.is_empty() {
            None
        } else {
            Some(crate::IgnoreRules::parse(&excludes.join("\n")).map_err(|e| anyhow!("{kw} --exclude: {e:#}"))?)
        };
        let mut urls = Vec::new();
        let mut locals = Vec::new();
        for s in &sources {
            if add && is_git_source(s) {
                bail!("ADD from a git repository is not supported: {s}");
            } else if add && fetch::is_url(s) {
                urls.push(s.clone());
            } else {
                locals.push(s.clone());
            }
        }
        let checksum = match checksum {
            Some(c) if urls.len() == 1 && locals.is_empty() => Some(fetch::parse_checksum(&c)?),
            Some(_) => bail!("ADD --checksum needs exactly one URL source"),
            None => None,
        };
        if !urls.is_empty() && from.is_some() {
            bail!("{kw} --from cannot be used with URL sources");
        }
        // Heredoc bodies: variables expand, quotes and backslashes stay as written.
        let raw_lex = Lex {
            skip_process_quotes: true,
            raw_escapes: true,
            ..self.lex()
        };
        let vars = self.vars();
        let lookup = |n: &str| vars.get(n).cloned();
        let mut inline = Vec::new();
        for s in &c.inline_sources {
            let content = if s.expand {
                raw_lex.process_word(&s.content, &lookup).map_err(|e| anyhow!("{e}"))?
            } else {
                s.content.clone()
            };
            inline.push((s.name.clone(), content));
        }
        let workdir = workdir_of(self.config.config.as_ref());
        let (dest_rel, dest_is_dir) = copy::dest_path(&dest, &workdir);
        let mut flags = String::new();
        if let Some(f) = &from {
            flags.push_str(&format!(" --from={f}"));
        }
        if let Some(o) = &chown {
            flags.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &chmod {
            flags.push_str(&format!(" --chmod={m}"));
        }
        if c.flags.link {
            flags.push_str(" --link");
        }
        if add && c.flags.unpack == Some(false) {
            flags.push_str(" --unpack=false");
        }
        if c.flags.parents {
            flags.push_str(" --parents");
        }
        for e in &excludes {
            flags.push_str(&format!(" --exclude={e}"));
        }
        if let Some(c) = &checksum {
            flags.push_str(&format!(" --checksum={c}"));
        }
        // URLs as shown (history, cache records): without their credentials.
        let mut names: Vec<String> = sources
            .iter()
            .map(|s| if urls.contains(s) { fetch::redact(s) } else { s.clone() })
            .collect();
        names.extend(inline.iter().map(|(n, _)| format!("<<{n}")));
        let mut text = format!("{kw}{flags} {} {dest}", names.join(" "));
        for (n, content) in &inline {
            text.push_str(&format!("\n{content}{n}"));
        }
        // The sources and their content hash.
        let mut from_desc = None;
        let (src, content, files) = match &from {
            Some(f) => {
                let diff_ids = self.other_root(kw, f)?;
                // Keyed by the content of what is copied (as BuildKit), not by
                // the source's layers: a rebuilt stage with equal files hits.
                let spec = FromSpec {
                    kind: "copy",
                    sources: &sources,
                    exclude: &excludes,
                    parents: c.flags.parents,
                    owners: chown.is_none(),
                };
                let args = self.arg_values(&used);
                let need_files = |hash: &str| -> Result<bool> {
                    let probe = StepInputs {
                        text: text.clone(),
                        args: args.clone(),
                        content: Some(hash.to_string()),
                        epoch: self.sh.epoch,
                        ..Default::default()
                    };
                    Ok(!cache::has(&self.store, &probe.key(&self.key))?)
                };
                let (digest, files) = self.source_content(
                    &diff_ids,
                    &spec,
                    f,
                    &need_files,
                    &|tree| {
                        Ok(copy::drop_excluded(
                            copy::select(tree, &sources)?,
                            exclude_rules.as_ref(),
                        ))
                    },
                    exclude_rules.as_ref(),
                )?;
                from_desc = Some(format!("copied from {}", self.describe_from(f)));
                (MountSrc::Root(diff_ids), Some(digest), files)
            }
            None if locals.is_empty() => (MountSrc::None, None, BTreeMap::new()),
            None => {
                let ctx = self.sh.context()?;
                let selected = copy::drop_excluded(copy::select(ctx.as_ref(), &locals)?, exclude_rules.as_ref());
                // The per-file list only explains misses: made when there is one.
                let (digest, _) = copy::content_digest(
                    ctx.as_ref(),
                    &selected,
                    &|p| ctx.file_hash(p),
                    exclude_rules.as_ref(),
                    false,
                    false,
                )?;
                let probe = StepInputs {
                    text: text.clone(),
                    args: self.arg_values(&used),
                    content: Some(digest.clone()),
                    epoch: self.sh.epoch,
                    ..Default::default()
                };
                let files = if urls.is_empty() && cache::has(&self.store, &probe.key(&self.key))? {
                    BTreeMap::new()
                } else {
                    copy::content_digest(
                        ctx.as_ref(),
                        &selected,
                        &|p| ctx.file_hash(p),
                        exclude_rules.as_ref(),
                        true,
                        false,
                    )?
                    .1
                };
                (MountSrc::Context(ctx, selected), Some(digest), files)
            }
        };
        // URLs: fetched now (their content keys the step), unless a checksum names it already.
        let mut url_dir = None;
        let mut url_names = Vec::new();
        let mut url_keys = Vec::new();
        if !urls.is_empty() {
            if let Some(c) = &checksum {
                url_keys.push(format!("url:{}:{c}", fetch::redact(&urls[0])));
                url_names.push(fetch::file_name(&urls[0]));
            } else {
                let v = self
                    .sh
                    .progress
                    .start(&format!("[internal] load remote sources for {kw}"));
                let dir = scratch_dir(&self.sh.root, "add-url-")?;
                for u in &urls {
                    let got = match fetch::fetch(u, dir.path(), None) {
                        Ok(g) => g,
                        Err(e) => {
                            v.error(&format!("{e:#}"));
                            return Err(e);
                        }
                    };
                    let u = fetch::redact(u);
                    v.log(&format!("{u}: {}", got.digest));
                    url_keys.push(format!("url:{u}:{}:{}", got.name, got.digest));
                    url_names.push(got.name);
                }
                v.done();
                url_dir = Some(dir);
            }
        }
        let content = if url_keys.is_empty() {
            content
        } else {
            let mut parts = url_keys.clone();
            parts.extend(content);
            Some(sha(&parts.iter().map(String::as_str).collect::<Vec<_>>()))
        };
        let inputs = StepInputs {
            text,
            args: self.arg_values(&used),
            content,
            files,
            epoch: self.sh.epoch,
            from: from_desc,
        };
        let created_by = format!(
            "{kw}{} {} {dest} # buildkit",
            from.as_ref().map(|f| format!(" --from={f}")).unwrap_or_default(),
            names.join(" ")
        );
        let title = format!(
            "{} {}",
            self.prefix(),
            cache::one_line(&fetch::redact_text(&step.original), 400)
        );
        let vertex = self.sh.progress.start(&title);
        let unpack = add && c.flags.unpack != Some(false);
        let parents = c.flags.parents;
        self.cached(step, position, inputs, Some(vertex), move |me, _v| {
            let opts = me.layer_options();
            let epoch = me.sh.epoch;
            let diff_ids = me.config.rootfs.diff_ids.clone();
            // A root to copy from is unpacked before the step's own root is made.
            let from_chain = match &src {
                MountSrc::Root(d) => Some(strata_container::ensure_unpacked(
                    &me.store,
                    me.snap.get_or_init(|| me.sh.snapshotter()),
                    d,
                )?),
                _ => None,
            };
            let snap = me.snap.get_or_init(|| me.sh.snapshotter());
            let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, false, |merged, _| {
                let droot = DestRoot::open(merged)?;
                let (uid, gid) = match &chown {
                    Some(spec) => {
                        let r = strata_runtime::resolve_user(merged, spec).map_err(|e| {
                            anyhow!("unable to convert uid/gid chown string to host mapping: {spec}: {e:#}")
                        })?;
                        if spec.contains(':') {
                            (r.user.uid, r.user.gid)
                        } else {
                            (r.user.uid, r.user.uid)
                        }
                    }
                    None => (0, 0),
                };
                let attrs = CopyAttrs {
                    uid,
                    gid,
                    chmod: chmod_bits,
                    unpack,
                    keep_owner: chown.is_none() && matches!(src, MountSrc::Root(_)),
                };
                let layout = copy::Layout {
                    parents,
                    exclude: exclude_rules.as_ref(),
                };
                let dest_is_dir = dest_is_dir || !url_names.is_empty() && sources.len() > 1;
                if !url_names.is_empty() {
                    let fetched;
                    let dir = match &url_dir {
                        Some(d) => d.path(),
                        None => {
                            fetched = scratch_dir(&me.sh.root, "add-url-")?;
                            fetch::fetch(&urls[0], fetched.path(), checksum.as_deref())?;
                            fetched.path()
                        }
                    };
                    let tree = DirTree::open(dir, "the downloads".into())?;
                    let selected = copy::select(&tree, &url_names)?;
                    let url_attrs = CopyAttrs {
                        unpack: false,
                        keep_owner: false,
                        ..attrs
                    };
                    copy::copy_into(&tree, &selected, &droot, &dest_rel, dest_is_dir, &url_attrs, layout)?;
                }
                match &src {
                    MountSrc::None => {}
                    MountSrc::Context(ctx, selected) => {
                        copy::copy_into(ctx.as_ref(), selected, &droot, &dest_rel, dest_is_dir, &attrs, layout)?;
                    }
                    MountSrc::Root(_) => {
                        let chain = from_chain.as_deref().unwrap_or_default();
                        let mut guard = StepRoot::mounted_over(snap, chain, true)?;
                        let tree = DirTree::open(&guard.merged(), format!("--from={}", from.as_deref().unwrap_or("")))?;
                        let selected = copy::drop_excluded(copy::select(&tree, &sources)?, layout.exclude);
                        copy::copy_into(&tree, &selected, &droot, &dest_rel, dest_is_dir, &attrs, layout)?;
                        drop(tree);
                        guard.unmount()?;
                    }
                }
                let mtime = epoch.unwrap_or_else(|| jiff::Timestamp::now().as_second());
                let inline_dir = dest_is_dir || inline.len() + sources.len() > 1;
                for (name, content) in &inline {
                    copy::write_inline(&droot, name, content, &dest_rel, inline_dir, &attrs, mtime)?;
                }
                Ok(((), Cleanup::default()))
            })?;
            let layer = layer.expect("COPY always makes a layer");
            me.add_layer(&layer);
            me.history(created_by, false);
            Ok(Some(layer.diff_id))
        })
    }

    // ---- WORKDIR ----

    fn workdir(&mut self, step: &Step, raw: &str, position: &str) -> Result<()> {
        let (w, used) = self.expand(raw)?;
        let base = workdir_of(self.config.config.as_ref());
        let joined = if w.starts_with('/') {
            w.clone()
        } else {
            format!("{base}/{w}")
        };
        let rel = clean_rel(&joined);
        let abs = format!("/{rel}");
        let inputs = StepInputs {
            text: format!("WORKDIR {abs}"),
            args: self.arg_values(&used),
            epoch: self.sh.epoch,
            ..Default::default()
        };
        let user = self
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .filter(|u| !u.is_empty());
        let title = format!("{} WORKDIR {abs}", self.prefix());
        let vertex = self.sh.progress.start(&title);
        self.cached(step, position, inputs, Some(vertex), move |me, _v| {
            me.cc().working_dir = Some(abs.clone());
            let mut made = None;
            if !rel.is_empty() {
                let opts = me.layer_options();
                let diff_ids = me.config.rootfs.diff_ids.clone();
                let snap = me.snap.get_or_init(|| me.sh.snapshotter());
                let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, true, |merged, _| {
                    let (uid, gid) = match &user {
                        Some(u) => strata_runtime::resolve_user(merged, u)
                            .map(|r| (r.user.uid, r.user.gid))
                            .unwrap_or((0, 0)),
                        None => (0, 0),
                    };
                    let droot = DestRoot::open(merged)?;
                    droot.ensure_dir(
                        &rel,
                        &crate::dest::Attrs {
                            uid,
                            gid,
                            mode: 0o755,
                            mtime: (0, 0),
                        },
                    )?;
                    Ok(((), Cleanup::default()))
                })?;
                made = layer;
            }
            if let Some(l) = &made {
                me.add_layer(l);
            }
            me.history(format!("WORKDIR {abs}"), made.is_none());
            Ok(made.map(|l| l.diff_id))
        })
    }

    // ---- metadata-only instructions ----

    fn metadata(&mut self, step: &Step, position: &str) -> Result<()> {
        let mut used = BTreeSet::new();
        let mut next = self.config.config.clone().unwrap_or_default();
        let mut ex = |w: &str| -> Result<String> {
            let (s, u) = self.expand(w)?;
            used.extend(u);
            Ok(s)
        };
        let mut set_cmd = false;
        let mut new_author = None;
        let created_by: String;
        let text: String;
        match &step.instruction {
            Instruction::Env(pairs) => {
                let mut vals = Vec::new();
                for (k, v) in pairs {
                    vals.push((k.clone(), ex(v)?));
                }
                for (k, v) in &vals {
                    next.set_env(k, v);
                }
                created_by = format!(
                    "ENV {}",
                    vals.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                text = created_by.clone();
            }
            Instruction::Label(pairs) => {
                let mut vals = Vec::new();
                for (k, v) in pairs {
                    vals.push((ex(k)?, ex(v)?));
                }
                for (k, v) in &vals {
                    next.labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), v.clone());
                }
                created_by = format!(
                    "LABEL {}",
                    vals.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                text = created_by.clone();
            }
            Instruction::Arg(decls) => {
                for (name, default) in decls {
                    let value = if let Some(v) = self.sh.build_args.get(name) {
                        self.sh
                            .used_args
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.clone());
                        Some(v.clone())
                    } else if let Some(d) = default {
                        let (v, _) = self.expand(d)?;
                        Some(v)
                    } else if self.sh.df.global_args.iter().any(|(n, _)| n == name)
                        || self.sh.predefined.contains_key(name)
                    {
                        self.sh.global_scope.get(name).cloned()
                    } else {
                        None
                    };
                    self.args.insert(name.clone(), value);
                }
                // The values are not part of the key (nor of the history): only the steps
                // that use an argument depend on it, as in BuildKit.
                created_by = format!(
                    "ARG {}",
                    decls
                        .iter()
                        .map(|(n, d)| match d {
                            Some(d) => format!("{n}={d}"),
                            None => n.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                text = created_by.clone();
                return self.finish_metadata(step, position, text, BTreeMap::new(), next, created_by, None);
            }
            Instruction::User(u) => {
                let u = ex(u)?;
                next.user = Some(u.clone());
                created_by = format!("USER {u}");
                text = created_by.clone();
            }
            Instruction::Expose(ports) => {
                let mut list = Vec::new();
                for p in ports {
                    for word in ex(p)?.split_whitespace() {
                        let port = if word.contains('/') {
                            word.to_ascii_lowercase()
                        } else {
                            format!("{word}/tcp")
                        };
                        next.exposed_ports
                            .get_or_insert_with(BTreeMap::new)
                            .insert(port.clone(), json!({}));
                        list.push(port);
                    }
                }
                created_by = format!(
                    "EXPOSE map[{}]",
                    list.iter().map(|p| format!("{p}:{{}}")).collect::<Vec<_>>().join(" ")
                );
                text = format!("EXPOSE {}", list.join(" "));
            }
            Instruction::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    let v = ex(v)?;
                    if v.trim().is_empty() {
                        bail!("VOLUME specified can not be an empty string");
                    }
                    next.volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v.clone(), json!({}));
                    list.push(v);
                }
                created_by = format!("VOLUME [{}]", list.join(" "));
                text = created_by.clone();
            }
            Instruction::Entrypoint(form) | Instruction::Cmd(form) => {
                let is_cmd = matches!(step.instruction, Instruction::Cmd(_));
                let shell = shell_of(&next);
                let value = match form {
                    CommandForm::Exec(v) => v.clone(),
                    CommandForm::Shell(s) => {
                        let mut a = shell;
                        a.push(s.clone());
                        a
                    }
                };
                let kw = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                if is_cmd {
                    next.cmd = Some(value.clone());
                    set_cmd = true;
                } else {
                    next.entrypoint = Some(value.clone());
                    if !self.cmd_set {
                        next.cmd = None;
                    }
                }
                created_by = format!("{kw} {}", strata_build::go_quote_list(&value));
                text = format!("{kw} {}", serde_json::to_string(&value)?);
            }
            Instruction::Healthcheck(h) => {
                next.healthcheck = Some(healthcheck_json(h));
                created_by = format!(
                    "HEALTHCHECK {}",
                    cache::one_line(step.original.split_once(' ').map_or("", |x| x.1), 1000)
                );
                text = format!("HEALTHCHECK {}", serde_json::to_string(&next.healthcheck)?);
            }
            Instruction::Stopsignal(s) => {
                let s = ex(s)?;
                next.stop_signal = Some(s.clone());
                created_by = format!("STOPSIGNAL {s}");
                text = created_by.clone();
            }
            Instruction::Shell(v) => {
                next.shell = Some(v.clone());
                created_by = format!("SHELL {}", strata_build::go_quote_list(v));
                text = format!("SHELL {}", serde_json::to_string(v)?);
            }
            Instruction::Onbuild(t) => {
                next.on_build.get_or_insert_with(Vec::new).push(t.clone());
                created_by = format!("ONBUILD {t}");
                text = created_by.clone();
            }
            Instruction::Maintainer(m) => {
                let m = ex(m)?;
                new_author = Some(m.clone());
                created_by = format!("MAINTAINER {m}");
                text = created_by.clone();
            }
            other => bail!("{} is not allowed here", other.keyword()),
        }
        if set_cmd {
            self.cmd_set = true;
        }
        let args = self.arg_values(&used);
        self.finish_metadata(step, position, text, args, next, created_by, new_author)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_metadata(
        &mut self,
        step: &Step,
        position: &str,
        text: String,
        args: BTreeMap<String, String>,
        next: ContainerConfig,
        created_by: String,
        author: Option<String>,
    ) -> Result<()> {
        let inputs = StepInputs {
            text,
            args,
            epoch: self.sh.epoch,
            ..Default::default()
        };
        self.cached(step, position, inputs, None, move |me, _| {
            me.config.config = Some(next);
            if let Some(a) = author {
                me.config.author = Some(a);
            }
            me.history(created_by, true);
            Ok(None)
        })
    }
}

fn healthcheck_json(h: &Healthcheck) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), json!(h.test));
    if let Some(d) = h.interval {
        m.insert("Interval".into(), json!(ns(d)));
    }
    if let Some(d) = h.timeout {
        m.insert("Timeout".into(), json!(ns(d)));
    }
    if let Some(d) = h.start_period {
        m.insert("StartPeriod".into(), json!(ns(d)));
    }
    if let Some(d) = h.start_interval {
        m.insert("StartInterval".into(), json!(ns(d)));
    }
    if let Some(r) = h.retries {
        m.insert("Retries".into(), json!(r));
    }
    Value::Object(m)
}

/// The local image `f` named by `--from` (of `kw`: COPY, ADD, RUN --mount)
/// where no stage has that name.
pub(crate) fn resolve_from_image(store: &Store, kw: &str, f: &str) -> Result<strata_image::Resolved> {
    strata_image::resolve(store, f).map_err(|e| match e {
        strata_image::Error::NoSuchImage(_) => anyhow!(
            "{kw} --from={f}: no stage or image named {f}: pull access denied for {f}: the image is not found in the local store; import or load it first"
        ),
        other => anyhow!("{kw} --from={f}: {other}"),
    })
}

/// A snapshot key naming this process, so that a later build can remove
/// what an interrupted one left behind.
fn snapshot_key(kind: &str) -> String {
    format!(
        "build-{}-{kind}-{}",
        std::process::id(),
        &strata_container::random_id()[..20]
    )
}

/// Removes the step snapshots of builds whose process is gone (interrupted).
pub fn remove_stale_snapshots(snap: &Snapshotter) {
    let Ok(list) = snap.list() else { return };
    for s in list {
        let Some(pid) = s
            .key
            .strip_prefix("build-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = snap.remove(&s.key);
        }
    }
}

/// Prepares a writable snapshot over `diff_ids`, mounts it, runs `f` on its
/// root, and writes the step's changes as a layer (none when
/// `skip_if_empty` and nothing changed): the overlay upper directory, or
/// with the copy driver the entries that differ from the root as it was.
/// `f` gets the root and the changes directory (where mount points it
/// reports in its [`Cleanup`] are removed from first). The snapshot is
/// removed whatever happens.
fn with_root<T>(
    store: &mut Store,
    snap: &Snapshotter,
    diff_ids: &[Digest],
    opts: &WriteOptions,
    skip_if_empty: bool,
    f: impl FnOnce(&Path, &Path) -> Result<(T, Cleanup)>,
) -> Result<(T, Option<LayerMade>)> {
    let chain = strata_container::ensure_unpacked(store, snap, diff_ids)?;
    let key = snapshot_key("step");
    let mut root = StepRoot::new(snap, snap.prepare(&key, &chain)?);
    let overlay = snap.driver() == strata_snapshot::Driver::Overlay;
    let upper = snap.upper_dir(&root.snapshot);
    let baseline = snap.baseline(&root.snapshot)?;
    root.mount(false)?;
    let (out, cleanup) = f(&root.merged(), &upper)?;
    root.unmount()?;
    crate::mounts::remove_mount_points(&upper, &cleanup, overlay);
    let mut w = store.blob_writer()?;
    let commit = strata_snapshot::CommitOptions {
        layer: *opts,
        skip_if_empty,
    };
    let Some(d) = snap
        .commit(&root.snapshot, &baseline, &commit, &mut w)
        .context("writing the step's layer")?
    else {
        return Ok((out, None));
    };
    let (digest, size) = w.commit(Some(&d.digest))?;
    if overlay {
        // The upper dir is this layer in overlay form: name it as the
        // unpacked layer rather than unpack the blob again for the next step
        // and delete the upper now (twice the file creations, and deletions
        // that slow the next creations on ext4). Not fatal when it cannot:
        // the layer is unpacked from its blob when needed.
        let mut ids = diff_ids.to_vec();
        ids.push(d.diff_id.clone());
        if let Some(chain_id) = strata_oci::chain_ids(&ids).pop() {
            let _ = snap.adopt_upper(&root.snapshot, &chain_id);
        }
    }
    drop(root);
    store.add_layer_blob(
        &d.diff_id,
        d.diff_size,
        &Descriptor::new(media::OCI_LAYER_TAR, digest, size),
    )?;
    Ok((out, Some(LayerMade { diff_id: d.diff_id })))
}

enum RunOutcome {
    Exit(i32),
    Failed(strata_runtime::RunError),
}

/// Runs the process with its output going to the vertex, line by line.
fn run_process(spec: &strata_runtime::RunSpec, v: Option<&Vertex<'_>>) -> std::result::Result<(), RunOutcome> {
    let pipe = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RunOutcome::Failed(strata_runtime::RunError::runtime(format!("pipe: {e}"))))?;
    let (rd, wr) = pipe;
    let wr2 = wr
        .try_clone()
        .map_err(|e| RunOutcome::Failed(strata_runtime::RunError::runtime(format!("dup: {e}"))))?;
    let done = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        let reader = s.spawn(|| pump(rd, v, &done));
        let r = strata_runtime::run_with_stdio(
            spec,
            strata_runtime::Stdio {
                stdin: None,
                stdout: Some(wr),
                stderr: Some(wr2),
            },
        );
        done.store(true, Ordering::SeqCst);
        let _ = reader.join();
        r
    });
    match r {
        Ok(0) => Ok(()),
        Ok(code) => Err(RunOutcome::Exit(code)),
        Err(e) => Err(RunOutcome::Failed(e)),
    }
}

const LOG_LIMIT: usize = 2 << 20;

fn pump(fd: OwnedFd, v: Option<&Vertex<'_>>, done: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut clipped = false;
    let mut emit = |line: &[u8], total: &mut usize| {
        *total += line.len() + 1;
        if *total > LOG_LIMIT {
            if !clipped {
                clipped = true;
                if let Some(v) = v {
                    v.output("[output clipped, log limit 2MiB reached]");
                }
            }
            return;
        }
        if let Some(v) = v {
            let s = String::from_utf8_lossy(line);
            v.output(s.trim_end_matches('\r'));
        }
    };
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        match rustix::io::read(fd.as_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    emit(&line[..line.len() - 1], &mut total);
                }
            }
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut total);
    }
}

/// What a step reads from another stage's or image's root: with the
/// source's chain ID, the key of its memoized content digest.
#[derive(serde::Serialize)]
struct FromSpec<'s> {
    /// "copy" (COPY/ADD --from) or "mount" (RUN --mount=type=bind,from=).
    kind: &'static str,
    sources: &'s [String],
    exclude: &'s [String],
    parents: bool,
    /// Owners are part of the content (kept by the copy, seen in the mount).
    owners: bool,
}

/// Where a COPY/ADD's or a RUN bind mount's content comes from (resolved
/// before the step runs).
enum MountSrc {
    None,
    Context(std::sync::Arc<crate::tree::ContextTree>, Vec<copy::Selected>),
    Root(Vec<Digest>),
}

/// What must live while a RUN process runs: snapshots mounted for binds,
/// scratch directories, cache locks.
#[derive(Default)]
struct Held<'a> {
    roots: Vec<StepRoot<'a>>,
    dirs: Vec<tempfile::TempDir>,
    locks: Vec<mounts::DirLock>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Snapshots first (unmounted), then the directories.
        self.roots.clear();
        self.dirs.clear();
        self.locks.clear();
    }
}

fn scratch_dir(root: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&tmp)
        .with_context(|| format!("creating a directory in {}", tmp.display()))
}

fn chown_mode(path: &Path, uid: Option<u32>, gid: Option<u32>, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(path, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
        .with_context(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// Sets up one `RUN --mount`: its source on the host, its mount point in
/// the step's root, and the bind mount or secret file of `spec` (or, for
/// `env=` secrets, the variable).
#[allow(clippy::too_many_arguments)]
fn prepare_mount<'a>(
    sh: &Shared,
    snap: &'a Snapshotter,
    (merged, changes): (&Path, &Path),
    m: &RunMount,
    target: Option<&str>,
    src: &MountSrc,
    chain: Option<&[Digest]>,
    spec: &mut strata_runtime::RunSpec,
    env: &mut Vec<String>,
    cleanup: &mut Cleanup,
    held: &mut Held<'a>,
) -> Result<()> {
    let mut readonly = m.readonly;
    let source: std::path::PathBuf = match m.kind {
        MountType::Cache => {
            let id = m.id.clone().unwrap_or_else(|| format!("/{}", target.unwrap_or("")));
            let base = sh.root.join("build-mounts").join("cache");
            std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
            let name = mounts::cache_dir_name(&id);
            let lock_path = base.join(format!("{name}.lock"));
            let mut dir = base.join(&name);
            match m.sharing {
                Sharing::Shared => {}
                Sharing::Locked => held.locks.push(mounts::lock(&lock_path, true)?.expect("blocking lock")),
                Sharing::Private => match mounts::lock(&lock_path, false)? {
                    Some(l) => held.locks.push(l),
                    None => {
                        // In use by another build: this one gets its own, empty.
                        let t = scratch_dir(&sh.root, "cache-private-")?;
                        dir = t.path().to_path_buf();
                        chown_mode(&dir, m.uid, m.gid, m.mode.unwrap_or(0o755))?;
                        held.dirs.push(t);
                    }
                },
            }
            if !dir.exists() {
                let tmp = base.join(format!(".new-{name}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
                chown_mode(&tmp, m.uid, m.gid, m.mode.unwrap_or(0o755))?;
                if std::fs::rename(&tmp, &dir).is_err() {
                    // Made by a concurrent build meanwhile.
                    let _ = std::fs::remove_dir(&tmp);
                }
            }
            dir
        }
        MountType::Tmpfs => {
            let t = scratch_dir(&sh.root, "tmpfs-")?;
            let p = t.path().to_path_buf();
            chown_mode(&p, m.uid, m.gid, m.mode.unwrap_or(0o1777))?;
            held.dirs.push(t);
            readonly = false;
            p
        }
        MountType::Secret => {
            let id = m.id.clone().unwrap_or_default();
            let value = match sh.secrets.get(&id) {
                Some(spec) => mounts::read_secret(spec)?,
                None => None,
            };
            let Some(value) = value else {
                if m.required {
                    bail!("secret {id} not found: give it with --secret id={id},src=FILE (or env=VAR)");
                }
                return Ok(());
            };
            if let Some(var) = &m.env {
                env.retain(|e| e.split('=').next() != Some(var.as_str()));
                env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
            }
            let Some(target) = target else { return Ok(()) };
            // The host copy stays private; the runtime gives the container
            // its own copy with the Dockerfile's owner and mode.
            let (dir, file) = mounts::secret_host_copy(&sh.root.join("tmp"), &value)?;
            held.dirs.push(dir);
            let dest = mounts::make_mount_point(merged, changes, target, true, cleanup)?;
            spec.secrets.push(strata_runtime::SecretFile {
                source: file,
                destination: format!("/{dest}"),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o400),
            });
            return Ok(());
        }
        MountType::Bind => match src {
            MountSrc::Context(ctx, selected) => {
                let sel = &selected[0];
                let is_dir = sel.meta.kind == crate::tree::Kind::Dir;
                if readonly && sh.ignore_is_empty() {
                    sh.context_dir.join(&sel.rel)
                } else {
                    // Ignored files stay out, writes are thrown away: a copy.
                    let t = scratch_dir(&sh.root, "bind-")?;
                    let droot = DestRoot::open(t.path())?;
                    let attrs = CopyAttrs {
                        uid: 0,
                        gid: 0,
                        chmod: None,
                        unpack: false,
                        keep_owner: false,
                    };
                    let name = if is_dir { "d" } else { sel.name.as_str() };
                    copy::copy_into(
                        ctx.as_ref(),
                        selected,
                        &droot,
                        name,
                        is_dir,
                        &attrs,
                        copy::Layout::default(),
                    )?;
                    let p = t.path().join(name);
                    held.dirs.push(t);
                    p
                }
            }
            MountSrc::Root(_) => {
                let guard = StepRoot::mounted_over(snap, chain.unwrap_or_default(), readonly)?;
                let root = guard.merged();
                held.roots.push(guard);
                let tree = DirTree::open(&root, format!("--mount from={}", m.from.as_deref().unwrap_or("")))?;
                let source = m.source.clone().unwrap_or_default();
                let rel = crate::tree::resolve(&tree, &crate::pattern::clean_rel(&source), true)?.ok_or_else(|| {
                    anyhow!(
                        "RUN --mount source {source:?}: not found in {}",
                        m.from.as_deref().unwrap_or("")
                    )
                })?;
                root.join(rel)
            }
            MountSrc::None => bail!("internal error: bind mount without a source"),
        },
        MountType::Ssh => bail!("RUN --mount=type=ssh is not supported"),
    };
    let Some(target) = target else { return Ok(()) };
    let is_file = !std::fs::metadata(&source)
        .with_context(|| format!("mount source {}", source.display()))?
        .is_dir();
    let dest = mounts::make_mount_point(merged, changes, target, is_file, cleanup)?;
    spec.mounts.push(strata_runtime::BindMount {
        source,
        destination: format!("/{dest}"),
        readonly,
    });
    Ok(())
}

/// Whether an ADD source names a git repository, as BuildKit reads it:
/// `git@host:repo`, `git://...`, or an http(s) URL whose path ends in `.git`
/// (optionally followed by `#ref[:subdir]`).
fn is_git_source(s: &str) -> bool {
    if s.starts_with("git@") || s.starts_with("git://") {
        return true;
    }
    let path = s.split('#').next().unwrap_or(s);
    path.ends_with(".git") && (s.starts_with("https://") || s.starts_with("http://") || !s.contains("://"))
}

#[cfg(test)]
mod git_source_tests {
    use super::is_git_source;

    #[test]
    fn git_sources_as_buildkit_reads_them() {
        for s in [
            "git@github.com:moby/buildkit.git",
            "git://example.com/repo",
            "https://github.com/moby/buildkit.git",
            "https://github.com/moby/buildkit.git#v0.10.1",
            "https://github.com/moby/buildkit.git#v0.10.1:docs",
            "repo.git",
        ] {
            assert!(is_git_source(s), "{s}");
        }
        for s in [
            "https://example.com/file.tar.gz",
            "https://example.com/a.git.tar",
            "src/",
            "http://h/x#y",
        ] {
            assert!(!is_git_source(s), "{s}");
        }
    }
}
