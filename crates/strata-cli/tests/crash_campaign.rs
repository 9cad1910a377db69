//! The crash campaign (#16 item 1): each operation is started, killed with
//! SIGKILL (its whole process group) at a random moment, and then:
//! the next strata command succeeds; `system check` after it reports no
//! problem at all (a killed process's leftovers are removed by that next
//! command by itself); no mount is left under the store; and repeating the
//! operation succeeds with the same result (image ID, digest, listing).
//!
//! `STRATA_CRASH_TRIALS` trials per operation (10 by default, the CI mode;
//! `scripts/campaign/crash.sh` runs 100); `STRATA_CRASH_SEED` repeats a
//! run's kill moments (every failure prints its seed, trial and delay).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::campaign::{Rng, args, env_number, kill_group, mounts_under, strata_group};
use common::{Env, TestRegistry, free_port, get_v2};

fn trials() -> usize {
    env_number("STRATA_CRASH_TRIALS", 10)
}

fn strata(env: &Env, args: &[String]) -> Command {
    strata_group(env, args)
}

fn ok(env: &Env, args: &[String]) -> String {
    let o = strata(env, args).output().unwrap();
    assert!(
        o.status.success(),
        "strata {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Starts `cmd`, kills its process group after `delay`; whether it had
/// finished by then.
fn run_and_kill(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pgid = child.id();
    let deadline = Instant::now() + delay;
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            return true;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    kill_group(pgid);
    let _ = child.wait();
    false
}

/// An operation of the campaign.
struct Op<'a> {
    name: &'static str,
    env: &'a Env,
    /// Brings the store to the operation's starting state.
    prepare: Box<dyn Fn() + 'a>,
    /// The strata command killed (arguments after `--root`).
    command: Box<dyn Fn() -> Command + 'a>,
    /// What must be the same after the operation, killed and repeated or not.
    result: Box<dyn Fn() -> String + 'a>,
    /// What is waited for before the checks after a kill (what the killed
    /// process legitimately left running).
    after_kill: Box<dyn Fn() + 'a>,
    /// A removal: repeated after it completed, it may say "No such …".
    removal: bool,
    /// The next command after a kill, which removes what the killed one
    /// left (None: `images -q`; a container's mount is the next container
    /// command's to release, a build's step mount the next build's).
    next: Option<Vec<String>>,
}

impl Op<'_> {
    fn campaign(&self) {
        let (mut rng, seed) = Rng::new("STRATA_CRASH_SEED", self.name);
        // The first run warms what later runs find ready (unpacked
        // layers); the second one's time spreads the kills.
        (self.prepare)();
        let first = (self.command)().output().unwrap();
        assert!(
            first.status.success(),
            "{}: the uninterrupted run failed: {}",
            self.name,
            String::from_utf8_lossy(&first.stderr)
        );
        (self.prepare)();
        let t = Instant::now();
        let st = (self.command)().output().unwrap();
        let took = t.elapsed();
        assert!(
            st.status.success(),
            "{}: the uninterrupted run failed: {}",
            self.name,
            String::from_utf8_lossy(&st.stderr)
        );
        let want = (self.result)();
        let n = trials();
        let mut finished = 0;
        for trial in 0..n {
            (self.prepare)();
            // Kill moments over the whole run, a few just after it would end.
            let span = took.as_micros() as u64 * 11 / 10 + 1;
            let delay = Duration::from_micros(rng.below(span));
            let at = format!(
                "{}: trial {trial} of {n}, killed after {delay:?} of ~{took:?} (STRATA_CRASH_SEED={seed})",
                self.name
            );
            if run_and_kill((self.command)(), delay) {
                finished += 1;
            }
            (self.after_kill)();
            self.check_store(&at, true);
            let o = (self.command)().output().unwrap();
            let gone = self.removal && String::from_utf8_lossy(&o.stderr).to_lowercase().contains("no such");
            assert!(
                o.status.success() || gone,
                "{at}: repeating it failed: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!((self.result)(), want, "{at}: repeating it gave another result");
            self.check_store(&format!("{at}, then repeated"), false);
        }
        eprintln!(
            "{}: {n} trials clean ({} killed midway, {finished} had finished; seed {seed})",
            self.name,
            n - finished
        );
    }

    /// The next command, then `system check`, then the mounts. `adoptable`:
    /// right after a kill, blobs and unpacked layers the killed process
    /// finished but had not named yet may be reported (the repeated
    /// operation adopts them: it must leave the check clean); nothing else.
    fn check_store(&self, at: &str, adoptable: bool) {
        let env = self.env;
        let next = match &self.next {
            Some(a) => env.run(&a.iter().map(String::as_str).collect::<Vec<_>>()),
            None => env.run(&["images", "-q"]),
        };
        assert!(
            next.status.success(),
            "{at}: the next command failed: {}",
            String::from_utf8_lossy(&next.stderr)
        );
        let check = env.run(&["system", "check"]);
        let out = String::from_utf8_lossy(&check.stdout).into_owned();
        let problems: Vec<&str> = out
            .lines()
            .filter(|l| !l.starts_with("checked "))
            .filter(|l| {
                !(adoptable
                    && (l.ends_with("is orphaned: nothing references it")
                        || l.ends_with("is not used by any image, container or build cache entry")))
            })
            .collect();
        assert!(
            problems.is_empty() && (adoptable || out.contains("no problems")),
            "{at}: system check after the next command:\n{out}{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let m = mounts_under(&env.root());
        assert!(m.is_empty(), "{at}: mounts left: {m:?}");
    }
}

/// Waits (a bounded while) until no container of `env` runs.
fn no_running_container(env: &Env) {
    for _ in 0..600 {
        if ok(env, &args(&["ps", "-q"])).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn no_checks() -> Box<dyn Fn()> {
    Box::new(|| {})
}

/// A root filesystem worth killing a transfer in: busybox, 1,500 small
/// files and a 12 MB file of random bytes (gzip cannot shrink it).
fn big_rootfs(env: &Env) -> Option<PathBuf> {
    let bb = env.busybox_rootfs()?;
    let dir = env.path("big-rootfs");
    if !dir.exists() {
        let st = Command::new("cp").arg("-a").arg(&bb).arg(&dir).status().unwrap();
        assert!(st.success());
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut x: u64 = 0x1234_5678;
        let mut bytes = |n: usize| {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>()
        };
        for i in 0..1500 {
            std::fs::write(data.join(format!("f{i:04}")), bytes(2048)).unwrap();
        }
        std::fs::write(data.join("blob"), bytes(12 << 20)).unwrap();
    }
    Some(dir)
}

/// `big:1` in the store (imported with SOURCE_DATE_EPOCH=0).
fn import_big(env: &Env) -> Option<String> {
    let dir = big_rootfs(env)?;
    Some(
        ok(env, &args(&["import", dir.to_str().unwrap(), "big:1"]))
            .trim()
            .to_string(),
    )
}

fn image_id(env: &Env, name: &str) -> String {
    ok(env, &args(&["inspect", "-f", "{{.Id}}", name])).trim().to_string()
}

fn rmi(env: &Env, name: &str) {
    let _ = env.run(&["rmi", "-f", name]);
}

#[test]
fn crash_import() {
    let env = Env::new();
    let Some(dir) = big_rootfs(&env) else { return };
    let tar = env.path("big.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    Op {
        name: "import",
        env: &env,
        prepare: Box::new(|| rmi(&env, "imp:1")),
        command: Box::new(|| strata(&env, &args(&["import", tar.to_str().unwrap(), "imp:1"]))),
        result: Box::new(|| image_id(&env, "imp:1")),
        after_kill: no_checks(),
        removal: false,
        next: None,
    }
    .campaign();
}

#[test]
fn crash_load() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    let archive = env.path("big-saved.tar");
    ok(&env, &args(&["save", "-o", archive.to_str().unwrap(), "big:1"]));
    rmi(&env, "big:1");
    Op {
        name: "load",
        env: &env,
        prepare: Box::new(|| rmi(&env, "big:1")),
        command: Box::new(|| strata(&env, &args(&["load", "-i", archive.to_str().unwrap()]))),
        result: Box::new(|| image_id(&env, "big:1")),
        after_kill: no_checks(),
        removal: false,
        next: None,
    }
    .campaign();
}

#[test]
fn crash_pull() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    let reg = TestRegistry::strata();
    let name = format!("{}/crash/big:1", reg.host);
    ok(&env, &args(&["tag", "big:1", &name]));
    ok(&env, &args(&["push", &name]));
    rmi(&env, "big:1");
    Op {
        name: "pull",
        env: &env,
        prepare: Box::new(|| rmi(&env, &name)),
        command: Box::new(|| strata(&env, &args(&["pull", "-q", &name]))),
        result: Box::new(|| image_id(&env, &name)),
        after_kill: no_checks(),
        removal: false,
        next: None,
    }
    .campaign();
}

#[test]
fn crash_push() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    // A fresh registry per trial, so every push sends every blob; the
    // killed push's registry is checked by the repeated push.
    let reg = std::cell::RefCell::new(TestRegistry::strata());
    let name = || format!("{}/crash/push:1", reg.borrow().host);
    let digest = std::cell::RefCell::new(String::new());
    Op {
        name: "push",
        env: &env,
        prepare: Box::new(|| {
            *reg.borrow_mut() = TestRegistry::strata();
            ok(&env, &args(&["tag", "big:1", &name()]));
        }),
        command: Box::new(|| strata(&env, &args(&["push", &name()]))),
        result: Box::new(|| {
            // The digest the registry serves, pulled back into a fresh store.
            let other = Env::new();
            ok(&other, &args(&["pull", "-q", &name()]));
            *digest.borrow_mut() = image_id(&other, &name());
            let d = digest.borrow().clone();
            rmi(&env, &name());
            d
        }),
        after_kill: no_checks(),
        removal: false,
        next: None,
    }
    .campaign();
}

const DOCKERFILE: &str = "FROM big:1\n\
RUN mkdir -p /made && for i in $(seq 1 300); do echo $i > /made/f$i; done && cp /data/blob /made/blob\n\
COPY ctx /ctx\n\
RUN rm -rf /data/f0* && ln /made/f1 /made/link\n";

#[test]
fn crash_build() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    let dir = env.path("ctx-dir");
    std::fs::create_dir_all(dir.join("ctx/sub")).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    for i in 0..200 {
        std::fs::write(dir.join(format!("ctx/sub/c{i}")), format!("{i}\n").repeat(50)).unwrap();
    }
    // The next build removes what a killed one left.
    let next_ctx = env.path("next-ctx");
    std::fs::create_dir_all(&next_ctx).unwrap();
    std::fs::write(next_ctx.join("Dockerfile"), "FROM big:1\nLABEL next=1\n").unwrap();
    Op {
        name: "build",
        env: &env,
        // Cold: no image and no build cache.
        prepare: Box::new(|| {
            rmi(&env, "built:1");
            ok(&env, &args(&["buildx", "prune", "-a", "-f"]));
        }),
        command: Box::new(|| {
            strata(
                &env,
                &args(&[
                    "build",
                    "-q",
                    "--network",
                    "none",
                    "-t",
                    "built:1",
                    dir.to_str().unwrap(),
                ]),
            )
        }),
        result: Box::new(|| image_id(&env, "built:1")),
        after_kill: no_checks(),
        removal: false,
        next: Some(args(&[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "next:1",
            next_ctx.to_str().unwrap(),
        ])),
    }
    .campaign();
}

#[test]
fn crash_commit() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    ok(
        &env,
        &args(&[
            "run",
            "--name",
            "src",
            "--network",
            "none",
            "big:1",
            "sh",
            "-c",
            "mkdir /new && cp -a /data /new/ && rm -rf /data/f1* && ln /new/data/blob /new/hl",
        ]),
    );
    Op {
        name: "commit",
        env: &env,
        prepare: Box::new(|| rmi(&env, "committed:1")),
        command: Box::new(|| strata(&env, &args(&["commit", "src", "committed:1"]))),
        // The layer's content (the image ID holds the commit's time).
        result: Box::new(|| {
            ok(
                &env,
                &args(&["inspect", "-f", "{{json .RootFS.Layers}}", "committed:1"]),
            )
        }),
        after_kill: no_checks(),
        removal: false,
        next: None,
    }
    .campaign();
}

#[test]
fn crash_rmi_and_prune() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    let archive = env.path("big-saved.tar");
    ok(&env, &args(&["save", "-o", archive.to_str().unwrap(), "big:1"]));
    let images = || ok(&env, &args(&["images", "-a", "-q", "--no-trunc"]));
    for (name, cmd) in [
        ("rmi", args(&["rmi", "big:1"])),
        ("image prune -a", args(&["image", "prune", "-a", "-f"])),
        ("system prune -a", args(&["system", "prune", "-a", "--volumes", "-f"])),
    ] {
        Op {
            name,
            env: &env,
            prepare: Box::new(|| {
                ok(&env, &args(&["load", "-i", archive.to_str().unwrap()]));
                // Unpacked layers too, so the removal has them to remove.
                ok(&env, &args(&["run", "--rm", "--network", "none", "big:1", "true"]));
            }),
            command: Box::new(|| strata(&env, &cmd)),
            result: Box::new(images),
            after_kill: no_checks(),
            removal: true,
            next: None,
        }
        .campaign();
    }
}

#[test]
fn crash_run_rm_and_volume_rm() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    Op {
        name: "run --rm",
        env: &env,
        prepare: Box::new(|| {}),
        command: Box::new(|| {
            strata(
                &env,
                &args(&[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "big:1",
                    "sh",
                    "-c",
                    "cp /data/blob /tmp/b && md5sum /data/f0001",
                ]),
            )
        }),
        // A killed foreground `run` leaves its container running, as
        // docker's and podman's (the container is not the client's); it is
        // removed once it ends. The result is taken when none runs.
        result: Box::new(|| {
            no_running_container(&env);
            ok(&env, &args(&["ps", "-a", "-q"]))
        }),
        after_kill: Box::new(|| no_running_container(&env)),
        removal: false,
        next: Some(args(&["ps", "-a", "-q"])),
    }
    .campaign();
    Op {
        name: "rm",
        env: &env,
        prepare: Box::new(|| {
            ok(
                &env,
                &args(&[
                    "run",
                    "--name",
                    "gone",
                    "--network",
                    "none",
                    "big:1",
                    "sh",
                    "-c",
                    "cp -a /data /copy",
                ]),
            );
        }),
        command: Box::new(|| strata(&env, &args(&["rm", "-f", "gone"]))),
        result: Box::new(|| ok(&env, &args(&["ps", "-a", "-q"]))),
        after_kill: no_checks(),
        removal: true,
        next: Some(args(&["ps", "-a", "-q"])),
    }
    .campaign();
    Op {
        name: "volume rm",
        env: &env,
        prepare: Box::new(|| {
            ok(
                &env,
                &args(&[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "-v",
                    "vol:/v",
                    "big:1",
                    "sh",
                    "-c",
                    "cp -a /data /v/",
                ]),
            );
        }),
        command: Box::new(|| strata(&env, &args(&["volume", "rm", "vol"]))),
        result: Box::new(|| ok(&env, &args(&["volume", "ls", "-q"]))),
        after_kill: no_checks(),
        removal: true,
        next: None,
    }
    .campaign();
}

/// `strata registry serve` on `storage`, in its own process group.
struct Server {
    child: std::process::Child,
    host: String,
}

impl Server {
    fn start(storage: &Path, port: u16) -> Option<Server> {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}"), "--root"])
            .arg(storage)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.spawn().unwrap();
        let host = format!("127.0.0.1:{port}");
        for _ in 0..500 {
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            if get_v2(&host).is_some_and(|a| a.starts_with("HTTP/1.1 200")) {
                return Some(Server { child, host });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the registry on {host} did not answer");
    }

    /// On `port` if it is still free, else on another.
    fn start_near(storage: &Path, port: u16) -> Server {
        Server::start(storage, port)
            .or_else(|| (0..5).find_map(|_| Server::start(storage, free_port())))
            .expect("no registry could be started")
    }

    fn kill(mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// `strata registry gc` on `storage` (nothing kept for being young).
fn registry_gc(storage: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["registry", "gc", "--grace", "0s", "--upload-max-age", "0s", "--root"])
        .arg(storage)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c
}

fn gc_ok(storage: &Path, extra: &[&str]) -> String {
    let o = registry_gc(storage, extra).output().unwrap();
    assert!(
        o.status.success(),
        "registry gc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// After a gc: a dry run finds nothing more to delete.
fn assert_nothing_orphaned(storage: &Path, at: &str) {
    let dry = gc_ok(storage, &["--dry-run", "--delete-untagged"]);
    assert!(
        dry.contains("would delete 0 manifests, 0 blobs (0 bytes), 0 upload sessions, 0 links"),
        "{at}: gc left something: {dry}"
    );
}

/// Every file under `dir` with its size.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push(format!("{} {}", e.path().strip_prefix(dir).unwrap().display(), m.len()));
            }
        }
    }
    out.sort();
    out
}

/// The registry killed during a push: the client's repeated push completes,
/// `registry gc` then leaves nothing orphaned, and the image pulls back
/// whole.
#[test]
fn crash_registry_upload() {
    let env = Env::new();
    let Some(id) = import_big(&env) else { return };
    let (mut rng, seed) = Rng::new("STRATA_CRASH_SEED", "registry upload");
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("storage");
    // One whole push, to spread the kills over it.
    let server = Server::start_near(&storage, free_port());
    let name = format!("{}/up/big:1", server.host);
    ok(&env, &args(&["tag", "big:1", &name]));
    let t = Instant::now();
    ok(&env, &args(&["push", &name]));
    let took = t.elapsed();
    rmi(&env, &name);
    server.kill();
    let n = trials();
    for trial in 0..n {
        std::fs::remove_dir_all(&storage).unwrap();
        let server = Server::start_near(&storage, free_port());
        let port: u16 = server.host.rsplit(':').next().unwrap().parse().unwrap();
        let name = format!("{}/up/big:1", server.host);
        ok(&env, &args(&["tag", "big:1", &name]));
        let delay = Duration::from_micros(rng.below(took.as_micros() as u64 * 11 / 10 + 1));
        let at = format!(
            "registry upload: trial {trial} of {n}, the registry killed after {delay:?} of ~{took:?} (STRATA_CRASH_SEED={seed})"
        );
        let mut push = strata(&env, &args(&["push", &name])).spawn().unwrap();
        std::thread::sleep(delay);
        server.kill();
        let _ = push.wait();
        let server = Server::start_near(&storage, port);
        let name2 = format!("{}/up/big:1", server.host);
        if name2 != name {
            ok(&env, &args(&["tag", "big:1", &name2]));
        }
        ok(&env, &args(&["push", &name2]));
        gc_ok(&storage, &[]);
        assert_nothing_orphaned(&storage, &at);
        let other = Env::new();
        ok(&other, &args(&["pull", "-q", &name2]));
        assert_eq!(image_id(&other, &name2), id, "{at}: pulled back");
        let check = other.run(&["system", "check"]);
        assert!(
            check.status.success(),
            "{at}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        rmi(&env, &name);
        rmi(&env, &name2);
        server.kill();
    }
    eprintln!("registry upload: {n} trials clean (seed {seed})");
}

/// `registry gc` killed midway, then run again: the same storage as one
/// uninterrupted gc, nothing orphaned, the tagged image still whole.
#[test]
fn crash_registry_gc() {
    let env = Env::new();
    if import_big(&env).is_none() {
        return;
    }
    let (mut rng, seed) = Rng::new("STRATA_CRASH_SEED", "registry gc");
    let work = tempfile::tempdir().unwrap();
    let pristine = work.path().join("pristine");
    let server = Server::start_near(&pristine, free_port());
    // big:1 pushed, then replaced under its tag by a small image: big's
    // manifest is untagged and its layer unreferenced.
    let name = format!("{}/gc/img:1", server.host);
    ok(&env, &args(&["tag", "big:1", &name]));
    ok(&env, &args(&["push", &name]));
    let small = env.path("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("f"), "small").unwrap();
    ok(&env, &args(&["import", small.to_str().unwrap(), &name]));
    ok(&env, &args(&["push", &name]));
    let small_id = image_id(&env, &name);
    let host = server.host.clone();
    server.kill();
    let storage = work.path().join("storage");
    let restore = || {
        let _ = std::fs::remove_dir_all(&storage);
        let st = Command::new("cp")
            .arg("-a")
            .arg(&pristine)
            .arg(&storage)
            .status()
            .unwrap();
        assert!(st.success());
    };
    restore();
    let t = Instant::now();
    gc_ok(&storage, &["--delete-untagged"]);
    let took = t.elapsed();
    let want = files(&storage);
    let n = trials();
    for trial in 0..n {
        restore();
        let delay = Duration::from_micros(rng.below(took.as_micros() as u64 * 11 / 10 + 1));
        let at = format!(
            "registry gc: trial {trial} of {n}, killed after {delay:?} of ~{took:?} (STRATA_CRASH_SEED={seed})"
        );
        run_and_kill(registry_gc(&storage, &["--delete-untagged"]), delay);
        gc_ok(&storage, &["--delete-untagged"]);
        assert_eq!(files(&storage), want, "{at}: the storage differs from one whole gc's");
        assert_nothing_orphaned(&storage, &at);
    }
    // The tagged image survives whole.
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let server = Server::start_near(&storage, port);
    let name = format!("{}/gc/img:1", server.host);
    let other = Env::new();
    ok(&other, &args(&["pull", "-q", &name]));
    assert_eq!(image_id(&other, &name), small_id);
    server.kill();
    eprintln!("registry gc: {n} trials clean (seed {seed})");
}
