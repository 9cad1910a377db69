//! `strata image analyze IMAGE`: dive's analysis (wagoodman/dive v0.12.0)
//! from each layer's file index — per layer its size, history step and the
//! files it adds, changes and removes; the files written more than once or
//! deleted (dive's "inefficient files"), the wasted bytes and the
//! efficiency score, computed as dive computes them; `--ci` checks dive's
//! three rules and prints its PASS/FAIL lines.
//!
//! dive's model, reproduced here (`dive/filetree/efficiency.go`,
//! `dive/image/image.go`, `runtime/ci/`):
//! - each layer is a tree of its tar entries; parents a layer does not list
//!   are implied nodes (no size, not directories); `.wh..wh.*` entries
//!   (opaque markers) are ignored, so an opaque directory hides nothing;
//! - every leaf of every layer (files, links, empty directories, whiteouts)
//!   counts for its path: its size, or for a whiteout the size of what it
//!   deletes — everything under the path in the layers below stacked when
//!   that was a directory, else 0. A whiteout of a path the layers below
//!   lack stops the counting of that layer's remaining leaves (dive returns
//!   from its walk there) and leaves a -1 in the score's numerator;
//! - a path's cumulative size is the sum of its leaves' sizes and its
//!   minimum the smallest; efficiency = Σ minimum / Σ cumulative (1 when
//!   nothing was counted); a path counted more than once is inefficient and
//!   its whole cumulative size is wasted;
//! - a layer's size is the sum of its tar entries' sizes; the user size is
//!   that of every layer but the first, and the user wasted percent is
//!   wasted / user size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use strata_sbom::{EntryKind, LayerIndex};

#[derive(Args)]
#[command(override_usage = "strata image analyze [OPTIONS] IMAGE")]
pub struct AnalyzeArgs {
    /// Check dive's CI rules: print PASS/FAIL per rule and exit 1 when one fails
    #[arg(long)]
    ci: bool,
    /// (with --ci) lowest allowable image efficiency (0-1), or "disabled"
    #[arg(long, value_name = "string", default_value = "0.9")]
    lowest_efficiency: String,
    /// (with --ci) highest allowable bytes wasted (20MB, 1.5GiB, …), or "disabled"
    #[arg(long, value_name = "string", default_value = "disabled")]
    highest_wasted_bytes: String,
    /// (with --ci) highest allowable ratio of wasted bytes to the bytes added over the first layer (0-1), or "disabled"
    #[arg(long, value_name = "string", default_value = "0.1")]
    highest_user_wasted_percent: String,
    /// List each layer's added, changed and removed paths
    #[arg(long)]
    paths: bool,
    /// Output format: text (default) or json (dive's --json export, with strata's fields added)
    #[arg(long, value_name = "string", default_value = "text")]
    format: String,
    /// Platform of a registry image (os/arch[/variant]; default: the host's)
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Image from the store (name or ID) or a registry reference (read remotely, nothing stored)
    image: String,
}

/// One layer as the analysis reports it.
pub(crate) struct LayerReport {
    pub index: usize,
    pub diff_id: String,
    pub blob: String,
    pub created_by: String,
    /// dive's layer size: the sum of the tar entries' sizes.
    pub size: u64,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// A path dive calls inefficient: written or deleted in more than one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inefficiency {
    pub path: String,
    pub count: usize,
    /// Every write's size (and what deletions removed): all of it is wasted.
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Efficiency {
    pub score: f64,
    /// Largest first.
    pub inefficiencies: Vec<Inefficiency>,
}

/// A node of dive's file tree: children by name (whiteouts keep their
/// `.wh.` prefix), and the entry's size and directory-ness (an implied
/// parent has neither).
#[derive(Clone, Default, Debug)]
struct Node {
    children: BTreeMap<String, Node>,
    size: u64,
    is_dir: bool,
}

const WHITEOUT: &str = ".wh.";
const DOUBLE_WHITEOUT: &str = ".wh..wh.";

impl Node {
    /// dive's `AddPath`: walks/creates the path, stopping (without adding)
    /// at a new component named `.wh..wh.*`; the last node gets the payload.
    fn add_path(&mut self, components: &[&str], size: u64, is_dir: bool) {
        let mut node = self;
        for (i, name) in components.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if !node.children.contains_key(*name) {
                if name.starts_with(DOUBLE_WHITEOUT) {
                    return;
                }
                node.children.insert((*name).to_string(), Node::default());
            }
            node = node.children.get_mut(*name).expect("present");
            if i == components.len() - 1 {
                node.size = size;
                node.is_dir = is_dir;
            }
        }
    }

    fn get(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            node = node.children.get(name)?;
        }
        Some(node)
    }

    fn remove(&mut self, path: &str) {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((last, parents)) = comps.split_last() else {
            return;
        };
        let mut node = self;
        for name in parents {
            let Some(n) = node.children.get_mut(*name) else { return };
            node = n;
        }
        node.children.remove(*last);
    }

    /// The sizes of this node and everything under it.
    fn total(&self) -> u64 {
        self.size + self.children.values().map(Node::total).sum::<u64>()
    }

    /// dive's `Stack`: every node of `upper`, children first by name; a
    /// whiteout removes its path, anything else is added with its payload
    /// (an implied parent's empty payload included).
    fn stack(&mut self, upper: &Node) {
        fn walk(tree: &mut Node, node: &Node, path: &mut Vec<String>) {
            for (name, child) in &node.children {
                path.push(name.clone());
                walk(tree, child, path);
                let last = path.last().expect("pushed");
                if let Some(gone) = last.strip_prefix(WHITEOUT) {
                    let mut p = path[..path.len() - 1].to_vec();
                    p.push(gone.to_string());
                    tree.remove(&p.join("/"));
                } else {
                    let comps: Vec<&str> = path.iter().map(String::as_str).collect();
                    tree.add_path(&comps, child.size, child.is_dir);
                }
                path.pop();
            }
        }
        walk(self, upper, &mut Vec::new());
    }
}

/// dive's tree of one layer.
fn layer_tree(index: &LayerIndex) -> Node {
    let mut root = Node::default();
    for e in &index.entries {
        let (dir, name) = e.path.rsplit_once('/').unwrap_or(("", e.path.as_str()));
        let mut comps: Vec<&str> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        let raw;
        match &e.kind {
            EntryKind::Opaque => {
                // `DIR/.wh..wh..opq`: its parents are made, the marker is not.
                comps = e.path.split('/').collect();
                comps.push(".wh..wh..opq");
                root.add_path(&comps, 0, false);
            }
            EntryKind::Whiteout => {
                raw = format!("{WHITEOUT}{name}");
                comps.push(&raw);
                root.add_path(&comps, 0, false);
            }
            kind => {
                comps.push(name);
                root.add_path(&comps, e.size, *kind == EntryKind::Dir);
            }
        }
    }
    root
}

/// dive's `Efficiency` over the layers' trees (see the module's documentation).
pub(crate) fn efficiency(layers: &[LayerIndex]) -> Efficiency {
    let trees: Vec<Node> = layers.iter().map(layer_tree).collect();
    struct Data {
        nodes: usize,
        cumulative: i64,
        min: i64,
    }
    let mut data: HashMap<String, Data> = HashMap::new();
    let mut inefficient: Vec<String> = Vec::new();
    // dive stacks trees[0] on a copy of itself, then each layer below the current one.
    let mut stacked = trees.first().cloned().unwrap_or_default();
    for (i, tree) in trees.iter().enumerate() {
        if i > 0 {
            stacked.stack(&trees[i - 1]);
        }
        // Leaves, children first, by name; a failed whiteout lookup ends the layer.
        fn visit(
            node: &Node,
            path: &mut Vec<String>,
            stacked: &Node,
            data: &mut HashMap<String, Data>,
            inefficient: &mut Vec<String>,
        ) -> bool {
            for (name, child) in &node.children {
                path.push(name.clone());
                let go_on = visit(child, path, stacked, data, inefficient);
                if go_on && child.children.is_empty() {
                    let whiteout = name.strip_prefix(WHITEOUT);
                    let mut full = String::new();
                    for (k, c) in path.iter().enumerate() {
                        full.push('/');
                        full.push_str(if k == path.len() - 1 { whiteout.unwrap_or(c) } else { c });
                    }
                    let full = full.replace("//", "/");
                    let d = data.entry(full.clone()).or_insert(Data {
                        nodes: 0,
                        cumulative: 0,
                        min: -1,
                    });
                    let size = match whiteout {
                        Some(_) => match stacked.get(&full) {
                            Some(n) if n.is_dir => n.total() as i64,
                            Some(_) => 0,
                            None => {
                                path.pop();
                                return false;
                            }
                        },
                        None => child.size as i64,
                    };
                    d.cumulative += size;
                    if d.min < 0 || size < d.min {
                        d.min = size;
                    }
                    d.nodes += 1;
                    if d.nodes == 2 {
                        inefficient.push(full);
                    }
                }
                path.pop();
                if !go_on {
                    return false;
                }
            }
            true
        }
        visit(tree, &mut Vec::new(), &stacked, &mut data, &mut inefficient);
    }
    let minimum: i64 = data.values().map(|d| d.min).sum();
    let discovered: i64 = data.values().map(|d| d.cumulative).sum();
    let score = if discovered == 0 {
        1.0
    } else {
        minimum as f64 / discovered as f64
    };
    let mut inefficiencies: Vec<Inefficiency> = inefficient
        .into_iter()
        .map(|p| {
            let d = &data[&p];
            Inefficiency {
                count: d.nodes,
                size: d.cumulative,
                path: p,
            }
        })
        .collect();
    // dive sorts by size (unstably) and lists the largest first; ties by path here.
    inefficiencies.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    Efficiency { score, inefficiencies }
}

/// Each layer's added, changed and removed paths against the layers below
/// it merged (whiteouts and opaque directories applied). A directory the
/// layer lists again (as a parent of what it writes) is not a change; a
/// deleted directory is one removed path; an opaque directory removes the
/// entries directly under it that the layer does not write again.
type Changes = (Vec<String>, Vec<String>, Vec<String>);

fn layer_changes(layers: &[LayerIndex]) -> Vec<Changes> {
    fn under<'a>(set: &'a BTreeSet<String>, dir: &str) -> Vec<&'a String> {
        let prefix = format!("{dir}/");
        set.range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .collect()
    }
    let mut present: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for layer in layers {
        let below = present.clone();
        let written: BTreeSet<&str> = layer
            .entries
            .iter()
            .filter(|e| !matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque))
            .map(|e| e.path.as_str())
            .collect();
        let (mut added, mut changed, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for e in &layer.entries {
            match &e.kind {
                EntryKind::Whiteout => {
                    if below.contains(&e.path) {
                        removed.push(format!("/{}", e.path));
                    }
                    let gone: Vec<String> = under(&present, &e.path).into_iter().cloned().collect();
                    for g in gone {
                        present.remove(&g);
                    }
                    present.remove(&e.path);
                }
                EntryKind::Opaque => {
                    let depth = e.path.split('/').filter(|c| !c.is_empty()).count() + 1;
                    for p in under(&below, &e.path) {
                        if p.split('/').count() == depth && !written.contains(p.as_str()) {
                            removed.push(format!("/{p}"));
                        }
                    }
                    let gone: Vec<String> = under(&present, &e.path).into_iter().cloned().collect();
                    for g in gone {
                        present.remove(&g);
                    }
                }
                kind => {
                    if !seen.insert(e.path.as_str()) {
                        continue;
                    }
                    if below.contains(&e.path) {
                        if *kind != EntryKind::Dir {
                            changed.push(format!("/{}", e.path));
                        }
                    } else {
                        added.push(format!("/{}", e.path));
                    }
                    if *kind != EntryKind::Dir {
                        let gone: Vec<String> = under(&present, &e.path).into_iter().cloned().collect();
                        for g in gone {
                            present.remove(&g);
                        }
                    }
                    present.insert(e.path.clone());
                }
            }
        }
        out.push((added, changed, removed));
    }
    out
}

/// dive's rule outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
    Misconfigured,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Misconfigured => "MISCONFIGURED",
        }
    }
}

/// go-humanize's `ParseBytes`: SI (`20MB`, `20M`) and IEC (`20MiB`, `20Mi`) units, commas allowed.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let digits = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let num = s[..digits].replace(',', "");
    let f: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let m: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1_000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        other => return Err(format!("unhandled size name: {other}")),
    };
    let v = f * m as f64;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

/// go-humanize's `Bytes` (SI, two significant digits: `12 kB`, `1.2 MB`).
pub(crate) fn human_bytes(s: u64) -> String {
    if s < 10 {
        return format!("{s} B");
    }
    let sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((s as f64).ln() / 1000f64.ln()).floor();
    let suffix = sizes[e as usize];
    let val = ((s as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let digits = 2 - (val as i64).to_string().len() as i64;
    if digits > 0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Go's `%v` of a float64 (shortest form; exponent outside [1e-4, 1e21)).
fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let a = v.abs();
    if a == 0.0 || (1e-4..1e21).contains(&a) {
        return format!("{v}");
    }
    let s = format!("{v:e}");
    // Rust `1.5e-5` → Go `1.5e-05`.
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("+", e));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

struct RuleResult {
    key: &'static str,
    status: Status,
    message: String,
}

/// dive's three CI rules, in its order of evaluation.
fn evaluate(a: &AnalyzeArgs, eff: f64, wasted: u64, user_wasted: f64) -> Vec<RuleResult> {
    let ratio = |key: &str, v: &str| -> Result<f64, String> {
        let x: f64 = v
            .parse()
            .map_err(|_| format!("invalid config value ('{v}'): strconv.ParseFloat: parsing {v:?}: invalid syntax"))?;
        if !(0.0..=1.0).contains(&x) {
            return Err(format!(
                "{key} config value is outside allowed range (0-1), given '{v}'"
            ));
        }
        Ok(x)
    };
    let mut out = Vec::new();
    let mut push = |key: &'static str, value: &str, check: &dyn Fn(&str) -> Result<Option<String>, String>| {
        let (status, message) = if value == "disabled" {
            (Status::Skip, "rule disabled".to_string())
        } else {
            match check(value) {
                Err(m) => (Status::Misconfigured, m),
                Ok(None) => (Status::Pass, String::new()),
                Ok(Some(m)) => (Status::Fail, m),
            }
        };
        out.push(RuleResult { key, status, message });
    };
    push("lowestEfficiency", &a.lowest_efficiency, &|v| {
        let t = ratio("lowestEfficiency", v)?;
        Ok((t > eff).then(|| {
            format!(
                "image efficiency is too low (efficiency={} < threshold={})",
                go_float(eff),
                go_float(t)
            )
        }))
    });
    push("highestWastedBytes", &a.highest_wasted_bytes, &|v| {
        let t = parse_bytes(v).map_err(|e| format!("invalid config value ('{v}'): {e}"))?;
        Ok((wasted > t).then(|| format!("too many bytes wasted (wasted-bytes={wasted} > threshold={t})")))
    });
    push("highestUserWastedPercent", &a.highest_user_wasted_percent, &|v| {
        let t = ratio("highestUserWastedPercent", v)?;
        Ok((t < user_wasted).then(|| {
            format!(
                "too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes={} > threshold={})",
                go_float(user_wasted),
                go_float(t)
            )
        }))
    });
    out
}

pub fn analyze(root: &Path, a: AnalyzeArgs) -> Result<ExitCode> {
    if a.format != "text" && a.format != "json" {
        bail!("unknown format {:?}: use text or json", a.format);
    }
    let (name, id, layers, indexes) =
        super::sbom::with_image_layers(root, &a.image, a.platform.as_deref(), |_, meta, inputs| {
            let labels: Vec<(Option<String>, Option<String>)> = inputs
                .iter()
                .map(|l| (l.digest.clone(), l.created_by.clone()))
                .collect();
            let indexes = index_layers(inputs)?;
            let layers: Vec<LayerReport> = labels
                .into_iter()
                .zip(&indexes)
                .enumerate()
                .map(|(i, ((diff_id, step), index))| LayerReport {
                    index: i,
                    diff_id: diff_id.unwrap_or_default(),
                    blob: meta.blobs.get(i).map(|b| b.digest.to_string()).unwrap_or_default(),
                    created_by: step.unwrap_or_default(),
                    size: index.entries.iter().map(|e| e.size).sum(),
                    added: Vec::new(),
                    changed: Vec::new(),
                    removed: Vec::new(),
                })
                .collect();
            Ok((a.image.clone(), meta.id.to_string(), layers, indexes))
        })?;
    let mut layers = layers;
    for (l, (added, changed, removed)) in layers.iter_mut().zip(layer_changes(&indexes)) {
        l.added = added;
        l.changed = changed;
        l.removed = removed;
    }
    let eff = efficiency(&indexes);
    let size: u64 = layers.iter().map(|l| l.size).sum();
    let user_size: u64 = layers.iter().skip(1).map(|l| l.size).sum();
    let wasted: u64 = eff.inefficiencies.iter().map(|i| i.size.max(0) as u64).sum();
    let user_wasted = wasted as f64 / user_size as f64;
    let mut out = std::io::stdout().lock();
    if a.format == "json" {
        let v = json!({
            "layer": layers.iter().map(|l| {
                let mut o = json!({
                    "index": l.index,
                    "id": l.diff_id,
                    "digestId": l.blob,
                    "sizeBytes": l.size,
                    "command": l.created_by.strip_prefix("/bin/sh -c ").unwrap_or(&l.created_by),
                    "added": l.added.len(),
                    "changed": l.changed.len(),
                    "removed": l.removed.len(),
                });
                if a.paths {
                    o["addedFiles"] = json!(l.added);
                    o["changedFiles"] = json!(l.changed);
                    o["removedFiles"] = json!(l.removed);
                }
                o
            }).collect::<Vec<_>>(),
            "image": {
                "name": name,
                "id": id,
                "sizeBytes": size,
                "userSizeBytes": user_size,
                "inefficientBytes": wasted,
                "efficiencyScore": eff.score,
                "userWastedPercent": if user_wasted.is_finite() { json!(user_wasted) } else { json!(null) },
                "fileReference": eff.inefficiencies.iter().map(|i| json!({"count": i.count, "sizeBytes": i.size, "file": i.path})).collect::<Vec<_>>(),
            }
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        if !a.ci {
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        writeln!(out, "Image: {name} ({id})")?;
        writeln!(out, "Layers:")?;
        let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(2);
        writeln!(tw, "  INDEX\tSIZE\tADDED\tCHANGED\tREMOVED\tCOMMAND")?;
        for l in &layers {
            let cmd = l
                .created_by
                .strip_prefix("/bin/sh -c ")
                .unwrap_or(&l.created_by)
                .replace(['\t', '\n'], " ");
            writeln!(
                tw,
                "  {}\t{}\t{}\t{}\t{}\t{}",
                l.index,
                human_bytes(l.size),
                l.added.len(),
                l.changed.len(),
                l.removed.len(),
                cmd
            )?;
        }
        tw.flush()?;
        out.write_all(&tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        if a.paths {
            for l in &layers {
                writeln!(out, "Layer {}:", l.index)?;
                for (mark, list) in [("A", &l.added), ("C", &l.changed), ("D", &l.removed)] {
                    for p in list {
                        writeln!(out, "  {mark} {p}")?;
                    }
                }
            }
        }
        writeln!(out, "Total image size: {size} bytes ({})", human_bytes(size))?;
        writeln!(
            out,
            "User size (over the first layer): {user_size} bytes ({})",
            human_bytes(user_size)
        )?;
        writeln!(out, "  efficiency: {:2.4} %", eff.score * 100.0)?;
        writeln!(out, "  wastedBytes: {wasted} bytes ({})", human_bytes(wasted))?;
        writeln!(out, "  userWastedPercent: {} %", go_percent(user_wasted))?;
        writeln!(out, "Inefficient Files:")?;
        writeln!(out, "{:>5}  {:>12}  File Path", "Count", "Wasted Space")?;
        if eff.inefficiencies.is_empty() {
            writeln!(out, "None")?;
        }
        for i in &eff.inefficiencies {
            writeln!(
                out,
                "{:>5}  {:>12}  {}",
                i.count,
                human_bytes(i.size.max(0) as u64),
                i.path
            )?;
        }
        if !a.ci {
            return Ok(ExitCode::SUCCESS);
        }
    }
    // dive's CI report (on stderr after JSON, so stdout stays one document).
    let results = evaluate(&a, eff.score, wasted, user_wasted);
    let mut report = String::new();
    let misconfigured = results.iter().any(|r| r.status == Status::Misconfigured);
    report.push_str("Results:\n");
    let mut sorted: Vec<&RuleResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.key);
    for r in &sorted {
        // Misconfigured rules are reported alone; the others show as configured.
        let status = if misconfigured && r.status != Status::Misconfigured && r.status != Status::Skip {
            "CONFIGURED   ".to_string()
        } else {
            r.status.as_str().to_string()
        };
        if r.message.is_empty() || (misconfigured && r.status != Status::Misconfigured && r.status != Status::Skip) {
            report.push_str(&format!("  {status}: {}\n", r.key));
        } else {
            report.push_str(&format!("  {status}: {}: {}\n", r.key, r.message));
        }
    }
    let failed = results.iter().filter(|r| r.status == Status::Fail).count();
    if misconfigured {
        report.push_str("CI Misconfigured\n");
    } else {
        let passed = results.iter().filter(|r| r.status == Status::Pass).count();
        let skipped = results.iter().filter(|r| r.status == Status::Skip).count();
        report.push_str(&format!(
            "Result:{} [Total:{}] [Passed:{passed}] [Failed:{failed}] [Warn:0] [Skipped:{skipped}]\n",
            if failed > 0 { "FAIL" } else { "PASS" },
            results.len()
        ));
    }
    if a.format == "json" {
        eprint!("{report}");
    } else {
        out.write_all(report.as_bytes())?;
    }
    out.flush()?;
    Ok(if misconfigured || failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `%2.4f` of a percentage, as Go prints NaN and infinities.
fn go_percent(ratio: f64) -> String {
    let v = ratio * 100.0;
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v:.4}")
    }
}

/// Each layer's file index, layers read in parallel (as many at once as
/// the machine has CPUs), bottom first.
fn index_layers<R: std::io::Read + Send>(inputs: Vec<strata_sbom::LayerInput<R>>) -> Result<Vec<LayerIndex>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let n = inputs.len();
    let queue = std::sync::Mutex::new(inputs.into_iter().enumerate());
    let results = std::sync::Mutex::new(Vec::with_capacity(n));
    let work = || {
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some((i, input)) = next else { return };
            let r = strata_sbom::index_layer(input.reader).map_err(|e| {
                anyhow::anyhow!(
                    "reading layer {i}{}: {e}",
                    input.digest.map(|d| format!(" ({d})")).unwrap_or_default()
                )
            });
            let failed = r.is_err();
            results.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
            if failed {
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(n.max(1)) {
            s.spawn(work);
        }
        work();
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_sbom::Entry;

    fn e(path: &str, kind: EntryKind, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn layer(entries: Vec<Entry>) -> LayerIndex {
        LayerIndex { entries }
    }

    #[test]
    fn overwritten_and_deleted_files_are_wasted() {
        let l0 = layer(vec![
            e("etc", EntryKind::Dir, 0),
            e("etc/a", EntryKind::File, 100),
            e("etc/b", EntryKind::File, 50),
            e("d", EntryKind::Dir, 0),
            e("d/x", EntryKind::File, 10),
            e("d/y", EntryKind::File, 20),
        ]);
        let l1 = layer(vec![e("etc", EntryKind::Dir, 0), e("etc/a", EntryKind::File, 30)]);
        let l2 = layer(vec![
            e("etc", EntryKind::Dir, 0),
            e("etc/b", EntryKind::Whiteout, 0),
            e("d", EntryKind::Whiteout, 0),
        ]);
        let eff = efficiency(&[l0, l1, l2]);
        // /etc/a: 100 + 30, min 30; /etc/b: 50 + 0 (a file's whiteout weighs 0),
        // min 0; /d is no leaf below (it has children), so only its whiteout
        // counts, with what it deletes (30): once, not wasted.
        assert_eq!(
            eff.inefficiencies,
            vec![
                Inefficiency {
                    path: "/etc/a".into(),
                    count: 2,
                    size: 130
                },
                Inefficiency {
                    path: "/etc/b".into(),
                    count: 2,
                    size: 50
                },
            ]
        );
        // minimum: 30 + 0 + 30 + 10 + 20 = 90; cumulative: 130 + 50 + 30 + 10 + 20 = 240.
        assert_eq!(eff.score, 90.0 / 240.0);
    }

    #[test]
    fn a_whiteout_of_nothing_ends_the_layer_and_leaves_minus_one() {
        let l0 = layer(vec![e("a", EntryKind::File, 10)]);
        let l1 = layer(vec![e("b", EntryKind::Whiteout, 0), e("c", EntryKind::File, 5)]);
        let eff = efficiency(&[l0, l1]);
        // /a: 10/10; /b: created with min -1, then the walk stops: /c is never counted.
        assert_eq!(eff.score, 9.0 / 10.0);
        assert!(eff.inefficiencies.is_empty());
    }

    #[test]
    fn opaque_markers_are_ignored_as_dive_does() {
        let l0 = layer(vec![e("d", EntryKind::Dir, 0), e("d/x", EntryKind::File, 10)]);
        let l1 = layer(vec![
            e("d", EntryKind::Dir, 0),
            e("d", EntryKind::Opaque, 0),
            e("d/n", EntryKind::File, 3),
        ]);
        let eff = efficiency(&[l0, l1]);
        assert_eq!(eff.score, 1.0);
        let ch = layer_changes(&[
            layer(vec![e("d", EntryKind::Dir, 0), e("d/x", EntryKind::File, 10)]),
            layer(vec![e("d", EntryKind::Opaque, 0), e("d/n", EntryKind::File, 3)]),
        ]);
        assert_eq!(ch[1].0, vec!["/d/n".to_string()]);
        assert_eq!(ch[1].2, vec!["/d/x".to_string()]);
    }

    #[test]
    fn humanize_as_go() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(12345), "12 kB");
        assert_eq!(human_bytes(1234), "1.2 kB");
        assert_eq!(human_bytes(82854982), "83 MB");
        assert_eq!(parse_bytes("20MB").unwrap(), 20_000_000);
        assert_eq!(parse_bytes("20 MiB").unwrap(), 20 << 20);
        assert_eq!(parse_bytes("1,000").unwrap(), 1000);
        assert!(parse_bytes("20 XB").is_err());
        assert_eq!(go_float(0.95), "0.95");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }
}
