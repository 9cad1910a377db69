//! What pull and push share: progress events, the runtime they run on, and
//! retrying transient failures.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_oci::Digest;

use crate::error::RegistryError;

/// Something a pull or push did, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `latest: Pulling from library/busybox` (`what` is the tag or digest).
    PullingFrom { what: String, repository: String },
    /// `The push refers to repository [docker.io/library/busybox]`
    PushingTo { repository: String },
    /// A layer (shown by its digest) changed state.
    Layer { digest: Digest, status: LayerStatus },
    /// A transfer failed and is tried again (resuming where it broke).
    Retrying {
        digest: Digest,
        attempt: u32,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// Pull: the store has this blob.
    AlreadyExists,
    /// Pull: downloading.
    Downloading,
    /// Pull: downloaded, verified, stored.
    PullComplete,
    /// Push: compressing a plain tar layer for the registry (once).
    Compressing,
    /// Push: the repository has it.
    LayerAlreadyExists,
    /// Push: mounted from another repository of the registry.
    MountedFrom(String),
    /// Push: uploaded.
    Pushed,
}

/// Receives events, possibly from several threads at once.
pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// A progress that drops everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

/// Runs a future to completion on a multi-threaded runtime (blob transfers
/// run in parallel; checking layers runs on threads of its own).
pub fn block_on<F: Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8))
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the I/O runtime: {e}"))?;
    Ok(rt.block_on(f))
}

/// How often a blob transfer is tried in all.
pub(crate) const ATTEMPTS: u32 = 3;

/// Whether an error is worth another attempt (the connection broke, 429, 5xx).
pub(crate) fn retryable(e: &RegistryError) -> bool {
    e.is_transient()
}

pub(crate) async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
}
