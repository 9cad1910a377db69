//! What a container is, as stored (JSON in the store's `containers` table).

use serde::{Deserialize, Serialize};
use strata_oci::ContainerConfig;

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// `bind` (host path), `volume` (named) or `anonymous` (removed by `rm -v`).
    pub kind: String,
    /// Host path for binds, volume name otherwise.
    pub source: String,
    pub destination: String,
    pub readonly: bool,
}

impl MountRecord {
    /// Whether this mounts the volume `name` (named or anonymous).
    pub fn uses_volume(&self, name: &str) -> bool {
        self.kind != "bind" && self.source == name
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image_id: String,
    /// What the user named (`busybox`, an ID...), shown by `ps`.
    pub image_ref: String,
    pub created: String,
    /// The effective config: the image's, with the run options applied
    /// (what `commit` keeps).
    pub config: ContainerConfig,
    /// The process: entrypoint + cmd as resolved at create.
    pub args: Vec<String>,
    pub hostname: String,
    /// The network the container is on (`bridge`, `pasta`, a user network…).
    pub network: String,
    /// `--network` as given (`HostConfig.NetworkMode`: Docker says
    /// `default` when none was); `None` in records made before it was kept.
    #[serde(default)]
    pub network_mode: Option<String>,
    pub mounts: Vec<MountRecord>,
    pub readonly_root: bool,
    pub tty: bool,
    pub stdin: bool,
    pub auto_remove: bool,
    /// Chain IDs of the image's layers, bottom first.
    pub chain: Vec<String>,
    /// Capability bits of its processes (Docker's default set unless changed).
    #[serde(default = "default_capabilities")]
    pub capabilities: u64,
    /// Seccomp, devices, no-new-privileges, privileged.
    #[serde(default)]
    pub security: strata_runtime::Security,
    /// `--restart`.
    #[serde(default)]
    pub restart: strata_runtime::RestartPolicy,
    /// `-p`, as asked (host ports chosen at start when not given).
    #[serde(default)]
    pub ports: Vec<strata_network::PortSpec>,
    /// `-P`: every exposed port is published on an ephemeral host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--network-alias` on the container's (user) network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

fn default_capabilities() -> u64 {
    strata_runtime::DEFAULT_CAPABILITIES
}
