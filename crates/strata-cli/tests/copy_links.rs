//! Hard links through COPY, ADD and `COPY --from`, strata beside docker
//! (BuildKit) on the same context and busybox base: the exported root
//! filesystems are compared entry by entry with their hard-link groups,
//! owners and modes, and the images' sizes. A stage whose directory holds
//! a link per busybox applet must stay one busybox file plus links once
//! copied (not hundreds of copies).
//!
//! strata's half always runs with its expectations asserted; the docker
//! comparison prints `skipped: …` when no docker daemon answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Env;

const BASE_CHANGES: [&str; 2] = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    r#"CMD ["/bin/sh"]"#,
];

/// What docker's container init layer adds in every container.
const RUNTIME_PATHS: &[&str] = &[
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

fn sh(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A docker client whose daemon answers and builds with BuildKit, or None
/// (the reason printed).
fn docker_client() -> Option<String> {
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
        let o = sh(Command::new(c)
            .args(["build", "-q", "--network", "none"])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "1"));
        if o.status.success() {
            let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let _ = sh(Command::new(c).args(["rmi", &id]));
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

fn docker_ok(docker: &str, args: &[&str]) -> String {
    let o = sh(Command::new(docker).args(args));
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn unique(name: &str) -> String {
    format!("strata-links-{}-{name}", std::process::id())
}

/// One exported root filesystem: per path its type, mode, owner and
/// content hash (times left out), with the hard-link group it is in (the
/// group's first path in byte order), and the number of regular-file
/// entries (file bodies) under each top-level directory.
struct Listing {
    entries: BTreeMap<String, String>,
    /// Directories' modification times.
    dir_times: BTreeMap<String, u64>,
    bodies: BTreeMap<String, usize>,
}

fn listing(tar: &Path) -> Listing {
    let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
    let mut entries = BTreeMap::new();
    let mut bodies: BTreeMap<String, usize> = BTreeMap::new();
    let mut dir_times = BTreeMap::new();
    // Hard-link pairs (link, target), then grouped.
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
                *bodies.entry(top).or_default() += 1;
                format!("file {mode:o} {uid}:{gid} {}b {:016x}", bytes.len(), hasher.finish())
            }
            tar::EntryType::Link => {
                let target = link.trim_start_matches("./").trim_start_matches('/').to_string();
                pairs.push((path.clone(), target.clone()));
                entries
                    .get(&target)
                    .cloned()
                    .unwrap_or_else(|| format!("link to {target}"))
            }
            tar::EntryType::Symlink => format!("symlink {uid}:{gid} -> {link}"),
            tar::EntryType::Directory => {
                dir_times.insert(path.clone(), h.mtime().unwrap());
                format!("dir {mode:o} {uid}:{gid}")
            }
            other => format!("{other:?} {mode:o} {uid}:{gid}"),
        };
        entries.insert(path, desc);
    }
    // Union-find over the link pairs: every member names its group's first path.
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    fn find(parent: &mut BTreeMap<String, String>, p: &str) -> String {
        let mut cur = p.to_string();
        while let Some(up) = parent.get(&cur).filter(|u| **u != cur).cloned() {
            cur = up;
        }
        cur
    }
    for (a, b) in &pairs {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent.insert(hi, lo.clone());
        parent.entry(lo.clone()).or_insert(lo);
    }
    let members: Vec<String> = parent.keys().cloned().collect();
    for m in members {
        let root = find(&mut parent, &m);
        if let Some(d) = entries.get_mut(&m) {
            d.push_str(&format!(" [linked with /{root}]"));
        }
    }
    Listing {
        entries,
        dir_times,
        bodies,
    }
}

fn diff(tag: &str, s: &Listing, d: &Listing) {
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
    let shown: Vec<&String> = diffs.iter().take(60).collect();
    assert!(
        diffs.is_empty(),
        "{tag}: the root filesystems differ ({} paths):\n{}",
        diffs.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        s.bodies, d.bodies,
        "{tag}: file bodies per top-level directory (strata, docker)"
    );
}

struct Both<'a> {
    env: &'a Env,
    docker: Option<String>,
    base: String,
    made: std::cell::RefCell<Vec<String>>,
    /// Directories whose time must be the build's (true) or an old source's (false).
    recent: Vec<(&'static str, bool)>,
}

/// 2001-01-01: the time of old sources.
const OLD: u64 = 978_307_200;

impl<'a> Both<'a> {
    /// The busybox base as `busybox-NAME` in both (one per test: a test's
    /// images are removed when it ends).
    fn new(env: &'a Env, name: &str) -> Option<Both<'a>> {
        env.import_busybox()?;
        let base = format!("{}:latest", unique(&format!("busybox-{name}")));
        env.ok(&["tag", "busybox", &base]);
        let mut docker = docker_client();
        if let Some(d) = &docker {
            let rootfs = env.busybox_rootfs().unwrap();
            let tar = env.path("busybox.tar");
            let st = Command::new("tar")
                .args(["--numeric-owner", "-C"])
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap();
            assert!(st.success());
            let mut args = vec!["import".to_string()];
            for c in BASE_CHANGES {
                args.push("--change".into());
                args.push(c.into());
            }
            args.push(tar.to_str().unwrap().into());
            args.push(base.clone());
            let o = sh(Command::new(d).args(&args));
            if !o.status.success() {
                eprintln!("skipped: the docker comparison: docker import failed: {}", text(&o));
                docker = None;
            }
        }
        let both = Both {
            env,
            docker,
            made: Default::default(),
            base,
            recent: Vec::new(),
        };
        both.made.borrow_mut().push(both.base.clone());
        Some(both)
    }

    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let dir = self.env.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile.replace("@BASE@", &self.base)).unwrap();
        dir
    }

    /// Builds with strata, and with docker when there is one: the two
    /// exported root filesystems and sizes, compared; returns strata's
    /// listing and image size.
    /// `sizes`: the image sizes must agree within 10% too (meant for a few
    /// large layers: each layer's tar framing counts differently).
    fn build(&self, dir: &Path, tag: &str, sizes: bool) -> (Listing, u64) {
        self.env
            .ok(&["build", "--network", "none", "-t", tag, dir.to_str().unwrap()]);
        let s_tar = self.env.path(&format!("{tag}-strata.tar"));
        let id = self.env.ok(&["create", tag, "true"]).trim().to_string();
        self.env.ok(&["export", "-o", s_tar.to_str().unwrap(), &id]);
        self.env.ok(&["rm", &id]);
        let s = listing(&s_tar);
        let s_size: u64 = self
            .env
            .ok(&["inspect", "-f", "{{.Size}}", tag])
            .trim()
            .parse()
            .unwrap();
        for (p, t) in &self.recent {
            let st = s.dir_times.get(*p);
            assert_eq!(st.map(|x| *x > OLD), Some(*t), "{tag}: /{p}: {st:?}");
        }
        let Some(docker) = &self.docker else {
            eprintln!("skipped: the docker comparison of {tag} (no docker daemon)");
            return (s, s_size);
        };
        let o = sh(Command::new(docker)
            .args(["build", "--network", "none", "-t", tag])
            .arg(dir)
            .env("DOCKER_BUILDKIT", "1"));
        assert!(o.status.success(), "docker build of {tag} failed:\n{}", text(&o));
        self.made.borrow_mut().push(tag.to_string());
        let d_tar = self.env.path(&format!("{tag}-docker.tar"));
        let cid = docker_ok(docker, &["create", tag, "true"]).trim().to_string();
        docker_ok(docker, &["export", "-o", d_tar.to_str().unwrap(), &cid]);
        docker_ok(docker, &["rm", &cid]);
        let d = listing(&d_tar);
        diff(tag, &s, &d);
        for (p, t) in &self.recent {
            let (st, dt) = (s.dir_times.get(*p), d.dir_times.get(*p));
            assert_eq!(
                (st.map(|x| *x > OLD), dt.map(|x| *x > OLD)),
                (Some(*t), Some(*t)),
                "{tag}: /{p}: made by the copy (strata, docker: {st:?}, {dt:?})"
            );
        }
        let d_size: u64 = docker_ok(docker, &["image", "inspect", "-f", "{{.Size}}", tag])
            .trim()
            .parse()
            .unwrap();
        // Sizes agree within 10% (layer tars differ in padding and headers).
        assert!(
            !sizes || s_size * 10 <= d_size * 11 && d_size * 10 <= s_size * 11,
            "{tag}: image sizes differ: strata {s_size}, docker {d_size}"
        );
        // strata's layers (with their hard-link entries) as docker loads them.
        let saved = format!("{tag}-saved");
        let archive = self.env.path(&format!("{tag}-saved.tar"));
        self.env.ok(&["tag", tag, &saved]);
        self.env.ok(&["save", "-o", archive.to_str().unwrap(), &saved]);
        docker_ok(docker, &["load", "-i", archive.to_str().unwrap()]);
        self.made.borrow_mut().push(saved.clone());
        let l_tar = self.env.path(&format!("{tag}-loaded.tar"));
        let cid = docker_ok(docker, &["create", &saved, "true"]).trim().to_string();
        docker_ok(docker, &["export", "-o", l_tar.to_str().unwrap(), &cid]);
        docker_ok(docker, &["rm", &cid]);
        diff(
            &format!("{tag} (saved by strata, loaded by docker)"),
            &listing(&l_tar),
            &d,
        );
        let _ = std::fs::remove_file(archive);
        let _ = std::fs::remove_file(l_tar);
        let _ = std::fs::remove_file(s_tar);
        let _ = std::fs::remove_file(d_tar);
        (s, s_size)
    }
}

impl Drop for Both<'_> {
    fn drop(&mut self) {
        if let Some(d) = &self.docker {
            for m in self.made.borrow().iter().rev() {
                let _ = sh(Command::new(d).args(["rmi", "-f", m]));
            }
        }
    }
}

/// The members of the hard-link group `path` is in (itself included).
fn group_of(l: &Listing, path: &str) -> Vec<String> {
    let Some(d) = l.entries.get(path) else {
        return Vec::new();
    };
    let Some(i) = d.find(" [linked with ") else {
        return vec![path.to_string()];
    };
    let tail = &d[i..];
    l.entries
        .iter()
        .filter(|(_, v)| v.ends_with(tail))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The uncompressed layers of a strata image, as tar entry lists (path,
/// type, link target).
fn layers(env: &Env, tag: &str) -> Vec<Vec<(String, tar::EntryType, String)>> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", tag])).unwrap();
    let mut out = Vec::new();
    for l in v[0]["RootFS"]["Layers"].as_array().unwrap() {
        let hex = l.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let f = std::fs::File::open(env.root().join("blobs/sha256").join(hex)).unwrap();
        let mut entries = Vec::new();
        for e in tar::Archive::new(f).entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            entries.push((p, e.header().entry_type(), link));
        }
        out.push(entries);
    }
    out
}

const LINKS: &str = "FROM @BASE@ AS stage\n\
RUN mkdir -p /hl /tree/d && for a in $(busybox --list); do ln /bin/busybox /hl/$a; done \
 && echo data > /tree/d/f && ln /tree/d/f /tree/g && ln /tree/d/f /tree/d/h && chown 7:8 /tree/d/f \
 && chmod 4750 /tree/d/f && echo lone > /tree/lone\n\
FROM @BASE@\n\
COPY --from=stage /hl /bin2\n\
COPY --from=stage /tree /from-tree/\n\
COPY --from=stage --chown=5:6 /tree /owned/\n\
COPY --from=stage --chmod=640 /tree /moded/\n\
COPY ctx /ctx/\n\
ADD ctx /added/\n\
COPY ctx/a ctx/b /pair/\n\
COPY --from=stage /tree/d/f /tree/g /pair2/\n\
ADD arch.tar /untarred/\n\
COPY --from=stage /hl/s* /wild/\n\
COPY ctx/* /ctxwild/\n\
RUN mkdir /real2 && ln -s real2 /via2\n\
COPY --from=stage /tree /via2\n";

/// A stage's /hl holds a hard link to busybox per applet; the context holds
/// a file linked twice. Every copied group stays a group (one file body).
#[test]
fn hard_links_survive_copy_add_and_copy_from() {
    let env = Env::new();
    let Some(both) = Both::new(&env, "links") else { return };
    let dir = both.context("links", LINKS);
    std::fs::create_dir_all(dir.join("ctx/sub")).unwrap();
    std::fs::write(dir.join("ctx/a"), "context file\n").unwrap();
    std::fs::hard_link(dir.join("ctx/a"), dir.join("ctx/b")).unwrap();
    std::fs::hard_link(dir.join("ctx/a"), dir.join("ctx/sub/c")).unwrap();
    std::fs::write(dir.join("ctx/single"), "single\n").unwrap();
    // A local archive whose tar holds hard-link entries.
    let st = Command::new("tar")
        .args(["--numeric-owner", "-cf", "arch.tar", "-C", "ctx", "."])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let tag = unique("links");
    let (s, size) = both.build(&dir, &tag, true);

    // strata's own result, docker or not.
    let applets = s.entries.keys().filter(|k| k.starts_with("bin2/")).count();
    assert!(applets > 100, "{applets} entries in /bin2");
    assert_eq!(
        s.bodies.get("bin2"),
        Some(&1),
        "/bin2 holds one busybox: {:?}",
        s.bodies
    );
    let group = group_of(&s, "bin2/sh");
    let outside: Vec<(&String, &String)> = s
        .entries
        .iter()
        .filter(|(k, _)| k.starts_with("bin2/") && !group.contains(k))
        .collect();
    assert!(outside.is_empty(), "not linked to /bin2/sh: {outside:?}");
    for top in ["from-tree", "owned", "moded", "real2"] {
        assert_eq!(
            group_of(&s, &format!("{top}/d/f")),
            [format!("{top}/d/f"), format!("{top}/d/h"), format!("{top}/g")],
            "{top}"
        );
        assert_eq!(group_of(&s, &format!("{top}/lone")), [format!("{top}/lone")]);
    }
    assert!(
        s.entries["from-tree/g"].starts_with("file 4750 7:8 "),
        "{}",
        s.entries["from-tree/g"]
    );
    assert!(
        s.entries["owned/g"].starts_with("file 4750 5:6 "),
        "{}",
        s.entries["owned/g"]
    );
    for top in ["ctx", "added", "untarred"] {
        assert_eq!(
            group_of(&s, &format!("{top}/a")),
            [format!("{top}/a"), format!("{top}/b"), format!("{top}/sub/c")],
            "{top}"
        );
        assert!(s.entries[&format!("{top}/b")].starts_with("file 644 0:0 "));
    }
    // Separate sources are copied separately (BuildKit copies each on its own).
    assert_eq!(group_of(&s, "pair/a"), ["pair/a"]);
    assert_eq!(group_of(&s, "pair2/g"), ["pair2/g"]);
    // So are a wildcard's matches (BuildKit too: compared above).
    let wild = s.entries.keys().filter(|k| k.starts_with("wild/")).count() as u64;
    assert!(wild > 5, "{wild}");
    assert_eq!(group_of(&s, "wild/sh"), ["wild/sh"]);
    assert_eq!(group_of(&s, "ctxwild/a"), ["ctxwild/a"]);
    // The image holds busybox twice (the base's and /bin2's) and once per
    // wildcard match, not once per applet.
    let bb = std::fs::metadata(env.busybox_rootfs().unwrap().join("bin/busybox"))
        .unwrap()
        .len();
    assert!(size < (3 + wild) * bb, "image size {size} for a busybox of {bb} bytes");
    // The COPY --from layer holds one busybox body and a hard-link entry per other applet.
    let layers = layers(&env, &tag);
    let bin2 = &layers[1];
    let bodies = bin2
        .iter()
        .filter(|(p, t, _)| p.starts_with("bin2/") && *t == tar::EntryType::Regular)
        .count();
    let links = bin2
        .iter()
        .filter(|(p, t, l)| p.starts_with("bin2/") && *t == tar::EntryType::Link && l.starts_with("bin2/"))
        .count();
    assert_eq!((bodies, links), (1, applets - 1));
}

/// A container's hard links stay links in the layer `commit` writes.
#[test]
fn hard_links_survive_commit() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    env.ok(&[
        "run",
        "--name",
        "linker",
        "busybox",
        "sh",
        "-c",
        "mkdir /h && echo x > /h/a && ln /h/a /h/b && ln /bin/busybox /h/bb",
    ]);
    let tag = unique("committed");
    env.ok(&["commit", "linker", &tag]);
    let layers = layers(&env, &tag);
    let top = layers.last().unwrap();
    let kinds: BTreeMap<&str, (tar::EntryType, &str)> =
        top.iter().map(|(p, t, l)| (p.as_str(), (*t, l.as_str()))).collect();
    let is_pair = |x: &str, y: &str| {
        matches!(
            (kinds.get(x), kinds.get(y)),
            (Some((tar::EntryType::Regular, _)), Some((tar::EntryType::Link, l))) if *l == x
        ) || matches!(
            (kinds.get(y), kinds.get(x)),
            (Some((tar::EntryType::Regular, _)), Some((tar::EntryType::Link, l))) if *l == y
        )
    };
    assert!(is_pair("h/a", "h/b"), "{kinds:?}");
    assert!(is_pair("bin/busybox", "h/bb"), "{kinds:?}");
}

const DIR_META: &str = "FROM @BASE@ AS stage\n\
RUN mkdir -p /src/sub && echo x > /src/sub/f && echo y > /src/top && chown -R 7:8 /src \
 && chmod 700 /src && chmod 750 /src/sub && chmod 4755 /src/top && mkdir -m 711 /src2 && chown 3:4 /src2\n\
FROM @BASE@\n\
COPY --from=stage /src /plain\n\
COPY --from=stage /src/ /slash/\n\
COPY --from=stage --chown=5:6 /src /owned\n\
COPY --from=stage --chmod=640 /src /moded\n\
COPY --from=stage --chmod=4755 /src /setid\n\
COPY --from=stage /src2 /src2\n\
COPY ctxdir /ctx\n\
COPY --chmod=2755 ctxdir /ctx-setid/\n\
COPY --chmod=4755 single.txt /single-setuid\n\
RUN mkdir -m 711 /exists && chown 3:4 /exists\n\
COPY --from=stage /src /exists\n\
COPY . /whole\n\
RUN mkdir -m 711 /exists2 && chown 3:4 /exists2 && mkdir /real && ln -s /real /via-link\n\
COPY --from=stage --chown=5:6 --chmod=600 /src /exists2\n\
COPY --from=stage /src /via-link\n\
COPY --from=stage /src /via-link/inner/deeper\n\
ADD --chmod=600 arch.tar /unpacked-moded/\n\
COPY --chmod=600 ctxdir/ /ctx-moded\n";

/// `COPY dir /dst`: the destination is made fresh (root, or the --chown
/// owner, 0755) whatever the source directory's owner and mode and
/// whatever --chmod says; only the contents keep theirs (or take --chmod,
/// without set-id bits); an existing destination keeps its own.
#[test]
fn copied_directory_metadata_matches_docker() {
    let env = Env::new();
    let Some(mut both) = Both::new(&env, "dirmeta") else {
        return;
    };
    both.recent = vec![("ctx", true), ("ctx-setid", true)];
    let dir = both.context("dirmeta", DIR_META);
    std::fs::create_dir_all(dir.join("ctxdir/sub")).unwrap();
    std::fs::write(dir.join("ctxdir/sub/f"), "f\n").unwrap();
    std::fs::write(dir.join("single.txt"), "s\n").unwrap();
    let st = Command::new("tar")
        .args(["--numeric-owner", "-cf", "arch.tar", "-C", "ctxdir", "."])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    use std::os::unix::fs::PermissionsExt;
    for (p, m) in [("ctxdir", 0o700), ("ctxdir/sub", 0o750)] {
        std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    for p in ["ctxdir/sub", "ctxdir"] {
        std::fs::File::open(dir.join(p))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(OLD))
            .unwrap();
    }
    let tag = unique("dirmeta");
    let (s, _) = both.build(&dir, &tag, false);
    // The contents keep their times (Docker 20.10 gives a context's
    // subdirectories the time they were sent at: not compared).
    assert_eq!(s.dir_times.get("ctx/sub"), Some(&OLD));
    let want = [
        ("plain", "dir 755 0:0"),
        ("plain/sub", "dir 750 7:8"),
        ("plain/top", "file 4755 7:8 "),
        ("slash", "dir 755 0:0"),
        ("owned", "dir 755 5:6"),
        ("owned/sub", "dir 750 5:6"),
        ("moded", "dir 755 0:0"),
        ("moded/sub", "dir 640 7:8"),
        ("moded/top", "file 4640 7:8 "),
        ("setid/sub", "dir 755 7:8"),
        ("setid/top", "file 4755 7:8 "),
        ("src2", "dir 755 0:0"),
        ("ctx", "dir 755 0:0"),
        ("ctx/sub", "dir 750 0:0"),
        ("ctx-setid", "dir 755 0:0"),
        ("ctx-setid/sub", "dir 755 0:0"),
        ("ctx-setid/sub/f", "file 755 0:0 "),
        ("single-setuid", "file 755 0:0 "),
        ("exists", "dir 711 3:4"),
        ("exists/sub", "dir 750 7:8"),
        ("whole", "dir 755 0:0"),
        // An existing destination keeps its owner and mode (--chown and --chmod too).
        ("exists2", "dir 711 3:4"),
        ("exists2/sub", "dir 600 5:6"),
        ("exists2/top", "file 4600 5:6 "),
        // A destination that is a symlink to a directory: copied into its target.
        ("via-link", "symlink 0:0 -> /real"),
        ("real", "dir 755 0:0"),
        ("real/sub", "dir 750 7:8"),
        ("real/inner/deeper", "dir 755 0:0"),
        // ADD --chmod leaves an unpacked archive's modes alone.
        ("unpacked-moded/sub/f", "file 644 0:0 "),
        ("ctx-moded", "dir 755 0:0"),
        ("ctx-moded/sub", "dir 600 0:0"),
        ("ctx-moded/sub/f", "file 600 0:0 "),
    ];
    for (p, w) in want {
        let got = s.entries.get(p).map(String::as_str).unwrap_or("(none)");
        assert!(
            got == w || w.ends_with(' ') && got.starts_with(w),
            "/{p}: {got}, want {w}"
        );
    }
}

/// The same with the vfs storage driver (layers written from a change set,
/// not an overlay upper directory): links made by RUN and copied by
/// `COPY --from` are tar hard links in the layers.
#[test]
fn hard_links_survive_a_vfs_build() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = env.path("vfs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox AS stage\n\
         RUN mkdir /hl && for a in $(busybox --list); do ln /bin/busybox /hl/$a; done\n\
         FROM busybox\n\
         COPY --from=stage /hl /bin2\n\
         RUN mkdir /r && echo x > /r/a && ln /r/a /r/b\n",
    )
    .unwrap();
    let tag = unique("vfs");
    env.ok(&[
        "--storage-driver",
        "vfs",
        "build",
        "--network",
        "none",
        "-t",
        &tag,
        dir.to_str().unwrap(),
    ]);
    let layers = layers(&env, &tag);
    let count = |l: &[(String, tar::EntryType, String)], t: tar::EntryType| {
        l.iter().filter(|(p, k, _)| p.starts_with("bin2/") && *k == t).count()
    };
    assert_eq!(count(&layers[1], tar::EntryType::Regular), 1);
    assert!(count(&layers[1], tar::EntryType::Link) > 100);
    let run = &layers[2];
    let kind = |p: &str| run.iter().find(|(q, _, _)| q == p).map(|(_, t, l)| (*t, l.clone()));
    assert_eq!(kind("r/a"), Some((tar::EntryType::Regular, String::new())), "{run:?}");
    assert_eq!(kind("r/b"), Some((tar::EntryType::Link, "r/a".to_string())), "{run:?}");
}
