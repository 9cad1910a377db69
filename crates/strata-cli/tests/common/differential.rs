//! The differential harness: strata and docker (BuildKit, `DOCKER_BUILDKIT=1`)
//! build the same context on the same busybox base, and what they made is
//! compared: the exported root filesystem (types, modes, owners, content,
//! hard-link groups), the image config, and the history entries the build
//! added (`created_by`, `empty_layer`).
//!
//! strata's half always runs, so a test's own assertions hold without
//! docker; the comparison prints `skipped: …` when no daemon answers or its
//! BuildKit cannot build the Dockerfile (20.10's frontend has no heredocs).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::Env;

/// The busybox base's config changes, as [`Env::import_busybox`] makes it.
pub const BASE_CHANGES: [&str; 2] = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    r#"CMD ["/bin/sh"]"#,
];

/// The config fields [`Pair::assert_same_config`] compares.
pub const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
];

/// Paths docker's container init layer adds (or mounts over) in every
/// container: not the build's doing, left out of listings.
pub const RUNTIME_PATHS: &[&str] = &[
    ".dockerenv",
    "dev",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
];

/// 2001-01-01: the time tests give old sources.
pub const OLD: u64 = 978_307_200;

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A docker client whose daemon answers and builds with BuildKit, or None
/// (the reason printed).
pub fn docker_client() -> Option<String> {
    let mut why = Vec::new();
    for c in ["docker", "/usr/bin/docker"] {
        match Command::new(c).arg("info").stdin(Stdio::null()).output() {
            Err(e) => {
                why.push(format!("{c}: {e}"));
                continue;
            }
            Ok(o) if !o.status.success() => {
                why.push(format!("{c}: no docker daemon answers `docker info`"));
                continue;
            }
            Ok(_) => {}
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
        std::fs::write(dir.path().join("f"), "f").unwrap();
        let o = run(Command::new(c)
            .args(["build", "-q", "--network", "none"])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "1"));
        if o.status.success() {
            let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let _ = run(Command::new(c).args(["rmi", &id]));
            return Some(c.to_string());
        }
        why.push(format!(
            "{c}: DOCKER_BUILDKIT=1 docker build fails: {}",
            text(&o).trim()
        ));
    }
    eprintln!("skipped: the docker comparison: {}", why.join("; "));
    None
}

/// Runs docker and insists on success; returns stdout.
pub fn docker_ok(docker: &str, args: &[&str]) -> String {
    let o = run(Command::new(docker).args(args));
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A name unique to this test process (the same in strata and docker).
pub fn unique(name: &str) -> String {
    format!("strata-diff-{}-{name}", std::process::id())
}

/// One exported root filesystem: per path its type, mode, owner and
/// content hash (times left out), with the hard-link group it is in (the
/// group's first path in byte order), and the number of regular-file
/// bodies under each top-level directory.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub entries: BTreeMap<String, String>,
    /// Directories' modification times.
    pub dir_times: BTreeMap<String, u64>,
    pub bodies: BTreeMap<String, usize>,
}

impl Listing {
    /// Lists the tar at `tar` (an `export` of a container).
    pub fn of_tar(tar: &Path) -> Listing {
        let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
        let mut l = Listing::default();
        // Hard-link pairs (link, target), grouped afterwards.
        let mut pairs = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let path = path.trim_start_matches("./").trim_end_matches('/').to_string();
            if path.is_empty() || path == "." || RUNTIME_PATHS.contains(&path.as_str()) {
                continue;
            }
            let h = e.header().clone();
            let mode = h.mode().unwrap() & 0o7777;
            let (uid, gid) = (h.uid().unwrap(), h.gid().unwrap());
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let desc = match h.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut bytes = Vec::new();
                    e.read_to_end(&mut bytes).unwrap();
                    let mut hasher = std::hash::DefaultHasher::new();
                    bytes.hash(&mut hasher);
                    let top = path.split('/').next().unwrap_or("").to_string();
                    *l.bodies.entry(top).or_default() += 1;
                    format!("file {mode:o} {uid}:{gid} {}b {:016x}", bytes.len(), hasher.finish())
                }
                tar::EntryType::Link => {
                    let target = link.trim_start_matches("./").trim_start_matches('/').to_string();
                    pairs.push((path.clone(), target.clone()));
                    l.entries
                        .get(&target)
                        .cloned()
                        .unwrap_or_else(|| format!("link to {target}"))
                }
                tar::EntryType::Symlink => format!("symlink {uid}:{gid} -> {link}"),
                tar::EntryType::Directory => {
                    l.dir_times.insert(path.clone(), h.mtime().unwrap());
                    format!("dir {mode:o} {uid}:{gid}")
                }
                other => format!("{other:?} {mode:o} {uid}:{gid}"),
            };
            l.entries.insert(path, desc);
        }
        // Union-find over the link pairs: every member names its group's first path.
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        fn find(parent: &BTreeMap<String, String>, p: &str) -> String {
            let mut cur = p.to_string();
            while let Some(up) = parent.get(&cur).filter(|u| **u != cur).cloned() {
                cur = up;
            }
            cur
        }
        for (a, b) in &pairs {
            let (ra, rb) = (find(&parent, a), find(&parent, b));
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            parent.insert(hi, lo.clone());
            parent.entry(lo.clone()).or_insert(lo);
        }
        let members: Vec<String> = parent.keys().cloned().collect();
        for m in members {
            let root = find(&parent, &m);
            if let Some(d) = l.entries.get_mut(&m) {
                d.push_str(&format!(" [linked with /{root}]"));
            }
        }
        l
    }

    /// The members of the hard-link group `path` is in (itself included).
    pub fn group_of(&self, path: &str) -> Vec<String> {
        let Some(d) = self.entries.get(path) else {
            return Vec::new();
        };
        let Some(i) = d.find(" [linked with ") else {
            return vec![path.to_string()];
        };
        let tail = &d[i..];
        self.entries
            .iter()
            .filter(|(_, v)| v.ends_with(tail))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `path`'s description, or `(none)`.
    pub fn get(&self, path: &str) -> &str {
        self.entries.get(path).map(String::as_str).unwrap_or("(none)")
    }

    /// Asserts each (path, want) pair: equal, or a prefix when `want` ends
    /// with a space (`"file 644 0:0 "` leaves the size and hash out).
    pub fn assert_has(&self, tag: &str, want: &[(&str, &str)]) {
        let mut wrong = Vec::new();
        for (p, w) in want {
            let got = self.get(p);
            if !(got == *w || w.ends_with(' ') && got.starts_with(w)) {
                wrong.push(format!("/{p}: {got}, want {w}"));
            }
        }
        assert!(wrong.is_empty(), "{tag}:\n{}", wrong.join("\n"));
    }
}

/// Asserts two listings hold the same paths with the same descriptions and
/// the same number of file bodies per top-level directory.
pub fn assert_same_listing(tag: &str, s: &Listing, d: &Listing) {
    let mut diffs = Vec::new();
    let keys: BTreeSet<&String> = s.entries.keys().chain(d.entries.keys()).collect();
    for k in keys {
        match (s.entries.get(k), d.entries.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => diffs.push(format!(
                "/{k}: strata {} | docker {}",
                a.map(String::as_str).unwrap_or("(none)"),
                b.map(String::as_str).unwrap_or("(none)")
            )),
        }
    }
    let shown: Vec<&str> = diffs.iter().take(60).map(String::as_str).collect();
    assert!(
        diffs.is_empty(),
        "{tag}: the root filesystems differ ({} paths):\n{}",
        diffs.len(),
        shown.join("\n")
    );
    assert_eq!(
        s.bodies, d.bodies,
        "{tag}: file bodies per top-level directory (strata, docker)"
    );
}

/// Null, absent, `[]`, `{}` and `""` are all "not set" (docker 20.10 says
/// null where strata leaves a field out, and the other way round).
pub fn normalize(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
        serde_json::Value::Object(o) if o.is_empty() => serde_json::Value::Null,
        serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
        other => other.clone(),
    }
}

/// What one builder made of a context.
#[derive(Debug, Clone)]
pub struct Built {
    pub rootfs: Listing,
    /// The image config blob (`config`, `history`, `rootfs`, …).
    pub image_config: serde_json::Value,
    /// `image inspect`'s first element.
    pub inspect: serde_json::Value,
}

impl Built {
    /// The history entries after the base's: (`created_by`, `empty_layer`).
    pub fn history(&self, base_entries: usize) -> Vec<(String, bool)> {
        self.image_config["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .skip(base_entries)
                    .map(|e| {
                        (
                            e["created_by"].as_str().unwrap_or("").to_string(),
                            e["empty_layer"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A runtime config field (`config.Env`, …), normalized.
    pub fn config(&self, field: &str) -> serde_json::Value {
        normalize(&self.image_config["config"][field])
    }
}

/// strata's and (when docker took part) docker's build of one context.
pub struct Pair {
    pub tag: String,
    pub strata: Built,
    pub docker: Option<Built>,
    base_history: usize,
}

impl Pair {
    pub fn assert_same_rootfs(&self) -> &Self {
        if let Some(d) = &self.docker {
            assert_same_listing(&self.tag, &self.strata.rootfs, &d.rootfs);
        }
        self
    }

    /// The runtime config's [`CONFIG_FIELDS`], normalized.
    pub fn assert_same_config(&self) -> &Self {
        if let Some(d) = &self.docker {
            for f in CONFIG_FIELDS {
                assert_eq!(
                    self.strata.config(f),
                    d.config(f),
                    "{}: config.{f} differs (strata, docker)\nstrata: {}\ndocker: {}",
                    self.tag,
                    self.strata.image_config["config"],
                    d.image_config["config"]
                );
            }
        }
        self
    }

    /// The build's history entries: `created_by` text and `empty_layer`.
    pub fn assert_same_history(&self) -> &Self {
        if let Some(d) = &self.docker {
            let (s, d) = (self.strata.history(self.base_history), d.history(self.base_history));
            assert_eq!(
                s, d,
                "{}: history (created_by, empty_layer) differs (strata, docker)",
                self.tag
            );
        }
        self
    }

    /// Every comparison.
    pub fn assert_same(&self) -> &Self {
        self.assert_same_rootfs().assert_same_config().assert_same_history()
    }

    /// strata's history entries after the base's.
    pub fn strata_history(&self) -> Vec<(String, bool)> {
        self.strata.history(self.base_history)
    }
}

/// How a build that must fail failed, in each builder.
pub struct Failure {
    pub strata: String,
    pub docker: Option<String>,
}

/// The busybox base in strata and (with a daemon) docker, and the builds of
/// one test; docker's images are removed when it is dropped.
pub struct Differential<'a> {
    pub env: &'a Env,
    pub docker: Option<String>,
    /// The base's name in both (`@BASE@` in Dockerfiles).
    pub base: String,
    made: RefCell<Vec<String>>,
}

impl<'a> Differential<'a> {
    /// busybox imported into strata and docker from the same tar as
    /// `strata-diff-PID-busybox-NAME` (one per test). None without busybox.
    pub fn new(env: &'a Env, name: &str) -> Option<Differential<'a>> {
        env.import_busybox()?;
        let base = format!("{}:latest", unique(&format!("busybox-{name}")));
        env.ok(&["tag", "busybox", &base]);
        let mut docker = docker_client();
        if let Some(d) = &docker {
            let rootfs = env.busybox_rootfs().unwrap();
            let tar = env.path("busybox.tar");
            if !tar.exists() {
                let st = Command::new("tar")
                    .args(["--numeric-owner", "-C"])
                    .arg(&rootfs)
                    .arg("-cf")
                    .arg(&tar)
                    .arg(".")
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            let mut args = vec!["import".to_string()];
            for c in BASE_CHANGES {
                args.push("--change".into());
                args.push(c.into());
            }
            args.push(tar.to_str().unwrap().into());
            args.push(base.clone());
            let o = run(Command::new(d).args(&args));
            if !o.status.success() {
                eprintln!("skipped: the docker comparison: docker import failed: {}", text(&o));
                docker = None;
            }
        }
        let diff = Differential {
            env,
            docker,
            made: Default::default(),
            base,
        };
        diff.made.borrow_mut().push(diff.base.clone());
        Some(diff)
    }

    /// A build context named `name` with the Dockerfile (`@BASE@` naming
    /// the base) and `files` (path, content).
    pub fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.env.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile.replace("@BASE@", &self.base)).unwrap();
        for (f, content) in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    /// Builds `dir` as `tag` (made unique) with strata, and with docker when
    /// there is one and its frontend knows the syntax; `extra` are build
    /// flags both take. Nothing is compared yet: see [`Pair`].
    pub fn build(&self, dir: &Path, tag: &str, extra: &[&str]) -> Pair {
        let tag = unique(tag);
        let mut args = vec!["build", "--network", "none", "-t", &tag];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        self.env.ok(&args);
        let strata = self.strata_built(&tag);
        let base_history = self.base_history();
        let docker = self.docker.as_deref().and_then(|docker| {
            let o = run(Command::new(docker)
                .args(["build", "--network", "none", "-t", &tag])
                .args(extra)
                .arg(dir)
                .env("DOCKER_BUILDKIT", "1"));
            if !o.status.success() {
                let t = text(&o);
                if t.contains("unknown instruction") || t.to_lowercase().contains("unknown flag") {
                    eprintln!(
                        "skipped: the docker comparison of {tag}: this docker's frontend does not know the syntax: {}",
                        t.lines().last().unwrap_or("")
                    );
                    return None;
                }
                panic!("docker build of {tag} failed:\n{t}");
            }
            self.made.borrow_mut().push(tag.clone());
            Some(self.docker_built(docker, &tag))
        });
        if self.docker.is_none() {
            eprintln!("skipped: the docker comparison of {tag} (no docker daemon)");
        }
        Pair {
            tag,
            strata,
            docker,
            base_history,
        }
    }

    /// Builds `dir` with both, insisting that both fail; returns the errors.
    pub fn build_fails(&self, dir: &Path, tag: &str, extra: &[&str]) -> Failure {
        let tag = unique(tag);
        let mut args = vec!["build", "--network", "none", "-t", &tag];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        let strata = self.env.fails(&args);
        let docker = self.docker.as_deref().map(|docker| {
            let o = run(Command::new(docker)
                .args(["build", "--network", "none", "-t", &tag])
                .args(extra)
                .arg(dir)
                .env("DOCKER_BUILDKIT", "1"));
            assert!(!o.status.success(), "docker build of {tag} succeeded");
            text(&o)
        });
        Failure { strata, docker }
    }

    /// The history entries of the base (the same count in both).
    fn base_history(&self) -> usize {
        let id = self.env.ok(&["inspect", "-f", "{{.Id}}", &self.base]);
        self.strata_config(id.trim())["history"].as_array().map_or(0, Vec::len)
    }

    fn strata_config(&self, id: &str) -> serde_json::Value {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        let blob = std::fs::read(self.env.root().join("blobs/sha256").join(hex)).unwrap();
        serde_json::from_slice(&blob).unwrap()
    }

    /// strata's image `tag`: its exported root filesystem and config.
    pub fn strata_built(&self, tag: &str) -> Built {
        let tar = self.env.path(&format!("{tag}-strata.tar"));
        let id = self.env.ok(&["create", tag, "true"]).trim().to_string();
        self.env.ok(&["export", "-o", tar.to_str().unwrap(), &id]);
        self.env.ok(&["rm", &id]);
        let rootfs = Listing::of_tar(&tar);
        let _ = std::fs::remove_file(tar);
        let inspect: serde_json::Value = serde_json::from_str(&self.env.ok(&["inspect", tag])).unwrap();
        let inspect = inspect[0].clone();
        let image_config = self.strata_config(inspect["Id"].as_str().unwrap());
        Built {
            rootfs,
            image_config,
            inspect,
        }
    }

    /// docker's image `tag`: its exported root filesystem and config (read
    /// from `docker save`, as `image inspect` has no history).
    pub fn docker_built(&self, docker: &str, tag: &str) -> Built {
        let tar = self.env.path(&format!("{tag}-docker.tar"));
        let cid = docker_ok(docker, &["create", tag, "true"]).trim().to_string();
        docker_ok(docker, &["export", "-o", tar.to_str().unwrap(), &cid]);
        docker_ok(docker, &["rm", &cid]);
        let rootfs = Listing::of_tar(&tar);
        let _ = std::fs::remove_file(&tar);
        let inspect: serde_json::Value = serde_json::from_str(&docker_ok(docker, &["image", "inspect", tag])).unwrap();
        let inspect = inspect[0].clone();
        let saved = self.env.path(&format!("{tag}-docker-saved.tar"));
        docker_ok(docker, &["save", "-o", saved.to_str().unwrap(), tag]);
        let id = inspect["Id"].as_str().unwrap();
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        let mut image_config = serde_json::Value::Null;
        let mut a = tar::Archive::new(std::fs::File::open(&saved).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == format!("{hex}.json") {
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                image_config = serde_json::from_slice(&b).unwrap();
            }
        }
        let _ = std::fs::remove_file(saved);
        assert!(!image_config.is_null(), "no {hex}.json in docker save of {tag}");
        Built {
            rootfs,
            image_config,
            inspect,
        }
    }

    /// Runs `script` in a container of strata's `tag` (as root), and of
    /// docker's when there is one; returns (strata, docker) stdout.
    pub fn run_both(&self, pair: &Pair, script: &str) -> (String, Option<String>) {
        let s = self.run(pair, script);
        let d = match (&self.docker, &pair.docker) {
            (Some(docker), Some(_)) => Some(docker_ok(docker, &run_args(&pair.tag, script))),
            _ => None,
        };
        (s, d)
    }

    /// Runs `script` in a container of strata's image (as root); stdout.
    pub fn run(&self, pair: &Pair, script: &str) -> String {
        self.env.ok(&run_args(&pair.tag, script))
    }

    /// Records a docker image to remove at the end.
    pub fn made_in_docker(&self, name: &str) {
        self.made.borrow_mut().push(name.to_string());
    }
}

impl Drop for Differential<'_> {
    fn drop(&mut self) {
        if let Some(d) = &self.docker {
            for m in self.made.borrow().iter().rev() {
                let _ = run(Command::new(d).args(["rmi", "-f", m]));
            }
        }
    }
}

/// `run` arguments for `script` as root in `tag`, without network (the
/// same for strata and docker).
fn run_args<'a>(tag: &'a str, script: &'a str) -> [&'a str; 11] {
    [
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "/bin/sh",
        tag,
        "-c",
        script,
    ]
}
