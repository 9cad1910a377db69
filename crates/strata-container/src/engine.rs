//! The container lifecycle over the store, the snapshotter and the runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Ctx, Error, Result, RunFailed};
use strata_oci::{ContainerConfig, Digest, ImageConfig, Platform, media};
use strata_runtime::{BindMount, ExecSpec, RunSpec};
use strata_snapshot::{Driver, Snapshotter};
use strata_store::{Store, StoreLock};

use crate::names;
use crate::record::{ContainerRecord, MountRecord};
use crate::volumes::Volumes;

/// `-v` as given: `HOST:CTR[:ro]`, `NAME:CTR[:ro]` or `CTR` (anonymous).
#[derive(Debug, Clone)]
pub struct VolumeArg(pub String);

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    /// Replaces the image's Cmd (and follows the entrypoint).
    pub cmd: Vec<String>,
    /// `--entrypoint`: `Some("")` clears the image's.
    pub entrypoint: Option<String>,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub network: Option<String>,
    /// `-p`, `-P`, `--expose`, `--network-alias`.
    pub publish: Vec<String>,
    pub publish_all: bool,
    pub expose: Vec<String>,
    pub aliases: Vec<String>,
    pub volumes: Vec<VolumeArg>,
    pub readonly_root: bool,
    pub tty: bool,
    pub stdin: bool,
    pub auto_remove: bool,
    /// The creating process runs the container in the foreground and
    /// removes it (`run --rm` without `-d`): said before the row exists, so
    /// a creator killed before it starts the container leaves no container
    /// behind (the next [`Containers::reap`] removes it).
    pub followed_by_creator: bool,
    pub labels: Vec<String>,
    pub security: crate::SecurityOptions,
    /// `--restart no|always|unless-stopped|on-failure[:N]`.
    pub restart: Option<String>,
    /// `--platform`: the image must be for it (`os/arch[/variant]`).
    pub platform: Option<String>,
}

/// The image is for the `--platform` asked (Docker's words when not), and
/// this host runs its platform: natively or through a registered emulator
/// (the kernel's binfmt_misc handler then runs it; nothing is added to
/// the container). Checked before anything is made.
fn check_platform(image: &str, cfg: &ImageConfig, wanted: Option<&Platform>) -> Result<()> {
    let found = cfg.platform();
    if let Some(w) = wanted
        && !w.matches(&found)
    {
        return Err(Error::PlatformMismatch {
            reference: image.to_string(),
            found: found.to_string(),
            wanted: w.to_string(),
        });
    }
    // An image that does not say (an old or hand-made config) is tried.
    if found.os.is_empty() || found.architecture.is_empty() {
        return Ok(());
    }
    strata_emulation::can_run(&found)?;
    Ok(())
}

/// A container's state as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Created,
    Running { pid: i32, started_at: String },
    Exited { code: i32, finished_at: String },
}

impl Status {
    pub fn is_running(&self) -> bool {
        matches!(self, Status::Running { .. })
    }
    /// Docker's `State.Status` word.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running { .. } => "running",
            Status::Exited { .. } => "exited",
        }
    }
}

pub struct Containers {
    pub store: Store,
    pub snap: Snapshotter,
    /// Set when overlay was unavailable and the copy driver is used.
    pub driver_note: Option<String>,
}

impl Containers {
    pub fn open(root: &Path) -> Result<Containers> {
        let store = Store::open(root)?;
        let (driver, note) = match std::env::var("STRATA_STORAGE_DRIVER").ok().as_deref() {
            Some(d) if !d.is_empty() => (Driver::parse(d)?, None),
            _ => strata_snapshot::detect_driver(root),
        };
        let snap = Snapshotter::new(root, driver);
        Ok(Containers {
            store,
            snap,
            driver_note: note,
        })
    }

    pub fn volumes(&self) -> Volumes {
        Volumes::new(self.store.root())
    }

    /// The container's runtime state directory (`state.json`, `ctr.log`).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.snap.snapshot_dir(id)
    }

    pub fn merged_dir(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("merged")
    }

    // ---- records ----

    fn insert(&self, rec: &ContainerRecord) -> Result<()> {
        self.store.insert_container(&strata_store::ContainerRow {
            id: rec.id.clone(),
            name: rec.name.clone(),
            image_id: rec.image_id.clone(),
            image_ref: rec.image_ref.clone(),
            created: rec.created.clone(),
            config: serde_json::to_string(rec)?,
        })?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        for json in self.store.container_configs()? {
            out.push(serde_json::from_str(&json)?);
        }
        Ok(out)
    }

    /// By full ID, name, or unique ID prefix (as Docker).
    pub fn find(&self, what: &str) -> Result<ContainerRecord> {
        let all = self.list()?;
        if let Some(c) = all
            .iter()
            .find(|c| c.id == what || c.name == what || c.name == what.trim_start_matches('/'))
        {
            return Ok(c.clone());
        }
        let matches: Vec<_> = all
            .iter()
            .filter(|c| !what.is_empty() && c.id.starts_with(what))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NoSuchContainer(what.to_string())),
            _ => Err(Error::AmbiguousPrefix(what.to_string())),
        }
    }

    fn delete_row(&self, id: &str) -> Result<()> {
        self.store.delete_container(id)?;
        Ok(())
    }

    // ---- create ----

    pub fn image_config(&self, id: &Digest) -> Result<ImageConfig> {
        let bytes = self.store.read_blob(id, media::MAX_DOCUMENT_SIZE)?;
        Ok(ImageConfig::parse(&bytes)?)
    }

    pub fn create(&mut self, image: &str, opts: &CreateOptions) -> Result<ContainerRecord> {
        let wanted = match &opts.platform {
            Some(p) => {
                let p = Platform::parse(p).map_err(|e| Error::InvalidPlatform(e.to_string()))?;
                strata_emulation::known_platform(&p)?;
                Some(p)
            }
            None => None,
        };
        // The image is leased from resolving it until the container's row
        // holds it: `image prune` and `rmi` (which decide under the store's
        // exclusive lock) then keep it, its blobs and unpacked layers, while
        // the root is unpacked and prepared. The shared lock only covers
        // resolve → lease, so containers are made concurrently; a prune
        // that ran first leaves Docker's "No such image". See
        // strata_store::Lease.
        let lock = StoreLock::shared(self.store.root())?;
        // Of a multi-platform image, the platform asked for.
        let resolved = match &wanted {
            Some(p) => strata_image::resolve_platform(&self.store, image, p)?,
            None => strata_image::resolve(&self.store, image)?,
        };
        let lease = self.store.lease_image(&resolved.image.id)?;
        drop(lock);
        let image_cfg = self.image_config(&resolved.image.id)?;
        check_platform(image, &image_cfg, wanted.as_ref())?;
        let mut config = image_cfg.config.clone().unwrap_or_default();
        // Process: Docker's ENTRYPOINT/CMD rules.
        let entrypoint: Vec<String> = match &opts.entrypoint {
            Some(e) if e.is_empty() => Vec::new(),
            Some(e) => vec![e.clone()],
            None => config.entrypoint.clone().unwrap_or_default(),
        };
        let cmd: Vec<String> = if !opts.cmd.is_empty() {
            opts.cmd.clone()
        } else if opts.entrypoint.is_some() {
            Vec::new()
        } else {
            config.cmd.clone().unwrap_or_default()
        };
        let args: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if args.is_empty() {
            return Err(Error::NoCommand);
        }
        if opts.entrypoint.is_some() {
            config.entrypoint = if entrypoint.is_empty() {
                None
            } else {
                Some(entrypoint.clone())
            };
        }
        config.cmd = if cmd.is_empty() { None } else { Some(cmd.clone()) };
        // Environment: image, then --env-file, then -e.
        let mut env = config.env.clone().unwrap_or_default();
        let mut extra = Vec::new();
        for f in &opts.env_files {
            let text = std::fs::read_to_string(f).ctx(|| format!("open {}", f.display()))?;
            for line in text.lines() {
                let line = line.trim_start();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                extra.push(line.to_string());
            }
        }
        extra.extend(opts.env.iter().cloned());
        for e in extra {
            let kv = if e.contains('=') {
                e
            } else {
                // `-e NAME` takes the caller's value, or nothing.
                match std::env::var(&e) {
                    Ok(v) => format!("{e}={v}"),
                    Err(_) => continue,
                }
            };
            let key = kv.split('=').next().unwrap_or_default().to_string();
            if key.is_empty() {
                return Err(Error::InvalidEnv(kv));
            }
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(kv);
        }
        config.env = Some(env);
        if let Some(w) = &opts.workdir {
            if !w.starts_with('/') {
                return Err(Error::RelativeWorkdir(w.clone()));
            }
            config.working_dir = Some(w.clone());
        }
        if let Some(u) = &opts.user {
            config.user = Some(u.clone());
        }
        for l in &opts.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            config
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(k.to_string(), v.to_string());
        }
        let net = self.choose_network(opts, &mut config)?;
        let (capabilities, security) = opts.security.resolve()?;
        let restart = match &opts.restart {
            Some(r) => strata_runtime::RestartPolicy::parse(r).map_err(Error::InvalidRestart)?,
            None => strata_runtime::RestartPolicy::No,
        };
        if restart != strata_runtime::RestartPolicy::No && opts.auto_remove {
            return Err(Error::InvalidRestart(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        let id = names::random_id();
        let name = match &opts.name {
            Some(n) => {
                let n = n.trim_start_matches('/').to_string();
                names::check_name(&n)?;
                n
            }
            None => {
                // Generated names must not collide (Docker retries too).
                let taken: std::collections::HashSet<String> = self.list()?.into_iter().map(|c| c.name).collect();
                let mut name = names::random_name(&id);
                for _ in 0..16 {
                    if !taken.contains(&name) {
                        break;
                    }
                    name = names::random_name(&names::random_id());
                }
                if taken.contains(&name) {
                    name = format!("{name}_{}", &id[..8]);
                }
                name
            }
        };
        let mounts = self.plan_mounts(&opts.volumes, &config)?;
        if let Some(v) = &mut config.volumes {
            for m in &mounts {
                v.entry(m.destination.clone()).or_insert_with(|| serde_json::json!({}));
            }
        }
        let chain = crate::rootfs::ensure_unpacked(&self.store, &self.snap, &resolved.image.diff_ids)?;
        let rec = ContainerRecord {
            hostname: opts.hostname.clone().unwrap_or_else(|| id[..12].to_string()),
            id: id.clone(),
            name,
            image_id: resolved.image.id.to_string(),
            image_ref: image.to_string(),
            created: strata_image::now_rfc3339(),
            config,
            args,
            network: net.mode,
            network_mode: Some(opts.network.clone().unwrap_or_else(|| "default".into())),
            mounts,
            readonly_root: opts.readonly_root,
            tty: opts.tty,
            stdin: opts.stdin,
            auto_remove: opts.auto_remove,
            chain: chain.iter().map(|c| c.to_string()).collect(),
            capabilities,
            security,
            restart,
            ports: net.ports,
            publish_all: net.publish_all,
            aliases: net.aliases,
        };
        self.snap.prepare_container(&id, &chain)?;
        if opts.auto_remove && opts.followed_by_creator {
            self.follow_by_me(&rec)?;
        }
        let mut rec = rec;
        let mut inserted = self.insert(&rec);
        // A generated name another `create` took meanwhile (the check above
        // and the insert are not one transaction): another name, as Docker
        // retries its random names.
        for _ in 0..8 {
            match &inserted {
                Err(crate::Error::Store(strata_store::Error::Conflict(_))) if opts.name.is_none() => {
                    rec.name = format!("{}_{}", names::random_name(&names::random_id()), &id[..8]);
                    inserted = self.insert(&rec);
                }
                _ => break,
            }
        }
        if let Err(e) = inserted {
            let _ = self.snap.remove(&id);
            return Err(e);
        }
        // The row holds the image now. A lease not released (an error here)
        // goes with this process.
        let _ = lease.release();
        Ok(rec)
    }

    /// `-v` arguments and the image's VOLUMEs become mounts; named volumes
    /// are created when missing, each image VOLUME not covered by `-v` gets
    /// an anonymous volume.
    fn plan_mounts(&self, args: &[VolumeArg], config: &ContainerConfig) -> Result<Vec<MountRecord>> {
        let vols = self.volumes();
        let mut out: Vec<MountRecord> = Vec::new();
        for VolumeArg(spec) in args {
            let parts: Vec<&str> = spec.split(':').collect();
            let (src, dst, ro) = match parts.as_slice() {
                [dst] => (None, *dst, false),
                [src, dst] => (Some(*src), *dst, false),
                [src, dst, o] => {
                    let mut ro = false;
                    for opt in o.split(',') {
                        match opt {
                            "ro" => ro = true,
                            "rw" | "z" | "Z" | "" => {}
                            other => return Err(Error::InvalidVolumeMode(other.to_string())),
                        }
                    }
                    (Some(*src), *dst, ro)
                }
                _ => return Err(Error::InvalidVolumeSpec(spec.clone())),
            };
            if !dst.starts_with('/') {
                return Err(Error::RelativeVolumeDestination(spec.clone()));
            }
            if out.iter().any(|m| m.destination == dst) {
                return Err(Error::DuplicateMountPoint(dst.to_string()));
            }
            let rec = match src {
                Some(s) if s.starts_with('/') => {
                    let bm = BindMount::parse(&format!("{s}:{dst}"))?;
                    if !bm.source.exists() {
                        std::fs::create_dir_all(&bm.source)
                            .ctx(|| format!("creating the bind source {}", bm.source.display()))?;
                    }
                    MountRecord {
                        kind: "bind".into(),
                        source: s.into(),
                        destination: dst.into(),
                        readonly: ro,
                    }
                }
                Some(name) => {
                    vols.ensure(name)?;
                    MountRecord {
                        kind: "volume".into(),
                        source: name.into(),
                        destination: dst.into(),
                        readonly: ro,
                    }
                }
                None => {
                    let name = names::random_id();
                    vols.ensure(&name)?;
                    MountRecord {
                        kind: "anonymous".into(),
                        source: name,
                        destination: dst.into(),
                        readonly: false,
                    }
                }
            };
            out.push(rec);
        }
        for dst in config.volumes.iter().flat_map(|v| v.keys()) {
            if out.iter().any(|m| &m.destination == dst) {
                continue;
            }
            let name = names::random_id();
            vols.ensure(&name)?;
            out.push(MountRecord {
                kind: "anonymous".into(),
                source: name,
                destination: dst.clone(),
                readonly: false,
            });
        }
        Ok(out)
    }

    fn ensure_mounted(&self, rec: &ContainerRecord) -> Result<PathBuf> {
        let merged = self.merged_dir(&rec.id);
        if !self.snap.is_mounted(&merged)? {
            let snap = self.snap.get(&rec.id)?;
            self.snap.mount(&snap, &merged, false)?;
        }
        Ok(merged)
    }

    /// Unmounts the root of a container that is not running.
    pub fn release(&self, rec: &ContainerRecord) -> Result<()> {
        let merged = self.merged_dir(&rec.id);
        if self.snap.is_mounted(&merged)? && !self.status(rec).is_running() {
            self.snap.unmount(&merged)?;
        }
        Ok(())
    }

    /// The process spec for the container's main process.
    fn run_spec(&self, rec: &ContainerRecord, root: &Path) -> Result<RunSpec> {
        let cfg = &rec.config;
        let user = cfg.user.clone().unwrap_or_default();
        let resolved =
            strata_runtime::resolve_user(root, if user.is_empty() { "0" } else { &user }).map_err(|source| {
                Error::UnknownUser {
                    user: user.clone(),
                    source,
                }
            })?;
        let mut spec = RunSpec::new(root, rec.args.clone());
        spec.env = process_env(cfg.env.clone().unwrap_or_default(), &resolved.home, rec.tty);
        spec.cwd = cfg
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        spec.user = resolved.user;
        spec.hostname = rec.hostname.clone();
        spec.network = crate::net::runtime_network(&rec.network);
        spec.readonly_root = rec.readonly_root;
        spec.tty = rec.tty;
        spec.stdin = rec.stdin;
        spec.capabilities = rec.capabilities;
        spec.security = rec.security.clone();
        spec.restart = rec.restart;
        let vols = self.volumes();
        for m in &rec.mounts {
            let source = match m.kind.as_str() {
                "bind" => PathBuf::from(&m.source),
                _ => vols.data_dir(&m.source),
            };
            spec.mounts.push(BindMount {
                source,
                destination: m.destination.clone(),
                readonly: m.readonly,
            });
        }
        Ok(spec)
    }

    /// Starts the container in the background (its monitor outlives us).
    pub fn start(&self, rec: &ContainerRecord) -> Result<i32> {
        self.start_counted(rec, 0)
    }

    /// [`Containers::start`] as the `restart_count`-th restart.
    fn start_counted(&self, rec: &ContainerRecord, restart_count: u32) -> Result<i32> {
        if self.status(rec).is_running() {
            return Ok(0);
        }
        // Held until the monitor runs: the monitor, forked meanwhile,
        // inherits it and holds it while the container runs.
        let _starting = crate::start_lock::lock(&self.state_dir(&rec.id), true);
        let _ = std::fs::remove_file(self.state_dir(&rec.id).join(FOREGROUND));
        // An explicit start brings the restart policy back.
        strata_runtime::clear_stopped(&self.state_dir(&rec.id));
        let root = self.ensure_mounted(rec)?;
        let started = (|| {
            let mut spec = self.run_spec(rec, &root)?;
            spec.restart_count = restart_count;
            self.network_up(rec, &root, &mut spec)?;
            strata_runtime::spawn_detached(&spec, &self.state_dir(&rec.id)).map_err(|e| {
                self.network_down(&spec);
                RunFailed(e).into()
            })
        })();
        if started.is_err() {
            // A container that did not start keeps no mount (found by the bench).
            let _ = self.snap.unmount(&root);
        }
        started
    }

    /// Runs the container attached to the caller's terminal (`-i`/`-t`):
    /// returns the exit code. State is kept in `state.json` like a detached run.
    pub fn run_attached(&self, rec: &ContainerRecord) -> Result<i32> {
        let root = self.ensure_mounted(rec)?;
        let prepared = self
            .run_spec(rec, &root)
            .and_then(|mut spec| self.network_up(rec, &root, &mut spec).map(|()| spec));
        let spec = match prepared {
            Ok(spec) => spec,
            Err(e) => {
                let _ = self.snap.unmount(&root);
                return Err(e);
            }
        };
        // This process supervises the container: `ps` checks it is alive.
        let dir = self.state_dir(&rec.id);
        let _ = std::fs::remove_file(dir.join("state.json"));
        strata_runtime::clear_stopped(&dir);
        let me = std::process::id() as i32;
        let mut fg = Foreground {
            pid: me,
            start_time: strata_runtime::process_start_time(me).unwrap_or(0),
            started_at: strata_image::now_rfc3339(),
            exit_code: None,
            finished_at: None,
            oom_killed: false,
        };
        write_json(&dir.join(FOREGROUND), &fg)?;
        let r = strata_runtime::run_outcome(&spec, strata_runtime::Stdio::inherit());
        self.network_down(&spec);
        fg.exit_code = Some(match &r {
            Ok(o) => o.code,
            Err(e) => e.code,
        });
        fg.oom_killed = r.as_ref().is_ok_and(|o| o.oom_killed);
        let r = r.map(|o| o.code);
        fg.finished_at = Some(strata_image::now_rfc3339());
        write_json(&dir.join(FOREGROUND), &fg)?;
        // The restart policy: later runs are detached (as Docker's, whose
        // daemon restarts the container once the attached client is gone).
        if let Ok(code) = r
            && rec.restart.should_restart(code, 0)
            && !strata_runtime::stopped_by_user(&dir)
        {
            std::thread::sleep(Duration::from_millis(100));
            let _ = self.start_counted(rec, 1);
            return Ok(code);
        }
        let _ = self.snap.unmount(&root);
        r.map_err(|e| RunFailed(e).into())
    }

    /// Removes exited containers that were started with `--rm` (a detached
    /// one ends while no strata process watches it). A foreground run's
    /// container is its own process's to remove while that process lives
    /// (removing it here would pull it from under that `run --rm`, which
    /// then fails and loses the exit code).
    pub fn reap(&self) -> Result<()> {
        for rec in self.list()? {
            // A row whose snapshot is gone is a removal a killed process
            // left half done (a snapshot exists before its row, and goes
            // before it): finish it.
            if !self.snap.exists(&rec.id) {
                let _ = self.remove(&rec, true, rec.auto_remove);
                continue;
            }
            // A created one whose creator was to run it and is gone too.
            let ended = match self.status(&rec) {
                Status::Exited { .. } => true,
                // (not while a start is under way: its creator may have
                // been killed after the monitor was forked)
                Status::Created => {
                    self.state_dir(&rec.id).join(FOLLOWER).exists()
                        && crate::start_lock::lock(&self.state_dir(&rec.id), false).is_some()
                }
                _ => false,
            };
            if rec.auto_remove && ended && !self.supervised(&rec) {
                let _ = self.remove(&rec, false, true);
            }
        }
        // Best effort: a command is not refused for another container's leftovers.
        let _ = self.sweep_networks();
        Ok(())
    }

    /// Whether a live `run` supervises the container (runs it in the
    /// foreground, or follows it and removes it itself: [`Containers::follow_by_me`]).
    pub(crate) fn supervised(&self, rec: &ContainerRecord) -> bool {
        let dir = self.state_dir(&rec.id);
        let alive = |pid: i32, start_time: u64| strata_runtime::process_start_time(pid) == Some(start_time);
        read_json::<Foreground>(&dir.join(FOREGROUND)).is_some_and(|fg| alive(fg.pid, fg.start_time))
            || read_json::<Follower>(&dir.join(FOLLOWER)).is_some_and(|f| alive(f.pid, f.start_time))
    }

    /// Says that this process follows the container to its end and then
    /// removes it (`run --rm` without `-d`): other processes' [`Containers::reap`]
    /// leave it alone while this process lives.
    pub fn follow_by_me(&self, rec: &ContainerRecord) -> Result<()> {
        let me = std::process::id() as i32;
        let f = Follower {
            pid: me,
            start_time: strata_runtime::process_start_time(me).unwrap_or(0),
        };
        write_json(&self.state_dir(&rec.id).join(FOLLOWER), &f)
    }

    pub fn wait(&self, rec: &ContainerRecord) -> Result<i32> {
        if !self.state_dir(&rec.id).join("state.json").exists() {
            return Err(Error::NotStarted(rec.name.clone()));
        }
        let (code, _) = strata_runtime::wait(&self.state_dir(&rec.id))?;
        Ok(code)
    }

    pub fn kill(&self, rec: &ContainerRecord, signal: i32) -> Result<()> {
        if !self.status(rec).is_running() {
            return Err(Error::KillNotRunning {
                name: rec.name.clone(),
                id: rec.id.clone(),
            });
        }
        strata_runtime::kill(&self.state_dir(&rec.id), signal)?;
        Ok(())
    }

    /// SIGTERM (or the image's StopSignal), then SIGKILL after `timeout`.
    pub fn stop(&self, rec: &ContainerRecord, timeout: Duration) -> Result<()> {
        let dir = self.state_dir(&rec.id);
        // Not restarted by its policy (also one waiting out its back-off).
        let _ = strata_runtime::mark_stopped(&dir);
        if self.status(rec).is_running() {
            let sig = rec
                .config
                .stop_signal
                .as_deref()
                .map(parse_signal)
                .transpose()?
                .unwrap_or(libc::SIGTERM);
            let _ = strata_runtime::kill(&dir, sig);
            let deadline = Instant::now() + timeout;
            while self.status(rec).is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.status(rec).is_running() {
                let _ = strata_runtime::kill(&dir, libc::SIGKILL);
                let _ = strata_runtime::wait(&dir);
            }
        }
        self.release(rec)
    }

    /// Removes a container (its writable layer and record; anonymous
    /// volumes with `volumes`).
    pub fn remove(&self, rec: &ContainerRecord, force: bool, volumes: bool) -> Result<()> {
        if self.status(rec).is_running() {
            if !force {
                return Err(Error::RemoveRunning(rec.name.clone()));
            }
            let dir = self.state_dir(&rec.id);
            let _ = strata_runtime::kill(&dir, libc::SIGKILL);
            let _ = strata_runtime::wait(&dir);
        }
        // No restart after this (a keeper waiting out its back-off sees it).
        let _ = strata_runtime::mark_stopped(&self.state_dir(&rec.id));
        self.networks().forget(&rec.id)?;
        if self.snap.exists(&rec.id) {
            self.snap.remove(&rec.id)?;
        }
        self.delete_row(&rec.id)?;
        if volumes {
            let vols = self.volumes();
            for m in rec.mounts.iter().filter(|m| m.kind == "anonymous") {
                if !self.volume_in_use(&m.source)? {
                    vols.remove(&m.source)?;
                }
            }
        }
        Ok(())
    }

    pub fn volume_in_use(&self, name: &str) -> Result<bool> {
        Ok(self
            .list()?
            .iter()
            .any(|c| c.mounts.iter().any(|m| m.uses_volume(name))))
    }

    /// `container prune`: removes every container that is not running;
    /// returns their IDs.
    pub fn prune(&self) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        for rec in self.list()? {
            if !self.status(&rec).is_running() {
                self.remove(&rec, false, false)?;
                deleted.push(rec.id);
            }
        }
        Ok(deleted)
    }

    /// `volume rm`: refuses a volume a container mounts unless `force`.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        if !force && self.volume_in_use(name)? {
            return Err(Error::VolumeInUse(name.to_string()));
        }
        self.volumes().remove(name)
    }

    /// `volume prune`: removes the anonymous volumes (every volume with
    /// `all`) no container mounts; returns their names.
    pub fn prune_volumes(&self, all: bool) -> Result<Vec<String>> {
        let containers = self.list()?;
        let in_use = |name: &str| containers.iter().any(|c| c.mounts.iter().any(|m| m.uses_volume(name)));
        // Anonymous volumes are named with a random ID.
        let anonymous = |n: &str| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
        let vols = self.volumes();
        let mut deleted = Vec::new();
        for v in vols.list()? {
            if (all || anonymous(&v.name)) && !in_use(&v.name) {
                vols.remove(&v.name)?;
                deleted.push(v.name);
            }
        }
        Ok(deleted)
    }

    /// Runs a process in a running container.
    pub fn exec(&self, rec: &ContainerRecord, args: Vec<String>, opts: &ExecOptions) -> Result<i32> {
        if !self.status(rec).is_running() {
            return Err(Error::NotRunning(rec.id.clone()));
        }
        let root = self.merged_dir(&rec.id);
        let user = opts
            .user
            .clone()
            .or_else(|| rec.config.user.clone())
            .unwrap_or_default();
        let resolved =
            strata_runtime::resolve_user(&root, if user.is_empty() { "0" } else { &user }).map_err(|source| {
                Error::UnknownUser {
                    user: user.clone(),
                    source,
                }
            })?;
        let mut env = rec.config.env.clone().unwrap_or_default();
        for e in &opts.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        let mut spec = ExecSpec::new(args);
        spec.env = process_env(env, &resolved.home, opts.tty);
        spec.cwd = opts
            .workdir
            .clone()
            .or_else(|| rec.config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        spec.user = resolved.user;
        spec.tty = opts.tty;
        spec.stdin = opts.stdin;
        // The container's confinement, as Docker's exec; `exec --privileged` lifts it for this process.
        spec.capabilities = if opts.privileged {
            strata_runtime::all_capabilities()
        } else {
            rec.capabilities
        };
        spec.no_new_privileges = rec.security.no_new_privileges;
        spec.seccomp = if opts.privileged {
            strata_runtime::SeccompPolicy::Unconfined
        } else {
            rec.security.seccomp.clone()
        };
        strata_runtime::exec(&self.state_dir(&rec.id), &spec).map_err(|e| RunFailed(e).into())
    }

    pub fn logs(&self, rec: &ContainerRecord) -> Result<Vec<strata_runtime::LogEntry>> {
        Ok(strata_runtime::read_log(&self.state_dir(&rec.id))?)
    }

    /// The log entries from byte `offset` on and the offset after them (see
    /// [`strata_runtime::read_log_from`]), to follow a running container.
    pub fn logs_from(&self, rec: &ContainerRecord, offset: u64) -> Result<(Vec<strata_runtime::LogEntry>, u64)> {
        Ok(strata_runtime::read_log_from(&self.state_dir(&rec.id), offset)?)
    }

    pub fn upper_dir(&self, rec: &ContainerRecord) -> Result<PathBuf> {
        let snap = self.snap.get(&rec.id)?;
        Ok(self.snap.upper_dir(&snap))
    }

    pub fn lower_dirs(&self, rec: &ContainerRecord) -> Result<Vec<PathBuf>> {
        let chain = rec
            .chain
            .iter()
            .map(|c| Digest::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.snap.lower_dirs(&chain))
    }

    /// The container's root mounted (for cp/export); `true` if this call mounted it.
    pub fn mount_root(&self, rec: &ContainerRecord) -> Result<(PathBuf, bool)> {
        let merged = self.merged_dir(&rec.id);
        if self.snap.is_mounted(&merged)? {
            return Ok((merged, false));
        }
        Ok((self.ensure_mounted(rec)?, true))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    /// `exec --privileged`: every capability, no seccomp, for this process.
    pub privileged: bool,
}

/// PATH, HOME and TERM defaults for a process environment.
fn process_env(mut env: Vec<String>, home: &str, tty: bool) -> Vec<String> {
    let has = |env: &Vec<String>, k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={}", strata_runtime::DEFAULT_PATH));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    if tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

/// `SIGTERM`, `TERM`, `15`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::InvalidSignal(s.to_string()));
    }
    let name = s.to_ascii_uppercase();
    let name = name.trim_start_matches("SIG");
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "PIPE" => libc::SIGPIPE,
        _ => return Err(Error::InvalidSignal(s.to_string())),
    };
    Ok(n)
}

/// A container run in the foreground with the caller's terminal (`-i`/`-t`):
/// the strata process itself is its supervisor.
pub(crate) const FOREGROUND: &str = "foreground.json";
pub(crate) const FOLLOWER: &str = "follower.json";

/// The `run` process that follows a container and removes it itself.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Follower {
    pub(crate) pid: i32,
    pub(crate) start_time: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Foreground {
    pub(crate) pid: i32,
    pub(crate) start_time: u64,
    pub(crate) started_at: String,
    pub(crate) exit_code: Option<i32>,
    pub(crate) finished_at: Option<String>,
    #[serde(default)]
    pub(crate) oom_killed: bool,
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn write_json<T: serde::Serialize>(p: &Path, v: &T) -> Result<()> {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(v)?)?;
    std::fs::rename(&tmp, p)?;
    Ok(())
}
