//! `image prune -a` racing `run --rm` (and `import`/`load` of the same
//! image): a run either finds no image (Docker's clean "No such image") or
//! starts on the whole root; prune never deletes an image a container is
//! being created from, and never fails because one appeared meanwhile.
//!
//! Before images were leased from resolve to the container's row (see
//! strata_store::Lease), 14–19 of 200 runs here failed: `sh` not found,
//! `/bin` emptied under a running container, "blob … is not in the store",
//! and prune itself failed on a container that appeared meanwhile.
//!
//! `STRATA_PRUNE_RACE_RUNS` sets the number of runs (default 120; the
//! issue's long mode was ~1,700). One run at a time: concurrent `run --rm`
//! have a race of their own (one's `reap` removes another's exited
//! container before it does), which this test is not about.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Env;

/// What a run prints on a whole busybox root.
const PROBE: &str = "ls /bin | wc -l; cat /bin/busybox | wc -c";

fn strata(env: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(env.root())
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .output()
        .expect("run strata")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

#[test]
fn prune_racing_run_and_load_never_starts_a_partial_root() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let rootfs = env.busybox_rootfs().unwrap();
    let expected = env.ok(&["run", "--rm", "busybox", "sh", "-c", PROBE]);
    let tar = env.path("busybox.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "busybox:latest"]);
    let runs: usize = std::env::var("STRATA_PRUNE_RACE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let workers = 1;
    let done = AtomicBool::new(false);

    let (run_outcomes, prune_failures, cycles) = std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let mut failures = Vec::new();
            let mut cycles = 0u32;
            while !done.load(Ordering::Relaxed) {
                let o = strata(&env, &["image", "prune", "-a", "-f"]);
                if !o.status.success() {
                    failures.push(format!("prune: {}", text(&o)));
                }
                // The same image back, by import and by load in turn.
                let o = if cycles.is_multiple_of(2) {
                    strata(
                        &env,
                        &[
                            "import",
                            "--change",
                            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "--change",
                            r#"CMD ["/bin/sh"]"#,
                            rootfs.to_str().unwrap(),
                            "busybox:latest",
                        ],
                    )
                } else {
                    strata(&env, &["load", "-i", tar.to_str().unwrap()])
                };
                if !o.status.success() {
                    failures.push(format!("import/load: {}", text(&o)));
                }
                cycles += 1;
                // Leave runs a moment to find the image.
                std::thread::sleep(Duration::from_millis(30));
            }
            (failures, cycles)
        });
        let runners: Vec<_> = (0..workers)
            .map(|w| {
                let (env, expected) = (&env, &expected);
                s.spawn(move || {
                    let mut out = (0usize, 0usize, Vec::new());
                    for _ in (w..runs).step_by(workers) {
                        let o = strata(env, &["run", "--rm", "busybox", "sh", "-c", PROBE]);
                        let stderr = String::from_utf8_lossy(&o.stderr);
                        if o.status.success() && String::from_utf8_lossy(&o.stdout) == *expected {
                            out.0 += 1;
                        } else if o.status.code() == Some(125) && stderr.contains("No such image") {
                            out.1 += 1;
                        } else {
                            out.2.push(text(&o));
                        }
                    }
                    out
                })
            })
            .collect();
        let mut all = (0usize, 0usize, Vec::new());
        for r in runners {
            let (ok, no_image, bad) = r.join().unwrap();
            all.0 += ok;
            all.1 += no_image;
            all.2.extend(bad);
        }
        done.store(true, Ordering::Relaxed);
        let (failures, cycles) = pruner.join().unwrap();
        (all, failures, cycles)
    });
    let (ok, no_image, bad) = run_outcomes;
    eprintln!(
        "{runs} runs: {ok} whole, {no_image} \"No such image\", {} bad; {cycles} prune cycles, {} failed",
        bad.len(),
        prune_failures.len()
    );
    assert!(
        bad.is_empty() && prune_failures.is_empty(),
        "{} of {runs} runs failed otherwise than \"No such image\" and {} prune/import/load steps failed:\n{}\n{}",
        bad.len(),
        prune_failures.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join("\n---\n"),
        prune_failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n"),
    );
    // Both outcomes happened, or the test raced nothing.
    assert!(ok > 0 && no_image > 0, "{ok} whole runs, {no_image} without an image");
    // Nothing left over: no container, and the store checks clean.
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    env.ok(&["system", "check"]);
}
