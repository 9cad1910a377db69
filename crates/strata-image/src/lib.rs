//! strata-image: image-level operations over the local store — resolving
//! what a user names, `import`, removal with Docker's rules, pruning,
//! history and inspect (`save`/`load` are strata-transfer copies).
//!
//! It composes `strata-store` (metadata and blobs) with `strata-layer`
//! (tar streams). It never prints: callers get values and errors.

mod changes;
mod check;
pub mod docker_inspect;
mod error;
mod held;
mod import;
mod ops;
mod register;
mod resolve;
mod time;

pub use changes::{ChangeError, apply_change};
pub use check::{CheckOptions, CheckReport, LayerUsers, Problem, ProblemKind, check};
pub use error::{Error, Result};
pub use held::held_forms;
pub use import::{ImportOptions, ImportSource, Imported, import};
pub use ops::{
    DiskUsage, HistoryRow, ImageUsage, PruneReport, RemoveEvent, disk_usage, history, inspect, prune, remove_image,
};
pub use register::register;
pub use resolve::{Resolved, image_platform, resolve, resolve_platform};
pub use time::{format_rfc3339, human_since, now_rfc3339, parse_rfc3339};
