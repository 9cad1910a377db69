//! A container's start lock, `start.lock` in its state directory: held by
//! the process starting the container and inherited by the monitor it
//! forks, so a reaper can tell a start under way from a creator that died
//! before starting (see `Containers::reap`).

use std::fs::File;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

const START_LOCK: &str = "start.lock";

/// The lock of the container whose state directory is `state_dir`,
/// waiting for it or not; None when it cannot be had now.
pub(crate) fn lock(state_dir: &Path, wait: bool) -> Option<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join(START_LOCK))
        .ok()?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    flock(&f, op).ok()?;
    Some(f)
}
