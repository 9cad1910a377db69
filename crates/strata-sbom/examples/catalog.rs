//! Catalogues uncompressed layer tars given bottom first:
//! `cargo run --release -p strata-sbom --example catalog -- [--format table|json|spdx-json|cyclonedx-json] LAYER.tar...`
//! Prints the document on stdout and the time, size and warnings on stderr.

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use strata_sbom::{LayerInput, Options, catalog};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut format = "table".to_owned();
    if let Some(i) = args.iter().position(|a| a == "--format") {
        format = args.get(i + 1).cloned().unwrap_or(format);
        args.drain(i..(i + 2).min(args.len()));
    }
    let bytes: u64 = args
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let layers = args.iter().map(|p| LayerInput {
        reader: BufReader::with_capacity(1 << 20, File::open(p).unwrap_or_else(|e| panic!("{p}: {e}"))),
        digest: None,
        created_by: Some(p.clone()),
    });
    let started = Instant::now();
    let sbom = match catalog(layers, &Options::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let took = started.elapsed();
    let out = match format.as_str() {
        "json" => sbom.to_json(),
        "spdx-json" => sbom.to_spdx_json(),
        "cyclonedx-json" => sbom.to_cyclonedx_json(),
        _ => sbom.to_table(),
    };
    print!("{out}");
    for w in &sbom.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "{} packages from {} MiB in {:.2?} ({:.0} MiB/s), {} warnings",
        sbom.packages.len(),
        bytes >> 20,
        took,
        (bytes as f64 / (1 << 20) as f64) / took.as_secs_f64(),
        sbom.warnings.len()
    );
}
