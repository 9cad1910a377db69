//! The network state: one JSON file read and written under an exclusive
//! `flock`, so concurrent strata processes see each other's leases.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io};
use crate::ports::Published;

/// A bridge network (the default `bridge` and user networks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetDef {
    pub id: String,
    pub name: String,
    /// The Linux bridge (`strata0` for the default network).
    pub bridge: String,
    /// `a.b.c.d/len`.
    pub subnet: String,
    pub gateway: Ipv4Addr,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Containers of user networks find each other by name; the default
    /// bridge gives only the container's own name (Docker's rule).
    pub user: bool,
    /// The store that made it (user networks of a store that is gone are swept).
    #[serde(default)]
    pub store: String,
    /// The address leased last: the next lease starts after it (as
    /// Docker's serial IPAM), so a released address is not handed out again
    /// at once (stale ARP entries and conntrack state stay with the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lease: Option<Ipv4Addr>,
}

/// One network a container is connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attach {
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The lease, the host-side veth and the interface in the container:
    /// set while the container runs.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub veth: Option<String>,
    #[serde(default)]
    pub ifname: Option<String>,
}

/// What exists on the host while the container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    /// The bind-mounted network namespace (`/run/netns/strata-<id>`).
    pub netns: String,
    /// The process that brought it up (a starting container is not a leftover while it lives).
    pub owner_pid: i32,
    pub owner_start: u64,
    #[serde(default)]
    pub ports: Vec<Published>,
    /// The user-mode helper (pasta, slirp4netns) serving this container.
    #[serde(default)]
    pub helper_pid: Option<i32>,
    #[serde(default)]
    pub helper_start: u64,
}

/// A container as the network layer knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ctr {
    /// The store the container belongs to (each judges only its own).
    #[serde(default)]
    pub store: String,
    pub name: String,
    pub hostname: String,
    /// `bridge`, `host`, `none`, `pasta`, `slirp4netns` or a user network's name.
    pub mode: String,
    #[serde(default)]
    pub attachments: Vec<Attach>,
    #[serde(default)]
    pub live: Option<Live>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By name.
    #[serde(default)]
    pub networks: BTreeMap<String, NetDef>,
    /// By container ID.
    #[serde(default)]
    pub containers: BTreeMap<String, Ctr>,
    /// The IDs of `host` and `none` (made once, as Docker's).
    #[serde(default)]
    pub builtin_ids: BTreeMap<String, String>,
}

impl State {
    /// The live containers attached to `network`, with their attachment.
    pub fn live_on<'a>(&'a self, network: &'a str) -> impl Iterator<Item = (&'a String, &'a Ctr, &'a Attach)> + 'a {
        self.containers
            .iter()
            .filter(|(_, c)| c.live.is_some())
            .flat_map(move |(id, c)| {
                c.attachments
                    .iter()
                    .filter(move |a| a.network == network && a.ip.is_some())
                    .map(move |a| (id, c, a))
            })
    }
}

/// The network directory of a store: `state.json`, `lock` and per-container files.
#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    pub fn new(path: PathBuf) -> Dir {
        Dir { path }
    }

    fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.path.join("containers").join(id)
    }

    /// Reads the state without the lock (for display).
    pub fn read(&self) -> Result<State> {
        read_state(&self.state_path())
    }

    /// Runs `f` on the state under the exclusive lock and saves what it leaves.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        fs::create_dir_all(&self.path).map_err(io("creating", &self.path))?;
        let lock_path = self.path.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| Error::Io {
            what: "locking",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        let path = self.state_path();
        let mut state = read_state(&path)?;
        let before = state.clone();
        let out = f(&mut state);
        if state != before {
            write_state(&path, &state)?;
        }
        drop(lock);
        out
    }
}

fn read_state(path: &Path) -> Result<State> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::State {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(io("reading", path)(e)),
    }
}

fn write_state(path: &Path, state: &State) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
    let bytes = serde_json::to_vec_pretty(state).map_err(|source| Error::State {
        path: path.to_path_buf(),
        source,
    })?;
    f.write_all(&bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming", path))
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell a
/// live process from a reused PID.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_under_the_lock() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::new(t.path().join("net"));
        d.with(|s| {
            s.containers.insert(
                "abc".into(),
                Ctr {
                    store: String::new(),
                    name: "web".into(),
                    hostname: "web".into(),
                    mode: "bridge".into(),
                    attachments: vec![],
                    live: None,
                },
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(d.read().unwrap().containers["abc"].name, "web");
        let me = std::process::id() as i32;
        assert!(alive(me, start_time(me).unwrap()));
        assert!(!alive(me, 1));
    }
}
