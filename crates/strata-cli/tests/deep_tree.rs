//! A very deep directory tree (issue #16: 30,000 levels made inside a
//! container) goes through every tree walk: diff, commit, export, cp out,
//! rm -f, a build whose RUN makes it, save/load, rmi and `system check
//! --repair` of a leftover holding it. None may overflow the stack or run
//! out of file descriptors, and nothing may be left behind.
//!
//! `STRATA_DEEP_TREE_DEPTH` sets the depth: 12,000 by default (CI's short
//! mode: past PATH_MAX, the open-file limit and the old recursion's stack
//! use, in ~1–2 minutes), 30,000 for the case (5–9 minutes here:
//! `STRATA_DEEP_TREE_DEPTH=30000 cargo nextest run -p strata-cli -E
//! 'binary(deep_tree)'`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn depth() -> usize {
    std::env::var("STRATA_DEEP_TREE_DEPTH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000)
}

/// A busybox sh script making `/x/d/d/…/d` (`depth` levels of `d` under
/// `x`) from its working directory. Paths are limited to PATH_MAX, so it
/// goes down 1,000 levels at a time with `cd -P` (a plain `cd` keeps the
/// whole logical path).
fn make_tree_script(depth: usize) -> String {
    let chunk = 1000.min(depth);
    format!(
        "set -e; mkdir x; cd x; p=d; i=1; while [ $i -lt {chunk} ]; do p=$p/d; i=$((i+1)); done; \
         left={depth}; while [ $left -ge {chunk} ]; do mkdir -p $p; cd -P $p; left=$((left-{chunk})); done; \
         while [ $left -gt 0 ]; do mkdir d; cd -P d; left=$((left-1)); done; echo bottom > f"
    )
}

/// A busybox sh script going down the tree [`make_tree_script`] made and
/// printing the file at its bottom.
fn read_bottom_script(depth: usize) -> String {
    let chunk = 1000.min(depth);
    format!(
        "set -e; cd /x; p=d; i=1; while [ $i -lt {chunk} ]; do p=$p/d; i=$((i+1)); done; \
         left={depth}; while [ $left -ge {chunk} ]; do cd -P $p; left=$((left-{chunk})); done; \
         while [ $left -gt 0 ]; do cd -P d; left=$((left-1)); done; [ ! -e d ]; cat f"
    )
}

/// Runs strata with stdout into `file` (a diff of a deep tree is large);
/// panics with stderr when it fails.
fn run_to_file(env: &Env, args: &[&str], file: &Path) {
    let out = std::fs::File::create(file).unwrap();
    let o = env
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped())
        .output()
        .expect("run strata");
    assert!(
        o.status.success(),
        "strata {args:?} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Entries of a tar file: how many, and how many directories under `x/`.
fn tar_counts(file: &Path) -> (usize, usize) {
    let mut all = 0;
    let mut dirs = 0;
    for e in tar::Archive::new(std::fs::File::open(file).unwrap()).entries().unwrap() {
        let e = e.unwrap();
        all += 1;
        let p = e.path().unwrap();
        if e.header().entry_type().is_dir() && p.starts_with("x") {
            dirs += 1;
        }
    }
    (all, dirs)
}

fn time<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    eprintln!("{what}: {:.1}s", t.elapsed().as_secs_f64());
    r
}

fn assert_check_clean(env: &Env, what: &str) {
    let out = env.ok(&["system", "check"]);
    assert!(out.trim_end().ends_with("no problems"), "{what}: {out}");
}

/// The entries of the store's `containers/`.
fn containers_left(env: &Env) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(env.root().join("containers")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn deep_tree_in_a_container() {
    let env = Env::new();
    let _cleanup = Cleanup(env.dir.path().to_path_buf());
    if env.import_busybox().is_none() {
        return;
    }
    let depth = depth();
    let script = make_tree_script(depth);
    let before = containers_left(&env);
    time("run (making the tree)", || {
        env.ok(&["run", "--name", "deep", "-w", "/", "busybox", "sh", "-c", &script])
    });

    // diff: every level, parents first.
    let diff = env.path("diff.txt");
    time("diff", || run_to_file(&env, &["diff", "deep"], &diff));
    let mut lines = 0;
    let mut last_len = 0;
    for l in BufReader::new(std::fs::File::open(&diff).unwrap()).lines() {
        let l = l.unwrap();
        assert!(l.starts_with("A /x"), "{}", &l[..l.len().min(80)]);
        assert!(l.len() > last_len);
        last_len = l.len();
        lines += 1;
    }
    assert_eq!(lines, depth + 2, "A /x, every d and the file at the bottom");
    std::fs::remove_file(&diff).unwrap();

    // commit: a layer holding the whole tree.
    time("commit", || env.ok(&["commit", "deep", "deep:img"]));

    // export: the whole filesystem.
    let tar = env.path("deep.tar");
    time("export", || env.ok(&["export", "-o", tar.to_str().unwrap(), "deep"]));
    let (_, dirs) = tar_counts(&tar);
    assert_eq!(dirs, depth + 1);
    std::fs::remove_file(&tar).unwrap();

    // cp out of the container.
    let cp_dir = env.path("cp-out");
    time("cp to a directory", || {
        env.ok(&["cp", "deep:/x", cp_dir.to_str().unwrap()])
    });
    assert!(cp_dir.join("d").is_dir());
    time("removing the copy", || {
        strata_rm_rf(&cp_dir);
    });

    // rm -f: nothing left behind, and the store is clean.
    time("rm -f", || env.ok(&["rm", "-f", "deep"]));
    assert_eq!(containers_left(&env), before);
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    time("system check", || assert_check_clean(&env, "after rm -f"));

    // The committed image runs and holds the tree; save, rmi, load, rmi.
    let out = time("run of the committed image", || {
        env.ok(&["run", "--rm", "deep:img", "sh", "-c", &read_bottom_script(depth)])
    });
    assert_eq!(out, "bottom\n");
    let saved = env.path("saved.tar");
    time("save", || env.ok(&["save", "-o", saved.to_str().unwrap(), "deep:img"]));
    time("rmi", || env.ok(&["rmi", "deep:img"]));
    time("system check", || assert_check_clean(&env, "after rmi"));
    time("load", || env.ok(&["load", "-i", saved.to_str().unwrap()]));
    std::fs::remove_file(&saved).unwrap();
    time("rmi after load", || env.ok(&["rmi", "deep:img"]));
    assert_check_clean(&env, "after load and rmi");
}

#[test]
fn deep_tree_made_by_a_build_step() {
    let env = Env::new();
    let _cleanup = Cleanup(env.dir.path().to_path_buf());
    if env.import_busybox().is_none() {
        return;
    }
    let depth = depth();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nWORKDIR /\nRUN {}\n", make_tree_script(depth)),
    )
    .unwrap();
    time("build", || {
        env.ok(&["build", "-q", "-t", "deep:built", ctx.to_str().unwrap()])
    });
    let out = env.ok(&["run", "--rm", "deep:built", "sh", "-c", &read_bottom_script(depth)]);
    assert_eq!(out, "bottom\n");
    time("rmi", || env.ok(&["rmi", "deep:built"]));
    time("builder prune", || env.ok(&["buildx", "prune", "-f"]));
    assert_check_clean(&env, "after build, rmi and prune");
}

#[test]
fn deep_leftover_is_repaired() {
    let env = Env::new();
    let _cleanup = Cleanup(env.dir.path().to_path_buf());
    if env.import_busybox().is_none() {
        return;
    }
    env.ok(&["run", "--rm", "busybox", "true"]);
    let root = env.root();
    // A stray unpacked layer and a dead process's staging directory, each
    // holding the deep tree.
    let stray = root.join(format!("layers/{}", "e".repeat(64)));
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let staging = root.join(format!("layers/.staging-{}-{dead}", "f".repeat(64)));
    for dir in [&stray, &staging] {
        std::fs::create_dir_all(dir).unwrap();
        let st = time("making the tree", || {
            Command::new("/bin/busybox")
                .args(["sh", "-c", &make_tree_script(depth())])
                .current_dir(dir)
                .status()
                .unwrap()
        });
        assert!(st.success());
    }
    let out = env.run(&["system", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let out = time("system check --repair", || env.ok(&["system", "check", "--repair"]));
    assert!(out.contains("2 problems repaired, none remain"), "{out}");
    assert!(!stray.exists() && !staging.exists());
    assert_check_clean(&env, "after repair");
}

/// Removes a deep tree the test made (`rm -rf` copes with any depth).
fn strata_rm_rf(dir: &Path) {
    let st = Command::new("rm").arg("-rf").arg(dir).status().unwrap();
    assert!(st.success());
}

/// Empties the test's directory with `rm -rf` when dropped (declared after
/// the `Env`, so first): the recursive `remove_dir_all` of `TempDir`'s drop
/// would overflow the stack on a deep tree left by a failure.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("rm").arg("-rf").arg(&self.0).status();
    }
}
