//! BuildKit's shell expansion corpus: `envVarTest` (ProcessWord) and `wordsTest` (ProcessWords).

mod common;

use std::fs;

use strata_build::{Lex, env_from_list};

#[test]
fn buildkit_env_var_test() {
    let Some(root) = common::conformance_dir("buildkit-dockerfile-shell") else {
        return;
    };
    let text = fs::read_to_string(root.join("envVarTest")).unwrap();
    let env_list = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="];
    let env = env_from_list(&env_list);
    let lex = Lex::new('\\');

    let (mut run, mut skipped_windows) = (0, 0);
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(fields.len(), 3, "line {}: {line:?}", i + 1);
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        match platform {
            "A" | "U" => {}
            "W" => {
                skipped_windows += 1;
                continue;
            }
            other => panic!("line {}: unknown platform {other:?}", i + 1),
        }
        run += 1;
        let got = lex.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => expected != "error" && word == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!("line {}: {input:?}: expected {expected:?}, got {got:?}", i + 1));
        }
    }
    println!(
        "envVarTest: {}/{run} Unix lines pass, {skipped_windows} Windows-only lines skipped",
        run - failures.len()
    );
    assert!(run > 0);
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn buildkit_words_test() {
    let Some(root) = common::conformance_dir("buildkit-dockerfile-shell") else {
        return;
    };
    let text = fs::read_to_string(root.join("wordsTest")).unwrap();
    let lex = Lex::new('\\');
    let mut envs: Vec<String> = Vec::new();

    let mut run = 0;
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            envs.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 2, "line {}: {line:?}", i + 1);
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        run += 1;
        let got = match lex.process_words(input, &env_from_list(&envs)) {
            Ok(words) => words,
            Err(_) => vec!["error".to_string()],
        };
        if got != expected {
            failures.push(format!("line {}: {input:?}: expected {expected:?}, got {got:?}", i + 1));
        }
    }
    println!(
        "wordsTest: {}/{run} lines pass (normal mode; the raw-quotes mode is not run)",
        run - failures.len()
    );
    assert!(run > 0);
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
