//! A small driver for benchmarks and manual checks until `strata scan db`
//! is wired:
//!
//!   vulndb import STORE_ROOT PATH...   (prints records, skipped, seconds)
//!   vulndb status STORE_ROOT
//!   vulndb query STORE_ROOT ECOSYSTEM PACKAGE

use std::path::PathBuf;
use std::time::Instant;

use strata_vulndb::Db;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: vulndb import|status|query STORE_ROOT [ARGS...]";
    let (cmd, root) = match args.as_slice() {
        [cmd, root, ..] => (cmd.as_str(), PathBuf::from(root)),
        _ => return Err(usage.into()),
    };
    let mut db = Db::open(&root)?;
    match cmd {
        "import" => {
            let paths: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            let t = Instant::now();
            let r = db.import(&paths, &mut |_| {})?;
            let secs = t.elapsed().as_secs_f64();
            for (name, reason) in r.skipped.iter().take(5) {
                eprintln!("skipped {name}: {reason}");
            }
            for (name, e) in &r.failed {
                eprintln!("failed {name}: {e}");
            }
            println!(
                "{} records ({} withdrawn), {} skipped, {} sources failed, {secs:.2} s, {:.0} records/s",
                r.records,
                r.withdrawn,
                r.skipped_count,
                r.failed.len(),
                r.records as f64 / secs
            );
        }
        "status" => {
            let s = db.status()?;
            println!(
                "{}: {} records ({} withdrawn), newest modified {:?}, stale {}",
                s.path.display(),
                s.records,
                s.withdrawn,
                s.newest_modified,
                s.stale
            );
            for (eco, n) in &s.ecosystems {
                println!("  {eco}: {n}");
            }
            for src in &s.sources {
                println!(
                    "  source {} ({}): {} records, {} skipped",
                    src.name, src.kind, src.records, src.skipped
                );
            }
        }
        "query" => {
            let [eco, pkg] = &args[2..] else {
                return Err(usage.into());
            };
            for a in db.advisories_for(eco, pkg)? {
                let sev = a
                    .severity
                    .as_ref()
                    .map(|s| format!("{} {:?} {}", s.rating, s.score, s.vector))
                    .unwrap_or_default();
                println!("{} {:?} {sev} withdrawn={}", a.id, a.aliases, a.withdrawn.is_some());
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
