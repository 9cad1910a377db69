//! Docker's confinement flags of `run`/`create` (`--cap-add`, `--cap-drop`,
//! `--privileged`, `--security-opt`, `--device`) turned into what the
//! runtime applies: a capability set and [`Security`].

use crate::error::{Ctx, Error, Result};
use strata_runtime::{DEFAULT_CAPABILITIES, DeviceMapping, SeccompPolicy, Security};

/// The flags as given.
#[derive(Debug, Clone, Default)]
pub struct SecurityOptions {
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `seccomp=unconfined|FILE`, `no-new-privileges[=true|false]`,
    /// `apparmor=…`/`label=…` (accepted: this host has neither AppArmor nor SELinux).
    pub security_opt: Vec<String>,
    /// `HOST[:CONTAINER][:PERMISSIONS]`.
    pub devices: Vec<String>,
    /// `--memory`, `--cpus`, ... as parsed (see [`crate::resources`]);
    /// checked and completed by [`SecurityOptions::resolve`].
    pub resources: strata_runtime::Resources,
}

impl SecurityOptions {
    /// The capability set and the rest of the confinement. A seccomp profile
    /// file is read now and kept in the container (as Docker does).
    pub fn resolve(&self) -> Result<(u64, Security)> {
        let mut security = Security {
            privileged: self.privileged,
            resources: crate::resources::resolve(&self.resources)?,
            ..Security::default()
        };
        let base = if self.privileged {
            strata_runtime::all_capabilities()
        } else {
            DEFAULT_CAPABILITIES
        };
        let caps = strata_runtime::apply_capability_changes(base, &self.cap_add, &self.cap_drop)?;
        for opt in &self.security_opt {
            // Docker accepts both `key=value` and the older `key:value`.
            let (key, value) = opt
                .split_once('=')
                .or_else(|| opt.split_once(':'))
                .map_or((opt.as_str(), None), |(k, v)| (k, Some(v)));
            match (key, value) {
                ("seccomp", Some("unconfined")) => security.seccomp = SeccompPolicy::Unconfined,
                ("seccomp", Some("builtin" | "default")) => security.seccomp = SeccompPolicy::Default,
                ("seccomp", Some(path)) => {
                    let doc = read_profile(path)?;
                    strata_runtime::check_seccomp_profile(doc.as_bytes()).map_err(|source| Error::SeccompProfile {
                        path: path.to_string(),
                        source,
                    })?;
                    security.seccomp = SeccompPolicy::Profile(doc);
                }
                ("no-new-privileges", None | Some("true")) => security.no_new_privileges = true,
                ("no-new-privileges", Some("false")) => security.no_new_privileges = false,
                ("apparmor" | "label", Some(_)) => {}
                _ => return Err(Error::InvalidSecurityOpt(opt.clone())),
            }
        }
        if self.privileged {
            // Docker: --privileged runs without seccomp whatever else is said.
            security.seccomp = SeccompPolicy::Unconfined;
        }
        for d in &self.devices {
            let m = DeviceMapping::parse(d)?;
            if !m.host.exists() {
                return Err(Error::NoSuchDevice(d.clone()));
            }
            security.devices.push(m);
        }
        Ok((caps, security))
    }
}

fn read_profile(path: &str) -> Result<String> {
    let f = std::fs::File::open(path).ctx(|| format!("opening seccomp profile ({path}) failed"))?;
    let mut doc = String::new();
    use std::io::Read;
    f.take(strata_oci::media::MAX_DOCUMENT_SIZE + 1)
        .read_to_string(&mut doc)
        .ctx(|| format!("reading seccomp profile ({path})"))?;
    if doc.len() as u64 > strata_oci::media::MAX_DOCUMENT_SIZE {
        return Err(Error::SeccompProfileTooLarge(path.to_string()));
    }
    Ok(doc)
}
