//! Where a build's result goes (`--load`, `--push`, `-o`/`--output`), as
//! buildx takes them: `type=image` (the store: strata's default, `--load`),
//! `type=registry` (`--push`: every `-t` name pushed, a multi-platform image
//! as its index), `type=docker|oci,dest=FILE` (an archive of the image or
//! the whole index), `type=local,dest=DIR` and `type=tar,dest=FILE|-` (the
//! root filesystem; one sub-directory per platform, `linux_amd64`, when
//! several were built). `-o DIR` is `type=local,dest=DIR`, `-o -` a tar on
//! STDOUT.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use strata_builder::BuildOutput;
use strata_layer::{UnpackOptions, WhiteoutMode};
use strata_oci::{Digest, Platform};
use strata_store::Store;
use strata_transfer::archive::{ArchiveFormat, ArchiveSink};
use strata_transfer::store::StoreLocation;
use strata_transfer::{CopyOptions, PlatformChoice, no_progress};

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The store (already there when the build ends).
    Image,
    /// Every tag pushed to its registry.
    Registry,
    Archive {
        format: ArchiveFormat,
        dest: Option<PathBuf>,
    },
    Local {
        dest: PathBuf,
    },
    Tar {
        dest: Option<PathBuf>,
    },
}

/// The outputs `-o`, `--push` and `--load` ask for (none: the store).
pub fn parse(outputs: &[String], push: bool, load: bool) -> Result<Vec<Output>> {
    let mut out = Vec::new();
    for o in outputs {
        out.push(parse_one(o)?);
    }
    if push {
        out.push(Output::Registry);
    }
    if load || out.is_empty() {
        out.push(Output::Image);
    }
    out.dedup();
    Ok(out)
}

fn parse_one(s: &str) -> Result<Output> {
    if s == "-" {
        return Ok(Output::Tar { dest: None });
    }
    if !s.contains('=') {
        return Ok(Output::Local { dest: PathBuf::from(s) });
    }
    let mut attrs: BTreeMap<&str, &str> = BTreeMap::new();
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("invalid output {s:?}: {part:?} is not KEY=VALUE"))?;
        attrs.insert(k.trim(), v.trim());
    }
    let dest = attrs.get("dest").map(|d| PathBuf::from(*d));
    let file_dest = || dest.clone().filter(|d| d.as_os_str() != "-");
    let push = attrs.get("push").is_some_and(|v| *v == "true");
    let out = match attrs.get("type").copied() {
        Some("image") if push => Output::Registry,
        Some("image") | Some("moby") => Output::Image,
        Some("registry") => Output::Registry,
        Some("docker") => Output::Archive {
            format: ArchiveFormat::DockerArchive,
            dest: file_dest(),
        },
        Some("oci") => Output::Archive {
            format: ArchiveFormat::OciArchive,
            dest: file_dest(),
        },
        Some("local") => Output::Local {
            dest: dest.with_context(|| format!("invalid output {s:?}: type=local needs dest=DIR"))?,
        },
        Some("tar") => Output::Tar { dest: file_dest() },
        Some(other) => bail!("invalid output {s:?}: unknown type {other:?} (image, registry, docker, oci, local, tar)"),
        None => bail!("invalid output {s:?}: no type= (image, registry, docker, oci, local, tar)"),
    };
    Ok(out)
}

/// What must hold before the build starts: a push needs a name.
pub fn check(outputs: &[Output], tags: &[String]) -> Result<()> {
    if outputs.contains(&Output::Registry) && tags.is_empty() {
        bail!("pushing the build's result needs a name: give -t REGISTRY/NAME[:TAG]");
    }
    Ok(())
}

/// Sends the build's result where `outputs` say.
/// The layers' compression a push of the result uses: buildx's
/// `compression=gzip|zstd`, `compression-level=N`, `force-compression=true`
/// in any `-o`.
pub fn compression(outputs: &[String]) -> Result<strata_transfer::LayerCompression> {
    let mut c = strata_transfer::LayerCompression::default();
    for o in outputs {
        for part in o.split(',') {
            let Some((k, v)) = part.split_once('=') else { continue };
            match k.trim() {
                "compression" => {
                    c.kind = match v.trim() {
                        "gzip" => strata_oci::media::Compression::Gzip,
                        "zstd" => strata_oci::media::Compression::Zstd,
                        "uncompressed" => {
                            bail!("invalid output {o:?}: compression=uncompressed is not supported (gzip or zstd)")
                        }
                        other => bail!("invalid output {o:?}: unknown compression {other:?} (gzip or zstd)"),
                    }
                }
                "compression-level" => {
                    c.level = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| anyhow::anyhow!("invalid output {o:?}: compression-level must be a number"))?,
                    )
                }
                "force-compression" => c.force = v.trim() == "true",
                _ => {}
            }
        }
    }
    Ok(c)
}

pub fn deliver(
    root: &Path,
    built: &BuildOutput,
    outputs: &[Output],
    compression: &strata_transfer::LayerCompression,
) -> Result<()> {
    let names: Vec<String> = built.tags.iter().map(|t| t.to_string()).collect();
    // What names the result in the store: its first tag, else its digest.
    let handle = names.first().cloned().unwrap_or_else(|| built.manifest.to_string());
    for o in outputs {
        match o {
            Output::Image => {}
            Output::Registry => {
                if names.is_empty() {
                    bail!("pushing the build's result needs a name: give -t REGISTRY/NAME[:TAG]");
                }
                let mut store = super::open_store(root)?;
                let opts = strata_transfer::push::PushOptions {
                    client: super::distribution::client_options(true)?,
                    compression_level: compression.level,
                    compression: Some(compression.kind),
                    force_compression: compression.force,
                };
                for n in &names {
                    let r = strata_transfer::push::push(&mut store, n, &opts, &no_progress_push())?;
                    eprintln!("pushed {} ({})", r.reference.familiar(), r.digest);
                }
            }
            Output::Archive { format, dest } => {
                if dest.is_none() && std::io::stdout().is_terminal() {
                    bail!("refusing to write an archive to a terminal: give dest=FILE or redirect");
                }
                let store = super::open_store(root)?;
                let tmp = store.tmp_dir();
                let source = StoreLocation::new(store);
                let sink = ArchiveSink::create(*format, dest.as_deref(), || Box::new(std::io::stdout()), &tmp)?;
                strata_registry::block_on(async {
                    let all = CopyOptions {
                        platforms: PlatformChoice::All,
                        ..CopyOptions::default()
                    };
                    strata_transfer::copy(&source, &sink, Some(&handle), &names, &all, no_progress()).await?;
                    sink.commit().await
                })??;
            }
            Output::Local { dest } => {
                let store = super::open_store(root)?;
                export_rootfs(&store, built, dest)?;
            }
            Output::Tar { dest } => {
                if dest.is_none() && std::io::stdout().is_terminal() {
                    bail!("refusing to write a tar to a terminal: give dest=FILE or redirect");
                }
                let store = super::open_store(root)?;
                let tree = tempfile::Builder::new()
                    .prefix("build-output-")
                    .tempdir_in(store.tmp_dir())
                    .context("creating a directory for the tar output")?;
                export_rootfs(&store, built, tree.path())?;
                super::write_output(dest.as_deref(), |w| {
                    let opts = strata_layer::WriteOptions {
                        compression: strata_layer::Compression::None,
                        level: None,
                        source_date_epoch: None,
                    };
                    strata_layer::write_overlay_upper_layer(tree.path(), &opts, w)?;
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

fn no_progress_push() -> strata_transfer::progress::Progress {
    std::sync::Arc::new(|_| {})
}

/// The root filesystem of each platform's image under `dest` (in
/// `dest/<os>_<arch>[_<variant>]` when several were built), layers applied
/// in order with their whiteouts; device nodes are not made.
fn export_rootfs(store: &Store, built: &BuildOutput, dest: &Path) -> Result<()> {
    let images: Vec<(Option<Platform>, Digest)> = if built.platforms.len() > 1 {
        built
            .platforms
            .iter()
            .map(|p| (Some(p.platform.clone()), p.image_id.clone()))
            .collect()
    } else {
        vec![(
            None,
            built
                .platforms
                .first()
                .map(|p| p.image_id.clone())
                .unwrap_or_else(|| built.image_id.clone()),
        )]
    };
    for (platform, id) in images {
        let dir = match &platform {
            Some(p) => dest.join(p.to_string().replace('/', "_")),
            None => dest.to_path_buf(),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let image = store
            .image(&id)?
            .with_context(|| format!("the built image {id} is not in the store"))?;
        for diff_id in &image.diff_ids {
            let blob = store
                .held_layer_blobs(diff_id)?
                .into_iter()
                .next()
                .with_context(|| format!("layer {diff_id} has no blob in the store"))?;
            let f = store.open_blob(&blob.digest)?;
            let opts = UnpackOptions {
                whiteouts: WhiteoutMode::Apply,
                devices: false,
                ..UnpackOptions::default()
            };
            strata_layer::unpack(std::io::BufReader::with_capacity(1 << 20, f), &dir, &opts)
                .with_context(|| format!("writing layer {diff_id} into {}", dir.display()))?;
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_as_buildx_takes_them() {
        assert_eq!(parse(&[], false, false).unwrap(), [Output::Image]);
        assert_eq!(parse(&[], true, false).unwrap(), [Output::Registry]);
        assert_eq!(
            parse(&["out".into()], false, false).unwrap(),
            [Output::Local { dest: "out".into() }]
        );
        assert_eq!(
            parse(&["-".into()], false, false).unwrap(),
            [Output::Tar { dest: None }]
        );
        assert_eq!(
            parse(&["type=oci,dest=x.tar".into()], false, true).unwrap(),
            [
                Output::Archive {
                    format: ArchiveFormat::OciArchive,
                    dest: Some("x.tar".into())
                },
                Output::Image
            ]
        );
        assert_eq!(
            parse(&["type=image,push=true".into()], false, false).unwrap(),
            [Output::Registry]
        );
        assert!(parse(&["type=local".into()], false, false).is_err());
        assert!(parse(&["type=nope,dest=x".into()], false, false).is_err());
        assert!(parse(&["dest=x".into()], false, false).is_err());
    }
}
