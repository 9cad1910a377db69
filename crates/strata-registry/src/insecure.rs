//! Which registries are spoken to without TLS verification: loopback
//! addresses, `--insecure-registry` lists (names, `host:port`, CIDRs) and
//! dockerd's `daemon.json`; and the API host of a registry name.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::credentials::is_docker_hub;
use crate::{DOCKER_HUB_API_HOST, RegistryError, Result};

/// Is `host[:port]` a loopback address or `localhost`?
pub fn is_loopback(host: &str) -> bool {
    let (h, _) = split_port(host);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// Whether `registry` (as given) or `host` (`host[:port]` spoken to) is in
/// an insecure-registries list: an entry names it with or without its port,
/// or is a CIDR holding its IP address.
pub fn is_listed_insecure(list: &[String], registry: &str, host: &str) -> bool {
    let (name, _) = split_port(host);
    let ip: Option<IpAddr> = name.parse().ok();
    list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).any(|entry| {
        if entry.eq_ignore_ascii_case(registry) || entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(name)
        {
            return true;
        }
        match (entry.split_once('/'), ip) {
            (Some((net, bits)), Some(ip)) => cidr_contains(net, bits, ip),
            _ => false,
        }
    })
}

/// `host` without a `:port`; brackets of an IPv6 literal removed.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let Ok(bits) = bits.parse::<u32>() else { return false };
    match (net.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The insecure registries this machine names: `STRATA_INSECURE_REGISTRIES`
/// (comma-separated) and `insecure-registries` of Docker's
/// `/etc/docker/daemon.json` (or the file `STRATA_DOCKER_DAEMON_JSON`
/// names), so that a registry Docker is set up to reach without TLS
/// verification works the same with strata. An unreadable daemon.json is
/// an error naming it; a missing one is no list.
pub fn system_insecure_registries() -> Result<Vec<String>> {
    let mut out: Vec<String> = std::env::var("STRATA_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let path = std::env::var_os("STRATA_DOCKER_DAEMON_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/docker/daemon.json"));
    match std::fs::read(&path) {
        Ok(bytes) => out.extend(
            insecure_registries_of_daemon_json(&bytes)
                .map_err(|e| RegistryError::Invalid(format!("{}: {e}", path.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RegistryError::Invalid(format!("reading {}: {e}", path.display()))),
    }
    Ok(out)
}

/// The `insecure-registries` list of a Docker daemon.json.
pub fn insecure_registries_of_daemon_json(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    match v.get("insecure-registries") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "insecure-registries must be a list of strings".to_string())
            })
            .collect(),
        Some(_) => Err("insecure-registries must be a list of strings".into()),
    }
}

/// The `host[:port]` a registry name is reached at (Docker Hub → `registry-1.docker.io`).
pub fn api_host(registry: &str) -> String {
    if is_docker_hub(registry) {
        DOCKER_HUB_API_HOST.to_string()
    } else {
        registry.to_string()
    }
}
