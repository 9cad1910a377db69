//! BuildKit's Dockerfile parser corpus: every `testfiles/*/Dockerfile` must dump exactly as its
//! `result`, and every `testfiles-negative/*/Dockerfile` must be rejected.

mod common;

use std::fs;
use std::path::Path;

fn cases(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn buildkit_parser_corpus() {
    let Some(root) = common::conformance_dir("buildkit-dockerfile-parser") else {
        return;
    };

    let positive = cases(&root.join("testfiles"));
    let mut failures = Vec::new();
    for case in &positive {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let src = fs::read(case.join("Dockerfile")).unwrap();
        let expected = fs::read_to_string(case.join("result")).unwrap();
        match strata_build::parse(&src) {
            Ok(ast) if ast.dump() == expected => {}
            Ok(ast) => failures.push(format!(
                "{name}: dump differs\n--- expected\n{expected}--- got\n{}",
                ast.dump()
            )),
            Err(e) => failures.push(format!("{name}: unexpected error: {e}")),
        }
    }
    let passed = positive.len() - failures.len();

    let negative = cases(&root.join("testfiles-negative"));
    let mut rejected = 0;
    for case in &negative {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let src = fs::read(case.join("Dockerfile")).unwrap();
        match strata_build::parse(&src) {
            Err(e) => {
                rejected += 1;
                println!("negative {name}: rejected: {e}");
            }
            Ok(ast) => failures.push(format!("{name}: should be rejected, parsed as\n{}", ast.dump())),
        }
    }

    println!(
        "buildkit parser conformance: {passed}/{} cases match, {rejected}/{} negative cases rejected",
        positive.len(),
        negative.len()
    );
    assert!(
        !positive.is_empty() && !negative.is_empty(),
        "empty corpus at {}",
        root.display()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
