//! A build's plan and its run: the Dockerfile and context loaded once
//! (`load`), a plan per platform (`plan`: build args, the stages needed,
//! the shared state), the checks before any step (`preflight`), and one
//! platform's run of its stages (`execute`).

use super::*;

/// What every platform's build shares: the Dockerfile, `.dockerignore`, the build args.
pub(crate) struct Loaded {
    pub context_dir: PathBuf,
    pub bytes: Vec<u8>,
    pub df: Dockerfile,
    pub dockerfile_name: String,
    pub ignore: IgnoreRules,
    pub build_args: BTreeMap<String, String>,
}

pub(crate) fn load(opts: &BuildOptions, progress: &Progress, context_dir: PathBuf) -> Result<Loaded> {
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
pub(crate) fn plan(
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
        remote: None,
    };
    Ok((shared, target))
}

/// One platform's result: its config and layers, not yet an image.
pub(crate) struct Built {
    pub platform: Platform,
    /// The registry bases it used (provenance materials).
    pub materials: Vec<attest::Material>,
    pub config: strata_oci::ImageConfig,
    pub layers: Vec<strata_store::LayerRecord>,
    /// The cache key of the result (its last step's).
    pub key: String,
}

/// Runs one platform's build: one thread per needed stage, each waiting for
/// the stages it uses.
pub(crate) fn execute(shared: &Shared, target: usize, opts: &BuildOptions, store: &Store) -> Result<Built> {
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
        key: result.key.clone(),
    })
}

/// Checks the needed stages' `COPY`/`ADD` sources before any step runs: a
/// `--from` that is neither a stage nor a local image, a context source that
/// is not there (`../outside`). Words with variables are left to their step.
pub(crate) fn preflight(sh: &Shared, store: &Store) -> Result<()> {
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
            // BuildKit refuses a URL source of COPY whatever the context holds.
            if !add && c.sources.iter().any(|s| fetch::is_url(s)) {
                return Err(fail(step, Error::CopyFromUrl));
            }
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
