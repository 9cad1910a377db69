//! Docker's management command groups (`image …`, `container …`,
//! `builder …`): each top-level command strata has, under the group Docker
//! puts it in. The groups' own commands (`image ls`, `container prune`, …)
//! stay in their modules; this adds the rest by delegation.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::HELP_TEMPLATE;
use super::{build, build_cache, containers, distribution, images};

#[derive(Subcommand)]
pub enum ImageGroup {
    #[command(flatten)]
    Base(images::ImageCommand),
    /// Build an image from a Dockerfile
    #[command(help_template = HELP_TEMPLATE)]
    Build(Box<build::BuildArgs>),
    /// Download an image from a registry
    #[command(help_template = HELP_TEMPLATE)]
    Pull(distribution::PullArgs),
    /// Upload an image to a registry
    #[command(help_template = HELP_TEMPLATE)]
    Push(distribution::PushArgs),
}

pub fn image(root: &Path, c: ImageGroup) -> Result<ExitCode> {
    match c {
        ImageGroup::Base(c) => images::image(root, c),
        ImageGroup::Build(a) => build::build(root, *a),
        ImageGroup::Pull(a) => distribution::pull(root, a),
        ImageGroup::Push(a) => distribution::push(root, a),
    }
}

#[derive(Subcommand)]
pub enum ContainerGroup {
    #[command(flatten)]
    Base(Box<containers::ContainerCommand>),
    /// Create a new image from a container's changes
    #[command(help_template = HELP_TEMPLATE)]
    Commit(containers::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(help_template = HELP_TEMPLATE)]
    Cp(containers::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    #[command(help_template = HELP_TEMPLATE)]
    Diff(containers::DiffArgs),
    /// Execute a command in a running container
    #[command(help_template = HELP_TEMPLATE)]
    Exec(containers::ExecArgs),
    /// Export a container's filesystem as a tar archive
    #[command(help_template = HELP_TEMPLATE)]
    Export(containers::ExportArgs),
    /// Kill one or more running containers
    #[command(help_template = HELP_TEMPLATE)]
    Kill(containers::KillArgs),
    /// Restart one or more containers
    #[command(help_template = HELP_TEMPLATE)]
    Restart(containers::StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    #[command(help_template = HELP_TEMPLATE)]
    Wait(containers::WaitArgs),
}

pub fn container(root: &Path, c: ContainerGroup) -> Result<ExitCode> {
    match c {
        ContainerGroup::Base(c) => containers::container(root, *c),
        ContainerGroup::Commit(a) => containers::commit(root, a),
        ContainerGroup::Cp(a) => containers::cp(root, a),
        ContainerGroup::Diff(a) => containers::diff(root, a),
        ContainerGroup::Exec(a) => containers::exec(root, a),
        ContainerGroup::Export(a) => containers::export(root, a),
        ContainerGroup::Kill(a) => containers::kill(root, a),
        ContainerGroup::Restart(a) => containers::restart(root, a),
        ContainerGroup::Wait(a) => containers::wait(root, a),
    }
}

/// `docker builder`: the build and its cache (as `buildx du`/`prune`).
#[derive(Subcommand)]
pub enum BuilderCommand {
    /// Build an image from a Dockerfile
    #[command(help_template = HELP_TEMPLATE)]
    Build(Box<build::BuildArgs>),
    /// Show disk usage of the build cache
    #[command(help_template = HELP_TEMPLATE, override_usage = "strata builder du [OPTIONS]")]
    Du(build_cache::DuArgs),
    /// Remove build cache
    #[command(help_template = HELP_TEMPLATE, override_usage = "strata builder prune [OPTIONS]")]
    Prune(build_cache::PruneArgs),
}

pub fn builder(root: &Path, c: BuilderCommand) -> Result<ExitCode> {
    match c {
        BuilderCommand::Build(a) => build::build(root, *a),
        BuilderCommand::Du(a) => build_cache::du(root, a),
        BuilderCommand::Prune(a) => build_cache::prune(root, a),
    }
}
