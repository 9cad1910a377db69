//! Container commands: run, create, start, stop, kill, restart, rm,
//! logs, exec, wait, cp, export, diff, commit, container prune, volume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use strata_container::{CommitOptions, ContainerRecord, Containers, CopyTarget, CreateOptions, Status, VolumeArg};
use strata_oci::Reference;

use crate::format::print_table;

use super::HELP_TEMPLATE;

pub(crate) fn open(root: &Path) -> Result<Containers> {
    let c = Containers::open(root).with_context(|| format!("opening the store at {}", root.display()))?;
    if let Some(note) = &c.driver_note {
        eprintln!("strata: overlay is not available ({note}); using the vfs (copy) storage driver");
    }
    c.reap()?;
    Ok(c)
}

#[derive(Args, Clone)]
pub struct CreateArgs {
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "list")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    entrypoint: Option<String>,
    /// Bind mount a volume
    #[arg(short, long = "volume", value_name = "list")]
    volume: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Container host name
    #[arg(long, value_name = "string")]
    hostname: Option<String>,
    /// Connect a container to a network (bridge, host, none, pasta, slirp4netns or a user network)
    #[arg(long, value_name = "network")]
    network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", value_name = "list")]
    network_alias: Vec<String>,
    /// Publish a container's port(s) to the host ([IP:][HOST_PORT:]CONTAINER_PORT[/PROTO])
    #[arg(short, long = "publish", value_name = "list")]
    publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    expose: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Set meta data on a container
    #[arg(short, long = "label", value_name = "list")]
    label: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Security Options (seccomp=unconfined|FILE, no-new-privileges)
    #[arg(long = "security-opt", value_name = "list")]
    security_opt: Vec<String>,
    /// Add a host device to the container
    #[arg(long = "device", value_name = "list")]
    device: Vec<String>,
    /// Memory limit
    #[arg(short, long, value_name = "bytes", value_parser = strata_container::resources::parse_size)]
    memory: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true, value_parser = strata_container::resources::parse_memory_swap)]
    memory_swap: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal", value_parser = strata_container::resources::parse_cpus)]
    cpus: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    cpu_shares: Option<i64>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long, value_name = "string")]
    restart: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// The image, then the command and its arguments: one positional, so
    /// that everything after the image is the command's (`IMAGE -c …` is not
    /// `--cpu-shares`), as Docker parses it.
    #[arg(value_name = "IMAGE", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    image_and_command: Vec<String>,
}

impl CreateArgs {
    fn image(&self) -> &str {
        &self.image_and_command[0]
    }

    fn command(&self) -> Vec<String> {
        self.image_and_command[1..].to_vec()
    }

    fn options(&self) -> CreateOptions {
        if self.network.as_deref() == Some("host") && (!self.publish.is_empty() || self.publish_all) {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
        }
        CreateOptions {
            name: self.name.clone(),
            cmd: self.command(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            network: self.network.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            aliases: self.network_alias.clone(),
            volumes: self.volume.iter().cloned().map(VolumeArg).collect(),
            readonly_root: self.read_only,
            tty: self.tty,
            stdin: self.interactive,
            auto_remove: self.rm,
            followed_by_creator: false,
            labels: self.label.clone(),
            security: strata_container::SecurityOptions {
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                privileged: self.privileged,
                security_opt: self.security_opt.clone(),
                devices: self.device.clone(),
                resources: strata_runtime::Resources {
                    memory: self.memory.unwrap_or(0),
                    memory_swap: self.memory_swap.unwrap_or(0),
                    nano_cpus: self.cpus.unwrap_or(0),
                    cpu_shares: self.cpu_shares.unwrap_or(0),
                    pids_limit: self.pids_limit,
                },
            },
            platform: self.platform.clone(),
            restart: self.restart.clone(),
        }
    }
}

#[derive(Args)]
#[command(override_usage = "strata run [OPTIONS] IMAGE [COMMAND] [ARG...]")]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    create: CreateArgs,
}

/// Docker's warning for an image of another platform run without
/// `--platform` (it runs through an emulator: create checked that one exists).
fn warn_foreign(c: &Containers, rec: &ContainerRecord, a: &CreateArgs) {
    let Some(found) = rec
        .image_id
        .parse()
        .ok()
        .and_then(|id| c.image_config(&id).ok())
        .map(|cfg| cfg.platform())
    else {
        return;
    };
    if a.platform.is_none()
        && matches!(
            strata_emulation::can_run(&found),
            Ok(strata_emulation::How::Emulated { .. })
        )
    {
        let host = strata_emulation::host_platform();
        eprintln!(
            "WARNING: The requested image's platform ({found}) does not match the detected host platform ({host}) and no specific platform was requested"
        );
    }
}

/// Errors of `run`/`create`/`start` exit with Docker's codes (125, 126, 127).
fn run_error(e: impl Into<anyhow::Error>) -> ExitCode {
    let e = e.into();
    let code = e
        .downcast_ref::<strata_container::Error>()
        .and_then(|e| e.exit_code())
        .unwrap_or(125);
    eprintln!("strata: {}", crate::error_chain(&e));
    ExitCode::from(code.clamp(1, 255) as u8)
}

pub fn run(root: &Path, a: RunArgs) -> Result<ExitCode> {
    let mut c = open(root)?;
    let mut opts = a.create.options();
    // This process removes it: others' reaping must not (while it lives).
    opts.followed_by_creator = !a.detach;
    let rec = match c.create(a.create.image(), &opts) {
        Ok(r) => r,
        Err(e) => return Ok(run_error(e)),
    };
    warn_foreign(&c, &rec, &a.create);
    if a.detach {
        if let Err(e) = c.start(&rec) {
            return Ok(run_error(e));
        }
        println!("{}", rec.id);
        return Ok(ExitCode::SUCCESS);
    }
    let code = if rec.tty || rec.stdin {
        c.run_attached(&rec).map_err(anyhow::Error::from)
    } else {
        c.start(&rec)
            .map_err(anyhow::Error::from)
            .and_then(|_| follow(&c, &rec, true))
    };
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            if rec.auto_remove {
                let _ = c.remove(&rec, true, true);
            }
            return Ok(run_error(e));
        }
    };
    if rec.auto_remove {
        c.remove(&rec, true, true)?;
    } else if rec.restart == strata_runtime::RestartPolicy::No {
        // (One with a restart policy may be running again: its root stays.)
        c.release(&rec).ok();
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Prints the container's output as it comes until it exits; forwards
/// SIGINT/SIGTERM/SIGHUP/SIGQUIT to it. Returns its exit code.
fn follow(c: &Containers, rec: &ContainerRecord, forward: bool) -> Result<i32> {
    if forward {
        forward_signals(c.state_dir(&rec.id));
    }
    // Where the next read of the log starts: each poll reads only what is new.
    let mut offset = 0;
    // Short-lived containers are the common case: poll fast first, then back off.
    let mut pause = Duration::from_millis(1);
    loop {
        let running = c.status(rec).is_running();
        // Read after the status: the monitor writes the whole log before it
        // records the exit, so once that is seen the log is complete.
        let (entries, next) = c.logs_from(rec, offset)?;
        print_entries(&entries)?;
        offset = next;
        if !running {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    match c.status(rec) {
        Status::Exited { code, .. } => Ok(code),
        _ => Ok(c.wait(rec)?),
    }
}

fn print_entries(entries: &[strata_container::LogEntry]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for e in entries {
        if e.stream == "stderr" {
            err.write_all(e.log.as_bytes())?;
        } else {
            out.write_all(e.log.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn forward_signals(state_dir: PathBuf) {
    // SAFETY: plain libc signal-mask calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let set_copy = set;
        std::thread::spawn(move || {
            loop {
                let mut sig: libc::c_int = 0;
                if libc::sigwait(&set_copy, &mut sig) == 0 {
                    let _ = strata_container::kill_state_dir(&state_dir, sig);
                }
            }
        });
    }
}

#[derive(Args)]
#[command(override_usage = "strata create [OPTIONS] IMAGE [COMMAND] [ARG...]")]
pub struct CreateCmd {
    #[command(flatten)]
    create: CreateArgs,
}

pub fn create(root: &Path, a: CreateCmd) -> Result<ExitCode> {
    let mut c = open(root)?;
    match c.create(a.create.image(), &a.create.options()) {
        Ok(rec) => {
            warn_foreign(&c, &rec, &a.create);
            println!("{}", rec.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(run_error(e)),
    }
}

#[derive(Args)]
#[command(override_usage = "strata start [OPTIONS] CONTAINER [CONTAINER...]")]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn start(root: &Path, a: StartArgs) -> Result<ExitCode> {
    let c = open(root)?;
    for name in &a.containers {
        let rec = c.find(name)?;
        if let Err(e) = c.start(&rec) {
            return Ok(run_error(e));
        }
        if a.attach {
            let code = follow(&c, &rec, true)?;
            c.release(&rec).ok();
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata stop [OPTIONS] CONTAINER [CONTAINER...]")]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(root: &Path, a: StopArgs) -> Result<ExitCode> {
    let c = open(root)?;
    for name in &a.containers {
        let rec = c.find(name)?;
        c.stop(&rec, Duration::from_secs(a.time))?;
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restart(root: &Path, a: StopArgs) -> Result<ExitCode> {
    let c = open(root)?;
    for name in &a.containers {
        let rec = c.find(name)?;
        c.stop(&rec, Duration::from_secs(a.time))?;
        if let Err(e) = c.start(&rec) {
            return Ok(run_error(e));
        }
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata kill [OPTIONS] CONTAINER [CONTAINER...]")]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(root: &Path, a: KillArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let sig = strata_container::parse_signal(&a.signal)?;
    for name in &a.containers {
        let rec = c.find(name)?;
        c.kill(&rec, sig)?;
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata rm [OPTIONS] CONTAINER [CONTAINER...]")]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(root: &Path, a: RmArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let mut code = ExitCode::SUCCESS;
    for name in &a.containers {
        let r = c.find(name).and_then(|rec| c.remove(&rec, a.force, a.volumes));
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {}", crate::error_chain(&e.into()));
                code = ExitCode::from(1);
            }
        }
    }
    Ok(code)
}

#[derive(Args)]
#[command(override_usage = "strata logs [OPTIONS] CONTAINER")]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    container: String,
}

pub fn logs(root: &Path, a: LogsArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let rec = c.find(&a.container)?;
    if a.follow {
        follow(&c, &rec, false)?;
        return Ok(ExitCode::SUCCESS);
    }
    let entries = c.logs(&rec)?;
    if a.timestamps {
        let mut out = std::io::stdout().lock();
        for e in entries {
            write!(out, "{} {}", e.time, e.log)?;
        }
    } else {
        print_entries(&entries)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata exec [OPTIONS] CONTAINER COMMAND [ARG...]")]
pub struct ExecArgs {
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "list")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    user: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub fn exec(root: &Path, a: ExecArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let rec = c.find(&a.container)?;
    let opts = strata_container::ExecOptions {
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        tty: a.tty,
        stdin: a.interactive,
        privileged: a.privileged,
    };
    match c.exec(&rec, a.command.clone(), &opts) {
        Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        Err(e) => Ok(run_error(e)),
    }
}

#[derive(Args)]
#[command(override_usage = "strata wait CONTAINER [CONTAINER...]")]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn wait(root: &Path, a: WaitArgs) -> Result<ExitCode> {
    let c = open(root)?;
    for name in &a.containers {
        let rec = c.find(name)?;
        println!("{}", c.wait(&rec)?);
        c.release(&rec).ok();
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata cp CONTAINER:SRC_PATH DEST_PATH|-\n       strata cp SRC_PATH|- CONTAINER:DEST_PATH")]
pub struct CpArgs {
    src: String,
    dst: String,
}

pub fn cp(root: &Path, a: CpArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let (src, dst) = (CopyTarget::parse(&a.src), CopyTarget::parse(&a.dst));
    if matches!((&src, &dst), (CopyTarget::Host(_), CopyTarget::Host(_))) {
        bail!("must specify at least one container source");
    }
    c.copy(&src, &dst)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata export [OPTIONS] CONTAINER")]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    container: String,
}

pub fn export(root: &Path, a: ExportArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let rec = c.find(&a.container)?;
    super::write_output(a.output.as_deref(), |w| Ok(c.export(&rec, w)?))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata diff CONTAINER")]
pub struct DiffArgs {
    container: String,
}

pub fn diff(root: &Path, a: DiffArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let rec = c.find(&a.container)?;
    let mut out = std::io::stdout().lock();
    for ch in c.diff(&rec)? {
        writeln!(out, "{} {}", ch.kind.letter(), ch.path)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    author: Option<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    message: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    change: Vec<String>,
    /// Pause container during commit (accepted; strata does not pause)
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    container: String,
    reference: Option<String>,
}

pub fn commit(root: &Path, a: CommitArgs) -> Result<ExitCode> {
    let mut c = open(root)?;
    let rec = c.find(&a.container)?;
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let opts = CommitOptions {
        author: a.author,
        message: a.message,
        changes: a.change,
        reference,
    };
    let img = c.commit(&rec, &opts)?;
    println!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// List containers
    #[command(visible_alias = "list", alias = "ps", help_template = HELP_TEMPLATE)]
    Ls(super::ps::PsArgs),
    /// Remove all stopped containers
    #[command(help_template = HELP_TEMPLATE)]
    Prune(PruneArgs),
    /// Display a live stream of container(s) resource usage statistics
    #[command(help_template = HELP_TEMPLATE)]
    Stats(super::stats::StatsArgs),
    /// Create and run a new container from an image
    #[command(help_template = HELP_TEMPLATE)]
    Run(RunArgs),
    /// Create a new container
    #[command(help_template = HELP_TEMPLATE)]
    Create(CreateCmd),
    /// Start one or more stopped containers
    #[command(help_template = HELP_TEMPLATE)]
    Start(StartArgs),
    /// Stop one or more running containers
    #[command(help_template = HELP_TEMPLATE)]
    Stop(StopArgs),
    /// Remove one or more containers
    #[command(help_template = HELP_TEMPLATE)]
    Rm(RmArgs),
    /// Fetch the logs of a container
    #[command(help_template = HELP_TEMPLATE)]
    Logs(LogsArgs),
    /// Display detailed information on one or more containers
    #[command(help_template = HELP_TEMPLATE)]
    Inspect(InspectArgs),
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn container_json(c: &Containers, rec: &ContainerRecord) -> Value {
    let status = c.status(rec);
    let (running, pid, code, finished) = match &status {
        Status::Running { pid, .. } => (true, *pid, 0, String::new()),
        Status::Exited { code, finished_at } => (false, 0, *code, finished_at.clone()),
        Status::Created => (false, 0, 0, String::new()),
    };
    let res = &rec.security.resources;
    let mut v = json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.args.first(),
        "Args": rec.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {"Status": status.word(), "Running": running, "Paused": false, "Restarting": false,
                  "OOMKilled": c.oom_killed(rec), "Dead": false, "Pid": pid, "ExitCode": code,
                  "Error": c.start_error(rec),
                  "StartedAt": c.started_at(rec).unwrap_or_default(), "FinishedAt": finished},
        "Image": rec.image_id,
        "Name": format!("/{}", rec.name),
        "Config": crate::typed::container_config(rec),
        "HostConfig": {"NetworkMode": rec.network_mode.as_deref().unwrap_or(&rec.network), "ReadonlyRootfs": rec.readonly_root, "AutoRemove": rec.auto_remove,
                       "Memory": res.memory, "MemorySwap": res.memory_swap, "NanoCpus": res.nano_cpus,
                       "CpuShares": res.cpu_shares, "PidsLimit": res.pids_limit,
                       "RestartPolicy": {"Name": rec.restart.name(), "MaximumRetryCount": rec.restart.max_retries()}},
        "RestartCount": c.restart_count(rec),
        "Mounts": rec.mounts.iter().map(|m| json!({"Type": if m.kind == "bind" {"bind"} else {"volume"}, "Name": if m.kind == "bind" {""} else {&m.source}, "Source": m.source, "Destination": m.destination, "RW": !m.readonly})).collect::<Vec<_>>(),
        "GraphDriver": {"Name": c.snap.driver().name()},
    });
    super::network::add_inspect(c, rec, &mut v);
    v
}

pub fn container(root: &Path, cmd: ContainerCommand) -> Result<ExitCode> {
    match cmd {
        ContainerCommand::Ls(a) => super::ps::ps(root, a),
        ContainerCommand::Run(a) => run(root, a),
        ContainerCommand::Create(a) => create(root, a),
        ContainerCommand::Start(a) => start(root, a),
        ContainerCommand::Stop(a) => stop(root, a),
        ContainerCommand::Rm(a) => rm(root, a),
        ContainerCommand::Logs(a) => logs(root, a),
        ContainerCommand::Stats(a) => super::stats::stats(root, a),
        ContainerCommand::Inspect(a) => {
            let c = open(root)?;
            let mut vals = Vec::new();
            for n in &a.containers {
                vals.push(container_json(&c, &c.find(n)?));
            }
            match &a.format {
                // Docker's typed view first (`Config` is `container.Config`).
                Some(f) => {
                    for line in crate::typed::render_each(f, &vals, crate::typed::container)? {
                        println!("{line}");
                    }
                }
                None => println!("{}", crate::format::inspect_json(&vals)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Prune(_) => {
            print_pruned("Containers", &open(root)?.prune()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `container prune` and `volume prune` print.
fn print_pruned(what: &str, deleted: &[String]) {
    if !deleted.is_empty() {
        println!("Deleted {what}:");
        for d in deleted {
            println!("{d}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
}

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    #[command(help_template = HELP_TEMPLATE)]
    Create {
        /// Set metadata for a volume
        #[arg(short, long = "label")]
        label: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list", help_template = HELP_TEMPLATE)]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Display detailed information on one or more volumes
    #[command(help_template = HELP_TEMPLATE)]
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(help_template = HELP_TEMPLATE)]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused local volumes
    #[command(help_template = HELP_TEMPLATE)]
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
    },
}

pub fn volume(root: &Path, cmd: VolumeCommand) -> Result<ExitCode> {
    let c = open(root)?;
    let vols = c.volumes();
    match cmd {
        VolumeCommand::Create { label, name } => {
            let name = name.unwrap_or_else(strata_container::random_id);
            let labels = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let v = vols.create(&name, labels)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls { quiet } => {
            let list = vols.list()?;
            if quiet {
                for v in list {
                    println!("{}", v.name);
                }
            } else {
                let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
                rows.extend(list.into_iter().map(|v| vec![v.driver, v.name]));
                print_table(&rows)?;
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                out.push(vols.get(&n)?.with_context(|| format!("get {n}: no such volume"))?);
            }
            println!("{}", crate::format::inspect_json(&out)?);
        }
        VolumeCommand::Rm { force, names } => {
            for n in names {
                c.remove_volume(&n, force)?;
                println!("{n}");
            }
        }
        VolumeCommand::Prune { all, .. } => print_pruned("Volumes", &c.prune_volumes(all)?),
    }
    Ok(ExitCode::SUCCESS)
}
