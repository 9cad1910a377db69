//! strata-registry-server: `strata registry serve|gc`, an OCI distribution
//! (v1.1) registry with filesystem and S3 storage, htpasswd and token auth,
//! pull-through caching, garbage collection and Prometheus metrics.
//!
//! Owns its storage layout and everything behind its HTTP API. It depends on
//! `strata-oci` only for validation; it must never touch strata's local image
//! store, never trust a byte from a client before it is hashed or parsed, and
//! never let a request-supplied name, digest or id reach a storage key
//! unvalidated.

pub mod auth;
mod cli;
pub mod config;
mod conn;
pub mod error;
pub mod gc;
pub mod metrics;
pub mod proxy;
pub mod registry;
mod routes;
mod server;
pub mod storage;
pub mod util;

pub use cli::cli_main;
pub use config::Config;
pub use routes::{parse_content_range, parse_range};
pub use server::{RunningServer, app, driver, registry, start};
