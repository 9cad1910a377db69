//! A pull killed with SIGKILL at a random moment, then repeated, completes
//! and leaves nothing orphaned, as `strata system check` sees it.
//!
//! The rule this relies on (see strata-store's `leftovers`): whatever a
//! pull writes before it names anything carries its pid (`tmp/blob-<pid>-…`,
//! `layers/.staging-<chain>-<pid>`); the next strata process to open the
//! store removes entries whose maker is gone, and `system check` reports
//! them (as leftovers) until then. Blobs and unpacked layers a killed pull
//! already named are adopted by the repeated pull, which registers them.
//! So after the repeated pull the check is clean without `--repair`.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// xorshift64*: deterministic, so a failing round can be replayed.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Incompressible bytes, so gzip does not shrink the layers to nothing.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn check_clean(env: &Env, what: &str) {
    let o = env.run(&["system", "check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.trim_end().ends_with("no problems"),
        "{what}: system check found problems ({}):\n{out}{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Entries under `dir` (not recursive), for messages.
fn list(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn pull_killed_at_random_moments_then_repeated_completes_and_leaves_nothing_orphaned() {
    let src = Env::new();
    if src.import_busybox().is_none() {
        return;
    }
    // busybox and four layers of 3 MiB of noise each.
    let mut rng = Prng(0x5eed_1234_abcd_0001);
    let ctx = src.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut dockerfile = String::from("FROM busybox\n");
    for name in ["a", "b", "c", "d"] {
        std::fs::write(ctx.join(name), rng.bytes(3 << 20)).unwrap();
        dockerfile.push_str(&format!("COPY {name} /data/{name}\n"));
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    src.ok(&["build", "-q", "-t", "faults:1", ctx.to_str().unwrap()]);
    let reg = TestRegistry::strata();
    let name = format!("{}/faults/img:1", reg.host);
    src.ok(&["tag", "faults:1", &name]);
    src.ok(&["push", &name]);
    let id = src.ok(&["images", "--no-trunc", "-q", "faults:1"]).trim().to_string();
    let sizes = "3145728 /data/a\n3145728 /data/b\n3145728 /data/c\n3145728 /data/d\n";

    // One whole pull, to spread the kills over its duration.
    let probe = Env::new();
    let t = Instant::now();
    probe.ok(&["pull", &name]);
    let duration = t.elapsed();
    check_clean(&probe, "after an uninterrupted pull");
    eprintln!("one pull takes {duration:?}");
    let span_us = (duration.as_micros() as u64 * 6 / 5).max(1);

    let env = Env::new();
    let mut killed_midway = 0;
    for round in 0..8 {
        // A fresh store every other round; otherwise the image is removed
        // first so the pull has everything to do again.
        let fresh = Env::new();
        let store = if round % 2 == 0 { &fresh } else { &env };
        if round % 2 == 1 && store.run(&["image", "inspect", &name]).status.success() {
            store.ok(&["rmi", &name]);
        }
        let delay = Duration::from_micros(rng.next() % span_us);
        let mut child = store
            .cmd()
            .args(["pull", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let done_before = matches!(child.try_wait(), Ok(Some(_)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if !done_before {
            killed_midway += 1;
        }
        eprintln!("round {round}: killed after {delay:?} (finished first: {done_before}, {status})");

        // What the killed pull left is reported (not silently hidden) by
        // the check, which opens the store as it is.
        let root = store.root();
        let leftovers: Vec<String> = list(&root.join("tmp"))
            .into_iter()
            .map(|n| format!("tmp/{n}"))
            .chain(
                list(&root.join("layers"))
                    .into_iter()
                    .filter(|n| n.starts_with(".staging-"))
                    .map(|n| format!("layers/{n}")),
            )
            .collect();
        eprintln!("round {round}: left {leftovers:?}");
        if !leftovers.is_empty() {
            let o = store.run(&["system", "check", "--quick"]);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(!o.status.success(), "round {round}: {out}");
            for l in &leftovers {
                assert!(
                    out.lines().any(|x| x.starts_with(&format!("{l}: leftover"))),
                    "round {round}: {l} not reported as a leftover:\n{out}"
                );
            }
        }

        // The repeated pull completes; the image runs; nothing is left over.
        store.ok(&["pull", &name]);
        assert_eq!(
            store.ok(&["images", "--no-trunc", "-q", &name]).trim(),
            id,
            "round {round}"
        );
        assert!(
            list(&root.join("tmp")).is_empty(),
            "round {round}: tmp/ holds {:?}",
            list(&root.join("tmp"))
        );
        let staging: Vec<_> = list(&root.join("layers"))
            .into_iter()
            .filter(|n| n.starts_with('.') && n != ".locks")
            .collect();
        assert!(staging.is_empty(), "round {round}: layers/ holds {staging:?}");
        check_clean(store, &format!("round {round}, after the repeated pull"));
        assert_eq!(
            store
                .ok(&["run", "--rm", &name, "sh", "-c", "wc -c /data/* | grep /data/"])
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
                .collect::<String>(),
            sizes,
            "round {round}"
        );
        check_clean(store, &format!("round {round}, after run"));
    }
    eprintln!("{killed_midway} of 8 pulls were killed midway");
    assert!(
        killed_midway > 0,
        "every pull finished before its kill; the test proved nothing"
    );
}
