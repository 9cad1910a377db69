//! Errors of reading and compiling profiles.

/// Why a profile could not be read or compiled. Each message names the
/// offending field (`syscalls[3].args[0].op`) and, where there is one, the
/// syscall.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The document is larger than [`crate::MAX_PROFILE_SIZE`].
    #[error("seccomp profile is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },

    /// The document is not JSON of the profile's shape (a field of the wrong
    /// type, a missing brace); serde_json's message names line and column.
    #[error("decoding seccomp profile failed: {0}")]
    Json(#[from] serde_json::Error),

    /// The profile has neither `defaultAction` nor `syscalls`. Docker runs
    /// such a container without seccomp; the caller decides.
    #[error("seccomp profile has no defaultAction and no syscalls (Docker treats it as unconfined)")]
    Empty,

    /// A field holds a value this format does not have (an unknown action,
    /// operator or architecture, an argument index above 5, `name` and
    /// `names` together, ...).
    #[error("seccomp profile: {field}: {message}")]
    Invalid { field: String, message: String },

    /// The profile uses something this engine does not implement
    /// (`SCMP_ACT_NOTIFY`, `listenerPath`).
    #[error("seccomp profile: {field}: {message} is not supported")]
    Unsupported { field: String, message: String },

    /// strata has no syscall table for the architecture it was built for.
    #[error("seccomp filters are not supported on {0}")]
    UnsupportedArch(&'static str),

    /// The compiled program is longer than the kernel's limit of 4096 BPF
    /// instructions.
    #[error("seccomp filter needs {0} BPF instructions, more than the kernel's 4096")]
    TooLong(usize),
}

impl SeccompError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SeccompError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
