pub mod analyze;
pub mod attestations;
pub mod build;
pub mod build_cache;
pub mod build_output;
pub mod buildx;
pub mod completion;
pub mod containers;
pub mod copy;
pub mod distribution;
pub mod emulators;
mod go_regexp;
pub mod groups;
pub mod images;
pub mod imagetools;
pub mod manifest_lists;
pub mod network;
pub mod ps;
pub mod sbom;
pub mod scan;
pub mod scan_cmd;
pub mod scan_db;
pub mod scout;
pub mod stats;
pub mod system;
pub mod system_prune;
pub mod version;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use strata_store::Store;

/// Docker's usage layout for a command's `--help`.
pub const HELP_TEMPLATE: &str = "\nUsage:  {usage}\n\n{about}\n\n{all-args}{after-help}";

pub fn open_store(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("opening the store at {}", root.display()))
}

/// `-o FILE` or STDOUT for a tar stream (`save`, `export`): a file is
/// written beside its target and renamed, so a failure leaves no half file;
/// STDOUT must not be a terminal.
pub fn write_output(output: Option<&Path>, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    match output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".strata-output-")
                .tempfile_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
            write(&mut w)?;
            let tmp = w.into_inner().map_err(|e| e.into_error())?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            write(&mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}
