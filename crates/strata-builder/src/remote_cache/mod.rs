//! The build cache shared through registries and directories, in
//! BuildKit's format (`--cache-from`, `--cache-to`: `type=registry`,
//! `type=local`, `type=inline`).
//!
//! strata's step keys are not BuildKit's (BuildKit keys LLB vertices), so a
//! cache is matched in one of two ways, each safe on its own terms:
//!
//! - **By key** (caches strata wrote): each record's `digest` is the step's
//!   strata key (`sha256:<key>`), which already covers the base image's
//!   config digest and platform, the instruction as evaluated, the build
//!   args it sees and the content of what it copies; the record's result is
//!   the chain of layers after the step. A hit needs that chain to be the
//!   current step's layers plus exactly one more.
//! - **By history** (inline caches, whoever wrote them: docker BuildKit's
//!   too): the image's first layers must be exactly the current step's
//!   (same diff IDs, lowest first, from the same base layers), its history
//!   up to there equal to the current one entry by entry (`created_by` and
//!   `empty_layer`: the base's entries, then every instruction since, ENV,
//!   ARG values and all), and its next entry the step's own `created_by`
//!   with a layer. Only RUN and WORKDIR match this way: a COPY/ADD history
//!   entry does not say what was copied, so those run (or match by key).
//!
//! A hit's layer is downloaded at once, its digest and diff ID checked on
//! the way (strata-transfer's one-pass ingest); a blob that is missing or
//! does not match is a warning and the step runs. Metadata-only steps never
//! need a cache: they run (they only change the config).

mod buildkit_keys;
mod export;
mod format;
mod import;
mod location;
mod spec;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use strata_oci::{Descriptor, Digest, ImageConfig};
use strata_store::Store;

pub use format::INLINE_KEY;
pub use spec::{CacheExport, CacheImport, parse_cache_from, parse_cache_to};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// One layer a cache names: its blob and the diff ID the blob must unpack to.
#[derive(Debug, Clone)]
pub(crate) struct CachedLayer {
    pub desc: Descriptor,
    pub diff_id: Digest,
}

/// A step as built (or found) by this build, for export.
#[derive(Debug, Clone)]
pub(crate) struct StepRecord {
    pub key: String,
    /// The key before the step ("" for a stage's base).
    pub parent: String,
    /// The layers of the result, lowest first.
    pub diff_ids: Vec<Digest>,
    /// The step as a BuildKit op (None: unknown, or no op in BuildKit).
    pub bk: Option<buildkit_keys::BkOp>,
}

/// A hit in an imported cache: the layer the step makes, and where it is.
pub(crate) struct RemoteHit {
    pub source: usize,
    pub layer: CachedLayer,
    /// How it matched (`key` or `history`), for the log.
    pub how: &'static str,
}

/// The caches of a build: those read (`--cache-from`) and what to write
/// (`--cache-to`), shared by every platform's build.
pub(crate) struct RemoteCache {
    rt: tokio::runtime::Runtime,
    imports: Vec<import::Imported>,
    exports: Vec<CacheExport>,
    /// The steps every platform's build went through, in order.
    steps: Mutex<Vec<StepRecord>>,
    /// Steps described as BuildKit ops before they ran, by key.
    described: Mutex<HashMap<String, buildkit_keys::BkOp>>,
    warned: Mutex<BTreeSet<String>>,
    client: strata_registry::ClientOptions,
}

impl RemoteCache {
    /// Reads every `--cache-from` (a cache that cannot be read is a warning:
    /// the build runs without it, as BuildKit's).
    pub fn open(
        from: &[CacheImport],
        to: &[CacheExport],
        client: strata_registry::ClientOptions,
        progress: &Progress,
    ) -> Result<Option<RemoteCache>> {
        if from.is_empty() && to.is_empty() {
            return Ok(None);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the cache's I/O runtime: {e}")))?;
        let mut imports = Vec::new();
        for f in from {
            let v = progress.start(&format!("importing cache manifest from {}", f.name()));
            match rt.block_on(import::read(f, &client)) {
                Ok((imported, warnings)) => {
                    for w in warnings {
                        v.log(&format!("warning: {w}"));
                    }
                    v.done();
                    imports.push(imported);
                }
                Err(e) => {
                    v.log(&format!("warning: {}: {e}; building without it", f.name()));
                    v.done();
                }
            }
        }
        Ok(Some(RemoteCache {
            rt,
            imports,
            exports: to.to_vec(),
            steps: Mutex::new(Vec::new()),
            described: Mutex::new(HashMap::new()),
            warned: Mutex::new(BTreeSet::new()),
            client,
        }))
    }

    pub fn has_imports(&self) -> bool {
        !self.imports.is_empty()
    }

    /// Notes a step (or a stage's base, with an empty parent) for export.
    pub fn note(&self, key: &str, parent: &str, config: &ImageConfig) {
        if self.exports.is_empty() {
            return;
        }
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        if steps.iter().any(|s| s.key == key) {
            return;
        }
        let described = self.described.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        // A registry base: BuildKit's `docker-image://` source, keyed by its layers.
        let bk = match described {
            Some(op) => Some(op),
            None if parent.is_empty() && !config.rootfs.diff_ids.is_empty() => {
                strata_oci::chain_ids(&config.rootfs.diff_ids)
                    .last()
                    .map(|c| buildkit_keys::BkOp::Image {
                        chain_id: c.to_string(),
                    })
            }
            None => None,
        };
        steps.push(StepRecord {
            key: key.to_string(),
            parent: parent.to_string(),
            diff_ids: config.rootfs.diff_ids.clone(),
            bk,
        });
    }

    /// Describes the RUN with key `key` (about to run) as BuildKit's
    /// Dockerfile frontend makes it, for the BuildKit keys of an exported
    /// cache: `args` as run, the stage's config before it, the build
    /// arguments it sees (name, value; in order), its network (`RUN
    /// --network`, else the build's) and platform. Call it only for a RUN
    /// without `--mount` or heredocs (BuildKit's op differs).
    pub fn describe_run(
        &self,
        key: &str,
        args: &[String],
        config: Option<&strata_oci::ContainerConfig>,
        build_args: &[(String, String)],
        network: Option<&str>,
        platform: &strata_oci::Platform,
    ) {
        if self.exports.is_empty() {
            return;
        }
        let network = match network {
            None | Some("default") | Some("sandbox") => 0,
            Some("host") => 1,
            Some("none") => 2,
            Some(_) => return,
        };
        let env = config.and_then(|c| c.env.clone()).unwrap_or_default();
        let cwd = config
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let op = buildkit_keys::BkOp::Exec(buildkit_keys::ExecOp {
            args: args.to_vec(),
            env: buildkit_keys::exec_env(&env, build_args),
            cwd,
            user: config.and_then(|c| c.user.clone()).unwrap_or_default(),
            network,
            os: platform.os.clone(),
            arch: platform.architecture.clone(),
            variant: platform.variant.clone(),
        });
        self.described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), op);
    }

    /// Describes the COPY/ADD with key `key` (about to run) of `sources`
    /// (as written) from the context `tree` to `dest` (as written) in
    /// working directory `cwd`. Call it only for a plain COPY/ADD of local
    /// sources: no `--from`, `--chown`, `--link`, `--parents`,
    /// `--exclude`, URLs or heredocs. Only regular files get a key (a
    /// directory's checksum is not reproduced).
    #[allow(clippy::too_many_arguments)]
    pub fn describe_copy(
        &self,
        key: &str,
        tree: &dyn crate::tree::SourceTree,
        sources: &[String],
        dest: &str,
        cwd: &str,
        chmod: Option<&str>,
        add: bool,
    ) {
        if self.exports.is_empty() {
            return;
        }
        if let Some(op) = buildkit_keys::context_copy(tree, sources, dest, cwd, chmod, add) {
            self.described
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.to_string(), buildkit_keys::BkOp::Copy(op));
        }
    }

    /// The layer a step with `key` makes on `current`, by key, else (with
    /// its history text) by history; Err: why none does.
    pub fn lookup(
        &self,
        key: &str,
        current: &ImageConfig,
        created_by: Option<&str>,
    ) -> std::result::Result<RemoteHit, String> {
        let mut why = Vec::new();
        for (i, imp) in self.imports.iter().enumerate() {
            match imp.lookup(key, current, created_by) {
                Ok((layer, how)) => {
                    return Ok(RemoteHit { source: i, layer, how });
                }
                Err(w) => why.push(format!("{}: {w}", imp.name)),
            }
        }
        Err(why.join("; "))
    }

    /// Brings a hit's layer into the store (verified: blob digest and diff
    /// ID), unless a form of it is there already.
    pub fn fetch(&self, store: &mut Store, hit: &RemoteHit) -> std::result::Result<(), String> {
        if !store
            .held_layer_blobs(&hit.layer.diff_id)
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Ok(());
        }
        let imp = &self.imports[hit.source];
        self.rt
            .block_on(import::fetch_layer(&imp.loc, store, &hit.layer))
            .map_err(|e| format!("{}: layer {}: {e}", imp.name, hit.layer.desc.digest))
    }

    /// The name of the cache a hit came from.
    pub fn source_name(&self, hit: &RemoteHit) -> &str {
        &self.imports[hit.source].name
    }

    /// Says `msg` once per build.
    pub fn warn_once(&self, progress: &Progress, msg: String) {
        let mut w = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if w.insert(msg.clone()) {
            progress.line(format!("[Warning] {msg}"));
        }
    }

    /// Whether an inline cache goes into the image (`--cache-to type=inline`).
    pub fn wants_inline(&self) -> bool {
        self.exports.iter().any(|e| matches!(e.spec, spec::Target::Inline))
    }

    /// The inline cache for an image with `config` whose last step has key
    /// `final_key`: set into the config (records naming its layers).
    pub fn inline_into(&self, config: &mut ImageConfig, final_key: &str) -> Result<()> {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        export::inline_into(&steps, config, final_key)
    }

    /// Writes every registry and local `--cache-to` (the keys the build's
    /// results end at: `finals`).
    pub fn export(&self, store: &mut Store, finals: &[String], progress: &Progress) -> Result<()> {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for e in &self.exports {
            if matches!(e.spec, spec::Target::Inline) {
                continue;
            }
            let v = progress.start(&format!("exporting cache to {}", e.name()));
            let r = export::write(&self.rt, store, &steps, finals, e, &self.client);
            match r {
                Ok(report) => {
                    v.log(&report);
                    v.done();
                }
                Err(err) if e.ignore_error => {
                    v.log(&format!("warning: {err} (ignore-error=true)"));
                    v.done();
                }
                Err(err) => {
                    v.error(&err.to_string());
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}
