//! What pull and push show: Docker's progress events (`Pulling fs layer`,
//! `Downloading`, `Extracting`, `Pull complete`, `Preparing`, `Waiting`,
//! `Pushed`, …), made from the copy's events by [`crate::pull`] and
//! [`crate::push`].

use std::sync::Arc;

use strata_oci::Digest;

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

/// How many bytes pass between two [`Event::Bytes`] of one layer (as
/// many as between two of the copy's).
pub use crate::copy::BYTES_EVENT_STEP;

/// Receives events, possibly from several threads at once.
pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// A progress that drops everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}
