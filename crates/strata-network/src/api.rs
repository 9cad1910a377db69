//! The interface the container engine and the CLI use.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::endpoint::{
    attach_locked, bridge_needed, down_locked, forget_locked, remove_unused_bridges, up_locked, write_container_files,
    write_files_for,
};
use crate::error::{Error, Result};
use crate::ipam::{self, Subnet};
use crate::link;
use crate::nft;
use crate::ports::{PortSpec, Published};
use crate::state::{self, Attach, Ctr, Dir, NetDef, State};
use crate::usermode;

/// Names that are not user networks.
pub fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        "bridge" | "host" | "none" | "default" | usermode::PASTA | usermode::SLIRP
    )
}

/// The network a container gets when none is asked: the `bridge` network
/// when strata can make bridges and nftables rules (root, `ip` and `nft`
/// present), else user-mode networking (pasta, then slirp4netns), as Podman
/// chooses rootless; the host's network when none of these exist.
pub fn default_mode() -> String {
    if strata_rootless::privileged() && link::find_binary("ip").is_some() && nft::nft_binary().is_some() {
        "bridge".into()
    } else if usermode::available(usermode::PASTA) {
        usermode::PASTA.into()
    } else if usermode::available(usermode::SLIRP) {
        usermode::SLIRP.into()
    } else {
        if !strata_rootless::privileged() && !usermode::tun_usable() {
            eprintln!(
                "WARNING: /dev/net/tun cannot be opened by this user (Debian's udev makes it 0666), so there is \
                 no user-mode networking: the container uses the host's network"
            );
        }
        "host".into()
    }
}

/// How a container is known to the network layer.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    /// `bridge`, `pasta`, `slirp4netns` or a user network (`host`/`none` need nothing).
    pub mode: &'a str,
    /// `--network-alias`.
    pub aliases: &'a [String],
}

/// What a started container needs: its namespace and its files.
#[derive(Debug, Clone)]
pub struct Up {
    pub netns: PathBuf,
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
    pub ports: Vec<Published>,
}

/// A container's view for `inspect`, `ps`, `port`.
#[derive(Debug, Clone, Default)]
pub struct ContainerNet {
    pub mode: String,
    pub attachments: Vec<Attachment>,
    pub ports: Vec<Published>,
    pub running: bool,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub network: String,
    pub network_id: String,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<String>,
}

/// `network ls`/`inspect`.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null` (Docker's drivers).
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub bridge: Option<String>,
    pub created: String,
    pub labels: BTreeMap<String, String>,
    pub builtin: bool,
    /// (container ID, name, IPv4 address with prefix, MAC) of running containers.
    pub containers: Vec<(String, String, String, String)>,
    /// Names of containers attached (running or not).
    pub attached: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What the engine says about a container the network layer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Removed (or never made).
    Gone,
    Stopped,
    /// Running, or about to be restarted by its keeper.
    Running,
}

pub struct Networks {
    dir: Dir,
    /// The store this handle acts for.
    store: String,
}

/// Where the network state lives. As root it is host-wide
/// (`/var/lib/strata/network`, whatever the store): bridges, subnets,
/// addresses, host ports and the nft table are the host's, so every store
/// of the host allocates them under one lock (and user networks are
/// shared by the host's stores). `STRATA_NETWORK_DIR` chooses another;
/// without root, the store's own `network` directory (user-mode only).
fn state_dir(store_root: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("STRATA_NETWORK_DIR") {
        return PathBuf::from(d);
    }
    if strata_rootless::privileged() {
        PathBuf::from("/var/lib/strata/network")
    } else {
        store_root.join("network")
    }
}

fn random_hex64() -> String {
    let mut b = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn me() -> (i32, u64) {
    let pid = std::process::id() as i32;
    (pid, state::start_time(pid).unwrap_or(0))
}

/// The default `bridge` network, made on first use.
fn ensure_default(st: &mut State) -> Result<()> {
    if !st.networks.contains_key("bridge") {
        let subnet = ipam::pick_subnet(st, &ipam::host_routes())?;
        st.networks.insert(
            "bridge".into(),
            NetDef {
                id: random_hex64(),
                name: "bridge".into(),
                bridge: "strata0".into(),
                subnet: subnet.to_string(),
                gateway: subnet.first(),
                created: now_rfc3339(),
                labels: BTreeMap::new(),
                user: false,
                store: String::new(),
                last_lease: None,
            },
        );
    }
    for b in ["host", "none"] {
        st.builtin_ids.entry(b.to_string()).or_insert_with(random_hex64);
    }
    Ok(())
}

pub(crate) fn is_bridge_mode(st: &State, mode: &str) -> bool {
    nft::is_bridge_mode(st, mode)
}

fn check_mode(st: &State, mode: &str, aliases: &[String]) -> Result<()> {
    match mode {
        "bridge" | usermode::PASTA | usermode::SLIRP | "host" | "none" => {
            if !aliases.is_empty() {
                return Err(Error::Unsupported {
                    mode: mode.into(),
                    why: "network-scoped aliases are supported only for containers in user defined networks".into(),
                });
            }
            Ok(())
        }
        m if st.networks.get(m).is_some_and(|n| n.user) => Ok(()),
        m => Err(Error::NoSuchNetwork(m.to_string())),
    }
}

/// The Ctr of a registration, made when missing.
fn ensure_ctr<'s>(st: &'s mut State, store: &str, r: &Registration<'_>) -> Result<&'s mut Ctr> {
    if !st.containers.contains_key(r.id) {
        if r.mode == "bridge" {
            ensure_default(st)?;
        }
        check_mode(st, r.mode, r.aliases)?;
        let attachments = if is_bridge_mode(st, r.mode) {
            vec![Attach {
                network: r.mode.to_string(),
                aliases: r.aliases.to_vec(),
                ip: None,
                veth: None,
                ifname: None,
            }]
        } else {
            Vec::new()
        };
        st.containers.insert(
            r.id.to_string(),
            Ctr {
                store: store.to_string(),
                name: r.name.to_string(),
                hostname: r.hostname.to_string(),
                mode: r.mode.to_string(),
                attachments,
                live: None,
            },
        );
    }
    let c = st.containers.get_mut(r.id).expect("just made");
    c.name = r.name.to_string();
    c.hostname = r.hostname.to_string();
    Ok(c)
}

impl Networks {
    /// The network state of the store at `store_root` (`STORE/network`).
    pub fn open(store_root: &Path) -> Networks {
        let store = std::fs::canonicalize(store_root).unwrap_or_else(|_| store_root.to_path_buf());
        Networks {
            dir: Dir::new(state_dir(store_root)),
            store: store.display().to_string(),
        }
    }

    /// Checks a mode and aliases at `create` (a user network must exist).
    pub fn check(&self, mode: &str, aliases: &[String]) -> Result<()> {
        let st = self.dir.read()?;
        check_mode(&st, mode, aliases)
    }

    /// Makes the container's namespace, addresses, rules and files, and
    /// publishes `ports` (a port in use is an error here, before the
    /// container starts; nothing is left behind on error).
    pub fn up(&self, reg: &Registration<'_>, ports: &[PortSpec]) -> Result<Up> {
        let dir = self.dir.clone();
        self.dir.with(|st| {
            if st.containers.get(reg.id).is_some_and(|c| c.live.is_some()) {
                down_locked(st, &dir, reg.id)?;
            }
            ensure_ctr(st, &self.store, reg)?;
            let r = up_locked(st, &dir, reg.id, ports);
            if r.is_err() {
                let _ = down_locked(st, &dir, reg.id);
            }
            r
        })
    }

    /// Undoes [`Networks::up`]: the namespace, veths, leases, published
    /// ports and rules go; unused bridges too.
    pub fn down(&self, id: &str) -> Result<()> {
        let dir = self.dir.clone();
        self.dir.with(|st| down_locked(st, &dir, id))
    }

    /// `rm`: [`Networks::down`] and every trace of the container.
    pub fn forget(&self, id: &str) -> Result<()> {
        let dir = self.dir.clone();
        self.dir.with(|st| forget_locked(st, &dir, id))
    }

    /// The container's networks, addresses and published ports.
    pub fn container(&self, id: &str) -> Result<Option<ContainerNet>> {
        let st = self.dir.read()?;
        Ok(st.containers.get(id).map(|c| view(&st, c)))
    }

    /// Cleans what containers that are not running left (a strata process
    /// killed before it could): their namespaces, veths, leases, rules,
    /// and strata namespaces or bridges the state does not know.
    /// `liveness(store, id)` judges a container of any store.
    pub fn sweep(&self, liveness: &dyn Fn(&str, &str) -> Liveness) -> Result<Vec<String>> {
        let dir = self.dir.clone();
        if !dir.path.join("state.json").exists() && link::list_netns().is_empty() && link::list_bridges().is_empty() {
            return Ok(Vec::new());
        }
        self.dir.with(|st| {
            let mut cleaned = Vec::new();
            let ids: Vec<String> = st.containers.keys().cloned().collect();
            for id in ids {
                let c = &st.containers[&id];
                let owner_alive = c
                    .live
                    .as_ref()
                    .is_some_and(|l| state::alive(l.owner_pid, l.owner_start));
                let verdict = if c.store == self.store || Path::new(&c.store).is_dir() {
                    // Another store's too: the network is the host's, and
                    // that store may never be used again (found with
                    // leftover veths of a deleted test store).
                    liveness(&c.store, &id)
                } else {
                    Liveness::Gone
                };
                match verdict {
                    Liveness::Running => {}
                    _ if owner_alive => {}
                    Liveness::Gone => {
                        if c.live.is_some() {
                            cleaned.push(id.clone());
                        }
                        forget_locked(st, &dir, &id)?;
                    }
                    Liveness::Stopped => {
                        if c.live.is_some() {
                            cleaned.push(id.clone());
                            down_locked(st, &dir, &id)?;
                        }
                    }
                }
            }
            let live_ns: Vec<String> = st
                .containers
                .values()
                .filter_map(|c| c.live.as_ref())
                .filter_map(|l| Path::new(&l.netns).file_name()?.to_str().map(String::from))
                .collect();
            for ns in link::list_netns() {
                if !live_ns.contains(&ns) {
                    link::delete_netns(&ns)?;
                    cleaned.push(ns);
                }
            }
            // User networks of stores that are gone (and unused).
            let orphans: Vec<String> = st
                .networks
                .values()
                .filter(|n| n.user && !n.store.is_empty() && !Path::new(&n.store).is_dir())
                .filter(|n| {
                    !st.containers
                        .values()
                        .any(|c| c.attachments.iter().any(|a| a.network == n.name))
                })
                .map(|n| n.name.clone())
                .collect();
            for n in orphans {
                st.networks.remove(&n);
            }
            for b in link::list_bridges() {
                if !bridge_needed(st, &b) {
                    link::delete_link(&b)?;
                    cleaned.push(b);
                }
            }
            if !cleaned.is_empty() {
                nft::apply(st)?;
            }
            Ok(cleaned)
        })
    }

    /// Every network: `bridge`, `host`, `none`, then user networks by name.
    pub fn list(&self) -> Result<Vec<NetworkInfo>> {
        let st = {
            let needs_default = {
                let st = self.dir.read()?;
                !st.networks.contains_key("bridge") || st.builtin_ids.len() < 2
            };
            if needs_default {
                self.dir.with(|st| ensure_default(st).map(|_| st.clone()))?
            } else {
                self.dir.read()?
            }
        };
        let mut out = Vec::new();
        if let Some(n) = st.networks.get("bridge") {
            out.push(info(&st, n));
        }
        for (name, driver) in [("host", "host"), ("none", "null")] {
            out.push(NetworkInfo {
                id: st.builtin_ids.get(name).cloned().unwrap_or_default(),
                name: name.into(),
                driver: driver.into(),
                subnet: None,
                gateway: None,
                bridge: None,
                created: String::new(),
                labels: BTreeMap::new(),
                builtin: true,
                containers: Vec::new(),
                attached: st
                    .containers
                    .values()
                    .filter(|c| c.mode == name)
                    .map(|c| c.name.clone())
                    .collect(),
            });
        }
        out.extend(st.networks.values().filter(|n| n.user).map(|n| info(&st, n)));
        Ok(out)
    }

    /// A network by name, full ID or ID prefix.
    pub fn find(&self, what: &str) -> Result<NetworkInfo> {
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.name == what) {
            return Ok(n.clone());
        }
        let hits: Vec<&NetworkInfo> = all
            .iter()
            .filter(|n| !what.is_empty() && n.id.starts_with(what))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(Error::NoSuchNetwork(what.to_string())),
        }
    }

    /// `network create`: a bridge network with its own subnet.
    pub fn create(&self, req: &CreateNetwork) -> Result<NetworkInfo> {
        let name = req.name.as_str();
        if !strata_rootless::privileged() {
            return Err(Error::Unsupported {
                mode: "bridge".into(),
                why: "user networks are bridges on the host, which need root; rootless containers use \
                      user-mode networking (pasta or slirp4netns, -p forwarded)"
                    .into(),
            });
        }
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(Error::Other(format!(
                "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if is_builtin(name) {
            return Err(Error::Other(format!(
                "operation is not permitted on predefined {name} network"
            )));
        }
        let host = ipam::host_routes();
        let def = self.dir.with(|st| {
            ensure_default(st)?;
            if st.networks.contains_key(name) {
                return Err(Error::NetworkExists(name.to_string()));
            }
            let subnet = match &req.subnet {
                Some(s) => {
                    let s = Subnet::parse(s)?;
                    if !(8..=30).contains(&s.len) {
                        return Err(Error::BadSubnet(s.to_string()));
                    }
                    ipam::check_free(st, &host, &s)?;
                    s
                }
                None => ipam::pick_subnet(st, &host)?,
            };
            let gateway = match &req.gateway {
                Some(g) => {
                    let ip: Ipv4Addr = g.parse().map_err(|_| Error::Other(format!("invalid gateway {g:?}")))?;
                    if !subnet.contains(ip) {
                        return Err(Error::Other(format!("gateway {ip} is not in subnet {subnet}")));
                    }
                    ip
                }
                None => subnet.first(),
            };
            let id = random_hex64();
            let def = NetDef {
                bridge: format!("strata-{}", &id[..8]),
                id,
                name: name.to_string(),
                subnet: subnet.to_string(),
                gateway,
                created: now_rfc3339(),
                labels: req.labels.clone(),
                user: true,
                store: self.store.clone(),
                last_lease: None,
            };
            st.networks.insert(name.to_string(), def.clone());
            Ok(def)
        })?;
        let st = self.dir.read()?;
        Ok(info(&st, &def))
    }

    /// `network rm`: refused while containers are attached.
    pub fn remove(&self, what: &str) -> Result<String> {
        let n = self.find(what)?;
        if n.builtin {
            return Err(Error::Predefined(n.name));
        }
        self.dir.with(|st| {
            let users: Vec<String> = st
                .containers
                .values()
                .filter(|c| c.attachments.iter().any(|a| a.network == n.name))
                .map(|c| c.name.clone())
                .collect();
            if !users.is_empty() {
                return Err(Error::NetworkInUse {
                    name: n.name.clone(),
                    id: n.id.clone(),
                    containers: users.join(", "),
                });
            }
            if let Some(def) = st.networks.remove(&n.name) {
                link::delete_link(&def.bridge)?;
            }
            Ok(n.name.clone())
        })
    }

    /// `network prune`: user networks no container is attached to.
    pub fn prune(&self) -> Result<Vec<String>> {
        let names: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|n| !n.builtin && n.attached.is_empty())
            .map(|n| n.name)
            .collect();
        let mut out = Vec::new();
        for n in names {
            if self.remove(&n).is_ok() {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// `network connect`: attaches now when the container runs on a bridge.
    pub fn connect(&self, reg: &Registration<'_>, network: &str, aliases: &[String]) -> Result<()> {
        let dir = self.dir.clone();
        self.dir.with(|st| {
            let net = st
                .networks
                .get(network)
                .filter(|n| n.user || n.name == "bridge")
                .cloned()
                .ok_or_else(|| Error::NoSuchNetwork(network.to_string()))?;
            if !net.user && !aliases.is_empty() {
                return Err(Error::Unsupported {
                    mode: network.into(),
                    why: "network-scoped aliases are supported only for user defined networks".into(),
                });
            }
            let c = ensure_ctr(st, &self.store, reg)?;
            if !matches!(c.mode.as_str(), m if m == "bridge" || !is_builtin(m)) {
                return Err(Error::Unsupported {
                    mode: c.mode.clone(),
                    why: "a container on the host's, no or a user-mode network cannot be connected to other networks"
                        .into(),
                });
            }
            if c.attachments.iter().any(|a| a.network == network) {
                return Err(Error::AlreadyConnected {
                    container: reg.name.to_string(),
                    network: network.to_string(),
                });
            }
            c.attachments.push(Attach {
                network: network.to_string(),
                aliases: aliases.to_vec(),
                ip: None,
                veth: None,
                ifname: None,
            });
            let idx = c.attachments.len() - 1;
            if c.live.is_some() {
                attach_locked(st, reg.id, idx, false)?;
                write_files_for(st, &dir, network)?;
                nft::apply(st)?;
            }
            Ok(())
        })
    }

    /// `network disconnect`.
    pub fn disconnect(&self, id: &str, name: &str, network: &str) -> Result<()> {
        let dir = self.dir.clone();
        self.dir.with(|st| {
            let not = || Error::NotConnected {
                container: name.to_string(),
                network: network.to_string(),
            };
            let c = st.containers.get_mut(id).ok_or_else(not)?;
            let idx = c
                .attachments
                .iter()
                .position(|a| a.network == network)
                .ok_or_else(not)?;
            let a = c.attachments.remove(idx);
            if let Some(v) = &a.veth {
                link::delete_link(v)?;
            }
            if c.live.is_some() {
                write_container_files(st, &dir, id)?;
                write_files_for(st, &dir, network)?;
            }
            remove_unused_bridges(st)?;
            nft::apply(st)
        })
    }
}

fn info(st: &State, n: &NetDef) -> NetworkInfo {
    let prefix = Subnet::parse(&n.subnet).map(|s| s.len).unwrap_or(16);
    NetworkInfo {
        id: n.id.clone(),
        name: n.name.clone(),
        driver: "bridge".into(),
        subnet: Some(n.subnet.clone()),
        gateway: Some(n.gateway),
        bridge: Some(n.bridge.clone()),
        created: n.created.clone(),
        labels: n.labels.clone(),
        builtin: !n.user,
        containers: st
            .live_on(&n.name)
            .map(|(id, c, a)| {
                let ip = a.ip.expect("live_on gives leased");
                (id.clone(), c.name.clone(), format!("{ip}/{prefix}"), link::mac_of(ip))
            })
            .collect(),
        attached: st
            .containers
            .values()
            .filter(|c| c.attachments.iter().any(|a| a.network == n.name))
            .map(|c| c.name.clone())
            .collect(),
    }
}

fn view(st: &State, c: &Ctr) -> ContainerNet {
    ContainerNet {
        mode: c.mode.clone(),
        attachments: c
            .attachments
            .iter()
            .map(|a| {
                let n = st.networks.get(&a.network);
                Attachment {
                    network: a.network.clone(),
                    network_id: n.map(|n| n.id.clone()).unwrap_or_default(),
                    aliases: a.aliases.clone(),
                    ip: a.ip,
                    prefix: n.and_then(|n| Subnet::parse(&n.subnet).ok()).map_or(0, |s| s.len),
                    gateway: a.ip.and(n.map(|n| n.gateway)),
                    mac: a.ip.map(link::mac_of),
                }
            })
            .collect(),
        ports: c.live.as_ref().map(|l| l.ports.clone()).unwrap_or_default(),
        running: c.live.is_some(),
    }
}
