//! `Db::update` against a local HTTP server in the OSV bucket's layout.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{fixture, no_progress};
use strata_vulndb::{Db, export_url};

/// Serves `files` (path → bytes) with an ETag per file, answering 304 to a
/// matching If-None-Match and 404 to anything else; logs request lines.
fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut if_none_match = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("if-none-match")
                {
                    if_none_match = Some(v.trim().to_string());
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log2.lock()
                .unwrap()
                .push(format!("{path} {}", if_none_match.as_deref().unwrap_or("-")));
            let head = |status: &str, extra: &str, len: usize| {
                format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
            };
            let _ = match files.get(&path) {
                Some(body) => {
                    let etag = format!("\"{}-{}\"", body.len(), path.len());
                    if if_none_match.as_deref() == Some(etag.as_str()) {
                        stream.write_all(head("304 Not Modified", &format!("ETag: {etag}\r\n"), 0).as_bytes())
                    } else {
                        let h = head(
                            "200 OK",
                            &format!("ETag: {etag}\r\nContent-Type: application/zip\r\n"),
                            body.len(),
                        );
                        stream.write_all(h.as_bytes()).and_then(|_| stream.write_all(body))
                    }
                }
                None => stream.write_all(head("404 Not Found", "", 0).as_bytes()),
            };
        }
    });
    (base, log)
}

fn small_zip(id: &str, eco: &str, pkg: &str) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    z.start_file(format!("{id}.json"), zip::write::SimpleFileOptions::default())
        .unwrap();
    write!(
        z,
        r#"{{"id":"{id}","modified":"2024-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"{eco}","name":"{pkg}"}},"ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"1.0.0"}}]}}]}}]}}"#
    )
    .unwrap();
    z.finish().unwrap();
    out.into_inner()
}

#[test]
fn update_downloads_each_ecosystem_and_skips_unchanged_ones() {
    let mut files = HashMap::new();
    files.insert("/osv/npm/all.zip".to_string(), small_zip("N-1", "npm", "left-pad"));
    files.insert(
        "/osv/Rocky%20Linux/all.zip".to_string(),
        small_zip("R-1", "Rocky Linux", "openssl"),
    );
    files.insert(
        "/osv/Broken/all.zip".to_string(),
        b"PK\x03\x04 this is not a zip".to_vec(),
    );
    files.insert("/direct.zip".to_string(), small_zip("D-1", "Go", "example.com/m"));
    let pypi = fixture().map(|d| std::fs::read(d.join("PyPI.zip")).unwrap());
    if let Some(bytes) = &pypi {
        files.insert("/osv/PyPI/all.zip".to_string(), bytes.clone());
    }
    let (base, log) = serve(files);
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    let osv = format!("{base}/osv/");
    let ecos: Vec<String> = ["npm", "Rocky Linux", "PyPI", "Go", "Broken"]
        .map(String::from)
        .to_vec();

    let report = db.update(std::slice::from_ref(&osv), &ecos, &mut no_progress).unwrap();
    let failed: Vec<&str> = report.failed.iter().map(|(u, _)| u.as_str()).collect();
    assert!(failed.contains(&export_url(&osv, "Go").as_str()), "{failed:?}");
    assert!(
        report
            .failed
            .iter()
            .any(|(u, e)| u.ends_with("/Go/all.zip") && e.contains("404")),
        "{:?}",
        report.failed
    );
    assert!(
        report
            .failed
            .iter()
            .any(|(u, e)| u.ends_with("/Broken/all.zip") && e.contains("zip")),
        "{:?}",
        report.failed
    );
    assert_eq!(db.advisories_for("npm", "left-pad").unwrap()[0].id, "N-1");
    assert_eq!(db.advisories_for("Rocky Linux", "openssl").unwrap()[0].id, "R-1");
    let status = db.status().unwrap();
    assert!(status.sources.iter().all(|s| s.kind == "url" && s.etag.is_some()));
    if pypi.is_some() {
        assert_eq!(report.records, 2 + 2667);
        assert_eq!(status.ecosystems["PyPI"], 2667);
    } else {
        assert_eq!(report.records, 2);
    }
    // Downloads went to the database's directory and were removed.
    assert_eq!(std::fs::read_dir(tmp.path().join("vulndb/tmp")).unwrap().count(), 0);

    // Again: the server says unchanged (ETag), nothing is downloaded.
    log.lock().unwrap().clear();
    let report = db.update(std::slice::from_ref(&osv), &ecos, &mut no_progress).unwrap();
    let unchanged = report.sources.iter().filter(|s| s.unchanged).count();
    assert_eq!(unchanged, if pypi.is_some() { 3 } else { 2 });
    assert_eq!(report.records, 0);
    assert!(
        log.lock().unwrap().iter().any(|l| l.starts_with("/osv/npm/all.zip \"")),
        "{:?}",
        log.lock().unwrap()
    );
    assert_eq!(db.advisories_for("npm", "left-pad").unwrap().len(), 1);

    // No ecosystems given: those in the database. A zip URL: as it is.
    log.lock().unwrap().clear();
    db.update(&[osv.clone(), format!("{base}/direct.zip")], &[], &mut no_progress)
        .unwrap();
    let requested: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert!(requested.contains(&"/osv/npm/all.zip".to_string()), "{requested:?}");
    assert!(
        requested.contains(&"/osv/Rocky%20Linux/all.zip".to_string()),
        "{requested:?}"
    );
    assert!(requested.contains(&"/direct.zip".to_string()), "{requested:?}");
    assert!(!requested.iter().any(|p| p.contains("Broken")), "{requested:?}");
    assert_eq!(db.advisories_for("Go", "example.com/m").unwrap()[0].id, "D-1");

    // Nothing reachable: a failed entry, not an error.
    let report = db
        .update(
            &["http://127.0.0.1:1/".to_string()],
            &["npm".to_string()],
            &mut no_progress,
        )
        .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(db.advisories_for("npm", "left-pad").unwrap().len(), 1);
}

#[test]
fn update_with_nothing_to_fetch_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    let e = db.update(&[], &[], &mut no_progress).unwrap_err();
    assert!(matches!(e, strata_vulndb::Error::NothingToUpdate), "{e}");
}
