//! Importing the real OSV fixture and bad input; status; lookups.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{fixture, fixture_zips, no_progress, semver};
use strata_vulndb::{Db, Error, Rating, cvss};

fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

fn record(id: &str, eco: &str, pkg: &str, fixed: &str) -> String {
    format!(
        r#"{{"id":"{id}","modified":"2024-01-01T00:00:00Z","aliases":["CVE-{id}"],"summary":"s {id}",
        "affected":[{{"package":{{"ecosystem":"{eco}","name":"{pkg}"}},
        "ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

#[test]
fn the_fixture_imports_whole() {
    let Some(zips) = fixture_zips() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    assert_eq!(db.path(), tmp.path().join("vulndb/osv.sqlite"));
    let mut calls = 0;
    let t = std::time::Instant::now();
    let report = db.import(&zips, &mut |_| calls += 1).unwrap();
    println!("imported {} records in {:?}", report.records, t.elapsed());
    assert!(calls >= zips.len());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.skipped_count, 0, "{:?}", report.skipped);
    let by_name = |n: &str| report.sources.iter().find(|s| s.name.ends_with(n)).unwrap().clone();
    assert_eq!(by_name("/PyPI.zip").records, 2667);
    assert_eq!(by_name("/PyPI.zip").withdrawn, 10);
    assert_eq!(by_name("/Go.zip").records, 4291);
    assert_eq!(by_name("/Go.zip").withdrawn, 17);
    assert_eq!(by_name("/crates.io.zip").records, 1206);
    assert_eq!(by_name("/crates.io.zip").withdrawn, 13);
    assert_eq!(by_name("/npm.zip").records, 18);
    assert_eq!(report.records, 2667 + 4291 + 1206 + 18 + 3 + 1 + 1);

    let status = db.status().unwrap();
    assert_eq!(status.sources.len(), 7);
    assert_eq!(status.records, 8182, "distinct ids, as the fixture's README counts");
    assert_eq!(status.withdrawn, 40);
    assert!(!status.stale);
    assert!(status.age.unwrap() < std::time::Duration::from_secs(600));
    assert_eq!(status.ecosystems["Go"], 4291);
    assert_eq!(status.ecosystems["crates.io"], 1206);
    assert!(status.ecosystems["PyPI"] >= 2667);
    assert!(status.newest_modified.as_deref().unwrap() > "2026-01-01");

    // Importing a zip again replaces its records.
    let pypi = by_name("/PyPI.zip").name;
    let again = db.import(&[PathBuf::from(&pypi)], &mut no_progress).unwrap();
    assert_eq!(again.sources[0].replaced, 2667);
    assert_eq!(db.status().unwrap().records, 8182);

    // PEP 503: Jinja2 and jinja2 are one package; PYSEC and GHSA both there.
    let jinja = db.advisories_for("PyPI", "JINJA2").unwrap();
    let ids: Vec<&str> = jinja.iter().map(|a| a.id.as_str()).collect();
    for want in [
        "GHSA-462w-v97r-4m45",
        "GHSA-h75v-3vvj-5mfj",
        "GHSA-h5c8-rqwp-cp95",
        "PYSEC-2019-217",
    ] {
        assert!(ids.contains(&want), "{want} in {ids:?}");
    }
    let pysec = jinja.iter().find(|a| a.id == "PYSEC-2019-217").unwrap();
    assert!(pysec.aliases.iter().any(|a| a == "GHSA-462w-v97r-4m45"));
    // GIT ranges are not kept, ECOSYSTEM ones and versions lists are.
    assert!(pysec.affected.iter().flat_map(|a| &a.ranges).all(|r| r.kind != "GIT"));
    assert!(pysec.affected.iter().any(|a| !a.versions.is_empty()));
    assert!(pysec.affects("2.10", &semver).is_some());
    assert!(pysec.affects("2.10.1", &semver).is_none());

    // jQuery's GHSA is in four zips: one advisory, and only npm's entry.
    let jq = db.advisories_for("npm", "jquery").unwrap();
    let gxr4: Vec<_> = jq.iter().filter(|a| a.id == "GHSA-gxr4-xjj5-5px2").collect();
    assert_eq!(gxr4.len(), 1);
    assert!(
        gxr4[0]
            .affected
            .iter()
            .all(|a| a.ecosystem == "npm" && a.name == "jquery")
    );
    assert_eq!(gxr4[0].severity.as_ref().unwrap().rating, Rating::Medium);
    assert!(gxr4[0].affects("3.4.1", &semver).is_some());
    assert_eq!(db.advisory("GHSA-gxr4-xjj5-5px2").unwrap()[0].affected.len(), 4);
    assert_eq!(db.advisory("CVE-2020-11022").unwrap()[0].id, "GHSA-gxr4-xjj5-5px2");

    // lodash 4.17.11: fixed exactly there must not match; the others do.
    let lodash = db.advisories_for("npm", "lodash").unwrap();
    let hit = |id: &str| lodash.iter().find(|a| a.id == id).unwrap().affects("4.17.11", &semver);
    assert!(hit("GHSA-4xc9-xhrj-v574").is_none());
    assert_eq!(hit("GHSA-jf85-cpcp-j695").unwrap().fixed.as_deref(), Some("4.17.12"));
    assert!(hit("GHSA-35jh-r3h4-6jhm").is_some());
    assert!(hit("GHSA-p6mc-m468-83gw").is_some());
    assert!(hit("GHSA-29mw-wpgm-hmr9").is_some());

    // Go modules and crates by their names as written; withdrawn flagged.
    let go = db.advisories_for("Go", "stdlib").unwrap();
    assert!(go.len() > 100);
    assert!(
        go.iter()
            .all(|a| a.severity.is_none() || a.severity.as_ref().unwrap().score.is_none())
    );
    let crates_withdrawn = db
        .status()
        .unwrap()
        .sources
        .iter()
        .find(|s| s.name.ends_with("crates.io.zip"))
        .unwrap()
        .withdrawn;
    assert_eq!(crates_withdrawn, 13);
    let cap = db.advisories_for("crates.io", "cap-primitives").unwrap();
    let rustsec = cap.iter().find(|a| a.id == "RUSTSEC-2024-0445").unwrap();
    let sev = rustsec.severity.as_ref().unwrap();
    assert_eq!(sev.source, "CVSS_V4");
    assert!(sev.score.is_some());
    assert!(rustsec.affects("3.4.0", &semver).is_some());
    assert!(rustsec.affects("3.4.1", &semver).is_none());
    assert!(db.advisories_for("crates.io", "no-such-crate").unwrap().is_empty());
}

#[test]
fn every_cvss_vector_of_the_crates_io_zip_scores() {
    let Some(dir) = fixture() else { return };
    let mut z = zip::ZipArchive::new(std::fs::File::open(dir.join("crates.io.zip")).unwrap()).unwrap();
    let (mut v3, mut v4) = (0, 0);
    for i in 0..z.len() {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut z.by_index(i).unwrap(), &mut text).unwrap();
        let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
        for s in rec["severity"].as_array().into_iter().flatten() {
            let vector = s["score"].as_str().unwrap();
            let (version, score) = cvss::score(vector).unwrap_or_else(|e| panic!("{vector}: {e}"));
            assert!((0.0..=10.0).contains(&score), "{vector}: {score}");
            match version {
                cvss::CvssVersion::V4_0 => v4 += 1,
                _ => v3 += 1,
            }
        }
    }
    assert_eq!((v3, v4), (360, 57));
}

#[test]
fn bad_records_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = tmp.path().join("bad.zip");
    let huge = format!(r#"{{"id":"BIG","modified":"m","details":"{}"}}"#, " ".repeat(5 << 20));
    let good = record("GOOD-1", "npm", "left-pad", "1.1.0");
    let good2 = record("GOOD-2", "npm", "left-pad", "1.2.0");
    write_zip(
        &zip,
        &[
            ("GOOD-1.json", good.as_bytes()),
            ("broken.json", b"{\"id\": \"X\", "),
            ("noid.json", br#"{"modified":"2024-01-01T00:00:00Z"}"#),
            ("wrongtype.json", br#"{"id":"T","modified":"m","aliases":"CVE-1"}"#),
            ("BIG.json", huge.as_bytes()),
            ("dup.json", good.as_bytes()),
            ("README.md", b"not a record"),
            ("dir/", b""),
            ("GOOD-2.json", good2.as_bytes()),
        ],
    );
    assert!(
        std::fs::metadata(&zip).unwrap().len() < 100_000,
        "a small zip that inflates past the limit"
    );
    let mut db = Db::open(tmp.path()).unwrap();
    let report = db.import(std::slice::from_ref(&zip), &mut no_progress).unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(report.skipped_count, 5, "{:#?}", report.skipped);
    let reasons: Vec<String> = report.skipped.iter().map(|(n, r)| format!("{n}: {r}")).collect();
    let has = |frag: &str| reasons.iter().any(|r| r.contains(frag));
    assert!(has("broken.json: malformed"), "{reasons:?}");
    assert!(has("noid.json: no \"id\""), "{reasons:?}");
    assert!(has("wrongtype.json: malformed OSV record: invalid type"), "{reasons:?}");
    assert!(has("BIG.json: larger than 4 MiB"), "{reasons:?}");
    assert!(has("a second record with this id"), "{reasons:?}");
    assert_eq!(db.status().unwrap().sources[0].skipped, 5);
    let a = db.advisories_for("npm", "left-pad").unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].aliases, ["CVE-GOOD-1"]);

    // A corrupt zip fails alone and leaves that source as it was.
    let bytes = std::fs::read(&zip).unwrap();
    std::fs::write(&zip, &bytes[..bytes.len() - 40]).unwrap();
    let report = db.import(std::slice::from_ref(&zip), &mut no_progress).unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.records, 0);
    assert_eq!(db.advisories_for("npm", "left-pad").unwrap().len(), 2);

    // A path that is missing, or of another kind, is refused before anything.
    let other = tmp.path().join("x.txt");
    std::fs::write(&other, "hello").unwrap();
    let yaml = tmp.path().join("x.yaml");
    std::fs::write(&yaml, "id: X").unwrap();
    for p in [tmp.path().join("missing.zip"), other, yaml] {
        let e = db.import(&[zip.clone(), p.clone()], &mut no_progress).unwrap_err();
        assert!(matches!(e, Error::Source { .. }), "{e}");
    }
}

#[test]
fn directories_and_json_files() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("advisory-database");
    std::fs::create_dir_all(repo.join("advisories/2024/01")).unwrap();
    std::fs::create_dir_all(repo.join(".git/objects")).unwrap();
    std::fs::write(
        repo.join("advisories/2024/01/A-1.json"),
        record("A-1", "PyPI", "Foo.Bar", "2.0"),
    )
    .unwrap();
    std::fs::write(
        repo.join("advisories/2024/01/A-2.JSON"),
        record("A-2", "Debian:12", "openssl", "3.0.1"),
    )
    .unwrap();
    std::fs::write(
        repo.join("advisories/A-3.json"),
        record("A-3", "Debian:11", "openssl", "1.1.2"),
    )
    .unwrap();
    std::fs::write(repo.join("advisories/notes.txt"), "x").unwrap();
    std::fs::write(repo.join("advisories/bad.json"), "[1, 2").unwrap();
    std::fs::write(repo.join(".git/objects/x.json"), record("HIDDEN", "npm", "x", "1")).unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    let report = db.import(std::slice::from_ref(&repo), &mut no_progress).unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(report.skipped_count, 1);
    assert_eq!(report.sources[0].kind, "directory");
    assert_eq!(db.advisories_for("PyPI", "foo_bar").unwrap()[0].id, "A-1");
    assert!(db.advisories_for("npm", "x").unwrap().is_empty());

    // Releases: "Debian:12" finds that release's entries; "Debian" all.
    let ids = |eco: &str| -> Vec<String> {
        db.advisories_for(eco, "openssl")
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    assert_eq!(ids("Debian:12"), ["A-2"]);
    assert_eq!(ids("Debian:11"), ["A-3"]);
    assert_eq!(ids("Debian"), ["A-2", "A-3"]);
    assert_eq!(
        db.advisories_for("Debian:12", "openssl").unwrap()[0].affected[0].ecosystem,
        "Debian:12"
    );

    // A single file: an array of records, or an OSV API answer.
    let arr = tmp.path().join("list.json");
    std::fs::write(
        &arr,
        format!("[{}, {}]", record("B-1", "Go", "example.com/m", "1.0.0"), "{}"),
    )
    .unwrap();
    let api = tmp.path().join("api.json");
    std::fs::write(
        &api,
        format!(r#"{{"vulns": [{}]}}"#, record("C-1", "Go", "example.com/m", "1.1.0")),
    )
    .unwrap();
    let report = db.import(&[arr, api], &mut no_progress).unwrap();
    assert_eq!((report.records, report.skipped_count), (2, 1));
    assert_eq!(db.advisories_for("Go", "example.com/m").unwrap().len(), 2);

    // A checkout of YAML records only (PyPA's): refused, said why.
    let yaml_repo = tmp.path().join("pypa");
    std::fs::create_dir_all(yaml_repo.join("vulns/jinja2")).unwrap();
    std::fs::write(
        yaml_repo.join("vulns/jinja2/PYSEC-2019-217.yaml"),
        "id: PYSEC-2019-217\n",
    )
    .unwrap();
    let report = db.import(std::slice::from_ref(&yaml_repo), &mut no_progress).unwrap();
    assert!(report.failed[0].1.contains("YAML"), "{report:?}");

    // Removing the directory source removes its records only.
    let status = db.status().unwrap();
    assert_eq!(status.sources.len(), 3);
    let dir_name = status
        .sources
        .iter()
        .find(|s| s.kind == "directory")
        .unwrap()
        .name
        .clone();
    assert!(db.remove_source(&dir_name).unwrap());
    assert!(!db.remove_source(&dir_name).unwrap());
    assert!(db.advisories_for("PyPI", "foo-bar").unwrap().is_empty());
    assert_eq!(db.status().unwrap().records, 2);
}

#[test]
fn a_second_process_reads_while_one_imports() {
    let Some(dir) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    db.import(&[dir.join("npm.zip")], &mut no_progress).unwrap();
    let reader = Db::open(tmp.path()).unwrap();
    let root = tmp.path().to_path_buf();
    let go = dir.join("Go.zip");
    let writer = std::thread::spawn(move || {
        let mut db = Db::open(&root).unwrap();
        db.import(&[go], &mut no_progress).unwrap().records
    });
    for _ in 0..20 {
        assert!(!reader.advisories_for("npm", "lodash").unwrap().is_empty());
    }
    assert_eq!(writer.join().unwrap(), 4291);
    assert!(!reader.advisories_for("Go", "stdlib").unwrap().is_empty());
}
