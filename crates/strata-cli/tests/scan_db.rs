//! `strata scan db import|status|update` on the OSV fixture in
//! `../shared/vulndb` (skipped when absent): import reports, status with
//! sources, counts per ecosystem, age and the stale warning, and update
//! from a tiny HTTP server in the test (ETag honoured), its default
//! ecosystems taken from the store's images.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;

fn vulndb() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vulndb");
    if !d.join("PyPI.zip").is_file() {
        eprintln!("skipped: {} not found (the OSV fixture)", d.display());
        return None;
    }
    Some(d)
}

#[test]
fn import_then_status_lists_sources_ecosystems_and_age() {
    let Some(fixture) = vulndb() else { return };
    let env = Env::new();
    let empty = env.ok(&["scan", "db", "status"]);
    assert!(empty.contains("Empty: import OSV exports"), "{empty}");

    // A directory with a good record, a bad one and a non-record.
    let dir = env.path("osv");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("GOOD-1.json"),
        r#"{"id":"GOOD-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"six"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.16.0"}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("BAD-1.json"), "{ not json").unwrap();
    std::fs::write(dir.join("BAD-2.json"), r#"{"modified":"2024-01-01T00:00:00Z"}"#).unwrap();

    let zip = fixture.join("PyPI.zip");
    let npm = fixture.join("npm.zip");
    let out = env.ok(&[
        "scan",
        "db",
        "import",
        zip.to_str().unwrap(),
        npm.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.contains("PyPI.zip: 2667 records (10 withdrawn), 0 skipped"),
        "{out}"
    );
    assert!(out.contains("npm.zip: 18 records (0 withdrawn), 0 skipped"), "{out}");
    assert!(out.contains("osv: 1 records (0 withdrawn), 2 skipped"), "{out}");
    assert!(
        out.contains("Imported 2686 records (10 withdrawn) from 3 sources, skipped 2"),
        "{out}"
    );
    assert!(out.contains("Skipped records:\n"), "{out}");
    assert!(out.contains("BAD-1.json: "), "{out}");
    assert!(out.contains("BAD-2.json: "), "{out}");

    let st = env.run(&["scan", "db", "status"]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success());
    assert!(text.contains("Records: 2686 (10 withdrawn)"), "{text}");
    assert!(
        text.contains("Updated: 0 seconds ago") || text.contains("Updated: 1 second ago"),
        "{text}"
    );
    for (eco, n) in [("PyPI", 2668), ("npm", 18)] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [eco, &n.to_string()]),
            "{eco} {n} in\n{text}"
        );
    }
    assert!(text.contains("PyPI.zip  zip"), "{text}");
    assert!(!String::from_utf8_lossy(&st.stderr).contains("WARNING"));
    let v: Value = serde_json::from_str(&env.ok(&["scan", "db", "status", "--format", "json"])).unwrap();
    assert_eq!(v["records"], 2686);
    assert_eq!(v["ecosystems"]["npm"], 18);
    assert_eq!(v["sources"].as_array().unwrap().len(), 3);
    assert_eq!(v["stale"], false);

    // Importing the same zip again replaces its records.
    let again = env.ok(&["scan", "db", "import", zip.to_str().unwrap()]);
    assert!(again.contains("replacing 2667 from its last import"), "{again}");

    // Ten days later (the import time moved back with Python's sqlite3): a warning.
    if !have("python3") {
        eprintln!("skipped: python3 is needed to age the database");
        return;
    }
    let db = env.root().join("vulndb/osv.sqlite");
    sh_ok(&format!(
        "python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE sources SET imported_at = imported_at - 864000\"); c.commit()' {}",
        shell_quote(db.to_str().unwrap())
    ));
    let st = env.run(&["scan", "db", "status"]);
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(st.status.success());
    assert!(
        err.contains("WARNING: the vulnerability database was last updated 10 days ago (more than 7 days): run `strata scan db update`"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&st.stdout).contains("(stale)"));

    let err = env.fails(&["scan", "db", "import", "/nonexistent/osv.zip"]);
    assert!(err.contains("/nonexistent/osv.zip"), "{err}");
}

/// Serves `files` (URL path → bytes) over HTTP/1.1 on 127.0.0.1 with a fixed
/// ETag per file, answering 304 to a matching If-None-Match; records each
/// request as "METHOD PATH STATUS".
struct Server {
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn serve(files: Vec<(String, Vec<u8>)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut if_none_match = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("if-none-match")
                {
                    if_none_match = Some(v.trim().to_string());
                }
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let found = files.iter().find(|(p, _)| *p == path);
            let (status, body, etag) = match found {
                Some((p, b)) => {
                    let etag = format!("\"{}\"", p.len());
                    if if_none_match.as_deref() == Some(etag.as_str()) {
                        ("304 Not Modified", Vec::new(), Some(etag))
                    } else {
                        ("200 OK", b.clone(), Some(etag))
                    }
                }
                None => ("404 Not Found", b"not found".to_vec(), None),
            };
            log2.lock().unwrap().push(format!("{method} {path} {}", &status[..3]));
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            if let Some(e) = etag {
                head.push_str(&format!("ETag: {e}\r\n"));
            }
            head.push_str("\r\n");
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    Server { addr, log }
}

#[test]
fn update_downloads_the_ecosystems_of_the_stores_images() {
    let Some(fixture) = vulndb() else { return };
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    // An image with a Python package and an npm package (no os-release: no distro ecosystem).
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("node_modules/lodash")).unwrap();
    std::fs::write(
        ctx.join("node_modules/lodash/package.json"),
        r#"{"name":"lodash","version":"4.17.20","license":"MIT"}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir -p /usr/lib/python3/site-packages/six-1.15.0.dist-info && printf 'Name: six\\nVersion: 1.15.0\\n' > /usr/lib/python3/site-packages/six-1.15.0.dist-info/METADATA\n\
         COPY node_modules /app/node_modules\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "app:1", ctx.to_str().unwrap()]);

    let server = serve(vec![
        (
            "/osv/PyPI/all.zip".into(),
            std::fs::read(fixture.join("PyPI.zip")).unwrap(),
        ),
        (
            "/osv/npm/all.zip".into(),
            std::fs::read(fixture.join("npm.zip")).unwrap(),
        ),
    ]);
    let base = format!("http://{}/osv", server.addr);
    let o = env.run(&["scan", "db", "update", "--source", &base]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Updating PyPI, npm"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!("{base}/PyPI/all.zip: 2667 records (10 withdrawn), 0 skipped")),
        "{out}"
    );
    assert!(out.contains(&format!("{base}/npm/all.zip: 18 records")), "{out}");
    assert!(
        out.contains("Updated 2685 records (10 withdrawn) from 2 sources"),
        "{out}"
    );
    {
        let mut log = server.log.lock().unwrap().clone();
        log.sort();
        assert_eq!(log, ["GET /osv/PyPI/all.zip 200", "GET /osv/npm/all.zip 200"]);
    }
    let v: Value = serde_json::from_str(&env.ok(&["scan", "db", "status", "--format", "json"])).unwrap();
    assert_eq!(v["ecosystems"]["PyPI"], 2667);
    assert!(v["sources"].as_array().unwrap().iter().all(|s| s["kind"] == "url"));

    // Again: the server says nothing changed (ETag), nothing is downloaded.
    let out = env.ok(&["scan", "db", "update", "--source", &base]);
    assert!(
        out.contains(&format!("{base}/PyPI/all.zip: unchanged since the last download")),
        "{out}"
    );
    assert_eq!(
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with(" 304"))
            .count(),
        2
    );

    // An ecosystem the server lacks: reported, the others kept, exit 1.
    let o = env.run(&[
        "scan",
        "db",
        "update",
        "--source",
        &base,
        "--ecosystem",
        "Go",
        "--ecosystem",
        "npm",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{base}/Go/all.zip: HTTP status 404")), "{err}");
    let v: Value = serde_json::from_str(&env.ok(&["scan", "db", "status", "--format", "json"])).unwrap();
    assert_eq!(v["ecosystems"]["PyPI"], 2667);

    // A store with no images and an empty database has nothing to update.
    let bare = Env::new();
    let err = bare.fails(&["scan", "db", "update", "--source", &base]);
    assert!(err.contains("nothing to update"), "{err}");
}
