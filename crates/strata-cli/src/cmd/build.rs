//! `strata build`: arguments and output; the build itself is strata-builder's.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use strata_builder::{BuildOptions, DockerfileSource};
use strata_oci::Reference;

#[derive(Args)]
#[command(override_usage = "strata build [OPTIONS] PATH")]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short, long = "tag", value_name = "list")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from STDIN)
    #[arg(short, long, value_name = "string")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long, value_name = "string")]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    iidfile: Option<PathBuf>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "list")]
    label: Vec<String>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, value_name = "string", default_value = "auto")]
    progress: String,
    /// Set target platform for build; several, comma-separated, make a multi-platform image (each must run here: natively or through an emulator, see `strata buildx install-emulators`)
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Clamp timestamps in the image config and layers to this Unix time (default: $SOURCE_DATE_EPOCH)
    #[arg(long = "source-date-epoch", value_name = "int")]
    source_date_epoch: Option<i64>,
    /// Do not use cache for the specified stages
    #[arg(long = "no-cache-filter", value_name = "stringArray")]
    no_cache_filter: Vec<String>,
    /// Set the networking mode for the RUN instructions during build ("default", "host", "none")
    #[arg(long, value_name = "string")]
    network: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret|,env=VAR]")
    #[arg(long = "secret", value_name = "stringArray")]
    secret: Vec<String>,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pull: bool,
    /// Output destination (format: "type=local,dest=path"; types image, registry, docker, oci, local, tar)
    #[arg(short, long = "output", value_name = "stringArray")]
    output: Vec<String>,
    /// Shorthand for "--output=type=registry": push every -t name
    #[arg(long)]
    push: bool,
    /// Shorthand for "--output=type=docker" (strata: the image stays in the store, as it does by default)
    #[arg(long)]
    load: bool,
    /// Shorthand for "--attest=type=sbom": attach an SPDX SBOM attestation ("true" or "false")
    #[arg(long, value_name = "string", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    sbom: Option<String>,
    /// Shorthand for "--attest=type=provenance": "true" (mode=min), "false", "mode=min" or "mode=max"
    #[arg(long, value_name = "string", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    provenance: Option<String>,
    /// Attestation parameters (format: "type=sbom", "type=provenance,mode=max")
    #[arg(long, value_name = "stringArray")]
    attest: Vec<String>,
    /// External cache sources (e.g., "user/app:cache", "type=registry,ref=user/app:cache", "type=local,src=path/to/dir")
    #[arg(long = "cache-from", value_name = "stringArray")]
    cache_from: Vec<String>,
    /// Cache export destinations (e.g., "type=registry,ref=user/app:cache[,mode=max]", "type=local,dest=path/to/dir", "type=inline")
    #[arg(long = "cache-to", value_name = "stringArray")]
    cache_to: Vec<String>,
    /// Build context (a directory)
    #[arg(value_name = "PATH")]
    context: PathBuf,
}

pub fn build(root: &Path, a: BuildArgs) -> Result<ExitCode> {
    let quiet = a.quiet || a.progress == "quiet";
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty" | "quiet" | "rawjson") {
        bail!("invalid progress mode {:?}: use auto, plain, tty or quiet", a.progress);
    }
    if a.context.as_os_str() == "-" {
        bail!("reading a build context from STDIN is not supported; give a directory");
    }
    let dockerfile = match a.file.as_deref() {
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(strata_builder::MAX_DOCKERFILE_SIZE + 1)
                .read_to_end(&mut bytes)
                .context("reading the Dockerfile from STDIN")?;
            DockerfileSource::Bytes(bytes)
        }
        Some(f) => DockerfileSource::Path(PathBuf::from(f)),
        None => DockerfileSource::Default,
    };
    let source_date_epoch = match a.source_date_epoch {
        Some(e) => Some(e),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(s) if !s.trim().is_empty() => Some(
                s.trim()
                    .parse::<i64>()
                    .with_context(|| format!("invalid SOURCE_DATE_EPOCH {s:?}: expected Unix seconds"))?,
            ),
            _ => None,
        },
    };
    let secrets = a
        .secret
        .iter()
        .map(|s| strata_builder::parse_secret(s))
        .collect::<Result<Vec<_>, _>>()?;
    // Bases missing from the store (or all, with --pull) come from their registry.
    let pull_root = root.to_path_buf();
    let puller = strata_builder::Puller(Arc::new(
        move |name: &str, platforms: &[strata_oci::Platform]| -> Result<(), strata_builder::PullError> {
            let pull = || -> Result<()> {
                let reference =
                    Reference::parse(name).map_err(|e| anyhow::anyhow!("invalid reference {name:?}: {e}"))?;
                let mut store = super::open_store(&pull_root)?;
                let opts = strata_transfer::pull::PullOptions {
                    client: super::distribution::client_options(true)?,
                    platform: platforms.first().cloned(),
                    ..Default::default()
                };
                let progress = strata_transfer::progress::no_progress();
                if platforms.len() > 1 {
                    // Every platform the build needs, as `pull --platform P1,P2`: the index is kept.
                    let choice = strata_transfer::PlatformChoice::Platforms(platforms.to_vec());
                    strata_transfer::pull::pull_platforms(&mut store, &reference, &choice, &opts, &progress)?;
                } else {
                    strata_transfer::pull::pull(&mut store, &reference, &opts, &progress)?;
                }
                Ok(())
            };
            pull().map_err(Into::into)
        },
    ));
    // Where the result goes, checked before anything is built.
    let outputs = super::build_output::parse(&a.output, a.push, a.load)?;
    let push_compression = super::build_output::compression(&a.output)?;
    super::build_output::check(&outputs, &a.tag)?;
    let attestations = super::attestations::build_options(root, a.sbom.as_deref(), a.provenance.as_deref(), &a.attest)?;
    let cache_from = a
        .cache_from
        .iter()
        .map(|s| strata_builder::parse_cache_from(s))
        .collect::<Result<Vec<_>, _>>()?;
    let cache_to = a
        .cache_to
        .iter()
        .map(|s| strata_builder::parse_cache_to(s))
        .collect::<Result<Vec<_>, _>>()?;
    let cache_client = match cache_from.is_empty() && cache_to.is_empty() {
        true => Default::default(),
        false => super::distribution::client_options(true)?,
    };
    let opts = BuildOptions {
        context: a.context,
        dockerfile,
        tags: a.tag,
        build_args: a.build_arg,
        target: a.target,
        no_cache: a.no_cache,
        labels: a.label,
        platform: a.platform,
        source_date_epoch,
        no_cache_filter: a.no_cache_filter,
        network: a.network,
        secrets,
        pull: a.pull,
        puller: Some(puller),
        storage_driver: None,
        attestations,
        cache_from,
        cache_to,
        cache_client,
    };
    let log: Box<dyn Write + Send> = if quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr())
    };
    // tty: a display redrawn in place, as `docker buildx build --progress=tty`;
    // auto: that when stderr is a terminal (not TERM=dumb), else plain.
    let tty = !quiet
        && match a.progress.as_str() {
            "tty" => true,
            "auto" => std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb"),
            _ => false,
        };
    let progress = match tty {
        true => strata_builder::Progress::terminal(log),
        false => strata_builder::Progress::new(log),
    };
    let out = strata_builder::build_with_progress(root, &opts, progress)?;
    super::build_output::deliver(root, &out, &outputs, &push_compression)?;
    if let Some(f) = &a.iidfile {
        std::fs::write(f, out.image_id.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    if quiet {
        println!("{}", out.image_id);
    } else {
        if out.index.is_some() && out.platforms.len() > 1 {
            for p in &out.platforms {
                println!("Successfully built {} for {}", p.image_id.short(), p.platform);
            }
            println!("Successfully built multi-platform image {}", out.image_id);
        } else {
            println!("Successfully built {}", out.image_id.short());
        }
        for t in &out.tags {
            println!("Successfully tagged {}", t.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}
