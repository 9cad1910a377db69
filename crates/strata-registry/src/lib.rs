//! strata-registry: the OCI distribution **client** — talks to registries
//! (Docker Hub, any OCI registry, strata's own server) over HTTP(S).
//!
//! Owns endpoint discovery (HTTPS, or plain HTTP for loopback and
//! `--tls-verify=false`), per-registry CA and client certificates
//! (`/etc/docker/certs.d`), authentication (Basic, Bearer tokens per scope,
//! OAuth2 refresh tokens), Docker's credentials (`config.json`, credential
//! helpers, login/logout), manifests, blobs (verified, resumable, chunked
//! uploads, mounts), tag lists and the catalog, and platform selection.
//!
//! It must never trust a byte it receives before it is hashed against the
//! digest it was asked for, never hold a whole layer in memory, never read
//! more than 4 MiB of a manifest, and never send `Authorization` to any
//! origin but the registry's (redirects are followed by hand). The client
//! modules know nothing of the local image store (pull and push are
//! strata-transfer's, and so is `pin`).

mod auth;
mod blobs;
mod client;
pub mod credentials;
mod error;
mod insecure;
mod manifests;
mod retry;
mod tls;

pub use auth::{Challenge, Scope, parse_challenges};
pub use blobs::{BlobReader, Mount, PartialBlob, Upload};
pub use client::{
    Client, ClientOptions, Credentials, DEFAULT_CONCURRENT_TRANSFERS, DOCKER_HUB_API_HOST, Protocol, api_host,
    insecure_registries_of_daemon_json, install_crypto_provider, is_listed_insecure, is_loopback,
    system_insecure_registries,
};
pub use credentials::{Credential, CredentialStore, DOCKER_HUB_KEY, server_key};
pub use error::{ApiErrorEntry, RegistryError, Result, Site};
pub use manifests::{
    MANIFEST_ACCEPT, ManifestHead, ManifestResponse, Resolved, index_platforms, manifest_reference, select_manifest,
};
pub use retry::{RetryPolicy, parse_retry_after, retryable_status};
pub use tls::DEFAULT_CERTS_DIR;

/// Runs a future to completion on a multi-threaded runtime (blob transfers
/// run in parallel; checking layers runs on threads of their own).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8))
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Io {
            what: "starting the I/O runtime".into(),
            source: e,
        })?;
    Ok(rt.block_on(f))
}

/// Checks `username`/`password` against `registry` (Basic, or the token
/// service it names), then stores them: with the configured credential
/// helper, else as base64 `auth` in `config.json` (created with mode 0600).
/// Returns where they were stored.
pub async fn login(registry: &str, username: &str, password: &str, options: &ClientOptions) -> Result<String> {
    if username.is_empty() {
        return Err(RegistryError::Invalid("login: the user name is empty".into()));
    }
    let registry = normalize_login_server(registry);
    let mut opts = options.clone();
    opts.credentials = Credentials::Explicit(Credential::new(username, password));
    let client = Client::new(&registry, opts)?;
    client.check_credentials().await?;
    let store = options.credential_store()?;
    let cred = Credential::new(username, password);
    tokio::task::spawn_blocking(move || store.store(&registry, &cred))
        .await
        .map_err(|e| RegistryError::Credentials(format!("storing credentials: {e}")))?
}

/// Removes stored credentials for `registry`; false when there were none.
pub fn logout(registry: &str, options: &ClientOptions) -> Result<bool> {
    let registry = normalize_login_server(registry);
    options.credential_store()?.erase(&registry)
}

/// `https://host:port/v1/` → `host:port`; no server means Docker Hub.
fn normalize_login_server(server: &str) -> String {
    let s = server.trim();
    if s.is_empty() {
        return "docker.io".into();
    }
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    if credentials::is_docker_hub(&host) {
        "docker.io".into()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn login_servers() {
        assert_eq!(super::normalize_login_server(""), "docker.io");
        assert_eq!(
            super::normalize_login_server("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(super::normalize_login_server("localhost:5000"), "localhost:5000");
        assert_eq!(
            super::normalize_login_server("http://Reg.Example:5000/v2/"),
            "reg.example:5000"
        );
    }
}
