//! The fault campaign (#16 item 3): a store on a full filesystem, a store on
//! a read-only one, a registry behind a proxy that fails (drops, stalls,
//! 500/503/429 with Retry-After), and SeaweedFS restarted under the S3
//! registry during a push.
//!
//! The stores are on a 64 MiB tmpfs mounted by the test (root only; else
//! skipped with a reason) and unmounted when the test ends, failed or not.

mod common;

#[path = "fault_campaign/proxy.rs"]
mod proxy;
#[path = "fault_campaign/seaweed.rs"]
mod seaweed;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::campaign::{Rng, check_problems, kill_group, strata_group};
use common::{Env, TestRegistry};
use proxy::{Fault, FaultProxy};

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
    // A registry to pull from (a write) and push to: a read for an image
    // whose compressed layers the store holds (pulled), a write for one
    // strata made (its layers are compressed and recorded on the first push).
    let reg = TestRegistry::strata();
    let pulled = format!("{}/faults/ro:1", reg.host);
    env.ok(&["tag", "busybox:latest", &pulled]);
    env.ok(&["push", "-q", &pulled]);
    env.ok(&["rmi", &pulled]);
    let held = format!("{}/faults/held:1", reg.host);
    env.ok(&["tag", "built:1", &held]);
    env.ok(&["push", "-q", &held]);
    let again = format!("{}/faults/again:1", reg.host);
    env.ok(&["tag", &held, &again]);
    let pushed = format!("{}/faults/from-ro:1", reg.host);
    let ctx2 = env.path("ctx2");
    std::fs::create_dir_all(&ctx2).unwrap();
    std::fs::write(ctx2.join("f"), "never pushed").unwrap();
    env.ok(&["import", ctx2.to_str().unwrap(), &pushed]);
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
        vec!["push", "-q", &again],
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
        vec!["pull", "-q", &pulled],
        vec!["push", "-q", &pushed],
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

/// An image worth transferring (busybox and 4 MB of random bytes in a
/// second layer) pushed straight to `reg` as `faults/img:1`; its ID.
fn seed_image(reg: &TestRegistry) -> Option<String> {
    let seed = Env::new();
    seed.import_busybox()?;
    let ctx = seed.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("data"), random_bytes(4 << 20, 0xfa17)).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox:latest\nCOPY data /data\n").unwrap();
    let name = format!("{}/faults/img:1", reg.host);
    seed.ok(&["build", "-q", "--network", "none", "-t", &name, ctx.to_str().unwrap()]);
    seed.ok(&["push", "-q", &name]);
    Some(seed.ok(&["inspect", "-f", "{{.Id}}", &name]).trim().to_string())
}

/// A command through a failing proxy must end: a hang detector (not a
/// limit on speed) kills it after this long.
const HANG: Duration = Duration::from_secs(600);

/// Runs strata, killed (and the test failed) if it hangs.
fn run_bounded(env: &Env, a: &[&str]) -> (std::process::Output, Duration) {
    let mut c = strata_group(env, &common::campaign::args(a));
    c.stdin(Stdio::null());
    let child = c.spawn().unwrap();
    let pgid = child.id();
    let t = Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while t.elapsed() < HANG {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            kill_group(pgid);
            true
        })
    };
    let o = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(!dog.join().unwrap(), "strata {a:?} hung for {HANG:?} and was killed");
    (o, t.elapsed())
}

/// A mix of every fault, each request its own draw.
fn mixed_faults(_: &str, rng: &mut Rng) -> Fault {
    match rng.below(100) {
        0..=54 => Fault::Pass,
        55..=64 => Fault::Drop,
        65..=74 => Fault::Cut(100 + rng.below(64 << 10) as usize),
        75..=79 => Fault::Stall(Duration::from_millis(500 + rng.below(1500))),
        80..=85 => Fault::Status(503, (rng.below(2) == 0).then_some(1), "injected: unavailable"),
        86..=91 => Fault::Status(500, None, "injected: internal error"),
        _ => Fault::Status(429, Some(1), "injected: slow down"),
    }
}

/// Pull and push through a proxy that drops, cuts off, stalls and answers
/// 500/503/429: each retries and finishes with the right image
/// (`STRATA_FAULT_ROUNDS` rounds, 3 in CI; `scripts/campaign/faults.sh`).
#[test]
fn pull_and_push_through_a_failing_proxy() {
    let reg = TestRegistry::strata();
    let Some(id) = seed_image(&reg) else { return };
    let (rng, seed) = Rng::new("STRATA_FAULT_SEED", "proxy");
    let proxy = FaultProxy::start(&reg.host, rng, Box::new(mixed_faults));
    let at = format!("(STRATA_FAULT_SEED={seed})");
    let rounds: usize = common::campaign::env_number("STRATA_FAULT_ROUNDS", 3);
    for round in 0..rounds {
        let env = Env::new();
        let name = format!("{}/faults/img:1", proxy.host);
        let (o, took) = run_bounded(&env, &["pull", &name]);
        assert!(
            o.status.success(),
            "round {round}: the pull through the proxy failed after {took:?} {at}: {}\n{}",
            stderr_of(&o),
            proxy.summary()
        );
        assert_eq!(
            env.ok(&["inspect", "-f", "{{.Id}}", &name]).trim(),
            id,
            "round {round} {at}"
        );
        assert_consistent(&env, "a pull through the proxy");
        // Pushed back under another name through the proxy, then pulled
        // straight from the registry: the same image.
        let pushed = format!("{}/faults/pushed{round}:1", proxy.host);
        env.ok(&["tag", &name, &pushed]);
        let (o, took) = run_bounded(&env, &["push", &pushed]);
        assert!(
            o.status.success(),
            "round {round}: the push through the proxy failed after {took:?} {at}: {}\n{}",
            stderr_of(&o),
            proxy.summary()
        );
        let direct = format!("{}/faults/pushed{round}:1", reg.host);
        let other = Env::new();
        other.ok(&["pull", "-q", &direct]);
        assert_eq!(
            other.ok(&["inspect", "-f", "{{.Id}}", &direct]).trim(),
            id,
            "round {round} {at}"
        );
    }
    eprintln!("through the failing proxy: {} {at}", proxy.summary());
    assert!(
        proxy.faults() > 10,
        "the proxy injected too few faults: {}",
        proxy.summary()
    );
}

/// A registry that keeps failing: pull and push give up after their
/// retries, with the registry's own message.
#[test]
fn a_registry_that_keeps_failing_fails_with_its_message() {
    let reg = TestRegistry::strata();
    let Some(_) = seed_image(&reg) else { return };
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    for (fault, says) in [
        (
            Fault::Status(503, None, "injected: down for maintenance"),
            "down for maintenance",
        ),
        (
            Fault::Status(503, Some(1), "injected: back in a second"),
            "back in a second",
        ),
        // Longer than the client waits: it fails at once.
        (
            Fault::Status(429, Some(3600), "injected: come back in an hour"),
            "come back in an hour",
        ),
    ] {
        let proxy = FaultProxy::start(
            &reg.host,
            Rng::new("STRATA_FAULT_SEED", "x").0,
            Box::new(move |_, _| fault),
        );
        let name = format!("{}/faults/img:1", proxy.host);
        let (o, took) = run_bounded(&env, &["pull", "-q", &name]);
        let err = stderr_of(&o);
        assert!(!o.status.success(), "a pull from a failing registry succeeded");
        assert!(
            err.contains(says),
            "the pull's error does not carry the registry's message: {err}"
        );
        eprintln!(
            "pull, {fault:?}: failed after {took:?} and {} requests: {}",
            proxy.log.lock().unwrap().len(),
            err.trim()
        );
        assert!(
            proxy.log.lock().unwrap().len() >= 5 || matches!(fault, Fault::Status(429, Some(3600), _)),
            "no retry: {}",
            proxy.summary()
        );
    }
    // A push, the same.
    let proxy = FaultProxy::start(
        &reg.host,
        Rng::new("STRATA_FAULT_SEED", "y").0,
        Box::new(|_, _| Fault::Status(503, None, "injected: read-only maintenance")),
    );
    let name = format!("{}/faults/push:1", proxy.host);
    env.ok(&["tag", "busybox:latest", &name]);
    let (o, took) = run_bounded(&env, &["push", &name]);
    let err = stderr_of(&o);
    assert!(!o.status.success(), "a push to a failing registry succeeded");
    assert!(
        err.contains("read-only maintenance"),
        "the push's error does not carry the registry's message: {err}"
    );
    eprintln!("push, 503: failed after {took:?}: {}", err.trim());
}

/// `strata registry serve` on SeaweedFS's S3, its own process group.
fn s3_registry(weed: &seaweed::Weed, dir: &Path) -> (std::process::Child, String) {
    for _ in 0..5 {
        let port = common::free_port();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "http: {{ addr: \"127.0.0.1:{port}\" }}\nstorage:\n  s3: {{ bucket: registry, region: us-east-1, regionendpoint: \"{}\", accesskey: {}, secretkey: {}, rootdirectory: /faults, forcepathstyle: true }}\nlog: {{ accesslog: {{ disabled: true }} }}\n",
                weed.s3_endpoint(),
                seaweed::KEY,
                seaweed::SECRET
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(["registry", "serve", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.spawn().unwrap();
        let host = format!("127.0.0.1:{port}");
        for _ in 0..300 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if common::get_v2(&host).is_some_and(|a| a.starts_with("HTTP/1.1 200")) {
                return (child, host);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(child.id());
        let _ = child.wait();
    }
    panic!("the S3 registry did not start");
}

/// SeaweedFS killed and started again under a push to the S3-backed
/// registry: the push completes after retries, and the image pulls back
/// whole.
#[test]
fn seaweedfs_restarted_during_a_push() {
    let env = Env::new();
    let work = tempfile::tempdir().unwrap();
    let Some(mut weed) = seaweed::Weed::start(&work.path().join("weed")) else {
        return;
    };
    weed.wait_listening();
    if env.import_busybox().is_none() {
        return;
    }
    let (mut registry, host) = s3_registry(&weed, work.path());
    // Ready when a small push goes through (the bucket made, the filer up).
    let small = format!("{host}/faults/small:1");
    env.ok(&["tag", "busybox:latest", &small]);
    let t = Instant::now();
    while !env.run(&["push", "-q", &small]).status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "SeaweedFS never took a push: {}",
            weed.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Three layers of 8 MB random bytes: a push long enough to restart under.
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for i in 0..3 {
        std::fs::write(ctx.join(format!("d{i}")), random_bytes(8 << 20, 0xd00d + i)).unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:latest\nCOPY d0 /d0\nCOPY d1 /d1\nCOPY d2 /d2\n",
    )
    .unwrap();
    let name = format!("{host}/faults/big:1");
    env.ok(&["build", "-q", "--network", "none", "-t", &name, ctx.to_str().unwrap()]);
    let id = env.ok(&["inspect", "-f", "{{.Id}}", &name]).trim().to_string();

    let weed_dir = work.path().join("weed");
    let stored = || -> u64 {
        common::sh_ok(&format!("du -sb {} | cut -f1", weed_dir.display()))
            .trim()
            .parse()
            .unwrap()
    };
    let before = stored();
    let mut push = strata_group(&env, &common::campaign::args(&["push", &name]))
        .spawn()
        .unwrap();
    // Under way: SeaweedFS has taken the first megabytes of the layers.
    while stored() < before + (2 << 20) {
        assert!(
            push.try_wait().unwrap().is_none(),
            "the push ended before SeaweedFS could be restarted under it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(push.try_wait().unwrap().is_none(), "the push ended before the restart");
    let restart = Instant::now();
    weed.restart();
    weed.wait_listening();
    let down = restart.elapsed();
    let t = Instant::now();
    let o = loop {
        if push.try_wait().unwrap().is_some() {
            break push.wait_with_output().unwrap();
        }
        if t.elapsed() > HANG {
            kill_group(push.id());
            panic!("the push hung for {HANG:?} after SeaweedFS's restart");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        o.status.success(),
        "the push did not complete after SeaweedFS's restart (down {down:?}): {}\nSeaweedFS: {}",
        stderr_of(&o),
        weed.log()
    );
    eprintln!(
        "push across a SeaweedFS restart (down {down:?}): {}",
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("Retrying") || l.contains("digest"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let other = Env::new();
    other.ok(&["pull", "-q", &name]);
    assert_eq!(other.ok(&["inspect", "-f", "{{.Id}}", &name]).trim(), id);
    assert_consistent(&other, "the image pulled back from the S3 registry");
    kill_group(registry.id());
    let _ = registry.wait();
}
