//! `network create|ls|inspect|rm|connect|disconnect|prune`, `port`, and the
//! network parts of `ps` (PORTS) and `inspect` (NetworkSettings, PortBindings).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use strata_container::{ContainerRecord, Containers};
use strata_network::{NetworkInfo, Proto, Published};

use super::HELP_TEMPLATE;
use super::containers::open;
use crate::format::print_table;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    #[command(help_template = HELP_TEMPLATE)]
    Create {
        /// Driver to manage the Network (bridge)
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 Gateway for the master subnet
        #[arg(long)]
        gateway: Option<String>,
        /// Set metadata on a network
        #[arg(long = "label")]
        label: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(visible_alias = "list", help_template = HELP_TEMPLATE)]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate the output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Display detailed information on one or more networks
    #[command(help_template = HELP_TEMPLATE)]
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(visible_alias = "remove", help_template = HELP_TEMPLATE)]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    #[command(help_template = HELP_TEMPLATE)]
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long = "alias")]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    #[command(help_template = HELP_TEMPLATE)]
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove all unused networks
    #[command(help_template = HELP_TEMPLATE)]
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

pub fn network(root: &Path, cmd: NetworkCommand) -> Result<ExitCode> {
    let c = open(root)?;
    let nets = c.networks();
    match cmd {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            label,
            name,
        } => {
            if driver != "bridge" {
                bail!("plugin \"{driver}\" not found (strata has the bridge driver)");
            }
            let labels = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let n = nets.create(&strata_network::CreateNetwork {
                name,
                subnet,
                gateway,
                labels,
            })?;
            println!("{}", n.id);
        }
        NetworkCommand::Ls { quiet, no_trunc } => {
            let list = nets.list()?;
            let id = |n: &NetworkInfo| {
                if no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12.min(n.id.len())].to_string()
                }
            };
            if quiet {
                for n in &list {
                    println!("{}", id(n));
                }
            } else {
                let mut rows = vec![vec![
                    "NETWORK ID".to_string(),
                    "NAME".into(),
                    "DRIVER".into(),
                    "SCOPE".into(),
                ]];
                rows.extend(
                    list.iter()
                        .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), "local".into()]),
                );
                print_table(&rows)?;
            }
        }
        NetworkCommand::Inspect { networks } => {
            let mut out = Vec::new();
            for w in &networks {
                out.push(inspect_json(&nets.find(w)?));
            }
            println!("{}", crate::format::inspect_json(&out)?);
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = false;
            for w in &networks {
                match nets.remove(w) {
                    Ok(_) => println!("{w}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        NetworkCommand::Connect {
            alias,
            network,
            container,
        } => {
            let rec = c.find(&container)?;
            c.connect(&rec, &network, &alias)?;
        }
        NetworkCommand::Disconnect { network, container, .. } => {
            let rec = c.find(&container)?;
            c.disconnect(&rec, &network)?;
        }
        NetworkCommand::Prune { force } => {
            if !force {
                print!(
                    "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
                );
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y") {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let gone = nets.prune()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect_json(n: &NetworkInfo) -> Value {
    let config: Vec<Value> = match (&n.subnet, n.gateway) {
        (Some(s), Some(g)) => vec![json!({"Subnet": s, "Gateway": g.to_string()})],
        _ => Vec::new(),
    };
    let containers: BTreeMap<String, Value> = n
        .containers
        .iter()
        .map(|(id, name, ip, mac)| {
            (
                id.clone(),
                json!({"Name": name, "EndpointID": "", "MacAddress": mac, "IPv4Address": ip, "IPv6Address": ""}),
            )
        })
        .collect();
    let options: BTreeMap<String, String> = n
        .bridge
        .iter()
        .map(|b| ("com.docker.network.bridge.name".to_string(), b.clone()))
        .collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

/// Docker's PORTS column for `ps` (running containers off the host's network).
pub fn ports_column(c: &Containers, rec: &ContainerRecord) -> String {
    if matches!(rec.network.as_str(), "host" | "none") || !c.status(rec).is_running() {
        return String::new();
    }
    let live = c
        .networks()
        .container(&rec.id)
        .ok()
        .flatten()
        .map(|n| n.ports)
        .unwrap_or_default();
    strata_network::format_ports(&live, &strata_container::exposed_of(rec))
}

fn port_key(port: u16, proto: Proto) -> String {
    format!("{port}/{}", proto.as_str())
}

/// `NetworkSettings` and `HostConfig.PortBindings`/`PublishAllPorts` of
/// `inspect`, as Docker shows them.
pub fn add_inspect(c: &Containers, rec: &ContainerRecord, v: &mut Value) {
    let mut bindings = serde_json::Map::new();
    for p in &rec.ports {
        let e = bindings
            .entry(port_key(p.container_port, p.proto))
            .or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!({
                "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                "HostPort": p.host_port.map(|h| h.to_string()).unwrap_or_default(),
            }));
        }
    }
    v["HostConfig"]["PortBindings"] = Value::Object(bindings);
    v["HostConfig"]["PublishAllPorts"] = json!(rec.publish_all);
    let net = c.networks().container(&rec.id).ok().flatten().unwrap_or_default();
    let running = c.status(rec).is_running() && net.running;
    let mut ports = serde_json::Map::new();
    if running {
        for (port, proto) in strata_container::exposed_of(rec) {
            ports.insert(port_key(port, proto), Value::Null);
        }
        for p in &net.ports {
            let e = ports.entry(port_key(p.container_port, p.proto)).or_insert(Value::Null);
            if !e.is_array() {
                *e = json!([]);
            }
            if let Some(a) = e.as_array_mut() {
                a.push(json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}));
            }
        }
    }
    let mut networks = serde_json::Map::new();
    let mut top = json!({"Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""});
    for a in &net.attachments {
        let ip = a.ip.map(|i| i.to_string()).unwrap_or_default();
        let gw = a.gateway.map(|g| g.to_string()).unwrap_or_default();
        let mac = a.mac.clone().unwrap_or_default();
        let prefix = if a.ip.is_some() { a.prefix } else { 0 };
        if a.network == "bridge" {
            top = json!({"Gateway": gw, "IPAddress": ip, "IPPrefixLen": prefix, "MacAddress": mac});
        }
        let aliases = if a.network == "bridge" {
            Value::Null
        } else {
            let mut v = vec![rec.id[..12].to_string()];
            v.extend(a.aliases.iter().cloned());
            json!(v)
        };
        networks.insert(
            a.network.clone(),
            json!({"IPAMConfig": null, "Links": null, "Aliases": aliases, "NetworkID": a.network_id,
                   "EndpointID": "", "Gateway": gw, "IPAddress": ip, "IPPrefixLen": prefix,
                   "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                   "MacAddress": mac, "DriverOpts": null}),
        );
    }
    if matches!(rec.network.as_str(), "host" | "none" | "pasta" | "slirp4netns") {
        networks.insert(rec.network.clone(), json!({"IPAMConfig": null, "Links": null, "Aliases": null,
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": null}));
    }
    let sandbox = if running && !matches!(rec.network.as_str(), "host" | "none") {
        format!("/run/netns/strata-{}", &rec.id[..12])
    } else {
        String::new()
    };
    let mut ns = json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports, "SandboxKey": sandbox, "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "",
        "Networks": networks,
    });
    for k in ["Gateway", "IPAddress", "IPPrefixLen", "MacAddress"] {
        ns[k] = top[k].clone();
    }
    v["NetworkSettings"] = ns;
}

#[derive(Args)]
#[command(override_usage = "strata port CONTAINER [PRIVATE_PORT[/PROTO]]")]
pub struct PortArgs {
    container: String,
    private_port: Option<String>,
}

fn show(p: &Published) -> String {
    p.host_addr()
}

/// `port`: the container's published ports, as Docker lists them.
pub fn port(root: &Path, a: PortArgs) -> Result<ExitCode> {
    let c = open(root)?;
    let rec = c.find(&a.container)?;
    let live = if c.status(&rec).is_running() {
        c.networks().container(&rec.id)?.map(|n| n.ports).unwrap_or_default()
    } else {
        Vec::new()
    };
    match &a.private_port {
        Some(want) => {
            let (port, proto) = strata_network::parse_expose(want)
                .ok()
                .and_then(|v| v.first().copied())
                .with_context(|| format!("Invalid port: {want}"))?;
            let hits: Vec<&Published> = live
                .iter()
                .filter(|p| p.container_port == port && p.proto == proto)
                .collect();
            if hits.is_empty() {
                bail!(
                    "No public port '{}' published for {}",
                    port_key(port, proto),
                    a.container
                );
            }
            for p in hits {
                println!("{}", show(p));
            }
        }
        None => {
            let mut live = live;
            live.sort();
            for p in &live {
                println!("{} -> {}", port_key(p.container_port, p.proto), show(p));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
