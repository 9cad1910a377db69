//! What pull and push show: Docker's progress events (`Pulling fs layer`,
//! `Downloading`, `Extracting`, `Pull complete`, `Preparing`, `Waiting`,
//! `Pushed`, …) and retrying transient registry failures.

use std::sync::Arc;
use std::time::Duration;

use strata_oci::Digest;
use strata_registry::RegistryError;

/// Something a pull or push did, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `latest: Pulling from library/busybox` (`what` is the tag or digest).
    PullingFrom { what: String, repository: String },
    /// `The push refers to repository [docker.io/library/busybox]`
    PushingTo { repository: String },
    /// A layer (shown by its digest) changed state.
    Layer { digest: Digest, status: LayerStatus },
    /// Bytes of a layer so far, counted as they stream (throttled: at most
    /// one event per [`BYTES_EVENT_STEP`] bytes, and one at the end).
    /// `status` is [`LayerStatus::Downloading`] (bytes received),
    /// [`LayerStatus::Extracting`] (compressed bytes the unpacker has
    /// consumed) or [`LayerStatus::Pushing`] (bytes handed to the upload).
    Bytes {
        digest: Digest,
        status: LayerStatus,
        current: u64,
        total: u64,
    },
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
    /// Pull: the download ended; the unpacker (which ran alongside) is
    /// finishing what it was handed.
    Extracting,
    /// Pull: downloaded, verified, stored.
    PullComplete,
    /// Push: compressing a plain tar layer for the registry (once).
    Compressing,
    /// Push: waiting for its turn (sent for every layer, in manifest order,
    /// before any transfer starts).
    Waiting,
    /// Push: uploading (the registry lacked it and no mount worked).
    Pushing,
    /// Push: the repository has it.
    LayerAlreadyExists,
    /// Push: mounted from another repository of the registry.
    MountedFrom(String),
    /// Push: uploaded.
    Pushed,
}

/// How many bytes pass between two [`Event::Bytes`] of one layer.
pub const BYTES_EVENT_STEP: u64 = 256 * 1024;

/// Counts bytes of one layer and sends [`Event::Bytes`] now and then.
pub(crate) struct ByteCounter {
    pub progress: Progress,
    pub digest: Digest,
    pub status: LayerStatus,
    pub total: u64,
    pub current: u64,
    last: u64,
}

impl ByteCounter {
    pub fn new(progress: Progress, digest: Digest, status: LayerStatus, total: u64) -> ByteCounter {
        ByteCounter {
            progress,
            digest,
            status,
            total,
            current: 0,
            last: 0,
        }
    }

    /// `n` more bytes went by.
    pub fn add(&mut self, n: u64) {
        self.current += n;
        if self.current - self.last >= BYTES_EVENT_STEP || (self.current >= self.total && self.last < self.total) {
            self.last = self.current;
            (self.progress)(Event::Bytes {
                digest: self.digest.clone(),
                status: self.status.clone(),
                current: self.current,
                total: self.total,
            });
        }
    }
}

/// Receives events, possibly from several threads at once.
pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// A progress that drops everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
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
