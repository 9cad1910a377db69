//! Typed errors of the network layer.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the network state {}: {source}", path.display())]
    State { path: PathBuf, source: serde_json::Error },
    #[error("running {program}: {source} (is it installed? {hint})")]
    Spawn {
        program: String,
        hint: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Command {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("invalid publish spec {spec:?}: {why}")]
    BadPublish { spec: String, why: String },
    #[error("Bind for {addr} failed: port is already allocated")]
    PortAllocated { addr: String },
    #[error("cannot publish {addr}: the port is already in use on the host ({source})")]
    PortInUse { addr: String, source: std::io::Error },
    #[error("no free host port for {what}")]
    NoFreePort { what: String },
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("error while removing network: network {name} id {id} has active endpoints ({containers})")]
    NetworkInUse {
        name: String,
        id: String,
        containers: String,
    },
    #[error("invalid subnet {0:?} (want an IPv4 a.b.c.d/len, len 8..=30)")]
    BadSubnet(String),
    #[error("subnet {0} overlaps an address already in use on this host or by another network")]
    SubnetOverlap(String),
    #[error("no free address range for a new network (10.0.0.0/8 is used up)")]
    NoFreeSubnet,
    #[error("no free address left in network {0}")]
    NoFreeAddress(String),
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("network mode {mode:?} is not supported here: {why}")]
    Unsupported { mode: String, why: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}
