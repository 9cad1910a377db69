//! `strata registry serve|gc` argument parsing.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, FsConfig};
use crate::error::Result;
use crate::gc::GcOptions;

#[derive(Parser)]
#[command(name = "strata registry", about = "Run an OCI registry, or collect its garbage")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// Configuration file (YAML, in the style of distribution's config.yml).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Filesystem storage directory (overrides the config's storage).
    #[arg(long)]
    root: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the registry API.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (host:port).
        #[arg(long)]
        addr: Option<String>,
        /// Refuse every write.
        #[arg(long)]
        read_only: bool,
    },
    /// Delete blobs no manifest references (and stale upload sessions).
    Gc {
        #[command(flatten)]
        common: Common,
        /// Report what would be deleted without deleting it.
        #[arg(long)]
        dry_run: bool,
        /// Also delete manifests that no tag reaches.
        #[arg(long)]
        delete_untagged: bool,
        /// Upload sessions idle for longer than this are removed (e.g. 24h, 0s).
        #[arg(long, default_value = "24h", value_parser = crate::util::parse_duration)]
        upload_max_age: std::time::Duration,
        /// Unreferenced blobs younger than this are kept (pushes in progress).
        #[arg(long, default_value = "1h", value_parser = crate::util::parse_duration)]
        grace: std::time::Duration,
    },
}

fn load(common: &Common) -> Result<Config> {
    let mut c = match &common.config {
        Some(p) => Config::load(p)?,
        None => {
            let mut c = Config::default();
            c.storage.filesystem = Some(FsConfig {
                rootdirectory: "/var/lib/strata-registry".into(),
            });
            c
        }
    };
    if let Some(root) = &common.root {
        c.storage.s3 = None;
        c.storage.filesystem = Some(FsConfig {
            rootdirectory: root.clone(),
        });
    }
    Ok(c)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Serve {
            common,
            addr,
            read_only,
        } => {
            let mut c = load(&common)?;
            if let Some(a) = addr {
                c.http.addr = a;
            }
            if read_only {
                c.storage.maintenance.readonly.enabled = true;
            }
            let tls = c.http.tls.is_some();
            let storage = crate::server::driver(&c)?.describe();
            let server = crate::server::start(c).await?;
            eprintln!("strata registry: serving {} on {}", storage, server.url(tls));
            shutdown_signal().await;
            eprintln!("strata registry: shutting down");
            server.stop().await;
            Ok(())
        }
        Cmd::Gc {
            common,
            dry_run,
            delete_untagged,
            upload_max_age,
            grace,
        } => {
            let c = load(&common)?;
            let reg = crate::server::registry(&c)?;
            let opts = GcOptions {
                dry_run,
                delete_untagged,
                upload_max_age,
                grace,
            };
            let r = crate::gc::run(&reg, &opts).await?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!(
                "{} repositories, {} blobs in use; {verb} {} manifests, {} blobs ({} bytes), {} upload sessions, {} links",
                r.repositories,
                r.blobs_marked,
                r.manifests_deleted,
                r.blobs_deleted,
                r.bytes_freed,
                r.uploads_removed,
                r.links_removed
            );
            Ok(())
        }
    }
}

/// Entry point for `strata registry ARGS...` (everything after the word
/// `registry`); returns the process exit code.
pub fn cli_main(args: Vec<OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("strata registry")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata registry: starting the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strata registry: {}", crate::error::chain(&e));
            1
        }
    }
}
