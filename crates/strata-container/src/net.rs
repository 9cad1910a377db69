//! The container engine's side of networking (`strata-network` does the
//! work): the mode chosen at create, the namespace, addresses, published
//! ports and `/etc/hosts`/`hostname`/`resolv.conf` made before a start
//! and undone when the container ends, leftovers swept.

use std::path::{Path, PathBuf};

use strata_network::{Liveness, Networks, PortSpec, Proto, Registration};
use strata_runtime::{BindMount, ExitHook, Network, RunSpec};

use crate::engine::{Containers, CreateOptions, Status};
use crate::error::Result;
use crate::record::ContainerRecord;

/// The files strata places in a container, as Docker does.
pub(crate) const NET_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// The runtime's view of a record's network mode (`bridge` and the others
/// join the namespace the network layer makes: [`Containers::network_up`]).
pub(crate) fn runtime_network(mode: &str) -> Network {
    match mode {
        "host" => Network::Host,
        _ => Network::None,
    }
}

/// What `create` stores of the network options: the mode, `-p`, `-P`, aliases.
pub(crate) struct NetChoice {
    pub mode: String,
    pub ports: Vec<PortSpec>,
    pub publish_all: bool,
    pub aliases: Vec<String>,
}

impl Containers {
    pub fn networks(&self) -> Networks {
        Networks::open(self.store.root())
    }

    /// Checks the network options of `create` (`--expose` goes into the config).
    pub(crate) fn choose_network(
        &self,
        opts: &CreateOptions,
        config: &mut strata_oci::ContainerConfig,
    ) -> Result<NetChoice> {
        let mode = match opts.network.as_deref() {
            None | Some("default") => strata_network::default_mode(),
            Some(m) => m.to_string(),
        };
        self.networks().check(&mode, &opts.aliases)?;
        let ports = opts
            .publish
            .iter()
            .map(|p| strata_network::parse_publish_ranges(p))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        if mode == "none" && (!ports.is_empty() || opts.publish_all) {
            return Err(strata_network::Error::Unsupported {
                mode,
                why: "conflicting options: port publishing and the container type network mode".into(),
            }
            .into());
        }
        let exposed = config.exposed_ports.get_or_insert_with(Default::default);
        let mut more: Vec<(u16, Proto)> = Vec::new();
        for e in &opts.expose {
            more.extend(strata_network::parse_expose(e)?);
        }
        more.extend(ports.iter().map(|p| (p.container_port, p.proto)));
        for (port, proto) in more {
            exposed
                .entry(format!("{port}/{}", proto.as_str()))
                .or_insert_with(|| serde_json::json!({}));
        }
        if exposed.is_empty() {
            config.exposed_ports = None;
        }
        Ok(NetChoice {
            mode,
            ports,
            publish_all: opts.publish_all,
            aliases: opts.aliases.clone(),
        })
    }

    /// The ports a start publishes: `-p`, and with `-P` every exposed port.
    fn port_specs(rec: &ContainerRecord) -> Vec<PortSpec> {
        let mut v = rec.ports.clone();
        if rec.publish_all {
            for (port, proto) in exposed_of(rec) {
                if !v.iter().any(|p| p.container_port == port && p.proto == proto) {
                    v.push(PortSpec {
                        host_ip: None,
                        host_port: None,
                        container_port: port,
                        proto,
                    });
                }
            }
        }
        v
    }

    /// Brings the container's network up and points the spec at it (its
    /// namespace, the three files, the exit hook that undoes it all).
    pub(crate) fn network_up(&self, rec: &ContainerRecord, root: &Path, spec: &mut RunSpec) -> Result<()> {
        if matches!(rec.network.as_str(), "host" | "none") {
            return Ok(());
        }
        let reg = registration(rec);
        let up = self.networks().up(&reg, &Self::port_specs(rec))?;
        spec.netns = Some(up.netns.clone());
        spec.network = Network::None;
        // Mount points strata makes in the container's layer are taken out again at the end.
        let upper = self.upper_dir(rec).ok();
        let mut made: Vec<String> = Vec::new();
        for (dest, src) in NET_FILES.iter().zip([&up.hosts, &up.hostname, &up.resolv_conf]) {
            if spec.mounts.iter().any(|m| m.destination == *dest) {
                continue;
            }
            if std::fs::symlink_metadata(root.join(&dest[1..])).is_err()
                && let Some(u) = &upper
            {
                made.push(u.join(&dest[1..]).display().to_string());
            }
            spec.mounts.push(BindMount {
                source: src.clone(),
                destination: dest.to_string(),
                readonly: false,
            });
        }
        let mut args = vec![self.store.root().display().to_string(), rec.id.clone()];
        args.extend(made);
        spec.on_exit = Some(ExitHook {
            run: network_exit_hook,
            args,
        });
        Ok(())
    }

    /// Undoes [`Containers::network_up`] (the foreground run's end, a failed start).
    pub(crate) fn network_down(&self, spec: &RunSpec) {
        if let Some(h) = &spec.on_exit {
            (h.run)(&h.args);
        }
    }

    /// Cleans the network of containers that ended without their cleanup
    /// (a killed strata process or monitor).
    pub fn sweep_networks(&self) -> Result<Vec<String>> {
        let recs = self.list()?;
        let own = self.store.root().display().to_string();
        let live = |store: &str, id: &str| -> Liveness {
            if store != own {
                return liveness_in_other_store(std::path::Path::new(store), id);
            }
            let Some(rec) = recs.iter().find(|r| r.id == id) else {
                return Liveness::Gone;
            };
            let dir = self.state_dir(id);
            let keeper = rec.restart != strata_runtime::RestartPolicy::No && !strata_runtime::stopped_by_user(&dir);
            if matches!(self.status(rec), Status::Running { .. }) || self.supervised(rec) || keeper {
                Liveness::Running
            } else {
                Liveness::Stopped
            }
        };
        Ok(self.networks().sweep(&live)?)
    }

    /// `network connect`.
    pub fn connect(&self, rec: &ContainerRecord, network: &str, aliases: &[String]) -> Result<()> {
        Ok(self.networks().connect(&registration(rec), network, aliases)?)
    }

    /// `network disconnect`.
    pub fn disconnect(&self, rec: &ContainerRecord, network: &str) -> Result<()> {
        Ok(self.networks().disconnect(&rec.id, &rec.name, network)?)
    }
}

/// The exposed ports of a container (image `EXPOSE`, `--expose`, `-p`).
pub fn exposed_of(rec: &ContainerRecord) -> Vec<(u16, Proto)> {
    rec.config
        .exposed_ports
        .iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| strata_network::parse_expose(k).ok())
        .flatten()
        .collect()
}

fn registration(rec: &ContainerRecord) -> Registration<'_> {
    Registration {
        id: &rec.id,
        name: &rec.name,
        hostname: &rec.hostname,
        mode: &rec.network,
        aliases: &rec.aliases,
    }
}

/// The detached monitor's exit hook: `[store root, container id, mount
/// points to remove...]`. Brings the network down and removes the empty
/// mount points strata made in the container's layer (so `diff`, `commit`
/// and `export` do not see them, as Docker's init layer hides its own).
pub fn network_exit_hook(args: &[String]) {
    let [root, id, made @ ..] = args else { return };
    let _ = Networks::open(Path::new(root)).down(id);
    for m in made {
        let p = PathBuf::from(m);
        if std::fs::symlink_metadata(&p).is_ok_and(|md| md.is_file() && md.len() == 0) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Whether a container of another store (whose records this store cannot
/// read) may still be running, from its state files alone: a live
/// foreground run or follower, or a live monitor or PID 1. The network
/// sweep of any store tears down only what this says is stopped.
pub(crate) fn liveness_in_other_store(store: &Path, id: &str) -> strata_network::Liveness {
    let dir = store.join("containers").join(id);
    if !dir.is_dir() {
        return strata_network::Liveness::Gone;
    }
    let alive = |pid: i32, start_time: u64| pid > 0 && strata_runtime::process_start_time(pid) == Some(start_time);
    let supervised = crate::engine::read_json::<crate::engine::Foreground>(&dir.join(crate::engine::FOREGROUND))
        .is_some_and(|fg| alive(fg.pid, fg.start_time))
        || crate::engine::read_json::<crate::engine::Follower>(&dir.join(crate::engine::FOLLOWER))
            .is_some_and(|f| alive(f.pid, f.start_time));
    // A keeper waiting out its back-off between two runs keeps the network.
    let monitored = strata_runtime::read_state_record(&dir).is_ok_and(|r| {
        alive(r.monitor_pid, r.monitor_start_time)
            || alive(r.pid, r.start_time)
            || alive(r.keeper_pid, r.keeper_start_time)
    });
    if supervised || monitored {
        strata_network::Liveness::Running
    } else {
        strata_network::Liveness::Stopped
    }
}
