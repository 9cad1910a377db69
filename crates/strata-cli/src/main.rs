//! strata-cli: the `strata` command line. Argument parsing and output only;
//! the work is done by the library crates.

mod cmd;
mod format;
mod pipe;
mod typed;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::HELP_TEMPLATE;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "A daemonless, Docker-compatible container image engine",
    help_template = "\nUsage:  {usage}\n\n{about}\n\n{all-args}\n\nRun 'strata COMMAND --help' for more information on a command.\n",
    subcommand_help_heading = "Commands",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Root directory of the store (default /var/lib/strata, or $XDG_DATA_HOME/strata when not root)
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Storage driver for container roots: overlay (default when the kernel allows) or vfs (copies)
    #[arg(
        long = "storage-driver",
        global = true,
        env = "STRATA_STORAGE_DRIVER",
        value_name = "string"
    )]
    storage_driver: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile
    #[command(help_template = HELP_TEMPLATE)]
    Build(cmd::build::BuildArgs),
    /// Import the contents from a tarball or directory to create a filesystem image
    #[command(help_template = HELP_TEMPLATE)]
    Import(cmd::images::ImportArgs),
    /// List images
    #[command(help_template = HELP_TEMPLATE)]
    Images(cmd::images::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(help_template = HELP_TEMPLATE)]
    Tag(cmd::images::TagArgs),
    /// Remove one or more images
    #[command(help_template = HELP_TEMPLATE)]
    Rmi(cmd::images::RmiArgs),
    /// Return low-level information on images
    #[command(help_template = HELP_TEMPLATE)]
    Inspect(cmd::images::InspectArgs),
    /// Show the history of an image
    #[command(help_template = HELP_TEMPLATE)]
    History(cmd::images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(help_template = HELP_TEMPLATE)]
    Save(cmd::images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    #[command(help_template = HELP_TEMPLATE)]
    Load(cmd::images::LoadArgs),
    /// Download an image from a registry
    #[command(help_template = HELP_TEMPLATE)]
    Pull(cmd::distribution::PullArgs),
    /// Upload an image to a registry
    #[command(help_template = HELP_TEMPLATE)]
    Push(cmd::distribution::PushArgs),
    /// Log in to a registry
    #[command(help_template = HELP_TEMPLATE)]
    Login(cmd::distribution::LoginArgs),
    /// Log out from a registry
    #[command(help_template = HELP_TEMPLATE)]
    Logout(cmd::distribution::LogoutArgs),
    /// Inspect manifests and manifest lists in a registry
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Manifest(cmd::distribution::ManifestCommand),
    /// Pin the base images of a Dockerfile to their registry digests
    #[command(help_template = HELP_TEMPLATE)]
    Pin(cmd::distribution::PinArgs),
    /// Copy an image between registries, archives, OCI layouts and the store
    Copy(cmd::copy::CopyArgs),
    /// View the packaged-based Software Bill Of Materials (SBOM) for an image
    #[command(help_template = HELP_TEMPLATE)]
    Sbom(cmd::sbom::SbomArgs),
    /// Scan images for vulnerabilities; manage the offline vulnerability database
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Scan(cmd::scan_cmd::ScanCommand),
    /// Docker Scout: quickview and cves of an image, on the offline vulnerability database
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Scout(cmd::scout::ScoutCommand),
    /// Docker Buildx: build (multi-platform), imagetools, builders and emulators
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Buildx(cmd::buildx::BuildxCommand),
    /// Commands to work on images in registry (buildx imagetools: inspect, create)
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Imagetools(cmd::buildx::ImagetoolsCommand),
    /// Manage images
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Image(cmd::groups::ImageGroup),
    /// Manage builds (build, du, prune)
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Builder(cmd::groups::BuilderCommand),
    /// Create and run a new container from an image
    #[command(help_template = HELP_TEMPLATE)]
    Run(cmd::containers::RunArgs),
    /// Create a new container
    #[command(help_template = HELP_TEMPLATE)]
    Create(cmd::containers::CreateCmd),
    /// Start one or more stopped containers
    #[command(help_template = HELP_TEMPLATE)]
    Start(cmd::containers::StartArgs),
    /// Stop one or more running containers
    #[command(help_template = HELP_TEMPLATE)]
    Stop(cmd::containers::StopArgs),
    /// Restart one or more containers
    #[command(help_template = HELP_TEMPLATE)]
    Restart(cmd::containers::StopArgs),
    /// Kill one or more running containers
    #[command(help_template = HELP_TEMPLATE)]
    Kill(cmd::containers::KillArgs),
    /// Remove one or more containers
    #[command(help_template = HELP_TEMPLATE)]
    Rm(cmd::containers::RmArgs),
    /// List containers
    #[command(help_template = HELP_TEMPLATE)]
    Ps(cmd::ps::PsArgs),
    /// Fetch the logs of a container
    #[command(help_template = HELP_TEMPLATE)]
    Logs(cmd::containers::LogsArgs),
    /// Execute a command in a running container
    #[command(help_template = HELP_TEMPLATE)]
    Exec(cmd::containers::ExecArgs),
    /// Display a live stream of container(s) resource usage statistics
    #[command(help_template = HELP_TEMPLATE)]
    Stats(cmd::stats::StatsArgs),
    /// Block until one or more containers stop, then print their exit codes
    #[command(help_template = HELP_TEMPLATE)]
    Wait(cmd::containers::WaitArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(help_template = HELP_TEMPLATE)]
    Cp(cmd::containers::CpArgs),
    /// Export a container's filesystem as a tar archive
    #[command(help_template = HELP_TEMPLATE)]
    Export(cmd::containers::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    #[command(help_template = HELP_TEMPLATE)]
    Diff(cmd::containers::DiffArgs),
    /// Create a new image from a container's changes
    #[command(help_template = HELP_TEMPLATE)]
    Commit(cmd::containers::CommitArgs),
    /// Manage containers
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Container(cmd::groups::ContainerGroup),
    /// Manage volumes
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Volume(cmd::containers::VolumeCommand),
    /// Manage networks
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Network(cmd::network::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    #[command(help_template = HELP_TEMPLATE)]
    Port(cmd::network::PortArgs),
    /// Manage strata
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    System(cmd::system::SystemCommand),
    /// Display system-wide information
    #[command(help_template = HELP_TEMPLATE)]
    Info(cmd::version::InfoArgs),
    /// Show the strata version information
    #[command(help_template = HELP_TEMPLATE)]
    Version(cmd::version::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish)
    #[command(help_template = HELP_TEMPLATE)]
    Completion(cmd::completion::CompletionArgs),
    /// Run an OCI registry (serve) or collect its garbage (gc)
    #[command(disable_help_flag = true)]
    Registry {
        /// Arguments for `strata registry` (see `strata registry --help`)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    pipe::install_panic_hook();
    // The registry has its own options (its --root is the storage directory,
    // not the image store): hand it the raw arguments.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "registry") {
        let code = strata_registry_server::cli_main(args[2..].to_vec());
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let root = cli.root.clone().unwrap_or_else(strata_store::Store::default_root);
    // Absolute, as container roots and mounts under it must be.
    let root = std::path::absolute(&root).unwrap_or(root);
    if needs_privileges(&cli.command)
        && let Err(code) = enter_user_namespace(&root)
    {
        return code;
    }
    if matches!(
        cli.command,
        Command::Exec(_) | Command::Container(cmd::groups::ContainerGroup::Exec(_))
    ) && let Err(e) = strata_runtime::reexec_sealed()
    {
        // CVE-2019-5736: exec must not run the host binary inside a container.
        eprintln!("strata: re-executing from a sealed copy of the binary: {e}");
        return ExitCode::from(125);
    }
    if let Some(d) = &cli.storage_driver {
        // SAFETY: still single-threaded; the container engine reads it when it opens the store.
        unsafe { std::env::set_var("STRATA_STORAGE_DRIVER", d) };
    }
    let result = match cli.command {
        Command::Build(a) => cmd::build::build(&root, a),
        Command::Import(a) => cmd::images::import(&root, a),
        Command::Images(a) => cmd::images::images(&root, a),
        Command::Tag(a) => cmd::images::tag(&root, a),
        Command::Rmi(a) => cmd::images::rmi(&root, a),
        Command::Inspect(a) => cmd::images::inspect(&root, a),
        Command::History(a) => cmd::images::history(&root, a),
        Command::Save(a) => cmd::images::save(&root, a),
        Command::Load(a) => cmd::images::load(&root, a),
        Command::Pull(a) => cmd::distribution::pull(&root, a),
        Command::Push(a) => cmd::distribution::push(&root, a),
        Command::Login(a) => cmd::distribution::login(a),
        Command::Logout(a) => cmd::distribution::logout(a),
        Command::Manifest(c) => cmd::distribution::manifest(&root, c),
        Command::Pin(a) => cmd::distribution::pin(a),
        Command::Copy(a) => cmd::copy::copy(&root, a),
        Command::Sbom(a) => cmd::sbom::sbom(&root, a),
        Command::Scan(c) => cmd::scan_cmd::scan(&root, c),
        Command::Scout(c) => cmd::scout::scout(&root, c),
        Command::Buildx(c) => cmd::buildx::buildx(&root, c),
        Command::Imagetools(c) => cmd::buildx::buildx(&root, cmd::buildx::BuildxCommand::Imagetools(c)),
        Command::Image(c) => cmd::groups::image(&root, c),
        Command::Builder(c) => cmd::groups::builder(&root, c),
        Command::Info(a) => cmd::version::info(&root, a),
        Command::Version(a) => cmd::version::version(&root, a),
        Command::Completion(a) => cmd::completion::completion::<Cli>(a),
        Command::System(c) => cmd::system::system(&root, c),
        Command::Run(a) => cmd::containers::run(&root, a),
        Command::Create(a) => cmd::containers::create(&root, a),
        Command::Start(a) => cmd::containers::start(&root, a),
        Command::Stop(a) => cmd::containers::stop(&root, a),
        Command::Restart(a) => cmd::containers::restart(&root, a),
        Command::Kill(a) => cmd::containers::kill(&root, a),
        Command::Rm(a) => cmd::containers::rm(&root, a),
        Command::Ps(a) => cmd::ps::ps(&root, a),
        Command::Logs(a) => cmd::containers::logs(&root, a),
        Command::Exec(a) => cmd::containers::exec(&root, a),
        Command::Wait(a) => cmd::containers::wait(&root, a),
        Command::Stats(a) => cmd::stats::stats(&root, a),
        Command::Cp(a) => cmd::containers::cp(&root, a),
        Command::Export(a) => cmd::containers::export(&root, a),
        Command::Diff(a) => cmd::containers::diff(&root, a),
        Command::Commit(a) => cmd::containers::commit(&root, a),
        Command::Container(c) => cmd::groups::container(&root, c),
        Command::Volume(c) => cmd::containers::volume(&root, c),
        Command::Network(c) => cmd::network::network(&root, c),
        Command::Port(a) => cmd::network::port(&root, a),
        Command::Registry { args } => return ExitCode::from(strata_registry_server::cli_main(args).clamp(0, 255) as u8),
    };
    match result {
        Ok(code) => code,
        Err(e) if pipe::is_closed_output(&e) => pipe::die_of_sigpipe(),
        Err(e) => {
            eprintln!("Error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// Everything but what only talks to the user's files or a registry runs
/// inside the rootless user namespace when not root.
fn needs_privileges(command: &Command) -> bool {
    !matches!(
        command,
        Command::Completion(_) | Command::Login(_) | Command::Logout(_) | Command::Registry { .. }
    )
}

/// As an ordinary user, joins (or makes) the store's user namespace
/// (strata-rootless); a no-op for root. Must run before any thread starts.
fn enter_user_namespace(root: &std::path::Path) -> Result<(), ExitCode> {
    let uid = rustix::process::getuid().as_raw();
    match strata_rootless::enter(root) {
        Ok(strata_rootless::Entered::Joined { single_id: true, .. }) => {
            let name = strata_rootless::user_name(uid).unwrap_or_else(|| uid.to_string());
            eprintln!(
                "WARNING: no subordinate ids for {name} in /etc/subuid and /etc/subgid: running with a \
                 single id; files owned by others are kept as yours (as --storage-opt ignore_chown_errors)"
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("Error: rootless: {e}");
            Err(ExitCode::from(125))
        }
    }
}

pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
