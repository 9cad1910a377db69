//! Building one stage: its base, then each instruction, through the cache.
//!
//! This module drives a stage (its steps in order, each dispatched by
//! instruction and run through the cache); the instructions live beside it:
//! [`base`] (`FROM`), [`run`] (`RUN`, with [`run_mounts`] for its
//! `--mount`s), [`copy_add`] (`COPY`/`ADD`), [`metadata`] (`WORKDIR` and the
//! config-only instructions), [`sources`] (what a step reads from another
//! stage, an image or the context) and [`step_root`] (the snapshot a step
//! writes in, and its layer).

mod base;
mod copy_add;
mod metadata;
mod run;
mod run_mounts;
mod sources;
mod step_root;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{Ctx, Error, Result};
use strata_build::{Instruction, Lex, Step};
use strata_layer::{Compression, WriteOptions};
use strata_oci::{ContainerConfig, Digest, History, ImageConfig, Platform};
use strata_snapshot::Snapshotter;
use strata_store::Store;

use crate::Shared;
use crate::cache::{self, StepInputs};
use crate::fetch;
use crate::progress::Vertex;

pub(crate) use base::{from_platform, platform_absent};
pub(crate) use sources::resolve_from_image;
use step_root::LayerMade;
pub use step_root::remove_stale_snapshots;

/// A finished stage.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub config: ImageConfig,
    pub key: String,
    /// The platform the stage was built for (`FROM --platform`, else the target's).
    pub platform: Platform,
    /// Whether that platform was asked for (bases are resolved for it).
    pub explicit_platform: bool,
    /// Its ARGs, which a stage built on it (`FROM it`) inherits.
    pub args: ArgState,
}

/// The ARGs of a stage, as BuildKit keeps them in its dispatch state (and
/// a child stage, `FROM parent`, inherits them).
#[derive(Debug, Clone, Default)]
pub struct ArgState {
    /// Every ARG declared so far, in order (a child's start with its
    /// parent's), with the value it got (None: declared without one).
    pub declared: Vec<(String, Option<String>)>,
    /// The values ARGs set in the build's environment, over the config's
    /// Env: an ARG declared after an ENV of the same name wins, until the
    /// next ENV of that name. Not in the image config.
    pub env: Vec<(String, String)>,
    /// The history entries of ARG steps (index, `created_by`). Their text
    /// names the value, which is not part of the ARG step's cache key (only
    /// the steps that use a value depend on it): set again after a hit.
    pub history: Vec<(usize, String)>,
}

impl ArgState {
    /// Sets `name`'s value in the environment (in place when already there).
    fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value.to_string(),
            None => self.env.push((name.to_string(), value.to_string())),
        }
    }

    fn env_value(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

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
    /// ARGs declared in this stage (and its parent stages).
    args: ArgState,
    cmd_set: bool,
    /// Some step of this stage was rebuilt (later misses follow from it).
    missed: bool,
    /// Why a hidden (metadata) step missed, told with the next shown step.
    pending_reason: Option<String>,
    /// The base as named (after expansion).
    base_name: String,
    /// The stage's platform: `FROM --platform`, the base stage's, else the target's.
    platform: Platform,
    /// Whether that platform was asked for (`--platform` or `FROM --platform`).
    explicit_platform: bool,
    /// The layer an imported cache gave the step being run (`--cache-from`):
    /// its exec records it instead of making one.
    replay: Option<Digest>,
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
    // A multi-platform build names the platform in every step (as BuildKit).
    let label = match (&sh.platform_label, label) {
        (Some(p), Some(l)) => Some(format!("{p} {l}")),
        (Some(p), None) => Some(p.clone()),
        (None, l) => l,
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
        args: ArgState::default(),
        cmd_set: false,
        missed: false,
        pending_reason: None,
        base_name: String::new(),
        platform: sh.platform.clone(),
        explicit_platform: sh.explicit_platform,
        replay: None,
    };
    let mut steps = run.base()?;
    steps.extend(stage.instructions.iter().cloned());
    run.total = 1 + steps.iter().filter(|s| shows(&s.instruction)).count();
    run.show_from()?;
    for (i, step) in steps.iter().enumerate() {
        if sh.failed.load(Ordering::SeqCst) {
            return Err(Error::Canceled);
        }
        run.step(i, step)?;
    }
    Ok(StageResult {
        config: run.config,
        key: run.key,
        platform: run.platform,
        explicit_platform: run.explicit_platform,
        args: run.args,
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

impl<'a> StageRun<'a> {
    fn lex(&self) -> Lex {
        self.sh.lex()
    }

    fn cc(&mut self) -> &mut ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    /// Variables for expansion: the stage's ENV, with the values its ARGs
    /// set over them (the build's environment, as BuildKit's).
    fn vars(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        if let Some(env) = self.config.config.as_ref().and_then(|c| c.env.as_ref()) {
            for e in env {
                let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                m.insert(k.to_string(), v.to_string());
            }
        }
        for (k, v) in &self.args.env {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// The environment a RUN gets: the config's Env with the ARGs' values
    /// set over it (in place, else appended).
    fn run_env(&self) -> Vec<String> {
        let mut env = self
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        for (k, v) in &self.args.env {
            let kv = format!("{k}={v}");
            match env.iter_mut().find(|e| e.split('=').next() == Some(k.as_str())) {
                Some(e) => *e = kv,
                None => env.push(kv),
            }
        }
        env
    }

    /// `|N A=… B=… ` before a RUN's command in its history, as BuildKit
    /// writes it: every ARG declared so far, in order, each once, with its
    /// value in the build's environment (empty when it has none).
    fn run_args_prefix(&self) -> String {
        let vars = self.vars();
        let mut shown: Vec<(String, String)> = Vec::new();
        for (k, own) in &self.args.declared {
            let v = vars.get(k).cloned().or_else(|| own.clone()).unwrap_or_default();
            match shown.iter_mut().find(|(n, _)| n == k) {
                Some(e) => e.1 = v,
                None => shown.push((k.clone(), v)),
            }
        }
        if shown.is_empty() {
            return String::new();
        }
        let list: Vec<String> = shown.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("|{} {} ", shown.len(), list.join(" "))
    }

    /// Sets the ARG steps' history text again (after a cache hit).
    fn patch_arg_history(&mut self) {
        for (i, text) in &self.args.history {
            if let Some(h) = self.config.history.get_mut(*i) {
                h.created_by = Some(text.clone());
            }
        }
    }

    /// Expands one word; returns it and the ARG names it used.
    fn expand(&self, word: &str) -> Result<(String, BTreeSet<String>)> {
        let vars = self.vars();
        let lookup = |n: &str| vars.get(n).cloned();
        let ex = self.lex().process(word, &lookup)?;
        // The names whose value an ARG set (not an ENV).
        let used = ex
            .matched
            .into_iter()
            .filter(|n| self.args.env_value(n).is_some())
            .collect();
        Ok((ex.result, used))
    }

    fn arg_values(&self, names: &BTreeSet<String>) -> BTreeMap<String, String> {
        names
            .iter()
            .filter_map(|n| self.args.env_value(n).map(|v| (n.clone(), v.to_string())))
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
            if matches!(e, Error::DependencyFailed { .. }) {
                return e;
            }
            let msg = e.chain();
            let mut lines = vec![String::new()];
            lines.extend(self.sh.snippet(step.start_line, step.end_line));
            self.sh.progress.lines(&lines);
            let msg = msg.strip_prefix("failed to solve: ").unwrap_or(&msg).to_string();
            Error::Step {
                dockerfile: self.sh.dockerfile_name.clone(),
                line: step.start_line,
                message: msg,
                error: Box::new(e),
            }
        })
    }

    /// Runs a step through the cache: a hit takes the cached config; a miss
    /// says why, runs `exec` (which updates `self.config` and returns the new
    /// layer, if any) and records the result. A step with a layer that an
    /// imported cache has (by key, or by `created_by` for history matches)
    /// runs `exec` with that layer to replay (see `remote_cache`).
    fn cached(
        &mut self,
        step: &Step,
        position: &str,
        inputs: StepInputs,
        vertex: Option<Vertex<'a>>,
        created_by: Option<&str>,
        exec: impl FnOnce(&mut Self, Option<&Vertex<'a>>) -> Result<Option<Digest>>,
    ) -> Result<()> {
        let parent = self.key.clone();
        let key = inputs.key(&parent);
        let no_cache = self.sh.no_cache || self.sh.no_cache_stages.contains(&self.index);
        if !no_cache && let Some(hit) = cache::lookup(&self.store, &key)? {
            self.config = hit.config;
            self.patch_arg_history();
            self.key = key;
            self.note_step(&parent);
            if let Some(v) = vertex {
                v.cached();
            }
            return Ok(());
        }
        let remote = self.sh.remote.clone().filter(|r| r.has_imports());
        let mut remote_why = None;
        if !no_cache
            && vertex.is_some()
            && let Some(r) = &remote
        {
            match r.lookup(&key, &self.config, created_by) {
                Ok(hit) => match r.fetch(&mut self.store, &hit) {
                    Ok(()) => {
                        self.replay = Some(hit.layer.diff_id.clone());
                        let made = exec(self, vertex.as_ref());
                        self.replay = None;
                        let diff_id = match made {
                            Ok(d) => d,
                            Err(e) => {
                                if let Some(v) = vertex {
                                    v.error(&e.chain());
                                }
                                return Err(e);
                            }
                        };
                        cache::record(&self.store, &key, diff_id.as_ref(), &self.config)?;
                        cache::record_inputs(&self.store, &parent, position, &key, &inputs)?;
                        self.key = key;
                        self.note_step(&parent);
                        if let Some(v) = vertex {
                            v.log(&format!(
                                "importing cache from {} (matched by {})",
                                r.source_name(&hit),
                                hit.how
                            ));
                            v.cached();
                        }
                        return Ok(());
                    }
                    Err(e) => {
                        r.warn_once(
                            &self.sh.progress,
                            format!(
                                "cache ignored for {}: {e}; the step runs",
                                cache::one_line(&fetch::redact_text(&step.original), 60)
                            ),
                        );
                        remote_why = Some(format!("its layer could not be used ({e})"));
                    }
                },
                Err(why) => remote_why = Some(why),
            }
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
            if let (Some(v), Some(why)) = (&vertex, &remote_why) {
                v.log(&format!("not in the imported cache: {why}"));
            }
        }
        let diff_id = match exec(self, vertex.as_ref()) {
            Ok(d) => d,
            Err(e) => {
                if let Some(v) = vertex {
                    v.error(&e.chain());
                }
                return Err(e);
            }
        };
        cache::record(&self.store, &key, diff_id.as_ref(), &self.config)?;
        cache::record_inputs(&self.store, &parent, position, &key, &inputs)?;
        self.key = key;
        self.note_step(&parent);
        if let Some(v) = vertex {
            v.done();
        }
        Ok(())
    }

    /// Notes the step just done (key `self.key`, after `parent`) for `--cache-to`.
    fn note_step(&self, parent: &str) {
        if let Some(r) = &self.sh.remote {
            r.note(&self.key, parent, &self.config);
        }
    }

    /// The layer an imported cache gave the step being run, as made.
    fn take_replay(&mut self) -> Option<LayerMade> {
        self.replay.take().map(|diff_id| LayerMade { diff_id })
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

    /// Waits for stage `j`, which this one uses: its failure fails this one as a follow-up.
    fn wait_for_stage(&self, j: usize) -> Result<std::sync::Arc<StageResult>> {
        self.sh.wait_for(j).map_err(|_| Error::DependencyFailed {
            stage: crate::stage_name(&self.sh.df, j),
        })
    }
}

fn scratch_dir(root: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    // The pid in the name: a killed build's scratch is the next process's
    // to remove (strata-store's leftovers rule).
    tempfile::Builder::new()
        .prefix(&format!("build-{}-{prefix}", std::process::id()))
        .tempdir_in(&tmp)
        .ctx(|| format!("creating a directory in {}", tmp.display()))
}
