//! `strata buildx …`: Docker's buildx command tree. `build` is `strata
//! build` (same flags); `imagetools inspect` is `strata manifest inspect`
//! in buildx's text; `imagetools create` is `imagetools.rs`. Each
//! subcommand's work lives in its own module.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::HELP_TEMPLATE;

#[derive(Subcommand)]
pub enum BuildxCommand {
    /// Start a build
    #[command(help_template = HELP_TEMPLATE)]
    Build(Box<super::build::BuildArgs>),
    /// Commands to work on images in registry
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Imagetools(ImagetoolsCommand),
    /// Register QEMU emulators for foreign platforms with binfmt_misc (or --uninstall them)
    #[command(name = "install-emulators", help_template = HELP_TEMPLATE)]
    InstallEmulators(super::emulators::InstallEmulatorsArgs),
    /// List builders and the platforms they can run
    #[command(help_template = HELP_TEMPLATE)]
    Ls(super::emulators::LsArgs),
    /// Disk usage of the build cache
    #[command(help_template = HELP_TEMPLATE)]
    Du(super::build_cache::DuArgs),
    /// Remove build cache
    #[command(help_template = HELP_TEMPLATE)]
    Prune(super::build_cache::PruneArgs),
}

#[derive(Subcommand)]
pub enum ImagetoolsCommand {
    /// Show details of an image in the registry
    Inspect(super::distribution::ManifestInspectArgs),
    /// Create a new image based on source images
    Create(Box<super::imagetools::CreateArgs>),
}

pub fn buildx(root: &Path, c: BuildxCommand) -> Result<ExitCode> {
    match c {
        BuildxCommand::Build(a) => super::build::build(root, *a),
        BuildxCommand::Imagetools(ImagetoolsCommand::Inspect(a)) => {
            super::distribution::manifest(root, super::distribution::ManifestCommand::Inspect(a))
        }
        BuildxCommand::Imagetools(ImagetoolsCommand::Create(a)) => super::imagetools::create(*a),
        BuildxCommand::InstallEmulators(a) => super::emulators::install_emulators(a),
        BuildxCommand::Ls(a) => super::emulators::ls(a),
        BuildxCommand::Du(a) => super::build_cache::du(root, a),
        BuildxCommand::Prune(a) => super::build_cache::prune(root, a),
    }
}
