//! `ps` (`container ls`) as Docker 20.10's CLI and daemon list containers:
//! `-f/--filter` (moby's `daemon/list.go`: `foldFilter`,
//! `includeContainerInList`, and `api/types/filters`' `Match`,
//! `ExactMatch`, `MatchKVList`), `-n/--last`, `-l/--latest`, `-s/--size`
//! (`GetContainerLayerSize`, the CLI's `SIZE`), and the columns of the
//! CLI's container formatter.
//!
//! Values of one key are OR'ed, keys are AND'ed. `id` and `name` are Go
//! regular expressions searched in the ID and in the name (with and without
//! its leading `/`), after an exact comparison; [`regex`] is the RE2 syntax
//! Go's `regexp` accepts (a pattern it refuses matches only exactly, as
//! Docker's `Match` skips it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use strata_container::{ContainerRecord, Containers, Status};

use crate::format::{ellipsis, human_size, print_formatted};

use super::containers::open;

#[derive(Args)]
#[command(override_usage = "strata ps [OPTIONS]")]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Pretty-print containers using a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", value_name = "int", default_value_t = -1, allow_negative_numbers = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
}

const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The filter keys the daemon accepts (`acceptedPsFilterTags`).
const ACCEPTED: [&str; 15] = [
    "ancestor",
    "before",
    "exited",
    "id",
    "isolation",
    "label",
    "name",
    "status",
    "health",
    "since",
    "volume",
    "network",
    "is-task",
    "publish",
    "expose",
];

/// Why a listing failed, as docker says it.
enum PsError {
    /// A flag's value the CLI refuses (exit 125, with the usage hint).
    Flag(String),
    /// What the daemon refuses (`Error response from daemon: …`, exit 1).
    Daemon(String),
}

/// `filters.Args`: each key's set of values (in the order given).
#[derive(Default)]
struct Filters {
    fields: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// The CLI's `FilterOpt.Set` for each `-f`: `key=value`, the key
    /// trimmed and lowercased, the value trimmed; an empty flag is ignored.
    fn parse(raw: &[String]) -> Result<Filters, PsError> {
        let mut f = Filters::default();
        for r in raw {
            if r.is_empty() {
                continue;
            }
            let Some((k, v)) = r.split_once('=') else {
                return Err(PsError::Flag(format!(
                    "invalid argument {} for \"-f, --filter\" flag: bad format of filter (expected name=value)",
                    go_quote(r)
                )));
            };
            f.add(k.trim().to_lowercase(), v.trim().to_string());
        }
        Ok(f)
    }

    fn add(&mut self, key: String, value: String) {
        let vals = self.fields.entry(key).or_default();
        if !vals.contains(&value) {
            vals.push(value);
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    fn get(&self, key: &str) -> &[String] {
        self.fields.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// `ExactMatch`: no values for the key, or `source` is one of them.
    fn exact_match(&self, key: &str, source: &str) -> bool {
        match self.fields.get(key) {
            None => true,
            Some(v) if v.is_empty() => true,
            Some(v) => v.iter().any(|x| x == source),
        }
    }

    /// `Match`: [`Filters::exact_match`], or a value that is a regular
    /// expression found in `source` (one that does not compile is skipped).
    fn matches(&self, key: &str, source: &str) -> bool {
        if self.exact_match(key, source) {
            return true;
        }
        self.get(key)
            .iter()
            .any(|p| regex::Regex::new(p).is_ok_and(|re| re.is_match(source)))
    }

    /// `MatchKVList`: every value (`key` or `key=value`) is in `sources`.
    fn match_kv_list(&self, key: &str, sources: &BTreeMap<String, String>) -> bool {
        let vals = self.get(key);
        if vals.is_empty() {
            return true;
        }
        if sources.is_empty() {
            return false;
        }
        vals.iter().all(|v| {
            let (k, want) = match v.split_once('=') {
                Some((k, w)) => (k, Some(w)),
                None => (v.as_str(), None),
            };
            match sources.get(k) {
                None => false,
                Some(have) => want.is_none_or(|w| w == have),
            }
        })
    }
}

/// The daemon's `listContext`: what the filters fold into.
struct Query {
    filters: Filters,
    all: bool,
    limit: i64,
    exit_allowed: Vec<i32>,
    /// `is-task=true`: only swarm tasks (strata has none).
    tasks_only: bool,
    before: Option<String>,
    since: Option<String>,
    /// With `ancestor`: the IDs of the images named (none found: nothing listed).
    ancestors: Option<HashSet<String>>,
    publish: HashSet<String>,
    expose: HashSet<String>,
    /// With `network`: each network's ID by name.
    network_ids: Option<HashMap<String, String>>,
}

impl Query {
    /// `foldFilter`, with `Validate` first: its checks in its order.
    fn fold(c: &Containers, a: &PsArgs, filters: Filters, recs: &[ContainerRecord]) -> Result<Query, PsError> {
        if let Some(bad) = filters.fields.keys().find(|k| !ACCEPTED.contains(&k.as_str())) {
            return Err(PsError::Daemon(format!("Invalid filter '{bad}'")));
        }
        let mut all = a.all;
        let mut exit_allowed = Vec::new();
        for v in filters.get("exited") {
            exit_allowed.push(go_atoi(v).map_err(PsError::Daemon)?);
        }
        for v in filters.get("status") {
            if !matches!(
                v.as_str(),
                "paused" | "restarting" | "removing" | "running" | "dead" | "created" | "exited"
            ) {
                return Err(PsError::Daemon(format!("Invalid filter 'status={v}'")));
            }
            all = true;
        }
        let mut tasks_only = false;
        if filters.contains("is-task") {
            if filters.exact_match("is-task", "true") {
                tasks_only = true;
            } else if !filters.exact_match("is-task", "false") {
                return Err(PsError::Daemon(format!(
                    "Invalid filter 'is-task=[{}]'",
                    filters.get("is-task").join(" ")
                )));
            }
        }
        for v in filters.get("health") {
            if !matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(PsError::Daemon(format!("Unrecognised filter value for health: {v}")));
            }
        }
        let mut before = None;
        for v in filters.get("before") {
            before = Some(id_or_name(recs, v)?);
        }
        let mut since = None;
        for v in filters.get("since") {
            since = Some(id_or_name(recs, v)?);
        }
        let ancestors = filters.contains("ancestor").then(|| {
            filters
                .get("ancestor")
                .iter()
                // An image that is not found only matches nothing (the
                // daemon logs a warning).
                .filter_map(|v| strata_image::resolve(&c.store, v).ok())
                .map(|r| r.image.id.to_string())
                .collect()
        });
        let mut publish = HashSet::new();
        for v in filters.get("publish") {
            port_op("publish", v, &mut publish)?;
        }
        let mut expose = HashSet::new();
        for v in filters.get("expose") {
            port_op("expose", v, &mut expose)?;
        }
        let network_ids = filters.contains("network").then(|| {
            c.networks()
                .list()
                .map(|l| l.into_iter().map(|n| (n.name, n.id)).collect())
                .unwrap_or_default()
        });
        let mut limit = a.last;
        if a.latest && a.last == -1 {
            limit = 1;
        }
        Ok(Query {
            filters,
            all,
            limit,
            exit_allowed,
            tasks_only,
            before,
            since,
            ancestors,
            publish,
            expose,
            network_ids,
        })
    }
}

/// `idOrNameFilter`: a full ID, or a name (with or without its `/`).
fn id_or_name(recs: &[ContainerRecord], v: &str) -> Result<String, PsError> {
    recs.iter()
        .find(|r| r.id == v)
        .or_else(|| recs.iter().find(|r| r.name == v.trim_start_matches('/')))
        .map(|r| r.id.clone())
        .ok_or_else(|| PsError::Daemon(format!("no such container {v}")))
}

/// Go's `strconv.Atoi`, with its error.
fn go_atoi(s: &str) -> Result<i32, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(s)));
    }
    // Go's int is 64-bit; an exit code is never outside i32.
    match s.parse::<i64>() {
        Ok(n) => Ok(n.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
        Err(_) => Err(format!("strconv.Atoi: parsing {}: value out of range", go_quote(s))),
    }
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error.
fn go_parse_u16(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s)));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u16::MAX as u64 => Ok(n as u32),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )),
    }
}

/// `portOp`: `port[/proto]` or `start-end[/proto]` into `N/proto` keys.
fn port_op(key: &str, value: &str, set: &mut HashSet<String>) -> Result<(), PsError> {
    if value.contains(':') {
        return Err(PsError::Daemon(format!(
            "filter for '{key}' should not contain ':': {value}"
        )));
    }
    let err = |e: String| PsError::Daemon(format!("error while looking up for {key} {value}: {e}"));
    // nat.SplitProtoPort
    let parts: Vec<&str> = value.split('/').collect();
    let (proto, port) = if value.is_empty() || parts[0].is_empty() {
        ("", "")
    } else if parts.len() == 1 || parts[1].is_empty() {
        ("tcp", parts[0])
    } else {
        (parts[1], parts[0])
    };
    // nat.ParsePortRange
    if port.is_empty() {
        return Err(err("Empty string specified for ports.".into()));
    }
    let (start, end) = match port.split_once('-') {
        None => {
            let p = go_parse_u16(port).map_err(err)?;
            (p, p)
        }
        Some((a, rest)) => {
            let b = rest.split('-').next().unwrap_or_default();
            let start = go_parse_u16(a).map_err(err)?;
            let end = go_parse_u16(b).map_err(err)?;
            if end < start {
                return Err(err(format!("Invalid range specified for the Port: {port}")));
            }
            (start, end)
        }
    };
    for p in start..=end {
        set.insert(format!("{p}/{proto}"));
    }
    Ok(())
}

/// The names of the networks a container is on: its own, and those it
/// was connected to.
fn networks_of(c: &Containers, rec: &ContainerRecord) -> Vec<String> {
    let mut names = vec![rec.network.clone()];
    if let Ok(Some(net)) = c.networks().container(&rec.id) {
        names.extend(net.attachments.into_iter().map(|a| a.network));
    }
    names.sort();
    names.dedup();
    names
}

/// The daemon's `types.Port` list of a container: (public, private, proto);
/// a port exposed but not published has public port 0. Docker has none
/// for a container that is not running, nor on the host's or no network.
fn ports_of(c: &Containers, rec: &ContainerRecord, status: &Status) -> Vec<(u16, u16, String)> {
    if !status.is_running() || matches!(rec.network.as_str(), "host" | "none") {
        return Vec::new();
    }
    let live = c
        .networks()
        .container(&rec.id)
        .ok()
        .flatten()
        .map(|n| n.ports)
        .unwrap_or_default();
    let mut out: Vec<(u16, u16, String)> = live
        .iter()
        .map(|p| (p.host_port, p.container_port, p.proto.as_str().to_string()))
        .collect();
    for (port, proto) in strata_container::exposed_of(rec) {
        if !live.iter().any(|p| p.container_port == port && p.proto == proto) {
            out.push((0, port, proto.as_str().to_string()));
        }
    }
    out
}

/// What `includeContainerInList` decides.
enum Verdict {
    Include,
    Exclude,
    Stop,
}

impl Query {
    /// The containers to look at, newest first: with `id` filters only
    /// those an ID (prefix) names without ambiguity (`filterByNameIDMatches`;
    /// names are matched again below).
    fn candidates<'a>(&self, recs: &'a [ContainerRecord]) -> Vec<&'a ContainerRecord> {
        let ids = self.filters.get("id");
        if ids.is_empty() {
            return recs.iter().collect();
        }
        let hit: HashSet<&str> = ids
            .iter()
            .filter(|v| !v.is_empty())
            .filter_map(|v| {
                let mut m = recs.iter().filter(|r| r.id.starts_with(v.as_str()));
                match (m.next(), m.next()) {
                    (Some(one), None) => Some(one.id.as_str()),
                    _ => None,
                }
            })
            .collect();
        recs.iter().filter(|r| hit.contains(r.id.as_str())).collect()
    }

    /// `includeContainerInList` (`found` counts the containers included so far).
    fn include(&mut self, c: &Containers, rec: &ContainerRecord, status: &Status, found: usize) -> Verdict {
        let f = &self.filters;
        if let Some(b) = &self.before {
            if *b == rec.id {
                self.before = None;
            }
            return Verdict::Exclude;
        }
        if self.since.as_deref() == Some(rec.id.as_str()) {
            return Verdict::Stop;
        }
        if !status.is_running() && !self.all && self.limit <= 0 {
            return Verdict::Exclude;
        }
        if !f.matches("name", &format!("/{}", rec.name)) && !f.matches("name", &rec.name) {
            return Verdict::Exclude;
        }
        if !f.matches("id", &rec.id) {
            return Verdict::Exclude;
        }
        if self.tasks_only {
            return Verdict::Exclude;
        }
        let labels = rec.config.labels.clone().unwrap_or_default();
        if !f.match_kv_list("label", &labels.into_iter().collect()) {
            return Verdict::Exclude;
        }
        if self.limit > 0 && found as i64 == self.limit {
            return Verdict::Stop;
        }
        if !self.exit_allowed.is_empty() {
            // Only a container that ran has an exit code.
            let ok = matches!(status, Status::Exited { code, .. } if self.exit_allowed.contains(code));
            if !ok {
                return Verdict::Exclude;
            }
        }
        if !f.matches("status", status.word()) {
            return Verdict::Exclude;
        }
        // strata has no health checks: Docker's `none`.
        if !f.exact_match("health", "none") {
            return Verdict::Exclude;
        }
        if f.contains("volume") {
            // By volume name (a bind's host path) or by destination.
            let hit = f
                .get("volume")
                .iter()
                .any(|v| rec.mounts.iter().any(|m| m.destination == *v || m.source == *v));
            if !hit {
                return Verdict::Exclude;
            }
        }
        if let Some(images) = &self.ancestors
            && !images.contains(&rec.image_id)
        {
            return Verdict::Exclude;
        }
        if let Some(ids) = &self.network_ids {
            let names = networks_of(c, rec);
            // A network's ID is the endpoint's once the container started.
            let started = !matches!(status, Status::Created);
            let hit = f.get("network").iter().any(|v| {
                names.contains(v)
                    || (started
                        && names
                            .iter()
                            .filter_map(|n| ids.get(n))
                            .any(|id| !id.is_empty() && id.starts_with(v.as_str())))
            });
            if !hit {
                return Verdict::Exclude;
            }
        }
        if !self.publish.is_empty() || !self.expose.is_empty() {
            let hit = ports_of(c, rec, status).iter().any(|(public, private, proto)| {
                self.publish.contains(&format!("{public}/{proto}"))
                    || self.expose.contains(&format!("{private}/{proto}"))
            });
            if !hit {
                return Verdict::Exclude;
            }
        }
        Verdict::Include
    }
}

pub fn ps(root: &Path, a: PsArgs) -> Result<ExitCode> {
    let filters = match Filters::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => return Ok(refuse(e)),
    };
    let c = open(root)?;
    let recs = c.list()?;
    let mut q = match Query::fold(&c, &a, filters, &recs) {
        Ok(q) => q,
        Err(e) => return Ok(refuse(e)),
    };
    let mut chosen: Vec<(&ContainerRecord, Status)> = Vec::new();
    for rec in q.candidates(&recs) {
        let status = c.status(rec);
        match q.include(&c, rec, &status, chosen.len()) {
            Verdict::Include => chosen.push((rec, status)),
            Verdict::Exclude => {}
            Verdict::Stop => break,
        }
    }

    // The CLI's format choice (`NewContainerFormat`): `-q` is the IDs
    // unless a template other than `table` is given.
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") if a.quiet => "{{.ID}}".to_string(),
        None | Some("") | Some("table") if a.size => format!("{DEFAULT_TABLE}\t{{{{.Size}}}}"),
        None | Some("") | Some("table") => DEFAULT_TABLE.to_string(),
        Some(f) => f.to_string(),
    };
    // `.Size` in a template asks for the sizes, as `-s` does (`{{json .}}` too).
    let sizes = a.size || format.contains("Size") || format.contains("json");
    let mut layer_sizes: HashMap<String, u64> = HashMap::new();
    let mut items = Vec::new();
    for (rec, status) in &chosen {
        let id = if a.no_trunc {
            rec.id.clone()
        } else {
            rec.id[..12.min(rec.id.len())].to_string()
        };
        let size = if sizes {
            let (rw, virt) = container_size(&c, rec, &mut layer_sizes);
            if virt > 0 {
                format!("{} (virtual {})", human_size(rw), human_size(virt))
            } else {
                human_size(rw)
            }
        } else {
            "0B".to_string()
        };
        let mounts: Vec<String> = rec
            .mounts
            .iter()
            .map(|m| {
                if a.no_trunc {
                    m.source.clone()
                } else {
                    ellipsis(&m.source, 15)
                }
            })
            .collect();
        items.push(json!({
            "ID": id,
            "Image": rec.image_ref,
            "Command": command_text(rec, a.no_trunc),
            "CreatedAt": go_time(&rec.created),
            "RunningFor": strata_image::human_since(Some(&rec.created)),
            "Status": status_text(status),
            "State": status.word(),
            "Ports": super::network::ports_column(&c, rec),
            "Names": rec.name,
            "Labels": rec.config.labels.clone().unwrap_or_default().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "Mounts": mounts.join(","),
            "LocalVolumes": rec.mounts.iter().filter(|m| m.kind != "bind").count().to_string(),
            "Networks": networks_of(&c, rec).join(","),
            "Size": size,
        }));
    }
    let headers: BTreeMap<&str, &str> = [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Status", "STATUS"),
        ("State", "STATE"),
        ("Ports", "PORTS"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Networks", "NETWORKS"),
        ("Size", "SIZE"),
    ]
    .into_iter()
    .collect();
    print_formatted(&format, &headers, &items)?;
    Ok(ExitCode::SUCCESS)
}

/// Says why the listing was refused, as docker does; the exit status.
fn refuse(e: PsError) -> ExitCode {
    match e {
        PsError::Flag(msg) => {
            eprintln!("{msg}\nSee 'strata ps --help'.");
            ExitCode::from(125)
        }
        PsError::Daemon(msg) => {
            eprintln!("Error response from daemon: {msg}");
            ExitCode::from(1)
        }
    }
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Created => "Created".into(),
        Status::Running { started_at, .. } => {
            let since = strata_image::human_since(Some(started_at));
            format!("Up {}", since.trim_end_matches(" ago"))
        }
        Status::Exited { code, finished_at } => {
            format!("Exited ({code}) {}", strata_image::human_since(Some(finished_at)))
        }
    }
}

/// The daemon's `Command` (the path, then the arguments, those with a
/// space in single quotes), as the CLI shows it: cut to 20 characters
/// unless `--no-trunc`, then Go-quoted.
fn command_text(rec: &ContainerRecord, no_trunc: bool) -> String {
    let mut parts = rec.args.iter();
    let mut cmd = parts.next().cloned().unwrap_or_default();
    for arg in parts {
        cmd.push(' ');
        if arg.contains(' ') {
            cmd.push_str(&format!("'{arg}'"));
        } else {
            cmd.push_str(arg);
        }
    }
    if no_trunc {
        go_quote(&cmd)
    } else {
        go_quote(&ellipsis(&cmd, 20))
    }
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The CLI's `CreatedAt`: Go's `time.Unix(created, 0).String()` in the
/// local time zone (`2021-06-01 10:00:00 +0000 UTC`).
fn go_time(rfc3339: &str) -> String {
    let Ok(ts) = rfc3339.parse::<jiff::Timestamp>() else {
        return rfc3339.to_string();
    };
    let t = ts.as_second() as libc::time_t;
    // SAFETY: localtime_r writes only the `tm` it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return rfc3339.to_string();
    }
    let off = tm.tm_gmtoff;
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated name in libc's time zone data.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    let sign = if off < 0 { '-' } else { '+' };
    let zone = if zone.is_empty() {
        format!("{sign}{:02}{:02}", off.abs() / 3600, off.abs() % 3600 / 60)
    } else {
        zone
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}{:02} {zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off.abs() / 3600,
        off.abs() % 3600 / 60,
    )
}

/// `GetContainerLayerSize`: the writable layer's size, and the virtual
/// size (the image's layers, then the writable one; 0 without layers).
/// Layer sizes are cached by chain ID for the listing.
fn container_size(c: &Containers, rec: &ContainerRecord, cache: &mut HashMap<String, u64>) -> (u64, u64) {
    let rw = match c.upper_dir(rec) {
        // Overlay: the upper directory holds the changes alone.
        Ok(upper) if upper.file_name().is_some_and(|n| n == "upper") => dir_size(&upper),
        // The copy driver: the changed files of the whole root (the
        // naive diff's `ChangesSize`).
        Ok(rootfs) => changes_size(c, rec, &rootfs),
        Err(_) => 0,
    };
    let lowers = c.lower_dirs(rec).unwrap_or_default();
    if lowers.is_empty() {
        return (rw, 0);
    }
    let mut image = 0;
    for (chain, dir) in rec.chain.iter().zip(&lowers) {
        image += *cache.entry(chain.clone()).or_insert_with(|| dir_size(dir));
    }
    (rw, image + rw)
}

/// `pkg/directory.Size`: the sizes of everything but directories under
/// `dir` (a symlink counts its target's length), each inode once.
fn dir_size(dir: &Path) -> u64 {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use std::ffi::CStr;
    use std::os::fd::OwnedFd;

    struct Sizer {
        seen: HashSet<u64>,
        total: u64,
    }
    impl strata_layer::TreeVisitor for Sizer {
        type Error = std::io::Error;

        fn fail(&self, _: &Path, e: std::io::Error) -> std::io::Error {
            e
        }

        fn entry(&mut self, parent: &OwnedFd, name: &CStr, _: &Path) -> std::io::Result<Option<OwnedFd>> {
            let Ok(st) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) else {
                return Ok(None);
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Ok(rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok());
            }
            if st.st_size > 0 && self.seen.insert(st.st_ino) {
                self.total += st.st_size as u64;
            }
            Ok(None)
        }
    }
    let Ok(top) = rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let mut s = Sizer {
        seen: HashSet::new(),
        total: 0,
    };
    let _ = strata_layer::walk_tree(&top, Path::new(""), false, &mut s);
    s.total
}

/// `archive.ChangesSize`: the sizes of what was added or changed (not
/// directories), a hard-linked inode once.
fn changes_size(c: &Containers, rec: &ContainerRecord, rootfs: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(changes) = c.diff(rec) else { return 0 };
    let mut seen = HashSet::new();
    let mut total = 0;
    for ch in changes {
        if ch.kind == strata_container::ChangeKind::Deleted {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(rootfs.join(ch.path.trim_start_matches('/'))) else {
            continue;
        };
        if md.is_dir() || (md.nlink() > 1 && !seen.insert(md.ino())) {
            continue;
        }
        total += md.len();
    }
    total
}

/// The regular expressions of Go's `regexp` (RE2 syntax, Perl flags) that
/// `Match` needs: whether a pattern is found in a string. A Pike VM over
/// the compiled program (linear in the text; no backtracking).
mod regex {
    use std::iter::Peekable;
    use std::str::Chars;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Look {
        BeginText,
        EndText,
        BeginLine,
        EndLine,
        WordBoundary,
        NotWordBoundary,
    }

    #[derive(Debug, Clone)]
    struct Class {
        ranges: Vec<(char, char)>,
        negated: bool,
        fold: bool,
    }

    impl Class {
        fn matches(&self, c: char) -> bool {
            let has = |c: char| self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
            let mut hit = has(c);
            if !hit && self.fold {
                hit = fold_variants(c).any(has);
            }
            hit != self.negated
        }
    }

    fn fold_variants(c: char) -> impl Iterator<Item = char> {
        c.to_lowercase().chain(c.to_uppercase())
    }

    #[derive(Debug, Clone)]
    enum Node {
        Empty,
        Lit(char, bool),
        Class(Class),
        Any(bool),
        Look(Look),
        Cat(Vec<Node>),
        Alt(Vec<Node>),
        Repeat(Box<Node>, u32, Option<u32>),
    }

    #[derive(Debug, Clone)]
    enum Inst {
        Lit(char, bool),
        Class(Class),
        Any(bool),
        Look(Look),
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    #[derive(Debug)]
    pub struct Regex {
        prog: Vec<Inst>,
    }

    #[derive(Clone, Copy)]
    struct Flags {
        fold: bool,
        dot_nl: bool,
        multi_line: bool,
    }

    const MAX_REPEAT: u32 = 1000;
    const MAX_PROG: usize = 100_000;

    struct Parser<'a> {
        it: Peekable<Chars<'a>>,
        flags: Flags,
    }

    type Res<T> = Result<T, String>;

    impl Regex {
        pub fn new(pattern: &str) -> Res<Regex> {
            let mut p = Parser {
                it: pattern.chars().peekable(),
                flags: Flags {
                    fold: false,
                    dot_nl: false,
                    multi_line: false,
                },
            };
            let node = p.alternation()?;
            if p.it.next().is_some() {
                return Err("unexpected )".into());
            }
            let mut prog = Vec::new();
            compile(&node, &mut prog)?;
            prog.push(Inst::Match);
            Ok(Regex { prog })
        }

        /// Whether the pattern matches anywhere in `text`.
        pub fn is_match(&self, text: &str) -> bool {
            let chars: Vec<char> = text.chars().collect();
            let n = self.prog.len();
            let mut clist = Threads::new(n);
            let mut nlist = Threads::new(n);
            for pos in 0..=chars.len() {
                self.add(&mut clist, 0, &chars, pos);
                for i in 0..clist.dense.len() {
                    let pc = clist.dense[i];
                    let step = match &self.prog[pc] {
                        Inst::Match => return true,
                        Inst::Lit(l, fold) => chars.get(pos).is_some_and(|&c| c == *l || (*fold && fold_eq(c, *l))),
                        Inst::Class(cls) => chars.get(pos).is_some_and(|&c| cls.matches(c)),
                        Inst::Any(nl) => chars.get(pos).is_some_and(|&c| *nl || c != '\n'),
                        _ => false,
                    };
                    if step {
                        self.add(&mut nlist, pc + 1, &chars, pos + 1);
                    }
                }
                std::mem::swap(&mut clist, &mut nlist);
                nlist.clear();
            }
            false
        }

        /// Adds `pc` and what it reaches without reading a character.
        fn add(&self, list: &mut Threads, pc: usize, chars: &[char], pos: usize) {
            let mut stack = vec![pc];
            while let Some(pc) = stack.pop() {
                if !list.insert(pc) {
                    continue;
                }
                match &self.prog[pc] {
                    Inst::Jmp(x) => stack.push(*x),
                    Inst::Split(x, y) => {
                        stack.push(*y);
                        stack.push(*x);
                    }
                    Inst::Look(l) if holds(*l, chars, pos) => stack.push(pc + 1),
                    _ => {}
                }
            }
        }
    }

    fn fold_eq(a: char, b: char) -> bool {
        fold_variants(a).any(|x| x == b) || fold_variants(b).any(|x| x == a)
    }

    fn is_word(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    fn holds(l: Look, chars: &[char], pos: usize) -> bool {
        let before = pos.checked_sub(1).map(|i| chars[i]);
        let after = chars.get(pos).copied();
        match l {
            Look::BeginText => pos == 0,
            Look::EndText => pos == chars.len(),
            Look::BeginLine => before.is_none_or(|c| c == '\n'),
            Look::EndLine => after.is_none_or(|c| c == '\n'),
            Look::WordBoundary => before.is_some_and(is_word) != after.is_some_and(is_word),
            Look::NotWordBoundary => before.is_some_and(is_word) == after.is_some_and(is_word),
        }
    }

    /// A sparse set of program counters (each thread once per step).
    struct Threads {
        dense: Vec<usize>,
        sparse: Vec<usize>,
    }

    impl Threads {
        fn new(n: usize) -> Threads {
            Threads {
                dense: Vec::with_capacity(n),
                sparse: vec![0; n],
            }
        }
        fn insert(&mut self, pc: usize) -> bool {
            let i = self.sparse[pc];
            if i < self.dense.len() && self.dense[i] == pc {
                return false;
            }
            self.sparse[pc] = self.dense.len();
            self.dense.push(pc);
            true
        }
        fn clear(&mut self) {
            self.dense.clear();
        }
    }

    fn compile(node: &Node, prog: &mut Vec<Inst>) -> Res<()> {
        if prog.len() > MAX_PROG {
            return Err("expression too large".into());
        }
        match node {
            Node::Empty => {}
            Node::Lit(c, f) => prog.push(Inst::Lit(*c, *f)),
            Node::Class(c) => prog.push(Inst::Class(c.clone())),
            Node::Any(nl) => prog.push(Inst::Any(*nl)),
            Node::Look(l) => prog.push(Inst::Look(*l)),
            Node::Cat(v) => {
                for n in v {
                    compile(n, prog)?;
                }
            }
            Node::Alt(v) => {
                // split L1, next; L1: a; jmp end; next: split …
                let mut jumps = Vec::new();
                for (i, n) in v.iter().enumerate() {
                    if i + 1 < v.len() {
                        let split = prog.len();
                        prog.push(Inst::Split(split + 1, 0));
                        compile(n, prog)?;
                        jumps.push(prog.len());
                        prog.push(Inst::Jmp(0));
                        let next = prog.len();
                        prog[split] = Inst::Split(split + 1, next);
                    } else {
                        compile(n, prog)?;
                    }
                }
                let end = prog.len();
                for j in jumps {
                    prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat(n, min, max) => {
                for _ in 0..*min {
                    compile(n, prog)?;
                }
                match max {
                    None => {
                        // L: split body, end; body; jmp L
                        let l = prog.len();
                        prog.push(Inst::Split(l + 1, 0));
                        compile(n, prog)?;
                        prog.push(Inst::Jmp(l));
                        let end = prog.len();
                        prog[l] = Inst::Split(l + 1, end);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(prog.len());
                            prog.push(Inst::Split(0, 0));
                            compile(n, prog)?;
                            if prog.len() > MAX_PROG {
                                return Err("expression too large".into());
                            }
                        }
                        let end = prog.len();
                        for s in splits {
                            prog[s] = Inst::Split(s + 1, end);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    impl Parser<'_> {
        fn alternation(&mut self) -> Res<Node> {
            let saved = self.flags;
            let mut alts = vec![self.concat()?];
            while self.it.peek() == Some(&'|') {
                self.it.next();
                alts.push(self.concat()?);
            }
            // Flags set inside a group end with it.
            self.flags = saved;
            Ok(if alts.len() == 1 {
                alts.pop().unwrap_or(Node::Empty)
            } else {
                Node::Alt(alts)
            })
        }

        /// Atoms and their repetitions. A repetition applies to the item
        /// before it (a flag group between them is none); two in a row
        /// are refused, as Go's Perl syntax does.
        fn concat(&mut self) -> Res<Node> {
            let mut items = Vec::new();
            let mut last_repeat = false;
            while let Some(&c) = self.it.peek() {
                if c == '|' || c == ')' {
                    break;
                }
                let rep = match c {
                    '*' => Some((0, None, 1)),
                    '+' => Some((1, None, 1)),
                    '?' => Some((0, Some(1), 1)),
                    '{' => brace(&self.it.clone().collect::<String>())?,
                    _ => None,
                };
                let Some((min, max, len)) = rep else {
                    last_repeat = false;
                    if let Some(atom) = self.atom()? {
                        items.push(atom);
                    }
                    continue;
                };
                for _ in 0..len {
                    self.it.next();
                }
                // A lazy repetition matches the same texts.
                if self.it.peek() == Some(&'?') {
                    self.it.next();
                }
                if last_repeat {
                    return Err("invalid nested repetition operator".into());
                }
                let Some(sub) = items.pop() else {
                    return Err("missing argument to repetition operator".into());
                };
                items.push(Node::Repeat(Box::new(sub), min, max));
                last_repeat = true;
            }
            Ok(match items.len() {
                0 => Node::Empty,
                1 => items.pop().unwrap_or(Node::Empty),
                _ => Node::Cat(items),
            })
        }

        /// One atom; None for a flag group (`(?i)`), which only sets flags.
        fn atom(&mut self) -> Res<Option<Node>> {
            let Some(c) = self.it.next() else {
                return Ok(Some(Node::Empty));
            };
            let f = self.flags;
            Ok(Some(match c {
                '(' => return self.group(),
                '[' => Node::Class(self.class()?),
                '.' => Node::Any(f.dot_nl),
                '^' => Node::Look(if f.multi_line { Look::BeginLine } else { Look::BeginText }),
                '$' => Node::Look(if f.multi_line { Look::EndLine } else { Look::EndText }),
                '\\' => self.escape()?,
                c => Node::Lit(c, f.fold),
            }))
        }

        fn group(&mut self) -> Res<Option<Node>> {
            if self.it.peek() == Some(&'?') {
                self.it.next();
                match self.it.peek() {
                    // Go 1.19 (Docker 20.10's) has no `(?<name>…)`.
                    Some('P') => {
                        self.it.next();
                        if self.it.next() != Some('<') {
                            return Err("invalid named capture".into());
                        }
                        let mut name = String::new();
                        loop {
                            match self.it.next() {
                                Some('>') => break,
                                Some(c) if c.is_alphanumeric() || c == '_' => name.push(c),
                                _ => return Err("invalid named capture".into()),
                            }
                        }
                        if name.is_empty() {
                            return Err("invalid named capture".into());
                        }
                    }
                    _ => {
                        // Flags: (?flags) or (?flags:re).
                        let mut neg = false;
                        let mut seen = false;
                        let mut flags = self.flags;
                        loop {
                            let Some(c) = self.it.next() else {
                                return Err("missing closing )".into());
                            };
                            match c {
                                'i' => flags.fold = !neg,
                                's' => flags.dot_nl = !neg,
                                'm' => flags.multi_line = !neg,
                                'U' => {}
                                '-' if !neg => {
                                    neg = true;
                                    seen = false;
                                    continue;
                                }
                                ')' | ':' if seen || !neg => {
                                    if c == ')' {
                                        self.flags = flags;
                                        return Ok(None);
                                    }
                                    let saved = self.flags;
                                    self.flags = flags;
                                    let inner = self.alternation()?;
                                    self.flags = saved;
                                    if self.it.next() != Some(')') {
                                        return Err("missing closing )".into());
                                    }
                                    return Ok(Some(inner));
                                }
                                _ => return Err("invalid or unsupported Perl syntax".into()),
                            }
                            seen = true;
                        }
                    }
                }
            }
            let inner = self.alternation()?;
            if self.it.next() != Some(')') {
                return Err("missing closing )".into());
            }
            Ok(Some(inner))
        }

        /// A class's ranges for `\d`, `\s`, `\w` (and negated forms), or None.
        fn perl_class(c: char) -> Option<(Vec<(char, char)>, bool)> {
            let (ranges, neg) = match c {
                'd' => (vec![('0', '9')], false),
                'D' => (vec![('0', '9')], true),
                's' => (vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], false),
                'S' => (vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], true),
                'w' => (vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], false),
                'W' => (vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], true),
                _ => return None,
            };
            Some((ranges, neg))
        }

        /// A character escape (`\n`, `\x41`, `\101`, `\.`): the character.
        fn escaped_char(&mut self, c: char) -> Res<char> {
            Ok(match c {
                'a' => '\x07',
                'f' => '\x0c',
                't' => '\t',
                'n' => '\n',
                'r' => '\r',
                'v' => '\x0b',
                '0'..='7' => {
                    // Octal: `\0`, or two or three digits (`\1` alone is a backreference).
                    let mut v = c.to_digit(8).unwrap_or(0);
                    let mut n = 1;
                    if c != '0' && !self.it.peek().is_some_and(|d| ('0'..='7').contains(d)) {
                        return Err("invalid escape sequence".into());
                    }
                    while n < 3 {
                        match self.it.peek().and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                self.it.next();
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    char::from_u32(v).ok_or("invalid escape sequence")?
                }
                'x' => {
                    let hex: String = if self.it.peek() == Some(&'{') {
                        self.it.next();
                        let mut h = String::new();
                        loop {
                            match self.it.next() {
                                Some('}') => break,
                                Some(d) if d.is_ascii_hexdigit() => h.push(d),
                                _ => return Err("invalid escape sequence".into()),
                            }
                        }
                        h
                    } else {
                        let a = self.it.next().filter(char::is_ascii_hexdigit);
                        let b = self.it.next().filter(char::is_ascii_hexdigit);
                        match (a, b) {
                            (Some(a), Some(b)) => [a, b].iter().collect(),
                            _ => return Err("invalid escape sequence".into()),
                        }
                    };
                    u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| !hex.is_empty())
                        .and_then(char::from_u32)
                        .ok_or("invalid escape sequence")?
                }
                c if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' => c,
                _ => return Err("invalid escape sequence".into()),
            })
        }

        fn escape(&mut self) -> Res<Node> {
            let f = self.flags;
            let Some(c) = self.it.next() else {
                return Err("trailing backslash at end of expression".into());
            };
            if let Some((ranges, negated)) = Self::perl_class(c) {
                return Ok(Node::Class(Class {
                    ranges,
                    negated,
                    fold: false,
                }));
            }
            Ok(match c {
                'b' => Node::Look(Look::WordBoundary),
                'B' => Node::Look(Look::NotWordBoundary),
                'A' => Node::Look(Look::BeginText),
                'z' => Node::Look(Look::EndText),
                'Q' => {
                    let mut lits = Vec::new();
                    while let Some(c) = self.it.next() {
                        if c == '\\' && self.it.peek() == Some(&'E') {
                            self.it.next();
                            break;
                        }
                        lits.push(Node::Lit(c, f.fold));
                    }
                    Node::Cat(lits)
                }
                c => Node::Lit(self.escaped_char(c)?, f.fold),
            })
        }

        fn class(&mut self) -> Res<Class> {
            let mut cls = Class {
                ranges: Vec::new(),
                negated: false,
                fold: self.flags.fold,
            };
            if self.it.peek() == Some(&'^') {
                self.it.next();
                cls.negated = true;
            }
            let mut first = true;
            loop {
                let Some(c) = self.it.next() else {
                    return Err("missing closing ]".into());
                };
                if c == ']' && !first {
                    break;
                }
                first = false;
                if c == '[' && self.it.peek() == Some(&':') {
                    let rest: String = self.it.clone().collect();
                    if let Some(end) = rest.find(":]") {
                        let name = &rest[1..end];
                        let (neg, name) = match name.strip_prefix('^') {
                            Some(n) => (true, n),
                            None => (false, name),
                        };
                        let ranges = posix_class(name).ok_or("invalid character class range")?;
                        for _ in 0..end + 2 {
                            self.it.next();
                        }
                        if neg {
                            cls.ranges.extend(negate(&ranges));
                        } else {
                            cls.ranges.extend(ranges);
                        }
                        continue;
                    }
                }
                let lo = if c == '\\' {
                    let Some(e) = self.it.next() else {
                        return Err("missing closing ]".into());
                    };
                    if let Some((ranges, neg)) = Self::perl_class(e) {
                        if neg {
                            cls.ranges.extend(negate(&ranges));
                        } else {
                            cls.ranges.extend(ranges);
                        }
                        continue;
                    }
                    self.escaped_char(e)?
                } else {
                    c
                };
                // A range `lo-hi` (a `-` before `]` is itself).
                let mut ahead = self.it.clone();
                if ahead.next() == Some('-') && ahead.peek().is_some_and(|&n| n != ']') {
                    self.it.next();
                    let h = self.it.next().ok_or("missing closing ]")?;
                    let hi = if h == '\\' {
                        let e = self.it.next().ok_or("missing closing ]")?;
                        self.escaped_char(e)?
                    } else {
                        h
                    };
                    if hi < lo {
                        return Err("invalid character class range".into());
                    }
                    cls.ranges.push((lo, hi));
                } else {
                    cls.ranges.push((lo, lo));
                }
            }
            Ok(cls)
        }
    }

    /// A repetition `{n}`, `{n,}` or `{n,m}` at the start of `s` (which
    /// starts with `{`): (min, max, characters it takes); None when `s`
    /// does not start with one (the `{` is then a literal).
    fn brace(s: &str) -> Res<Option<(u32, Option<u32>, usize)>> {
        let Some(end) = s.find('}') else { return Ok(None) };
        let body = &s[1..end];
        let num = |s: &str| -> Option<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(s.parse::<u32>().unwrap_or(u32::MAX))
        };
        let parsed = match body.split_once(',') {
            None => num(body).map(|n| (n, Some(n))),
            Some((a, "")) => num(a).map(|n| (n, None)),
            Some((a, b)) => match (num(a), num(b)) {
                (Some(a), Some(b)) => Some((a, Some(b))),
                _ => None,
            },
        };
        let Some((min, max)) = parsed else { return Ok(None) };
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
            return Err("invalid repeat count".into());
        }
        Ok(Some((min, max, s[..=end].chars().count())))
    }

    fn posix_class(name: &str) -> Option<Vec<(char, char)>> {
        Some(match name {
            "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
            "alpha" => vec![('A', 'Z'), ('a', 'z')],
            "ascii" => vec![('\0', '\x7f')],
            "blank" => vec![('\t', '\t'), (' ', ' ')],
            "cntrl" => vec![('\0', '\x1f'), ('\x7f', '\x7f')],
            "digit" => vec![('0', '9')],
            "graph" => vec![('!', '~')],
            "lower" => vec![('a', 'z')],
            "print" => vec![(' ', '~')],
            "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
            "space" => vec![('\t', '\r'), (' ', ' ')],
            "upper" => vec![('A', 'Z')],
            "word" => vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
            "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
            _ => return None,
        })
    }

    /// The complement of sorted, disjoint ranges.
    fn negate(ranges: &[(char, char)]) -> Vec<(char, char)> {
        let mut sorted = ranges.to_vec();
        sorted.sort();
        let mut out = Vec::new();
        let mut next = 0u32;
        for (lo, hi) in sorted {
            if (lo as u32) > next
                && let (Some(a), Some(b)) = (char::from_u32(next), char::from_u32(lo as u32 - 1))
            {
                out.push((a, b));
            }
            next = next.max(hi as u32 + 1);
        }
        if let Some(a) = char::from_u32(next) {
            out.push((a, char::MAX));
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::Regex;

        fn m(p: &str, s: &str) -> bool {
            Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")).is_match(s)
        }

        #[test]
        fn go_regexp_search() {
            assert!(m("web", "/web1"));
            assert!(m("^web", "web1") && !m("^web", "/web1"));
            assert!(m("^/web", "/web1"));
            assert!(m("1$", "web1") && !m("^web$", "web1"));
            assert!(m("", "anything"));
            assert!(m("w.b[0-9]+", "xweb12"));
            assert!(m("^(db|job)$", "job") && !m("^(db|job)$", "jobs"));
            assert!(m("(?i)WEB", "web") && !m("WEB", "web"));
            assert!(m("^a{2,3}$", "aaa") && !m("^a{2,3}$", "aaaa"));
            assert!(m("a{,2}", "a{,2}"), "not a repetition: literal");
            assert!(m(r"\d\.\w", "x1.y") && !m(r"\d\.\w", "1x.y"));
            assert!(m("[^a-c]", "abcd") && !m("^[^a-c]+$", "abc"));
            assert!(m("[[:digit:]]x", "5x"));
            assert!(m(r"\bweb\b", "a web b") && !m(r"\bweb\b", "aweb"));
            assert!(m("ab*?c", "ac") && m("(?:ab)+$", "abab"));
            assert!(m(r"\x41\101", "AA"));
            assert!(m("[a-]", "-"));
            assert!(m(r"\Q.*\E", "a.*b") && !m(r"\Q.*\E", "ab"));
            // A flag group is no argument: the repetition is the atom's before it.
            assert!(m("^b(?i){2}$", "bb") && m("^(?)a", "a"));
        }

        #[test]
        fn go_regexp_errors() {
            for bad in [
                "[", "(", ")", "*a", "a**", "a+*", "\\", r"\1", r"\y", "[b-a]", "(?<x>a)", "(?-)", "(?i-)", "a|*",
                "(?i)*", "x{1001}",
            ] {
                assert!(Regex::new(bad).is_err(), "{bad} should not compile");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(raw: &[&str]) -> Filters {
        Filters::parse(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_or_default()
    }

    #[test]
    fn filter_matching_as_docker() {
        let f = filters(&["NAME = web ", "label=app", "label=tier=front"]);
        assert!(f.matches("name", "web1") && !f.matches("name", "db"));
        assert!(f.matches("id", "anything"), "no values: everything");
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(f.match_kv_list("label", &labels));
        assert!(!filters(&["label=tier=back"]).match_kv_list("label", &labels));
        assert!(!filters(&["label=x"]).match_kv_list("label", &BTreeMap::new()));
        assert!(filters(&["name=["]).matches("name", "["), "an exact value matches");
        assert!(!filters(&["name=["]).matches("name", "web"));
        assert!(matches!(
            Filters::parse(&["foo".to_string()]),
            Err(PsError::Flag(m)) if m == r#"invalid argument "foo" for "-f, --filter" flag: bad format of filter (expected name=value)"#
        ));
    }

    #[test]
    fn ports_and_numbers_as_nat() {
        let mut s = HashSet::new();
        port_op("expose", "80-82/udp", &mut s).ok();
        port_op("expose", "443", &mut s).ok();
        let mut v: Vec<_> = s.into_iter().collect();
        v.sort();
        assert_eq!(v, ["443/tcp", "80/udp", "81/udp", "82/udp"]);
        let msg = |r: Result<(), PsError>| match r {
            Err(PsError::Daemon(m)) => m,
            _ => String::new(),
        };
        let mut s = HashSet::new();
        assert_eq!(
            msg(port_op("publish", "80-70", &mut s)),
            "error while looking up for publish 80-70: Invalid range specified for the Port: 80-70"
        );
        assert_eq!(
            msg(port_op("expose", "abc", &mut s)),
            r#"error while looking up for expose abc: strconv.ParseUint: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            msg(port_op("publish", "1:2", &mut s)),
            "filter for 'publish' should not contain ':': 1:2"
        );
        assert_eq!(
            go_atoi("x").unwrap_err(),
            r#"strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(go_atoi("+3"), Ok(3));
    }

    #[test]
    fn command_and_time_as_docker() {
        assert_eq!(go_quote("sh -c 'a > \"b\"'"), r#""sh -c 'a > \"b\"'""#);
        let t = go_time("2021-06-01T10:00:00.5Z");
        assert!(t.starts_with("2021-06-01 ") || t.starts_with("2021-05-31 "), "{t}");
    }
}
