//! Per-registry TLS material as Docker reads it from
//! `/etc/docker/certs.d/HOST[:PORT]/`: `*.crt` are extra CA certificates,
//! `NAME.cert` with `NAME.key` is a client certificate.

use std::path::{Path, PathBuf};

use crate::error::{RegistryError, Result, chain};
use crate::insecure::is_loopback;

pub const DEFAULT_CERTS_DIR: &str = "/etc/docker/certs.d";

#[derive(Default)]
pub(crate) struct TlsMaterial {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
    /// Files read, for messages.
    pub files: Vec<PathBuf>,
}

fn bad(path: &Path, what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Invalid(format!("{}: {what}: {e}", path.display()))
}

/// Reads the material for the first of `names` that has a directory.
pub(crate) fn load(certs_dir: &Path, names: &[String]) -> Result<TlsMaterial> {
    let mut out = TlsMaterial::default();
    for name in names {
        // A name is a host[:port]; never let it walk out of certs_dir.
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            continue;
        }
        let dir = certs_dir.join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in &entries {
            let Some(file) = p.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if file.ends_with(".crt") {
                let pem = std::fs::read(p).map_err(|e| bad(p, "reading CA certificate", e))?;
                let certs =
                    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(p, "not a PEM certificate", e))?;
                if certs.is_empty() {
                    return Err(bad(p, "not a PEM certificate", "no certificate in the file"));
                }
                out.roots.extend(certs);
                out.files.push(p.clone());
            } else if let Some(stem) = file.strip_suffix(".cert") {
                let key = dir.join(format!("{stem}.key"));
                if !key.exists() {
                    return Err(bad(
                        p,
                        "client certificate without its key",
                        format!("{} is missing", key.display()),
                    ));
                }
                let mut pem = std::fs::read(p).map_err(|e| bad(p, "reading client certificate", e))?;
                pem.push(b'\n');
                pem.extend(std::fs::read(&key).map_err(|e| bad(&key, "reading client key", e))?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| bad(p, "unusable client certificate/key", e))?;
                out.identity = Some(id);
                out.files.push(p.clone());
            } else if let Some(stem) = file.strip_suffix(".key") {
                let cert = dir.join(format!("{stem}.cert"));
                if !cert.exists() {
                    return Err(bad(
                        p,
                        "client key without its certificate",
                        format!("{} is missing", cert.display()),
                    ));
                }
            }
        }
        if !out.files.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// The HTTP client of a registry; `tls`: its `certs.d` material, or None
/// for a client that speaks plain HTTP only (no CA certificates loaded).
pub(crate) fn build_http(
    registry: &str,
    options: &crate::client::ClientOptions,
    host: &str,
    tls: Option<TlsMaterial>,
) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .http1_only();
    match tls {
        Some(tls) => {
            if !tls.roots.is_empty() {
                b = b.tls_certs_merge(tls.roots);
            }
            if let Some(id) = tls.identity {
                b = b.identity(id);
            }
            if options.insecure {
                b = b.tls_danger_accept_invalid_certs(true);
            }
        }
        None => b = b.tls_certs_only(Vec::new()),
    }
    if is_loopback(host) {
        b = b.no_proxy();
    }
    b.build()
        .map_err(|e| RegistryError::Invalid(format!("setting up HTTP for registry {registry}: {}", chain(&e))))
}
