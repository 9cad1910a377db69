//! strata-container: containers over the local store. A container is an
//! image's layers (unpacked once, shared) plus its own writable snapshot,
//! a record in the store's `containers` table, and a runtime state directory
//! (`<store>/containers/<id>`: snapshot, `state.json`, `ctr.log`).
//!
//! Lifecycle (`create`, `start`, `stop`, `kill`, `rm`), listing with
//! verified state, logs, exec, `diff`, `commit`, `cp`, `export` and
//! volumes. Processes are run by `strata-runtime`; roots are mounted by
//! `strata-snapshot`; layers are unpacked by `strata-layer`.

mod commit;
mod copy;
mod diff;
mod engine;
mod error;
mod names;
mod net;
mod record;
pub mod resources;
mod rootfs;
mod security;
mod start_lock;
mod state;
mod usage;
mod volumes;

pub use commit::CommitOptions;
pub use copy::CopyTarget;
pub use diff::{Change, ChangeKind};
pub use engine::{Containers, CreateOptions, ExecOptions, Status, VolumeArg, parse_signal};
pub use error::{Error, Result, RunFailed};
pub use names::random_id;
pub use net::{exposed_of, network_exit_hook};
pub use record::ContainerRecord;
pub use rootfs::{SnapshotLayerUsers, ensure_unpacked};
pub use security::SecurityOptions;
pub use strata_runtime::LogEntry;
pub use usage::{ContainerUsage, VolumeUsage, directory_size, tree_size};

/// Sends a signal to the container whose state directory this is.
pub fn kill_state_dir(state_dir: &std::path::Path, signal: i32) -> Result<()> {
    strata_runtime::kill(state_dir, signal)?;
    Ok(())
}
pub use volumes::{Volume, Volumes};
