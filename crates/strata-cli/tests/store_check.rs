//! `strata system check [--repair] [--quick]`: a healthy store is clean; a
//! corrupt blob, leftovers of killed processes, orphaned blobs and stray
//! unpacked layers are reported, and the removable ones repaired.

mod common;

use std::process::{Command, Output};

use common::*;

/// `system check` with its status, stdout and stderr.
fn check(env: &Env, args: &[&str]) -> (bool, String) {
    let mut all = vec!["system", "check"];
    all.extend_from_slice(args);
    let o: Output = env.run(&all);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "system check {args:?} failed: {}\n{out}\n{err}",
        o.status
    );
    (o.status.success(), out)
}

fn assert_clean(env: &Env, what: &str) {
    for args in [&[][..], &["--quick"][..]] {
        let (ok, out) = check(env, args);
        assert!(ok, "{what}: system check {args:?} found problems:\n{out}");
        assert!(out.trim_end().ends_with("no problems"), "{what}: {out}");
        assert_eq!(out.lines().count(), 1, "{what}: {out}");
    }
}

/// A pid no process has now (a child that exited and was reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn healthy_store_after_import_build_pull_is_clean() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    assert_clean(&env, "after import");

    // A multi-stage build: the first stage's layers are unpacked but belong
    // to no image, only to the build cache.
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("f"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS a\nRUN echo a > /a\nCOPY f /f\nFROM busybox\nCOPY --from=a /a /a\nRUN echo b > /b\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "built:1", ctx.to_str().unwrap()]);
    assert_clean(&env, "after build");
    env.ok(&["create", "--name", "c1", "built:1", "true"]);
    assert_eq!(env.ok(&["run", "--rm", "built:1", "cat", "/a", "/b"]), "a\nb\n");
    assert_clean(&env, "after create and run");

    // Pushed (a gzip form is added to the store) and pulled elsewhere.
    let reg = TestRegistry::strata();
    let name = format!("{}/check/built:1", reg.host);
    env.ok(&["tag", "built:1", &name]);
    env.ok(&["push", &name]);
    assert_clean(&env, "after push");
    let other = Env::new();
    other.ok(&["pull", &name]);
    assert_clean(&other, "after pull");
    assert_eq!(other.ok(&["run", "--rm", &name, "cat", "/a"]), "a\n");
    assert_clean(&other, "after pull and run");

    // Removal leaves nothing behind either.
    env.ok(&["rm", "c1"]);
    env.ok(&["rmi", "built:1", &name]);
    assert_clean(&env, "after rmi");
}

#[test]
fn a_flipped_byte_in_a_blob_is_reported_and_not_repaired() {
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    // The layer blob: the biggest one.
    let blobs = env.root().join("blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let hex = layer.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = std::fs::read(&layer).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    std::fs::write(&layer, &bytes).unwrap();

    let (ok, out) = check(&env, &[]);
    assert!(!ok, "{out}");
    let line = format!("blob sha256:{hex} is corrupt: its content hashes to sha256:");
    assert!(out.contains(&line), "{out}");
    assert!(out.contains("1 problem remains"), "{out}");
    // --quick only compares sizes: the same size passes.
    let (ok, out) = check(&env, &["--quick"]);
    assert!(ok, "{out}");
    // Repair does not touch it (the image still needs it).
    let (ok, out) = check(&env, &["--repair"]);
    assert!(!ok, "{out}");
    assert!(out.contains(&line), "{out}");
    assert!(layer.exists());
    // A truncated blob: --quick sees that (its size is recorded).
    bytes.truncate(i);
    std::fs::write(&layer, &bytes).unwrap();
    let (ok, out) = check(&env, &["--quick"]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("blob sha256:{hex} has {i} bytes")), "{out}");
    // The config blob is checked too.
    let cfg = blobs.join(id.trim_start_matches("sha256:"));
    let mut c = std::fs::read(&cfg).unwrap();
    c[0] = b' ';
    std::fs::write(&cfg, &c).unwrap();
    let (_, out) = check(&env, &[]);
    assert!(out.contains(&format!("blob {id} is corrupt")), "{out}");
}

#[test]
fn leftovers_orphans_and_stray_layers_are_reported_then_repaired() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    env.ok(&["run", "--rm", "busybox", "true"]);
    assert_clean(&env, "before");
    let root = env.root();
    let dead = dead_pid();
    let chain = "c".repeat(64);
    // A temporary file without a pid (no writer holds the lock: garbage),
    // a killed pull's staging dir, a killed snapshot's staging dir, an
    // unpacked layer nothing uses and a blob nothing references.
    std::fs::write(root.join("tmp/stray"), b"junk").unwrap();
    let staging = root.join(format!("layers/.staging-{chain}-{dead}"));
    std::fs::create_dir_all(staging.join("usr/bin")).unwrap();
    std::fs::write(staging.join("usr/bin/x"), b"x").unwrap();
    let snap_staging = root.join(format!("containers/.staging-k1-{dead}-1f"));
    std::fs::create_dir_all(snap_staging.join("upper")).unwrap();
    let stray = root.join(format!("layers/{}", "d".repeat(64)));
    std::fs::create_dir_all(stray.join("etc")).unwrap();
    let orphan_bytes = b"nobody's blob";
    let orphan = sha256_hex(orphan_bytes);
    std::fs::write(root.join(format!("blobs/sha256/{orphan}")), orphan_bytes).unwrap();
    // And one a live process (this one) is writing: not a problem.
    let live = root.join(format!("tmp/blob-{}-live", std::process::id()));
    std::fs::write(&live, b"in progress").unwrap();

    // (No other strata command first: any would remove what dead
    // processes left, see the last test.)
    let (ok, out) = check(&env, &[]);
    assert!(!ok, "{out}");
    let expect = [
        "tmp/stray: leftover temporary file".to_string(),
        format!(
            "layers/.staging-{chain}-{dead}: leftover layer staging directory (process {dead}, which made it, is gone)"
        ),
        format!("containers/.staging-k1-{dead}-1f: leftover snapshot staging directory"),
        format!(
            "layers/{}: unpacked layer sha256:{} is not used",
            "d".repeat(64),
            "d".repeat(64)
        ),
        format!("blob sha256:{orphan} (13 bytes) is orphaned"),
    ];
    for e in &expect {
        assert!(
            out.lines().any(|l| l.starts_with(e.as_str())),
            "missing {e:?} in:\n{out}"
        );
    }
    assert!(out.contains("5 problems remain"), "{out}");
    assert!(!out.contains("-live"), "{out}");
    // Checking changes nothing.
    assert!(root.join("tmp/stray").exists() && root.join(format!("blobs/sha256/{orphan}")).exists());
    assert!(staging.exists() && snap_staging.exists() && stray.exists());

    let (ok, out) = check(&env, &["--repair"]);
    assert!(ok, "{out}");
    for e in &expect {
        let line = format!("repaired: {e}");
        assert!(out.lines().any(|l| l.starts_with(&line)), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("5 problems repaired, none remain"), "{out}");
    assert!(!staging.exists() && !snap_staging.exists() && !stray.exists());
    assert!(!root.join("tmp/stray").exists());
    assert!(live.exists(), "a live process's file was removed");
    std::fs::remove_file(&live).unwrap();
    assert_clean(&env, "after repair");
    assert_eq!(env.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
}

#[test]
fn any_strata_command_removes_what_dead_processes_left() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let root = env.root();
    let dead = dead_pid();
    let tmp_blob = root.join(format!("tmp/blob-{dead}-AbCdEf"));
    std::fs::write(&tmp_blob, vec![7u8; 4096]).unwrap();
    let staging = root.join(format!("layers/.staging-{}-{dead}", "e".repeat(64)));
    std::fs::create_dir_all(staging.join("bin")).unwrap();
    // A pid that is running now but started after the file was written
    // (a reused pid) does not keep it: pid 1 started long before, so use a
    // file dated before the boot instead.
    let old = root.join("tmp/blob-1-reused");
    std::fs::write(&old, b"x").unwrap();
    let f = std::fs::File::options().write(true).open(&old).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(86400))
        .unwrap();
    drop(f);
    // pid-less leftovers wait for the check (they are judged under the lock).
    std::fs::write(root.join("tmp/no-pid"), b"x").unwrap();

    env.ok(&["images"]);
    assert!(!tmp_blob.exists(), "a dead process's temporary blob was kept");
    assert!(!staging.exists(), "a dead process's staging dir was kept");
    assert!(!old.exists(), "a file older than the process with its pid was kept");
    assert!(root.join("tmp/no-pid").exists());
    let (ok, out) = check(&env, &["--repair"]);
    assert!(ok, "{out}");
    assert!(out.contains("repaired: tmp/no-pid"), "{out}");
    assert_clean(&env, "after");
}
