//! `strata scan image|sbom` and `strata scout quickview|cves` end to end:
//! images built offline on the imported busybox rootfs whose layers hold old
//! Python and npm packages' metadata (one package deleted by a later step)
//! and a Debian 12 dpkg status, scanned against `../shared/vulndb`'s PyPI
//! and npm exports (skipped when absent) plus Debian records written here.
//! The findings are checked exactly against a set computed in the test from
//! the zips' JSON records by a small OSV evaluator of its own.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

const SITE: &str = "/usr/lib/python3/site-packages";

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";

const STATUS: &str = "Package: busybox\nStatus: install ok installed\nArchitecture: amd64\nSource: busybox (1:1.35.0-4)\nVersion: 1:1.35.0-4+b3\nDescription: Tiny utilities for small and embedded systems\n\n\
Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n";

/// (name, version) of the Python packages the app image installs; urllib3
/// is deleted by a later step.
const PYTHON: &[(&str, &str)] = &[
    ("Jinja2", "2.10"),
    ("requests", "2.19.0"),
    ("urllib3", "1.24.1"),
    ("six", "1.16.0"),
];

/// npm packages of the app image (lodash 4.17.11 is exactly
/// GHSA-4xc9-xhrj-v574's fix: not affected by it).
const NPM: &[(&str, &str)] = &[
    ("lodash", "4.17.11"),
    ("moment", "2.29.1"),
    ("minimist", "1.2.0"),
    ("json5", "2.1.0"),
    ("semver", "5.7.1"),
    ("ws", "7.4.0"),
    ("node-fetch", "2.6.0"),
    ("jquery", "3.4.1"),
    ("@xmldom/xmldom", "0.8.3"),
];

fn vulndb() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vulndb");
    if !d.join("PyPI.zip").is_file() || !d.join("npm.zip").is_file() {
        eprintln!("skipped: {} not found (the OSV fixture)", d.display());
        return None;
    }
    Some(d)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Debian 12 records for the dpkg status above: one affecting busybox's
/// source version, one fixed exactly at it, one withdrawn.
fn debian_records(dir: &Path) {
    let rec = |id: &str, fixed: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","modified":"2024-05-01T00:00:00Z","published":"2024-04-01T00:00:00Z",{extra}"summary":"test record {id}","affected":[{{"package":{{"ecosystem":"Debian:12","name":"busybox"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
        )
    };
    write(
        &dir.join("DEBIAN-CVE-2099-0001.json"),
        &rec("DEBIAN-CVE-2099-0001", "1:1.36.1-1", ""),
    );
    write(
        &dir.join("DEBIAN-CVE-2099-0002.json"),
        &rec("DEBIAN-CVE-2099-0002", "1:1.35.0-4", ""),
    );
    write(
        &dir.join("DEBIAN-CVE-2099-0003.json"),
        &rec(
            "DEBIAN-CVE-2099-0003",
            "1:1.37.0-1",
            r#""withdrawn":"2024-06-01T00:00:00Z","#,
        ),
    );
}

/// The findings the Debian records give.
fn debian_expected() -> BTreeSet<(String, String, String)> {
    [(
        "busybox".to_string(),
        "1:1.35.0-4+b3".to_string(),
        "CVE-2099-0001".to_string(),
    )]
    .into()
}

/// Builds `base:1` (busybox + a Debian 12 dpkg status), `app:1` on it
/// (Python and npm packages, urllib3 deleted) and `clean:1` (moment only).
/// Layers of app:1: 0 busybox, 1 status, 2 os-release, 3 site-packages,
/// 4 node_modules, 5 the rm.
fn build(env: &Env) -> Option<()> {
    env.import_busybox()?;
    let base = env.path("base");
    write(&base.join("status"), STATUS);
    write(&base.join("os-release"), OS_RELEASE);
    write(
        &base.join("Dockerfile"),
        "FROM busybox\nCOPY status /var/lib/dpkg/status\nCOPY os-release /etc/os-release\n",
    );
    env.ok(&["build", "-q", "-t", "base:1", base.to_str().unwrap()]);

    let ctx = env.path("app");
    for (name, version) in PYTHON {
        write(
            &ctx.join(format!("site-packages/{name}-{version}.dist-info/METADATA")),
            &format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test\nLicense: BSD\n\n"),
        );
    }
    for (name, version) in NPM {
        write(
            &ctx.join(format!("node_modules/{name}/package.json")),
            &format!(r#"{{"name":"{name}","version":"{version}","license":"MIT","main":"index.js"}}"#),
        );
    }
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM base:1\n\
             COPY site-packages {SITE}\n\
             COPY node_modules /app/node_modules\n\
             RUN rm -rf {SITE}/urllib3-1.24.1.dist-info\n"
        ),
    );
    env.ok(&["build", "-q", "-t", "app:1", ctx.to_str().unwrap()]);

    let clean = env.path("clean");
    write(
        &clean.join("node_modules/moment/package.json"),
        r#"{"name":"moment","version":"2.29.1","license":"MIT"}"#,
    );
    write(
        &clean.join("Dockerfile"),
        "FROM busybox\nCOPY node_modules /srv/node_modules\n",
    );
    env.ok(&["build", "-q", "-t", "clean:1", clean.to_str().unwrap()]);
    Some(())
}

fn import_db(env: &Env, fixture: &Path) {
    let deb = env.path("debian-osv");
    debian_records(&deb);
    env.ok(&[
        "scan",
        "db",
        "import",
        fixture.join("PyPI.zip").to_str().unwrap(),
        fixture.join("npm.zip").to_str().unwrap(),
        deb.to_str().unwrap(),
    ]);
}

// ---------------------------------------------------------------------------
// The test's own OSV evaluator.

/// Good enough for these packages' versions: the release numbers compared
/// numerically; a suffix (`rc1`, `-beta.2`) sorts before the release, a
/// `post` suffix after it.
fn cmp_version(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (Vec<u64>, String) {
        let end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
        let rel = v[..end].trim_end_matches('.');
        let nums = rel
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        (nums, v[end..].trim_start_matches(['-', '.', '+']).to_string())
    }
    let (mut ra, sa) = split(a);
    let (mut rb, sb) = split(b);
    let n = ra.len().max(rb.len());
    ra.resize(n, 0);
    rb.resize(n, 0);
    ra.cmp(&rb).then_with(|| {
        let rank = |s: &str| {
            if s.is_empty() {
                1
            } else if s.starts_with("post") {
                2
            } else {
                0
            }
        };
        rank(&sa).cmp(&rank(&sb)).then_with(|| sa.cmp(&sb))
    })
}

/// OSV's range evaluation for one ECOSYSTEM/SEMVER range.
fn in_range(range: &Value, v: &str) -> bool {
    let mut events: Vec<(String, String)> = range["events"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        })
        .collect();
    let key = |e: &(String, String)| if e.1 == "0" { "0".to_string() } else { e.1.clone() };
    events.sort_by(|a, b| {
        if key(a) == "0" {
            std::cmp::Ordering::Less
        } else if key(b) == "0" {
            std::cmp::Ordering::Greater
        } else {
            cmp_version(&a.1, &b.1)
        }
    });
    let mut affected = false;
    for (kind, ev) in &events {
        let le = ev == "0" || cmp_version(ev, v) != std::cmp::Ordering::Greater;
        match kind.as_str() {
            "introduced" if le => affected = true,
            "fixed" if le => affected = false,
            "last_affected" if ev != "0" && cmp_version(ev, v) == std::cmp::Ordering::Less => affected = false,
            "limit" if le => affected = false,
            _ => {}
        }
    }
    affected
}

fn pep503(n: &str) -> String {
    let mut out = String::new();
    for c in n.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Every record of an OSV export zip (`unzip -p`).
fn records(zip: &Path) -> Vec<Value> {
    let out = Command::new("unzip").arg("-p").arg(zip).output().expect("unzip");
    assert!(out.status.success());
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(|r| r.expect("a JSON record"))
        .collect()
}

/// The findings (package, version, reported ID) the records give for
/// these packages, as strata-scan documents its ID choice: a record is
/// reported under each CVE among its ID and aliases, else under its own ID;
/// records without a CVE that alias each other are one finding, under the
/// GHSA ID when there is one (else the smaller ID). Withdrawn records are
/// skipped; GIT ranges ignored.
fn expected(records: &[Value], ecosystem: &str, packages: &[(&str, &str)]) -> BTreeSet<(String, String, String)> {
    let norm = |n: &str| if ecosystem == "PyPI" { pep503(n) } else { n.to_string() };
    let mut out = BTreeSet::new();
    for (name, version) in packages {
        // (id, aliases) of the records without a CVE, for alias folding.
        let mut plain: Vec<(String, BTreeSet<String>)> = Vec::new();
        for r in records {
            if r.get("withdrawn").is_some_and(|w| !w.is_null()) {
                continue;
            }
            let hit = r["affected"].as_array().into_iter().flatten().any(|a| {
                a["package"]["ecosystem"] == ecosystem
                    && norm(a["package"]["name"].as_str().unwrap_or("")) == norm(name)
                    && (a["versions"].as_array().into_iter().flatten().any(|x| {
                        x.as_str()
                            .is_some_and(|x| x == *version || cmp_version(x, version).is_eq())
                    }) || a["ranges"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|rg| rg["type"] == "ECOSYSTEM" || rg["type"] == "SEMVER")
                        .any(|rg| in_range(rg, version)))
            });
            if !hit {
                continue;
            }
            let id = r["id"].as_str().unwrap().to_string();
            let aliases: BTreeSet<String> = r["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            let cves: BTreeSet<String> = aliases
                .iter()
                .chain(std::iter::once(&id))
                .filter(|a| a.starts_with("CVE-"))
                .cloned()
                .collect();
            if cves.is_empty() {
                plain.push((id, aliases));
            } else {
                for c in cves {
                    out.insert((name.to_string(), version.to_string(), c));
                }
            }
        }
        // Fold alias-linked CVE-less records (union by aliases).
        let mut groups: Vec<(BTreeSet<String>, BTreeSet<String>)> = Vec::new();
        for (id, aliases) in plain {
            let mut ids: BTreeSet<String> = [id].into();
            let mut al = aliases;
            loop {
                let pos = groups
                    .iter()
                    .position(|(gi, ga)| gi.iter().any(|i| al.contains(i)) || ids.iter().any(|i| ga.contains(i)));
                match pos {
                    Some(p) => {
                        let (gi, ga) = groups.remove(p);
                        ids.extend(gi);
                        al.extend(ga);
                    }
                    None => break,
                }
            }
            groups.push((ids, al));
        }
        for (ids, _) in groups {
            let rep = ids
                .iter()
                .find(|i| i.starts_with("GHSA-"))
                .or(ids.iter().next())
                .unwrap()
                .clone();
            out.insert((name.to_string(), version.to_string(), rep));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Reading strata's reports.

/// (PkgName, InstalledVersion, VulnerabilityID) of a Trivy JSON report.
fn findings(doc: &Value) -> BTreeSet<(String, String, String)> {
    vulns(doc)
        .iter()
        .map(|v| {
            (
                v["PkgName"].as_str().unwrap().to_string(),
                v["InstalledVersion"].as_str().unwrap().to_string(),
                v["VulnerabilityID"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn vulns(doc: &Value) -> Vec<Value> {
    doc["Results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["Vulnerabilities"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs strata in `dir` (for `./.trivyignore`).
fn run_in(env: &Env, dir: &Path, args: &[&str]) -> Output {
    env.cmd()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Severity counts of the findings of a Trivy JSON report: C, H, M, L, ?.
fn counts(vs: &[Value]) -> [usize; 5] {
    let mut c = [0; 5];
    for v in vs {
        let i = match v["Severity"].as_str().unwrap() {
            "CRITICAL" => 0,
            "HIGH" => 1,
            "MEDIUM" => 2,
            "LOW" => 3,
            _ => 4,
        };
        c[i] += 1;
    }
    c
}

/// Scout's `0C 2H 5M 1L 3?` cell at the end of a quickview row.
fn scout_counts(row: &str) -> [usize; 5] {
    let cell = row.rsplit('│').next().unwrap();
    let mut c = [0; 5];
    for tok in cell.split_whitespace() {
        let (n, s) = tok.split_at(tok.len() - 1);
        let i = match s {
            "C" => 0,
            "H" => 1,
            "M" => 2,
            "L" => 3,
            "?" => 4,
            _ => continue,
        };
        c[i] = n.parse().unwrap();
    }
    c
}

#[test]
fn scan_without_a_database_names_the_import_and_update_commands() {
    let env = Env::new();
    let o = env.run(&["scan", "image", "busybox"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("strata scan db import") && err.contains("strata scan db update"),
        "{err}"
    );
    // An empty database is refused the same way.
    env.ok(&["scan", "db", "status"]);
    let o = env.run(&["scout", "quickview", "busybox"]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is empty") && err.contains("strata scan db import"),
        "{err}"
    );
    let sbom = env.path("x.json");
    std::fs::write(&sbom, "{}").unwrap();
    assert_eq!(code(&env.run(&["scan", "sbom", sbom.to_str().unwrap()])), 1);
}

#[test]
fn image_findings_are_exactly_the_records_that_affect_its_packages() {
    let Some(fixture) = vulndb() else { return };
    if !have("unzip") {
        return;
    }
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    import_db(&env, &fixture);

    let mut want = expected(
        &records(&fixture.join("PyPI.zip")),
        "PyPI",
        &PYTHON
            .iter()
            .copied()
            .filter(|(n, _)| *n != "urllib3")
            .collect::<Vec<_>>(),
    );
    want.extend(expected(&records(&fixture.join("npm.zip")), "npm", NPM));
    want.extend(debian_expected());

    let doc = json_of(&env.ok(&["scan", "image", "--format", "json", "app:1"]));
    let got = findings(&doc);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert!(want.len() > 10, "{want:?}");
    for pkg in ["Jinja2", "requests", "lodash", "moment", "busybox", "@xmldom/xmldom"] {
        assert!(got.iter().any(|f| f.0 == pkg), "{pkg} has findings: {got:?}");
    }
    // Deleted by a later step: not reported. Fixed exactly at 4.17.11: not reported.
    assert!(!got.iter().any(|f| f.0 == "urllib3"), "{got:?}");
    let vs = vulns(&doc);
    for v in &vs {
        let ids: Vec<&str> = std::iter::once(&v["VulnerabilityID"])
            .chain(v["VendorIDs"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !ids.contains(&"GHSA-4xc9-xhrj-v574") && !ids.contains(&"CVE-2018-16487"),
            "lodash 4.17.11 is the fix: {v}"
        );
    }
    assert_eq!(doc["ArtifactName"], "app:1");
    assert_eq!(doc["Metadata"]["OS"]["Family"], "debian");

    // Each finding names the layer that added its package (Trivy's DiffID)…
    let inspect = json_of(&env.ok(&["inspect", "app:1"]));
    let layers: Vec<String> = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 6, "{layers:?}");
    for v in &vs {
        let name = v["PkgName"].as_str().unwrap();
        let layer = if name == "busybox" {
            1
        } else if PYTHON.iter().any(|p| p.0 == name) {
            3
        } else {
            4
        };
        assert_eq!(v["Layer"]["DiffID"], layers[layer].as_str(), "{name}: {v}");
        assert!(
            v["Layer"]["Digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{v}"
        );
    }
    // …and Scout's JSON the Dockerfile step.
    let scout = json_of(&env.ok(&["scout", "cves", "--format", "json", "app:1"]));
    let mut scout_ids = BTreeSet::new();
    for p in scout["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        for v in p["vulnerabilities"].as_array().unwrap() {
            scout_ids.insert((
                name.to_string(),
                p["version"].as_str().unwrap().to_string(),
                v["id"].as_str().unwrap().to_string(),
            ));
            let step = v["createdBy"].as_str().unwrap_or("");
            let want_step = if name == "busybox" {
                "COPY status /var/lib/dpkg/status"
            } else if PYTHON.iter().any(|p| p.0 == name) {
                "COPY site-packages"
            } else {
                "COPY node_modules /app/node_modules"
            };
            assert!(step.contains(want_step), "{name}: {step:?}");
            assert_eq!(v["inBaseImage"], name == "busybox", "{name}");
        }
    }
    assert_eq!(scout_ids, got);

    // The table (default) lists every ID too.
    let table = env.ok(&["scan", "image", "app:1"]);
    assert!(table.contains("Report Summary"), "{table}");
    for (_, _, id) in &got {
        assert!(table.contains(id.as_str()), "{id} in the table:\n{table}");
    }
    // SARIF and CycloneDX are JSON documents naming the findings.
    let sarif = json_of(&env.ok(&["scan", "image", "--format", "sarif", "app:1"]));
    assert_eq!(sarif["version"], "2.1.0");
    let cdx = json_of(&env.ok(&["scan", "image", "--format", "cyclonedx", "app:1"]));
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert!(
        cdx["vulnerabilities"].as_array().is_some_and(|v| !v.is_empty()),
        "{cdx}"
    );

    // --pkg-types: os only gives the Debian finding; library only the rest.
    let os = findings(&json_of(&env.ok(&[
        "scan",
        "image",
        "--format",
        "json",
        "--pkg-types",
        "os",
        "app:1",
    ])));
    assert_eq!(os, debian_expected());
    let lib = findings(&json_of(&env.ok(&[
        "scan",
        "image",
        "--format",
        "json",
        "--pkg-types",
        "library",
        "app:1",
    ])));
    assert_eq!(lib, got.difference(&debian_expected()).cloned().collect());

    // -o FILE writes the report there, nothing to stdout.
    let file = env.path("report.json");
    let o = env.run(&[
        "scan",
        "image",
        "--format",
        "json",
        "-o",
        file.to_str().unwrap(),
        "app:1",
    ]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    assert_eq!(findings(&json_of(&std::fs::read_to_string(&file).unwrap())), got);
}

#[test]
fn exit_codes_severity_ignore_files_and_unfixed() {
    let Some(fixture) = vulndb() else { return };
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    import_db(&env, &fixture);
    let doc = json_of(&env.ok(&["scan", "image", "--format", "json", "app:1"]));
    let all = vulns(&doc);
    let critical = all.iter().filter(|v| v["Severity"] == "CRITICAL").count();
    assert!(critical > 0, "app:1 has a CRITICAL finding");
    let clean = json_of(&env.ok(&["scan", "image", "--format", "json", "clean:1"]));
    let clean_vs = vulns(&clean);
    assert!(!clean_vs.is_empty());
    assert!(clean_vs.iter().all(|v| v["Severity"] != "CRITICAL"), "{clean_vs:?}");

    // --exit-code N: N exactly when a finding at the chosen severities remains.
    let o = env.run(&["scan", "image", "--severity", "CRITICAL", "--exit-code", "1", "app:1"]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.run(&["scan", "image", "--severity", "CRITICAL", "--exit-code", "1", "clean:1"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    // The table lists no finding (the per-target tables are of targets with findings).
    assert!(
        stdout(&o).contains("Report Summary") && !stdout(&o).contains("CRITICAL"),
        "{}",
        stdout(&o)
    );
    let sev = clean_vs[0]["Severity"].as_str().unwrap();
    assert_eq!(
        code(&env.run(&["scan", "image", "--severity", sev, "--exit-code", "5", "clean:1"])),
        5
    );
    // Without --exit-code: 0 whatever is found.
    assert_eq!(code(&env.run(&["scan", "image", "app:1"])), 0);
    // The severity filter applies to the report.
    let crit = json_of(&env.ok(&["scan", "image", "--format", "json", "--severity", "CRITICAL", "app:1"]));
    assert_eq!(vulns(&crit).len(), critical);
    // Errors exit 1.
    assert_eq!(code(&env.run(&["scan", "image", "--severity", "SEVERE", "app:1"])), 1);
    assert_eq!(code(&env.run(&["scan", "image", "--format", "xml", "app:1"])), 1);
    assert_eq!(
        code(&env.run(&["scan", "image", "--exit-code", "3", "no-such-image:1"])),
        1
    );

    // ./.trivyignore (as Trivy reads it from the working directory) hides an ID.
    let ids = findings(&doc);
    let hidden = ids.iter().find(|f| f.0 == "moment").unwrap().2.clone();
    let cwd = env.path("work");
    write(&cwd.join(".trivyignore"), &format!("# reviewed\n{hidden}\n"));
    let o = run_in(&env, &cwd, &["scan", "image", "--format", "json", "app:1"]);
    assert!(o.status.success());
    let after = findings(&json_of(&stdout(&o)));
    let want: BTreeSet<_> = ids.iter().filter(|f| f.2 != hidden).cloned().collect();
    assert_eq!(after, want);
    // --ignorefile elsewhere; an expired entry no longer hides.
    let other = env.path("ignore.txt");
    write(&other, &format!("{hidden} exp:2000-01-01\n"));
    let o = run_in(
        &env,
        &cwd,
        &[
            "scan",
            "image",
            "--format",
            "json",
            "--ignorefile",
            other.to_str().unwrap(),
            "app:1",
        ],
    );
    assert_eq!(findings(&json_of(&stdout(&o))), ids);
    write(&other, &format!("{hidden} exp:2999-01-01\n"));
    let o = run_in(
        &env,
        &cwd,
        &[
            "scan",
            "image",
            "--format",
            "json",
            "--ignorefile",
            other.to_str().unwrap(),
            "app:1",
        ],
    );
    assert_eq!(findings(&json_of(&stdout(&o))), want);

    // --ignore-unfixed drops exactly the findings without a fixed version.
    let fixed: BTreeSet<_> = all
        .iter()
        .filter(|v| v["FixedVersion"].as_str().is_some_and(|f| !f.is_empty()))
        .map(|v| {
            (
                v["PkgName"].as_str().unwrap().to_string(),
                v["InstalledVersion"].as_str().unwrap().to_string(),
                v["VulnerabilityID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let unfixed = json_of(&env.ok(&["scan", "image", "--format", "json", "--ignore-unfixed", "app:1"]));
    assert_eq!(findings(&unfixed), fixed);
    for v in vulns(&unfixed) {
        assert_eq!(v["Status"], "fixed");
    }

    // A stale database still scans, with a warning (`-q` silences it).
    if !have("python3") {
        return;
    }
    let db = env.root().join("vulndb/osv.sqlite");
    sh_ok(&format!(
        "python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE sources SET imported_at = imported_at - 864000\"); c.commit()' {}",
        shell_quote(db.to_str().unwrap())
    ));
    let o = env.run(&["scan", "image", "--format", "json", "app:1"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("WARNING: the vulnerability database was last updated 10 days ago"),
        "{err}"
    );
    assert_eq!(findings(&json_of(&stdout(&o))), ids);
    let o = env.run(&["scan", "image", "-q", "--format", "json", "app:1"]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn scout_quickview_and_cves() {
    let Some(fixture) = vulndb() else { return };
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    import_db(&env, &fixture);
    let doc = json_of(&env.ok(&["scan", "image", "--format", "json", "app:1"]));
    let vs = vulns(&doc);
    let got = findings(&doc);

    // quickview: the image's counts, and the base image's (base:1, whose layers hold busybox's dpkg entry).
    let qv = env.ok(&["scout", "quickview", "app:1"]);
    let target = qv.lines().find(|l| l.trim_start().starts_with("Target")).expect(&qv);
    assert!(target.contains("app:1"), "{qv}");
    assert_eq!(scout_counts(target), counts(&vs), "{qv}");
    let base = qv
        .lines()
        .find(|l| l.trim_start().starts_with("Base image"))
        .expect(&qv);
    assert!(base.contains("base:1"), "{qv}");
    let in_base: Vec<Value> = vs.iter().filter(|v| v["PkgName"] == "busybox").cloned().collect();
    assert_eq!(scout_counts(base), counts(&in_base), "{qv}");
    assert_eq!(env.ok(&["scout", "qv", "app:1"]), qv);

    // cves --format markdown lists every vulnerable package.
    let md = env.ok(&["scout", "cves", "--format", "markdown", "app:1"]);
    for (name, version, id) in &got {
        assert!(
            md.contains(&format!("<strong>{name}</strong> <code>{version}</code>")),
            "{name} in\n{md}"
        );
        assert!(md.contains(id.as_str()), "{id}");
    }
    assert!(!md.contains("<strong>urllib3</strong>"));
    let text = env.ok(&["scout", "cves", "app:1"]);
    assert!(text.contains("## Packages and Vulnerabilities"), "{text}");
    assert!(
        text.contains(&format!("{} vulnerabilities found in", got.len())),
        "{text}"
    );

    // --exit-code: 2 when vulnerabilities remain, 0 when the filters leave none.
    let o = env.run(&["scout", "cves", "--exit-code", "app:1"]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        code(&env.run(&["scout", "cves", "-e", "--only-package-type", "gem", "app:1"])),
        0
    );
    assert_eq!(code(&env.run(&["scout", "cves", "app:1"])), 0);
    // The filters.
    let only = |args: &[&str]| -> BTreeSet<(String, String, String)> {
        let mut a = vec!["scout", "cves", "--format", "json"];
        a.extend_from_slice(args);
        a.push("app:1");
        let v = json_of(&env.ok(&a));
        let mut out = BTreeSet::new();
        for p in v["packages"].as_array().unwrap() {
            for x in p["vulnerabilities"].as_array().unwrap() {
                out.insert((
                    p["name"].as_str().unwrap().to_string(),
                    p["version"].as_str().unwrap().to_string(),
                    x["id"].as_str().unwrap().to_string(),
                ));
            }
        }
        out
    };
    let npm: BTreeSet<_> = got.iter().filter(|f| NPM.iter().any(|p| p.0 == f.0)).cloned().collect();
    assert_eq!(only(&["--only-package-type", "npm"]), npm);
    assert_eq!(
        only(&["--ignore-base"]),
        got.difference(&debian_expected()).cloned().collect()
    );
    let crit: BTreeSet<_> = vs
        .iter()
        .filter(|v| v["Severity"] == "CRITICAL" || v["Severity"] == "HIGH")
        .map(|v| {
            (
                v["PkgName"].as_str().unwrap().to_string(),
                v["InstalledVersion"].as_str().unwrap().to_string(),
                v["VulnerabilityID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(only(&["--only-severity", "critical,high"]), crit);
    let fixed = only(&["--only-fixed"]);
    let unfixed = only(&["--only-unfixed"]);
    assert_eq!(fixed.union(&unfixed).cloned().collect::<BTreeSet<_>>(), got);
    assert!(fixed.is_disjoint(&unfixed));
    assert!(fixed.contains(&debian_expected().into_iter().next().unwrap()));
    let some = got.iter().next().unwrap().2.clone();
    assert!(only(&["--only-cve-id", &some]).iter().all(|f| f.2 == some));

    // sarif and -o.
    let out = env.path("scout.sarif");
    env.ok(&[
        "scout",
        "cves",
        "--format",
        "sarif",
        "-o",
        out.to_str().unwrap(),
        "app:1",
    ]);
    let sarif = json_of(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(sarif["version"], "2.1.0");
}

#[test]
fn scanning_the_sbom_documents_gives_the_image_findings() {
    let Some(fixture) = vulndb() else { return };
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    import_db(&env, &fixture);
    let key = |doc: &Value| -> BTreeSet<(String, String, String, String)> {
        vulns(doc)
            .iter()
            .map(|v| {
                (
                    v["PkgName"].as_str().unwrap().to_string(),
                    v["InstalledVersion"].as_str().unwrap().to_string(),
                    v["VulnerabilityID"].as_str().unwrap().to_string(),
                    v["Layer"]["DiffID"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let image = key(&json_of(&env.ok(&["scan", "image", "--format", "json", "app:1"])));
    assert!(!image.is_empty());
    for format in ["cyclonedx-json", "spdx-json", "json"] {
        let file = env.path(&format!("sbom.{format}"));
        env.ok(&["sbom", "--format", format, "-o", file.to_str().unwrap(), "app:1"]);
        let doc = json_of(&env.ok(&["scan", "sbom", "--format", "json", file.to_str().unwrap()]));
        assert_eq!(key(&doc), image, "{format}");
        assert_eq!(doc["ArtifactName"], "app:1", "{format}");
        // Trivy's flags apply to SBOM scans too.
        let o = env.run(&[
            "scan",
            "sbom",
            "--severity",
            "CRITICAL",
            "--exit-code",
            "4",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 4, "{format}");
    }
    let bad = env.path("bad.json");
    std::fs::write(&bad, r#"{"hello":"world"}"#).unwrap();
    let err = env.fails(&["scan", "sbom", bad.to_str().unwrap()]);
    assert!(err.contains("not an SBOM"), "{err}");
}

/// The evaluator's version order on the shapes these records use.
#[test]
fn the_test_evaluator_compares_versions() {
    use std::cmp::Ordering::*;
    assert_eq!(cmp_version("2.10", "2.10.1"), Less);
    assert_eq!(cmp_version("2.10", "2.9"), Greater);
    assert_eq!(cmp_version("2.10", "2.10.0"), Equal);
    assert_eq!(cmp_version("3.0.0-beta.1", "3.0.0"), Less);
    assert_eq!(cmp_version("2.0rc1", "2.0"), Less);
    assert_eq!(cmp_version("1.0.post1", "1.0"), Greater);
    let r: Value = serde_json::json!({"events":[{"introduced":"0"},{"fixed":"4.17.11"}]});
    assert!(in_range(&r, "4.17.10"));
    assert!(!in_range(&r, "4.17.11"));
    let r: Value = serde_json::json!({"events":[{"introduced":"1.0"},{"last_affected":"2.0"}]});
    assert!(in_range(&r, "2.0"));
    assert!(!in_range(&r, "2.0.1"));
    assert!(!in_range(&r, "0.9"));
}

/// A registry image is scanned without pulling it (layers streamed, nothing
/// stored): the same findings, each on the same layer.
#[test]
fn a_registry_image_is_scanned_remotely() {
    let Some(fixture) = vulndb() else { return };
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    import_db(&env, &fixture);
    let key = |doc: &Value| -> BTreeSet<(String, String, String, String)> {
        vulns(doc)
            .iter()
            .map(|v| {
                (
                    v["PkgName"].as_str().unwrap().to_string(),
                    v["InstalledVersion"].as_str().unwrap().to_string(),
                    v["VulnerabilityID"].as_str().unwrap().to_string(),
                    v["Layer"]["DiffID"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let local = key(&json_of(&env.ok(&["scan", "image", "--format", "json", "app:1"])));
    let registry = TestRegistry::strata();
    let remote_ref = format!("{}/scan/app:1", registry.host);
    env.ok(&["tag", "app:1", &remote_ref]);
    env.ok(&["push", "-q", &remote_ref]);

    let fresh = Env::new();
    import_db(&fresh, &fixture);
    let doc = json_of(&fresh.ok(&["scan", "image", "--format", "json", &remote_ref]));
    assert_eq!(key(&doc), local);
    assert_eq!(fresh.ok(&["images", "-q"]).trim(), "");
    let o = fresh.run(&["scout", "cves", "-e", "--only-severity", "critical", &remote_ref]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
}
