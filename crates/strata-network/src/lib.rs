//! Container networking for strata: per-container network namespaces on
//! strata bridges, NAT and published ports with nftables, user networks
//! whose containers find each other through per-container hosts files, and
//! user-mode networking (pasta, slirp4netns) where bridges are unavailable.
//!
//! Everything is daemonless: the state (networks, attachments, leases,
//! published ports) is one JSON file under the store, read and written
//! under an exclusive `flock`, so several strata processes at once allocate
//! addresses and ports safely; the nftables table `inet strata` is rendered
//! whole from that state and applied atomically (`nft -f -`) under the same
//! lock. Links are made with the `ip` binary (iproute2), the rules with the
//! `nft` binary (nftables): no netlink code of our own and nothing outside
//! strata's bridges, veths, netns files and nft table is touched. No
//! program from a container's image ever runs on the host side.

mod api;
mod endpoint;
mod error;
mod files;
mod ipam;
mod link;
mod nft;
mod ports;
mod state;
mod usermode;

pub use api::{
    Attachment, ContainerNet, CreateNetwork, Liveness, NetworkInfo, Networks, Registration, Up, default_mode,
    is_builtin,
};
pub use error::{Error, Result};
pub use ports::{PortSpec, Proto, Published, format_ports, parse_expose, parse_publish, parse_publish_ranges};
