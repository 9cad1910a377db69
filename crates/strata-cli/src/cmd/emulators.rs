//! `strata buildx install-emulators [--uninstall] [ARCH…]` and `strata
//! buildx ls`: QEMU's user-mode emulators registered with binfmt_misc (the
//! kernel runs a foreign program through them, in any container, with
//! nothing copied into the image), and the platforms strata's one builder
//! runs: the host's own first, then every emulated one.
//!
//! Without ARCH, install-emulators registers the architectures Docker
//! Official Images are published for (amd64, arm64, arm, riscv64, ppc64le,
//! s390x, 386) that the host does not run itself and Debian's
//! qemu-user-static provides; `--uninstall` without ARCH removes every
//! handler for a known architecture.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use strata_emulation::{Binfmt, Host, InstallOptions};

#[derive(Args)]
#[command(override_usage = "strata buildx install-emulators [OPTIONS] [ARCH...]")]
pub struct InstallEmulatorsArgs {
    /// Remove the emulators instead of registering them
    #[arg(long)]
    uninstall: bool,
    /// Architectures (arm64, arm, riscv64, ppc64le, s390x, 386, amd64,
    /// mips64le, mips64, loong64; QEMU's and Debian's names and platforms
    /// work too; "all" for every one). Default: the common ones the host
    /// does not run itself
    #[arg(value_name = "ARCH")]
    arches: Vec<String>,
}

pub fn install_emulators(a: InstallEmulatorsArgs) -> Result<ExitCode> {
    let arches = strata_emulation::parse_arches(&a.arches)?;
    if !rustix::process::geteuid().is_root() {
        bail!(
            "registering emulators with binfmt_misc needs root (run `sudo strata buildx install-emulators{}`)",
            a.arches.iter().map(|s| format!(" {s}")).collect::<String>()
        );
    }
    if a.uninstall {
        let out = strata_emulation::uninstall(&arches, &Binfmt::system())?;
        if out.is_empty() {
            println!("uninstalling: no emulator is registered");
        }
        for o in out {
            println!("{o}");
        }
    } else {
        let opts = InstallOptions::default();
        let mut any = false;
        strata_emulation::install(&arches, &opts, |o| {
            any = true;
            println!("{o}");
        })?;
        if !any {
            println!(
                "installing: nothing to install (no interpreter for a foreign architecture in {}; apt-get install qemu-user-static)",
                opts.qemu_dir.display()
            );
        }
    }
    println!("platforms: {}", Host::probe().platforms().join(", "));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata buildx ls [OPTIONS]")]
pub struct LsArgs {
    /// Format the output (table or json)
    #[arg(long, default_value = "table")]
    format: String,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

/// strata's one builder: itself, local, always running.
pub fn ls(a: LsArgs) -> Result<ExitCode> {
    let _ = a.no_trunc;
    let host = Host::probe();
    for e in &host.skipped {
        eprintln!("WARNING: {e} (skipped)");
    }
    let platforms = host.platforms();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    match a.format.as_str() {
        "table" => crate::format::print_table(&[
            ["NAME/NODE", "DRIVER/ENDPOINT", "STATUS", "BUILDKIT", "PLATFORMS"]
                .map(String::from)
                .to_vec(),
            ["strata*", "strata", "", "", ""].map(String::from).to_vec(),
            vec![
                " \\_ strata".into(),
                " \\_ local".into(),
                "running".into(),
                version,
                platforms.join(", "),
            ],
        ])?,
        "json" => {
            let v = json!({
                "Name": "strata",
                "Driver": "strata",
                "Dynamic": false,
                "Current": true,
                "Nodes": [{
                    "Name": "strata",
                    "Endpoint": "local",
                    "Status": "running",
                    "Version": version,
                    "Platforms": platforms,
                }],
            });
            println!("{}", serde_json::to_string(&v).context("json")?);
        }
        other => bail!("unsupported --format {other:?}: table or json"),
    }
    Ok(ExitCode::SUCCESS)
}
