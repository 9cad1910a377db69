//! `ps` (`container ls`) as Docker 20.10's CLI and daemon list containers:
//! `-f/--filter` (moby's `daemon/list.go`: `foldFilter`,
//! `includeContainerInList`, and `api/types/filters`' `Match`,
//! `ExactMatch`, `MatchKVList`), `-n/--last`, `-l/--latest`, `-s/--size`
//! (`GetContainerLayerSize`, the CLI's `SIZE`), and the columns of the
//! CLI's container formatter.
//!
//! Values of one key are OR'ed, keys are AND'ed. `id` and `name` are Go
//! regular expressions searched in the ID and in the name (with and without
//! its leading `/`), after an exact comparison; [`super::go_regexp`] is the RE2 syntax
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
                    strata_build::go_quote(r)
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
            .any(|p| super::go_regexp::Regex::new(p).is_ok_and(|re| re.is_match(source)))
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
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            strata_build::go_quote(s)
        ));
    }
    // Go's int is 64-bit; an exit code is never outside i32.
    match s.parse::<i64>() {
        Ok(n) => Ok(n.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
        Err(_) => Err(format!(
            "strconv.Atoi: parsing {}: value out of range",
            strata_build::go_quote(s)
        )),
    }
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error.
fn go_parse_u16(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            strata_build::go_quote(s)
        ));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u16::MAX as u64 => Ok(n as u32),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            strata_build::go_quote(s)
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
        strata_build::go_quote(&cmd)
    } else {
        strata_build::go_quote(&ellipsis(&cmd, 20))
    }
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
        Ok(upper) if upper.file_name().is_some_and(|n| n == "upper") => strata_container::directory_size(&upper),
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
        image += *cache
            .entry(chain.clone())
            .or_insert_with(|| strata_container::directory_size(dir));
    }
    (rw, image + rw)
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
        assert_eq!(strata_build::go_quote("sh -c 'a > \"b\"'"), r#""sh -c 'a > \"b\"'""#);
        let t = go_time("2021-06-01T10:00:00.5Z");
        assert!(t.starts_with("2021-06-01 ") || t.starts_with("2021-05-31 "), "{t}");
    }
}
