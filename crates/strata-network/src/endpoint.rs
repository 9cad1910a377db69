//! A container's endpoint on the host: its namespace, veths and leases,
//! published ports, files; brought up and down under the state's lock.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::api::Up;
use crate::error::{Error, Result};
use crate::files::{self, Files, HostEntry};
use crate::ipam::{self, Subnet};
use crate::link;
use crate::nft;
use crate::ports::{self, PortSpec};
use crate::state::{self, Ctr, Dir, Live, State};
use crate::usermode;

/// A network's bridge stays while the network exists, used or not, as
/// Docker's `docker0` and its user networks' bridges do: made for the first
/// container, it is not deleted and made again around every `run` (the
/// deletion alone was a third of a `run --rm`'s time on the bridge).
pub(crate) fn bridge_needed(st: &State, bridge: &str) -> bool {
    st.networks.values().any(|n| n.bridge == bridge)
}

pub(crate) fn remove_unused_bridges(st: &State) -> Result<()> {
    for n in st.networks.values() {
        if !bridge_needed(st, &n.bridge) {
            link::delete_link(&n.bridge)?;
        }
    }
    Ok(())
}

/// Leases an address on attachment `idx` of a live container and plugs its veth.
pub(crate) fn attach_locked(st: &mut State, id: &str, idx: usize, default_route: bool) -> Result<()> {
    let network = st.containers[id].attachments[idx].network.clone();
    let net = st
        .networks
        .get(&network)
        .cloned()
        .ok_or_else(|| Error::NoSuchNetwork(network.clone()))?;
    let subnet = Subnet::parse(&net.subnet)?;
    link::ensure_bridge(&net.bridge, net.gateway, subnet.len)?;
    let ip = ipam::lease(st, &network)?;
    let c = st.containers.get_mut(id).expect("checked");
    let used: Vec<String> = c.attachments.iter().filter_map(|a| a.ifname.clone()).collect();
    let n = (0..).find(|n| !used.contains(&format!("eth{n}"))).unwrap_or(0);
    let ifname = format!("eth{n}");
    let veth = format!("sv{}{n}", &id[..id.len().min(10)]);
    let netns = c.live.as_ref().map(|l| l.netns.clone()).unwrap_or_default();
    let ns_name = Path::new(&netns)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    {
        let a = &mut c.attachments[idx];
        a.ip = Some(ip);
        a.veth = Some(veth.clone());
        a.ifname = Some(ifname.clone());
    }
    link::add_veth(&link::VethPlan {
        netns: &ns_name,
        veth: &veth,
        ifname: &ifname,
        bridge: &net.bridge,
        ip,
        prefix: subnet.len,
        gateway: default_route.then_some(net.gateway),
    })
}

pub(crate) fn up_locked(st: &mut State, dir: &Dir, id: &str, specs: &[PortSpec]) -> Result<Up> {
    let mode = st.containers[id].mode.clone();
    let bridge = crate::api::is_bridge_mode(st, &mode);
    if !bridge && !matches!(mode.as_str(), usermode::PASTA | usermode::SLIRP) {
        return Err(Error::Unsupported {
            mode,
            why: "this mode has no network of strata's to bring up".into(),
        });
    }
    if bridge {
        for a in &st.containers[id].attachments {
            if !st.networks.contains_key(&a.network) {
                return Err(Error::NoSuchNetwork(a.network.clone()));
            }
        }
    }
    // Ports first: an error here leaves nothing to undo.
    let ports = ports::resolve(st, id, specs, true)?;
    let ctr_dir = dir.container_dir(id);
    std::fs::create_dir_all(&ctr_dir).map_err(crate::error::io("creating", &ctr_dir))?;
    let ns_name = link::netns_name(id);
    let (owner_pid, owner_start) = crate::api::me();
    // The live record exists before anything is made, so a failure half-way is undone.
    st.containers.get_mut(id).expect("registered").live = Some(Live {
        netns: link::netns_path(&ns_name).display().to_string(),
        owner_pid,
        owner_start,
        ports: ports.clone(),
        helper_pid: None,
        helper_start: 0,
    });
    let netns = link::add_netns(&ns_name)?;
    if bridge {
        for idx in 0..st.containers[id].attachments.len() {
            attach_locked(st, id, idx, idx == 0)?;
        }
        nft::apply(st)?;
    } else {
        let pid = usermode::start(&mode, &netns, &ctr_dir, &ports)?;
        if let Some(l) = st.containers.get_mut(id).and_then(|c| c.live.as_mut()) {
            l.helper_pid = Some(pid);
            l.helper_start = state::start_time(pid).unwrap_or(0);
        }
    }
    let files = write_container_files(st, dir, id)?;
    for a in st.containers[id].attachments.clone() {
        write_files_for(st, dir, &a.network)?;
    }
    Ok(Up {
        netns,
        hosts: files.hosts,
        hostname: files.hostname,
        resolv_conf: files.resolv_conf,
        ports,
    })
}

pub(crate) fn down_locked(st: &mut State, dir: &Dir, id: &str) -> Result<()> {
    let Some(c) = st.containers.get_mut(id) else {
        return Ok(());
    };
    let Some(live) = c.live.take() else {
        return Ok(());
    };
    let networks: Vec<String> = c.attachments.iter().map(|a| a.network.clone()).collect();
    for a in &mut c.attachments {
        a.ip = None;
        a.veth = None;
        a.ifname = None;
    }
    if let Some(pid) = live.helper_pid {
        usermode::stop(pid, live.helper_start);
    }
    // The veths are not deleted one by one: each deletion waits for the
    // kernel's RCU grace periods (~20-30 ms here, half of a `run --rm` on
    // a bridge). Dropping the namespace's mount lets the kernel destroy it,
    // and with it both ends of its veths, on its own workqueue once the
    // container's processes are gone (a veth of the same name, a restart's,
    // is deleted first by `add_veth`; the lease is already released).
    if let Some(ns) = Path::new(&live.netns).file_name().and_then(|n| n.to_str()) {
        usermode::cleanup(ns);
        link::delete_netns(ns)?;
    }
    nft::apply(st)?;
    for n in networks {
        write_files_for(st, dir, &n)?;
    }
    Ok(())
}

pub(crate) fn forget_locked(st: &mut State, dir: &Dir, id: &str) -> Result<()> {
    down_locked(st, dir, id)?;
    st.containers.remove(id);
    let d = dir.container_dir(id);
    if d.exists() {
        std::fs::remove_dir_all(&d).map_err(crate::error::io("removing", &d))?;
    }
    Ok(())
}

/// The names a container answers to on a user network.
pub(crate) fn names_of(id: &str, c: &Ctr, aliases: &[String]) -> Vec<String> {
    let mut v = vec![c.name.clone()];
    v.extend(aliases.iter().cloned());
    v.push(id[..id.len().min(12)].to_string());
    if c.hostname != id[..id.len().min(12)] {
        v.push(c.hostname.clone());
    }
    v
}

/// Writes a live container's hosts, hostname and resolv.conf.
pub(crate) fn write_container_files(st: &State, dir: &Dir, id: &str) -> Result<Files> {
    let c = &st.containers[id];
    let files = Files::in_dir(&dir.container_dir(id));
    let mut own: Vec<HostEntry> = Vec::new();
    let mut others: Vec<HostEntry> = Vec::new();
    for a in &c.attachments {
        let Some(ip) = a.ip else { continue };
        let user = st.networks.get(&a.network).is_some_and(|n| n.user);
        let mut names = vec![c.hostname.clone()];
        if user {
            names.extend(names_of(id, c, &a.aliases));
        }
        own.push((ip, names));
        if user {
            for (oid, oc, oa) in st.live_on(&a.network) {
                if oid != id {
                    others.push((oa.ip.expect("leased"), names_of(oid, oc, &oa.aliases)));
                }
            }
        }
    }
    if own.is_empty() {
        own.push((Ipv4Addr::new(127, 0, 1, 1), vec![c.hostname.clone()]));
    }
    files::write_in_place(&files.hosts, &files::hosts(&own, &others))?;
    files::write_in_place(&files.hostname, &format!("{}\n", c.hostname))?;
    files::write_in_place(&files.resolv_conf, &files::host_resolv_conf())?;
    Ok(files)
}

/// Rewrites the hosts files of every live container of a user network
/// (when one joins or leaves: the daemonless stand-in for Docker's DNS).
pub(crate) fn write_files_for(st: &State, dir: &Dir, network: &str) -> Result<()> {
    if !st.networks.get(network).is_some_and(|n| n.user) {
        return Ok(());
    }
    let ids: Vec<String> = st.live_on(network).map(|(id, _, _)| id.clone()).collect();
    for id in ids {
        write_container_files(st, dir, &id)?;
    }
    Ok(())
}
