//! The concurrency campaign (#16 item 2): eight workers, each a loop of
//! strata processes on one store, for `STRATA_CONCURRENCY_SECS` (15 by
//! default, the CI mode; `scripts/campaign/concurrency.sh` runs 60 s three
//! times): pulls of one image all pull and of each worker's own, builds of
//! one Dockerfile, tag/rmi, image and build-cache prune, run/rm, save/load,
//! and inspect + run of whatever the store lists.
//!
//! Invariants, throughout and at the end:
//! - no lost tag: each worker owns tags (`w<N>-…`) and checks after every
//!   step that all it has not removed are there and resolve;
//! - no image with a missing layer: any listed image inspects and runs;
//!   `system check` is clean at the end;
//! - no error but the documented conflicts, which name the other party
//!   (a container or the process making one), or "No such image" for a
//!   name another worker may remove;
//! - no deadlock: a watchdog kills any strata process running longer than
//!   `STRATA_CONCURRENCY_HANG_SECS` (300) and fails the campaign — a hang
//!   detector, far beyond any step's time, not a limit on speed.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::campaign::{Rng, args, check_problems, env_number, kill_group, mounts_under, strata_group};
use common::{Env, TestRegistry};

const WORKERS: usize = 8;

/// A worker's end: its first failure, the tags it owns, its steps and the
/// documented conflicts it met.
type Outcome = (Result<(), String>, BTreeSet<String>, u64, u64);

const DOCKERFILE: &str = "FROM busybox:latest\nRUN echo built > /built && mkdir /d && for i in $(seq 1 50); do echo $i > /d/f$i; done\nCOPY ctx.txt /ctx.txt\n";

/// The strata process each worker is running, for the watchdog.
#[derive(Default)]
struct Running {
    current: Option<(u32, Instant, String)>,
}

struct Shared {
    env: Env,
    registry: String,
    ctx: PathBuf,
    running: Vec<Mutex<Running>>,
    /// Set by the watchdog when it killed a hung process.
    hung: Mutex<Vec<String>>,
    /// `image prune -a` runs under way, and the tags they untagged: a
    /// worker's tag may go that way (removed, not lost).
    pruning: AtomicUsize,
    pruned: Mutex<BTreeSet<String>>,
    stop: AtomicBool,
}

/// A strata command's outcome.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Shared {
    /// Runs strata as worker `w`, watched by the watchdog.
    fn run(&self, w: usize, a: &[&str]) -> Out {
        let child = strata_group(&self.env, &args(a)).spawn().unwrap();
        self.running[w].lock().unwrap().current = Some((child.id(), Instant::now(), a.join(" ")));
        let o = child.wait_with_output().unwrap();
        self.running[w].lock().unwrap().current = None;
        Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A refusal strata documents, naming the other party: a container
/// (`container 0123456789ab`) or the process making one (`(process 123)`):
/// rmi's "image is being used by …" and "… is using its referenced image".
fn documented_conflict(stderr: &str) -> bool {
    if !stderr.contains("is being used by ") && !stderr.contains("is using its referenced image") {
        return false;
    }
    let followed = |prefix: &str, ok: fn(char) -> bool| {
        stderr
            .match_indices(prefix)
            .any(|(i, _)| stderr[i + prefix.len()..].chars().next().is_some_and(ok))
    };
    followed("container ", |c| c.is_ascii_hexdigit()) || followed("(process ", |c| c.is_ascii_digit())
}

fn no_such_image(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("no such image") || s.contains("no such object")
}

struct Worker<'a> {
    n: usize,
    sh: &'a Shared,
    rng: Rng,
    /// Tags this worker made and has not removed: they must stay.
    owned: BTreeSet<String>,
    counter: u64,
    ops: u64,
    conflicts: u64,
    /// A container it made and keeps for a while.
    kept: Option<String>,
}

impl Worker<'_> {
    fn fail(&self, what: &str, o: &Out) -> String {
        format!(
            "worker {}: {what} failed:\nstdout: {}\nstderr: {}",
            self.n, o.stdout, o.stderr
        )
    }

    /// A step that must succeed.
    fn ok(&mut self, a: &[&str]) -> Result<String, String> {
        let o = self.sh.run(self.n, a);
        if o.ok {
            Ok(o.stdout)
        } else {
            Err(self.fail(&format!("strata {}", a.join(" ")), &o))
        }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("w{}-{what}:{}", self.n, self.counter)
    }

    /// Every owned tag is there and resolves to an image that inspects.
    fn check_owned(&mut self) -> Result<(), String> {
        if self.owned.is_empty() {
            return Ok(());
        }
        let mut a = vec!["image", "inspect", "-f", "{{.Id}} {{len .RootFS.Layers}}"];
        let names: Vec<String> = self.owned.iter().cloned().collect();
        a.extend(names.iter().map(String::as_str));
        let o = self.sh.run(self.n, &a);
        if o.ok {
            return Ok(());
        }
        // One by one: a tag that a prune -a untagged is removed, not lost.
        for name in names {
            let o = self.sh.run(self.n, &["image", "inspect", "-f", "{{.Id}}", &name]);
            if !o.ok && !self.pruned_away(&name) {
                return Err(self.fail(&format!("a lost tag? inspect of {name}"), &o));
            }
        }
        Ok(())
    }

    /// Whether an `image prune -a` untagged `name` (once none is running);
    /// forgets it then.
    fn pruned_away(&mut self, name: &str) -> bool {
        while self.sh.pruning.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let gone = self.sh.pruned.lock().unwrap().contains(name);
        if gone {
            self.owned.remove(name);
        }
        gone
    }

    /// `image prune -a`, recording what it untagged.
    fn prune_all(&mut self) -> Result<(), String> {
        self.sh.pruning.fetch_add(1, Ordering::SeqCst);
        let o = self.sh.run(self.n, &["image", "prune", "-a", "-f"]);
        {
            let mut pruned = self.sh.pruned.lock().unwrap();
            for l in o.stdout.lines() {
                if let Some(t) = l.strip_prefix("untagged: ") {
                    pruned.insert(t.to_string());
                }
            }
        }
        self.sh.pruning.fetch_sub(1, Ordering::SeqCst);
        if o.ok {
            Ok(())
        } else {
            Err(self.fail("image prune -a", &o))
        }
    }

    /// Untags one of its own tags; a conflict keeps it.
    fn rmi_own(&mut self) -> Result<(), String> {
        match self.pick_owned() {
            Some(name) => self.rmi_own_name(&name),
            None => Ok(()),
        }
    }

    fn pick_owned(&mut self) -> Option<String> {
        if self.owned.is_empty() {
            return None;
        }
        let i = self.rng.below(self.owned.len() as u64) as usize;
        self.owned.iter().nth(i).cloned()
    }

    fn step(&mut self) -> Result<(), String> {
        let reg = self.sh.registry.clone();
        match self.rng.below(10) {
            // The image every worker pulls, tagged as its own.
            0 => {
                let shared = format!("{reg}/campaign/shared:1");
                self.ok(&["pull", "-q", &shared])?;
                let t = self.fresh("pulled");
                let o = self.sh.run(self.n, &["tag", &shared, &t]);
                if o.ok {
                    self.owned.insert(t);
                } else if !no_such_image(&o.stderr) {
                    // Another worker may have untagged the shared name.
                    return Err(self.fail(&format!("tag {shared} {t}"), &o));
                }
            }
            // Its own image, pulled after removing it now and then.
            1 => {
                let mine = format!("{reg}/campaign/w{}:1", self.n);
                if self.rng.below(2) == 0 {
                    let o = self.sh.run(self.n, &["rmi", &mine]);
                    if documented_conflict(&o.stderr) {
                        self.conflicts += 1;
                    } else if !o.ok && !no_such_image(&o.stderr) {
                        return Err(self.fail(&format!("rmi {mine}"), &o));
                    }
                }
                self.ok(&["pull", "-q", &mine])?;
                let o = self
                    .sh
                    .run(self.n, &["run", "--rm", "--network", "none", &mine, "cat", "/id"]);
                if !o.ok {
                    // A prune -a between the pull and the run removes it.
                    if !(no_such_image(&o.stderr) && self.pruned_away(&mine)) {
                        return Err(self.fail(&format!("run {mine}"), &o));
                    }
                } else if o.stdout.trim() != self.n.to_string() {
                    return Err(format!("worker {}: {mine} holds {:?}", self.n, o.stdout));
                }
            }
            // The same Dockerfile as everyone.
            2 => {
                let t = self.fresh("built");
                let ctx = self.sh.ctx.to_str().unwrap().to_string();
                self.ok(&["build", "-q", "--network", "none", "-t", &t, &ctx])?;
                self.owned.insert(t);
            }
            3 => {
                let t = self.fresh("tag");
                self.ok(&["tag", "busybox:latest", &t])?;
                self.owned.insert(t);
                if self.owned.len() > 6 {
                    self.rmi_own()?;
                }
            }
            4 => self.rmi_own()?,
            5 => match self.rng.below(4) {
                0 => self.prune_all()?,
                1 => drop(self.ok(&["builder", "prune", "-f"])?),
                _ => drop(self.ok(&["image", "prune", "-f"])?),
            },
            // A container of one of its images (or of its own pulled
            // image, which its rmi then meets), kept until the next time.
            6 => {
                if let Some(c) = self.kept.take() {
                    self.ok(&["rm", &c])?;
                    return self.check_owned();
                }
                let mine = format!("{reg}/campaign/w{}:1", self.n);
                let name = match self.pick_owned() {
                    Some(n) if self.rng.below(2) == 0 => n,
                    _ => mine.clone(),
                };
                let c = format!("w{}-c{}", self.n, self.counter);
                self.counter += 1;
                let o = self
                    .sh
                    .run(self.n, &["run", "--name", &c, "--network", "none", &name, "true"]);
                if !o.ok {
                    // Its own image may not be pulled (yet, or again).
                    if no_such_image(&o.stderr) && (name == mine || self.pruned_away(&name)) {
                        return self.check_owned();
                    }
                    return Err(self.fail(&format!("run {name}"), &o));
                }
                self.kept = Some(c);
            }
            // Saved, removed, loaded back under its name.
            7 => {
                let Some(name) = self.pick_owned() else { return Ok(()) };
                let file = self.sh.env.path(&format!("w{}.tar", self.n));
                let file = file.to_str().unwrap().to_string();
                let o = self.sh.run(self.n, &["save", "-o", &file, &name]);
                if !o.ok {
                    if no_such_image(&o.stderr) && self.pruned_away(&name) {
                        return self.check_owned();
                    }
                    return Err(self.fail(&format!("save {name}"), &o));
                }
                self.rmi_own_name(&name)?;
                self.ok(&["load", "-q", "-i", &file])?;
                self.owned.insert(name);
            }
            // Any image the store lists inspects and runs.
            _ => self.any_listed()?,
        }
        self.check_owned()
    }

    fn rmi_own_name(&mut self, name: &str) -> Result<(), String> {
        let o = self.sh.run(self.n, &["rmi", name]);
        if o.ok {
            self.owned.remove(name);
        } else if documented_conflict(&o.stderr) {
            self.conflicts += 1;
        } else if !(no_such_image(&o.stderr) && self.pruned_away(name)) {
            return Err(self.fail(&format!("rmi {name}"), &o));
        }
        Ok(())
    }

    /// Inspects and runs an image the listing names (by ID: another worker
    /// may remove the name; "No such image" is then the answer).
    fn any_listed(&mut self) -> Result<(), String> {
        let list = self.ok(&["images", "-q", "--no-trunc"])?;
        let ids: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let id = ids[self.rng.below(ids.len() as u64) as usize].to_string();
        let o = self
            .sh
            .run(self.n, &["image", "inspect", "-f", "{{len .RootFS.Layers}}", &id]);
        if !o.ok {
            return if no_such_image(&o.stderr) {
                Ok(())
            } else {
                Err(self.fail(&format!("inspect of the listed {id}"), &o))
            };
        }
        let o = self
            .sh
            .run(self.n, &["run", "--rm", "--network", "none", &id, "ls", "/bin/sh"]);
        if !o.ok && !no_such_image(&o.stderr) && !documented_conflict(&o.stderr) {
            return Err(self.fail(&format!("run of the listed {id}"), &o));
        }
        Ok(())
    }
}

/// Kills a strata process running longer than `bound` and says so.
fn watchdog(sh: &Shared, bound: Duration) {
    while !sh.stop.load(Ordering::SeqCst) {
        for (w, r) in sh.running.iter().enumerate() {
            let r = r.lock().unwrap();
            if let Some((pgid, since, what)) = &r.current
                && since.elapsed() > bound
            {
                sh.hung.lock().unwrap().push(format!(
                    "worker {w}: `strata {what}` hung for {:?} (killed)",
                    since.elapsed()
                ));
                kill_group(*pgid);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The images the workers pull, in a registry: one all pull, one per worker.
fn seed_registry(reg: &TestRegistry) -> Option<()> {
    let seed = Env::new();
    seed.import_busybox()?;
    for w in 0..WORKERS {
        let dir = seed.path(&format!("w{w}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM busybox:latest\nRUN echo {w} > /id\n"),
        )
        .unwrap();
        let name = format!("{}/campaign/w{w}:1", reg.host);
        seed.ok(&["build", "-q", "--network", "none", "-t", &name, dir.to_str().unwrap()]);
        seed.ok(&["push", "-q", &name]);
    }
    let shared = format!("{}/campaign/shared:1", reg.host);
    seed.ok(&["tag", &format!("{}/campaign/w0:1", reg.host), &shared]);
    seed.ok(&["push", "-q", &shared]);
    Some(())
}

fn build_context(env: &Env) -> PathBuf {
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("ctx.txt"), "the build context\n").unwrap();
    ctx
}

fn final_checks(sh: &Shared, owned: &[BTreeSet<String>]) -> Vec<String> {
    let env = &sh.env;
    let mut failures = Vec::new();
    // Every owned tag survived.
    let names = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let listed: BTreeSet<&str> = names.lines().collect();
    for t in owned.iter().flatten() {
        if !listed.contains(t.as_str()) && !sh.pruned.lock().unwrap().contains(t) {
            failures.push(format!("tag {t} was lost"));
        }
    }
    // Every image inspects and runs.
    for id in env.ok(&["images", "-q", "--no-trunc"]).lines() {
        let o = env.run(&["run", "--rm", "--network", "none", id, "ls", "/bin/sh"]);
        if !o.status.success() {
            failures.push(format!(
                "image {id} does not run: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    // The workers removed every container they made.
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    if ps.trim() != "keeper" {
        failures.push(format!("containers left: {ps}"));
    }
    if let Some(report) = check_problems(env) {
        failures.push(format!("system check at the end:\n{report}"));
    }
    let m = mounts_under(&env.root());
    if !m.is_empty() {
        failures.push(format!("mounts left: {m:?}"));
    }
    failures
}

#[test]
fn eight_workers_mixed_operations_on_one_store() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    // The base image stays through every prune -a: a container uses it.
    env.ok(&[
        "create",
        "--name",
        "keeper",
        "--network",
        "none",
        "busybox:latest",
        "true",
    ]);
    let reg = TestRegistry::strata();
    if seed_registry(&reg).is_none() {
        return;
    }
    let secs: u64 = env_number("STRATA_CONCURRENCY_SECS", 15);
    let hang = Duration::from_secs(env_number("STRATA_CONCURRENCY_HANG_SECS", 300));
    let ctx = build_context(&env);
    let sh = Arc::new(Shared {
        env,
        registry: reg.host.clone(),
        ctx,
        running: (0..WORKERS).map(|_| Mutex::new(Running::default())).collect(),
        hung: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        pruning: AtomicUsize::new(0),
        pruned: Mutex::new(BTreeSet::new()),
    });
    let (_, seed) = Rng::new("STRATA_CONCURRENCY_SEED", "");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let results: Vec<Outcome> = std::thread::scope(|s| {
        let dog = {
            let sh = &sh;
            s.spawn(move || watchdog(sh, hang))
        };
        let handles: Vec<_> = (0..WORKERS)
            .map(|n| {
                let sh = &sh;
                s.spawn(move || {
                    // Each worker its own stream of the run's seed.
                    let (rng, _) = Rng::new("STRATA_CONCURRENCY_SEED", &format!("{seed}-{n}"));
                    let mut w = Worker {
                        n,
                        sh,
                        rng,
                        owned: BTreeSet::new(),
                        counter: 0,
                        ops: 0,
                        conflicts: 0,
                        kept: None,
                    };
                    let mut r = Ok(());
                    while Instant::now() < deadline && r.is_ok() {
                        r = w.step();
                        w.ops += 1;
                    }
                    if let (Ok(()), Some(c)) = (&r, w.kept.take()) {
                        r = w.ok(&["rm", &c]).map(|_| ());
                    }
                    (r, w.owned, w.ops, w.conflicts)
                })
            })
            .collect();
        let results = handles.into_iter().map(|h| h.join().unwrap()).collect();
        sh.stop.store(true, Ordering::SeqCst);
        dog.join().unwrap();
        results
    });
    let mut failures: Vec<String> = sh.hung.lock().unwrap().clone();
    failures.extend(results.iter().filter_map(|r| r.0.clone().err()));
    let owned: Vec<BTreeSet<String>> = results.iter().map(|r| r.1.clone()).collect();
    failures.extend(final_checks(&sh, &owned));
    let ops: u64 = results.iter().map(|r| r.2).sum();
    let conflicts: u64 = results.iter().map(|r| r.3).sum();
    assert!(
        failures.is_empty(),
        "concurrency campaign ({secs} s, STRATA_CONCURRENCY_SEED={seed}):\n{}",
        failures.join("\n\n")
    );
    eprintln!(
        "concurrency campaign: {WORKERS} workers, {secs} s, {ops} steps, {conflicts} documented conflicts, clean (seed {seed})"
    );
}

#[test]
fn documented_conflicts_name_the_other_party() {
    assert!(documented_conflict(
        "Error: unable to delete 0123abcd - image is being used by container 0123456789ab"
    ));
    assert!(documented_conflict(
        "unable to delete x - image is being used by a container being created (process 42)"
    ));
    assert!(documented_conflict(
        "Error: conflict: unable to remove repository reference \"x:1\" (must force) - a container being created (process 7686) is using its referenced image 4e70a274df0b"
    ));
    assert!(documented_conflict(
        "unable to remove repository reference \"x:1\" (must force) - container 0123456789ab is using its referenced image 4e70a274df0b"
    ));
    assert!(!documented_conflict("image is being used by another process"));
    assert!(!documented_conflict("image is being used by a running container"));
    assert!(!documented_conflict("database is locked"));
}
