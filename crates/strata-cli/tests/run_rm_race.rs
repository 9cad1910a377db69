//! Concurrent `run --rm`: every container command reaps exited `--rm`
//! containers, but never one a live foreground `run` still supervises (it
//! removes its own and reports its exit code). Before, 13 of 100 runs of
//! two loops failed ("renaming containers/<id> away for removal", "has not
//! been started").

mod common;

use common::*;

#[test]
fn concurrent_run_rm_each_keep_their_container_and_exit_code() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let runs: usize = std::env::var("STRATA_RUN_RM_RACE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let failures: Vec<String> = std::thread::scope(|s| {
        let loops: Vec<_> = (0..2)
            .map(|k| {
                let env = &env;
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for i in 0..runs / 2 {
                        let code = (k * 100 + i) % 7;
                        let o = env.run(&["run", "--rm", "busybox", "sh", "-c", &format!("exit {code}")]);
                        if o.status.code() != Some(code as i32) {
                            bad.push(format!(
                                "loop {k} run {i}: wanted exit {code}, got {:?}: {}",
                                o.status.code(),
                                String::from_utf8_lossy(&o.stderr).trim()
                            ));
                        }
                    }
                    bad
                })
            })
            .collect();
        loops.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "", "containers were left");
}
