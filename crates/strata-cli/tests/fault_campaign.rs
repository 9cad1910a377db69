//! The fault campaign (#16 item 3): a store on a full filesystem, a store on
//! a read-only one, a registry behind a proxy that fails (drops, stalls,
//! 500/503/429 with Retry-After), and SeaweedFS restarted under the S3
//! registry during a push.
//!
//! The stores are on a 64 MiB tmpfs mounted by the test (root only; else
//! skipped with a reason) and unmounted when the test ends, failed or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::campaign::check_problems;
use common::{Env, TestRegistry};

/// A tmpfs mounted at a path, unmounted (lazily if busy) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `mib` MiB at `at`, or None (said) when it cannot be mounted.
    fn mount(at: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0711"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        if !o.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, opts: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "remount {opts}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Bytes free for an unprivileged writer.
    fn free(&self) -> u64 {
        let out = common::sh_ok(&format!(
            "stat -f -c '%a %S' {}",
            common::shell_quote(self.0.to_str().unwrap())
        ));
        let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
        v[0] * v[1]
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Container mounts under the store first.
        for m in common::campaign::mounts_under(&self.0).into_iter().rev() {
            if Path::new(&m) != self.0 {
                let _ = Command::new("umount").arg("-l").arg(&m).status();
            }
        }
        let st = Command::new("umount").arg(&self.0).status();
        if !st.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// `n` bytes that gzip cannot shrink.
fn random_bytes(n: usize, mut x: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The store is consistent after the next command, and a failed command
/// left no panic.
fn assert_consistent(env: &Env, what: &str) {
    env.ok(&["images", "-q"]);
    if let Some(report) = check_problems(env) {
        panic!("{what}: system check after the next command:\n{report}");
    }
}

/// A pull that fills the store's filesystem fails saying so, and leaves the
/// store consistent with its partial data gone.
#[test]
fn full_disk_pull_and_build() {
    let env = Env::new();
    let Some(disk) = Tmpfs::mount(&env.root(), 64) else {
        return;
    };
    if env.import_busybox().is_none() {
        return;
    }
    // An image with a 100 MB layer of random bytes, in a registry.
    let reg = TestRegistry::strata();
    let seed = Env::new();
    let dir = seed.path("big");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("blob"), random_bytes(100 << 20, 0x5eed)).unwrap();
    let name = format!("{}/faults/big:1", reg.host);
    seed.ok(&["import", dir.to_str().unwrap(), &name]);
    seed.ok(&["push", "-q", &name]);

    let free = disk.free();
    let o = env.run(&["pull", "-q", &name]);
    let err = stderr_of(&o);
    assert!(!o.status.success(), "the pull into 64 MiB succeeded");
    assert!(
        err.to_lowercase().contains("no space left on device") && !err.contains("panicked"),
        "the pull's error does not say the disk is full: {err}"
    );
    eprintln!("pull on a full disk: {}", err.trim());
    assert_consistent(&env, "pull on a full disk");
    let after = disk.free();
    assert!(
        after + (1 << 20) >= free,
        "the failed pull kept {} bytes",
        free.saturating_sub(after)
    );
    assert!(env.run(&["inspect", &name]).status.code() != Some(0));

    // A build whose RUN writes 40 MB: the container's upper directory
    // holds it, and the layer made of it does not fit beside it.
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:latest\nRUN head -c 41943040 /dev/urandom > /big\n",
    )
    .unwrap();
    // The base's layer unpacked first: it stays, rightly.
    env.ok(&["run", "--rm", "--network", "none", "busybox:latest", "true"]);
    let free = disk.free();
    let o = env.run(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "full:1",
        ctx.to_str().unwrap(),
    ]);
    let err = stderr_of(&o);
    assert!(!o.status.success(), "the build into 64 MiB succeeded");
    assert!(
        err.to_lowercase().contains("no space left on device") && !err.contains("panicked"),
        "the build's error does not say the disk is full: {err}"
    );
    eprintln!("build on a full disk: {}", err.trim());
    assert_consistent(&env, "build on a full disk");
    env.ok(&["builder", "prune", "-a", "-f"]);
    let after = disk.free();
    assert!(
        after + (1 << 20) >= free,
        "the failed build kept {} bytes:\n{}",
        free.saturating_sub(after),
        common::sh_ok(&format!("du -a {} | sort -n | tail -12", env.root().display()))
    );
    // The store still works: a small build fits.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox:latest\nRUN echo small > /small\n").unwrap();
    env.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "small:1",
        ctx.to_str().unwrap(),
    ]);
    assert_consistent(&env, "a build after the full disk");
    drop(disk);
}

/// A store on a read-only filesystem: every read command works, every
/// write command fails saying the store is read-only, nothing panics, and
/// nothing changed.
#[test]
fn read_only_store() {
    let env = Env::new();
    let Some(disk) = Tmpfs::mount(&env.root(), 64) else {
        return;
    };
    if env.import_busybox().is_none() {
        return;
    }
    env.ok(&["create", "--name", "c1", "--network", "none", "busybox:latest", "true"]);
    env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vol1:/v",
        "busybox:latest",
        "true",
    ]);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox:latest\nRUN echo x > /x\n").unwrap();
    env.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "built:1",
        ctx.to_str().unwrap(),
    ]);
    let archive = env.path("saved.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "built:1"]);
    let before = env.snapshot();
    disk.remount("ro");

    let saved = env.path("saved-ro.tar");
    let reads: Vec<Vec<&str>> = vec![
        vec!["images"],
        vec!["images", "-a", "--digests", "--no-trunc"],
        vec!["inspect", "busybox:latest"],
        vec!["image", "inspect", "built:1"],
        vec!["history", "built:1"],
        vec!["save", "-o", saved.to_str().unwrap(), "built:1", "busybox:latest"],
        vec!["system", "df"],
        vec!["system", "df", "-v"],
        vec!["system", "check"],
        vec!["ps", "-a"],
        vec!["container", "inspect", "c1"],
        vec!["volume", "ls"],
        vec!["volume", "inspect", "vol1"],
        vec!["builder", "du"],
        vec!["info"],
    ];
    for a in &reads {
        let o = env.run(a);
        assert!(
            o.status.success() && !stderr_of(&o).contains("panicked"),
            "read-only store: strata {a:?} failed: {}",
            stderr_of(&o)
        );
    }
    // The archive saved from the read-only store loads elsewhere.
    let other = Env::new();
    other.ok(&["load", "-q", "-i", saved.to_str().unwrap()]);
    other.ok(&["inspect", "built:1"]);

    let writes: Vec<Vec<&str>> = vec![
        vec!["tag", "busybox:latest", "other:1"],
        vec!["rmi", "built:1"],
        vec!["rmi", "-f", "busybox:latest"],
        vec!["import", ctx.to_str().unwrap(), "imported:1"],
        vec!["load", "-i", archive.to_str().unwrap()],
        vec![
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "again:1",
            ctx.to_str().unwrap(),
        ],
        vec!["image", "prune", "-a", "-f"],
        vec!["system", "prune", "-a", "-f"],
        vec!["system", "check", "--repair"],
        vec!["builder", "prune", "-a", "-f"],
        vec!["run", "--rm", "--network", "none", "busybox:latest", "true"],
        vec!["create", "--network", "none", "busybox:latest", "true"],
        vec!["rm", "c1"],
        vec!["commit", "c1", "committed:1"],
        vec!["volume", "create", "vol2"],
        vec!["volume", "rm", "vol1"],
    ];
    let mut wrong = Vec::new();
    for a in &writes {
        let o = env.run(a);
        let err = stderr_of(&o);
        let says = err.to_lowercase().contains("read-only");
        if o.status.success() || !says || err.contains("panicked") {
            wrong.push(format!("strata {a:?} ({}): {err}", o.status));
        } else {
            eprintln!("strata {a:?}: {}", err.trim());
        }
    }
    assert!(
        wrong.is_empty(),
        "read-only store: write commands that did not fail saying why:\n{}",
        wrong.join("\n")
    );
    disk.remount("rw");
    assert_eq!(env.snapshot(), before, "the read-only store changed");
    assert_consistent(&env, "the store made writable again");
    drop(disk);
}
