//! Rootless strata (#19): every command as an ordinary user, as Podman does.
//!
//! The tests run strata as users they make (tests/common/rootless.rs): one
//! with a subordinate range in /etc/subuid and /etc/subgid, whose
//! containers see ids 0..=65536 (container uid N on disk as the range's
//! start + N - 1), and one without, which gets a single id (its own) and a
//! warning. Each test has its own store under its own `XDG_DATA_HOME` and
//! `XDG_RUNTIME_DIR`; at its end the store's pause process (and anything in
//! its namespace) is stopped and its files are removed as root.
//!
//! What they check: the main demo (import, build with `chown` and
//! `COPY --chown`, run, diff, commit, save, load, push, pull on a fresh
//! store) as the user; `ls -ln` in the container and the image ID (with
//! `SOURCE_DATE_EPOCH`) equal to a root build's; the root filesystem equal
//! to rootless podman's build of the same Dockerfile; the single-id user's
//! warning and ignored chowns.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::differential::{Listing, text};
use common::rootless::{Kind, Rootless, import_args, ls_ln_normalized};
use common::{Env, TestRegistry};

/// The demo's Dockerfile: owners other than root by `RUN chown` and
/// `COPY --chown`, a hard link, a symlink, a setuid file of nobody's, a
/// sticky directory. `FROM` names the base as podman knows it too.
const DOCKERFILE: &str = r#"FROM docker.io/library/busybox:latest
COPY --chown=1000:1000 hello.txt /app/hello.txt
COPY --chown=1234:5678 tree/ /app/tree/
RUN mkdir /data && touch /data/f && chown -R 1000:1000 /data
RUN ln /data/f /data/hard && ln -s f /data/sym && touch /data/nobody && chown 65534:65534 /data/nobody && chmod 4755 /data/nobody && mkdir -m 1777 /data/sticky && chown 2000:3000 /data/sticky
CMD ["cat", "/app/hello.txt"]
"#;

fn demo_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Dockerfile", DOCKERFILE),
        ("hello.txt", "hello from the build context\n"),
        ("tree/a.txt", "a\n"),
        ("tree/sub/b.txt", "b\n"),
    ]
}

/// Owners and modes of the demo's files, as `stat` prints them in a
/// container of the demo image (root's build, docker's and podman's agree).
const DEMO_STAT: &str = "stat -c '%u:%g %a %F %n' /app /app/hello.txt /app/tree /app/tree/a.txt /app/tree/sub/b.txt \
     /data /data/f /data/hard /data/nobody /data/sticky";
const DEMO_STAT_WANT: &str = "\
1000:1000 755 directory /app
1000:1000 644 regular file /app/hello.txt
1234:5678 755 directory /app/tree
1234:5678 644 regular file /app/tree/a.txt
1234:5678 644 regular file /app/tree/sub/b.txt
1000:1000 755 directory /data
1000:1000 644 regular empty file /data/f
1000:1000 644 regular empty file /data/hard
65534:65534 4755 regular empty file /data/nobody
2000:3000 1777 directory /data/sticky
";

/// The paths `ls -ln` lists in the containers compared (not /dev, /proc,
/// /sys: the runtime's, not the image's).
const LS_PATHS: &str =
    "ls -lnR /app /data /etc /bin /root /tmp /usr /var; ls -lnd /app /data /bin /etc /root /tmp /usr /var";

/// Files below the unpacked layers of the store at `store`
/// (`layers/<chain-id>/REL`), as the host sees them.
fn in_layers(store: &Path, rel: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(store.join("layers")) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path().join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect()
}

/// (uid, gid) on the host of `REL` in the store's layers (every copy of
/// it: a later layer may hold it again, e.g. as a hard link's target).
fn host_owner(store: &Path, rel: &str) -> (u32, u32) {
    let found = in_layers(store, rel);
    assert!(!found.is_empty(), "no {rel} in the layers of {}", store.display());
    let owners: BTreeSet<(u32, u32)> = found
        .iter()
        .map(|p| p.symlink_metadata().unwrap())
        .map(|m| (m.uid(), m.gid()))
        .collect();
    assert_eq!(
        owners.len(),
        1,
        "{rel} has different owners in the layers: {found:?} {owners:?}"
    );
    owners.into_iter().next().unwrap()
}

/// path → `uid:gid` of every entry in the layers of the one image in the
/// docker-archive at `archive` (later layers win), read as tar headers.
fn archive_owners(archive: &Path) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        files.insert(p, b);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let mut owners = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let raw = &files[layer.as_str().unwrap()];
        let plain = strata_layer::decompressor(std::io::BufReader::new(&raw[..])).unwrap();
        let mut t = tar::Archive::new(plain);
        for e in t.entries().unwrap() {
            let e = e.unwrap();
            let p = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            let h = e.header();
            owners.insert(p, format!("{}:{}", h.uid().unwrap(), h.gid().unwrap()));
        }
    }
    owners
}

/// Whether the default network can work for the user here (pasta and a
/// /dev/net/tun anyone may open); when not, says so: the caller runs with
/// `--network none` instead.
fn default_network_usable() -> bool {
    if Path::new("/usr/bin/pasta").exists() && usable_by_all("/dev/net/tun") {
        return true;
    }
    eprintln!(
        "skipped: the default network (needs pasta and a /dev/net/tun the user may open: scripts/deps.d/rootless-devices.sh); --network none instead"
    );
    false
}

/// `args` with `--network none` after a `run`, `create` or `build` when
/// `none`.
fn net_args<'a>(args: &[&'a str], none: bool) -> Vec<&'a str> {
    if none && matches!(args.first(), Some(&"run") | Some(&"create") | Some(&"build")) {
        let mut v = vec![args[0], "--network", "none"];
        v.extend_from_slice(&args[1..]);
        v
    } else {
        args.to_vec()
    }
}

/// The main demo as an ordinary user with subordinate ids: import, build,
/// run, diff, commit, save, load, push, pull back on a fresh store; owners
/// kept through all of it, shifted on disk, unshifted in archives.
#[test]
fn main_demo_as_an_ordinary_user() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let no_net = !default_network_usable();
    let ok = |args: &[&str]| rl.ok(&net_args(args, no_net));
    let ok_at = |root: &Path, args: &[&str]| rl.ok_at(root, &net_args(args, no_net));
    let user = rl.user.clone();
    let Some((base, err)) = rl.import_busybox() else { return };
    assert!(base.starts_with("sha256:"), "{base}");
    assert!(
        !err.contains("single id"),
        "{} has subordinate ids, yet: {err}",
        user.name
    );
    let store = rl.store();
    assert!(
        store.join("blobs").is_dir(),
        "the store is not at $XDG_DATA_HOME/strata ({})",
        store.display()
    );
    let images = ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images, "busybox:latest\n");

    // The pause process: the user's, mapping root to the user and 1..=65536
    // to the subordinate range, as Podman does.
    let pid_file = std::fs::read_to_string(store.join("rootless.pid")).expect("<store>/rootless.pid");
    let pause: i32 = pid_file.split_whitespace().next().unwrap().parse().unwrap();
    let map = std::fs::read_to_string(format!("/proc/{pause}/uid_map")).expect("the pause process lives");
    let map: Vec<Vec<u64>> = map
        .lines()
        .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
        .collect();
    let (start, count) = user.subuids[0];
    assert_eq!(
        map[..2],
        [vec![0, user.uid as u64, 1], vec![1, start as u64, count as u64]],
        "uid_map of the pause process"
    );

    let ctx = rl.context("demo", &demo_files());
    ok(&["build", "-t", "demo:1", ctx.to_str().unwrap()]);
    // The base's files are the user's on disk (container root = the user).
    assert_eq!(host_owner(&store, "bin/busybox"), (user.uid, user.gid));
    // On disk, container id N is the range's start + N - 1.
    assert_eq!(
        host_owner(&store, "data/f"),
        (user.host_uid(1000), user.host_gid(1000)),
        "data/f on disk (subuid start {start})"
    );
    assert_eq!(
        host_owner(&store, "app/tree/a.txt"),
        (user.host_uid(1234), user.host_gid(5678))
    );
    assert_eq!(
        host_owner(&store, "data/nobody"),
        (user.host_uid(65534), user.host_gid(65534))
    );

    // In the container, the ids the build gave.
    assert_eq!(ok(&["run", "--rm", "demo:1"]), "hello from the build context\n");
    let out = ok(&[
        "run",
        "--rm",
        "demo:1",
        "sh",
        "-c",
        &format!("id -u; id -g; {DEMO_STAT}"),
    ]);
    assert_eq!(out, format!("0\n0\n{DEMO_STAT_WANT}"));
    // Another user in the container writes what it owns, and only that.
    let out = ok(&[
        "run",
        "--rm",
        "--user",
        "1000:1000",
        "demo:1",
        "sh",
        "-c",
        "id -u; echo more >> /data/f && echo wrote; echo x > /app/tree/a.txt 2>/dev/null || echo refused",
    ]);
    assert_eq!(out, "1000\nwrote\nrefused\n");

    // diff and commit of a changed container.
    ok(&[
        "run",
        "--name",
        "changed",
        "demo:1",
        "sh",
        "-c",
        "echo new > /data/new && chown 1000:1000 /data/new && rm /app/hello.txt",
    ]);
    assert_eq!(
        ok(&["diff", "changed"]),
        "C /app\nD /app/hello.txt\nC /data\nA /data/new\n"
    );
    let committed = ok(&["commit", "changed", "demo:2"]);
    assert!(committed.trim().starts_with("sha256:"), "{committed}");
    ok(&["rm", "changed"]);
    assert_eq!(ok(&["ps", "-a", "-q"]), "");
    let check = "stat -c '%u:%g %n' /data/new /data/f /app/tree/a.txt; cat /data/new; ls /app/hello.txt 2>/dev/null || echo gone";
    let want = "1000:1000 /data/new\n1000:1000 /data/f\n1234:5678 /app/tree/a.txt\nnew\ngone\n";
    assert_eq!(ok(&["run", "--rm", "demo:2", "sh", "-c", check]), want);

    // save: the layers carry container ids, not the host's.
    let archive = rl.path("home/demo.tar");
    ok(&["save", "-o", archive.to_str().unwrap(), "demo:2"]);
    let owners = archive_owners(&archive);
    for (p, want) in [
        ("bin/busybox", "0:0"),
        ("app/hello.txt", "1000:1000"),
        ("app/tree/sub/b.txt", "1234:5678"),
        ("data/f", "1000:1000"),
        ("data/nobody", "65534:65534"),
        ("data/sticky", "2000:3000"),
        ("data/new", "1000:1000"),
    ] {
        assert_eq!(owners.get(p).map(String::as_str), Some(want), "{p} in the saved layers");
    }

    // load it back after removing it.
    let id2 = ok(&["inspect", "-f", "{{.Id}}", "demo:2"]);
    ok(&["rmi", "demo:2"]);
    let loaded = ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("demo:2"), "{loaded}");
    assert_eq!(ok(&["inspect", "-f", "{{.Id}}", "demo:2"]), id2);
    assert_eq!(ok(&["run", "--rm", "demo:2", "sh", "-c", check]), want);

    // push to a local registry, pull back on a fresh store.
    let reg = TestRegistry::strata();
    let name = format!("{}/rootless/demo:2", reg.host);
    ok(&["tag", "demo:2", &name]);
    ok(&["push", &name]);
    let fresh = rl.path("home/fresh");
    ok_at(&fresh, &["pull", &name]);
    assert_eq!(ok_at(&fresh, &["inspect", "-f", "{{.Id}}", &name]), id2);
    assert_eq!(ok_at(&fresh, &["run", "--rm", &name, "sh", "-c", check]), want);
    assert_eq!(
        host_owner(&fresh, "data/new"),
        (user.host_uid(1000), user.host_gid(1000))
    );

    // The cleanup stops the pause processes and removes every file.
    let fresh_pause: i32 = std::fs::read_to_string(fresh.join("rootless.pid"))
        .expect("<fresh store>/rootless.pid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let dir = rl.dir().to_path_buf();
    drop(rl);
    for pid in [pause, fresh_pause] {
        assert!(!common::rootless::alive(pid), "pause process {pid} still runs");
    }
    assert!(!dir.exists(), "{} is left", dir.display());
}

/// A root store with the busybox base imported from the rootless test's
/// tar (the same bytes), `SOURCE_DATE_EPOCH` as given.
fn root_store(tar: &Path, epoch: Option<&str>) -> Env {
    let env = Env::new();
    let mut c = env.cmd();
    c.args(import_args(tar.to_str().unwrap())).stdin(Stdio::null());
    if let Some(e) = epoch {
        c.env("SOURCE_DATE_EPOCH", e);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "root import: {}", text(&o));
    env
}

/// `ls -ln` in a container of the rootless build equals the same in a
/// container of root's build of the same Dockerfile.
#[test]
fn ls_ln_in_the_container_equals_the_root_built_image() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let Some(_) = rl.import_busybox() else { return };
    let ctx = rl.context("demo", &demo_files());
    let ctx = ctx.to_str().unwrap();
    let root = root_store(&rl.busybox_tar().unwrap(), None);
    root.ok(&["build", "--network", "none", "-t", "demo:1", ctx]);
    rl.ok(&["build", "--network", "none", "-t", "demo:1", ctx]);
    let run = ["run", "--rm", "--network", "none", "demo:1", "sh", "-c", LS_PATHS];
    let theirs = ls_ln_normalized(&root.ok(&run));
    let ours = ls_ln_normalized(&rl.ok(&run));
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (ours.iter().collect(), theirs.iter().collect());
    assert!(
        ours == theirs,
        "ls -ln differs (rootless, root):\nonly rootless:\n{}\nonly root:\n{}",
        a.difference(&b).map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
        b.difference(&a).map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert!(
        ours.iter().any(|l| l.starts_with("-rwsr-xr-x 1 65534 65534 0 nobody")),
        "{ours:#?}"
    );
    // The container's own view of its ids, too.
    let stat = ["run", "--rm", "--network", "none", "demo:1", "sh", "-c", DEMO_STAT];
    assert_eq!(rl.ok(&stat), root.ok(&stat));
    assert_eq!(rl.ok(&stat), DEMO_STAT_WANT);
}

/// With `SOURCE_DATE_EPOCH`, the rootless build's image ID is root's:
/// nothing of the host's ids reaches the image.
#[test]
fn source_date_epoch_rootless_build_has_the_root_build_image_id() {
    const EPOCH: &str = "1700000000";
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let Some(tar) = rl.busybox_tar() else { return };
    let base = rl.ok_epoch(EPOCH, &import_args(tar.to_str().unwrap()));
    let root = root_store(&tar, Some(EPOCH));
    let root_base = root.ok(&["inspect", "-f", "{{.Id}}", "busybox:latest"]);
    assert_eq!(base.trim(), root_base.trim(), "the imported base (rootless, root)");
    let ctx = rl.context("demo", &demo_files());
    let ctx = ctx.to_str().unwrap();
    let args = ["build", "-q", "--network", "none", "-t", "demo:1", ctx];
    let ours = rl.ok_epoch(EPOCH, &args);
    let o = root
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "root build: {}", text(&o));
    let theirs = String::from_utf8_lossy(&o.stdout).into_owned();
    let layers = "{{json .RootFS.Layers}}";
    assert_eq!(
        ours.trim(),
        theirs.trim(),
        "image ID of the rootless build vs root's; layers (rootless, root):\n{}\n{}",
        rl.ok(&["inspect", "-f", layers, "demo:1"]).trim(),
        root.ok(&["inspect", "-f", layers, "demo:1"]).trim()
    );
}

/// Podman's runtime paths in an export that strata's have not: `/run`,
/// the mount point buildah makes for `.containerenv` and secrets in a RUN.
const PODMAN_RUNTIME_PATHS: &[&str] = &["run"];

/// The same Dockerfile built by rootless podman as the same user gives the
/// same root filesystem (paths, types, modes, owners, sizes, contents, link
/// targets, hard-link groups), and the same host ids on disk.
#[test]
fn rootless_build_matches_rootless_podman_build() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let Some(_) = rl.import_busybox() else { return };
    let Some(podman) = rl.podman() else { return };
    let ctx = rl.context("demo", &demo_files());
    let ctx = ctx.to_str().unwrap();

    rl.ok(&["build", "--network", "none", "-t", "demo:1", ctx]);
    let ours = rl.path("home/strata-export.tar");
    let id = rl.ok(&["create", "demo:1", "true"]).trim().to_string();
    rl.ok(&["export", "-o", ours.to_str().unwrap(), &id]);
    rl.ok(&["rm", &id]);

    let tar = rl.busybox_tar().unwrap();
    let mut import = vec!["import", "-q"];
    for c in common::differential::BASE_CHANGES {
        import.extend(["--change", c]);
    }
    import.extend([tar.to_str().unwrap(), "docker.io/library/busybox:latest"]);
    podman.ok(&import);
    podman.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "--pull=never",
        "-t",
        "localhost/demo:1",
        ctx,
    ]);
    let theirs = rl.path("home/podman-export.tar");
    let id = podman.ok(&["create", "localhost/demo:1", "true"]).trim().to_string();
    podman.ok(&["export", "-o", theirs.to_str().unwrap(), &id]);
    podman.ok(&["rm", &id]);

    let s = Listing::of_tar(&ours);
    let mut p = Listing::of_tar(&theirs);
    for path in PODMAN_RUNTIME_PATHS {
        if !s.entries.contains_key(*path) && p.get(path).starts_with("dir ") {
            p.entries.remove(*path);
        }
    }
    let keys: BTreeSet<&String> = s.entries.keys().chain(p.entries.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| s.entries.get(*k) != p.entries.get(*k))
        .map(|k| format!("/{k}: strata {} | podman {}", s.get(k), p.get(k)))
        .collect();
    assert!(
        diffs.is_empty(),
        "the root filesystems of the rootless builds differ ({} paths; podman: {}):\n{}",
        diffs.len(),
        podman.describe(),
        diffs.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        s.bodies, p.bodies,
        "file bodies per top-level directory (strata, podman)"
    );
    assert_eq!(
        s.group_of("data/f"),
        vec!["data/f".to_string(), "data/hard".to_string()]
    );
    s.assert_has(
        "strata's export",
        &[
            ("data/f", "file 644 1000:1000 "),
            ("data/nobody", "file 4755 65534:65534 "),
            ("data/sticky", "dir 1777 2000:3000"),
            ("data/sym", "symlink 0:0 -> f"),
            ("app/tree/sub/b.txt", "file 644 1234:5678 "),
        ],
    );

    // On disk both keep container id N as the range's start + N - 1.
    let user = &rl.user;
    let podman_f = walk_for(&rl.path(&format!("home/podman-{}", podman.driver)), "data/f", 6);
    assert!(!podman_f.is_empty(), "no data/f in podman's storage");
    for f in &podman_f {
        let m = f.symlink_metadata().unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (user.host_uid(1000), user.host_gid(1000)),
            "{} (podman's)",
            f.display()
        );
    }
    assert_eq!(
        host_owner(&rl.store(), "data/f"),
        (user.host_uid(1000), user.host_gid(1000)),
        "data/f in strata's layers"
    );
}

/// Every `REL` below `dir` (at most `depth` levels down to REL's parent).
fn walk_for(dir: &Path, rel: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0)];
    while let Some((d, n)) = todo.pop() {
        if d.join(rel).symlink_metadata().is_ok_and(|m| m.is_file()) {
            found.push(d.join(rel));
        }
        if n >= depth {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push((e.path(), n + 1));
            }
        }
    }
    found
}

const SINGLE_ID_WARNING: &str = "single id";

/// A user without subordinate ids: strata works with its one id (import,
/// run, a build with `COPY --chown`, load of an image with other owners),
/// says so in a warning, and files owned by others are the user's.
#[test]
fn single_id_user_works_with_a_warning() {
    let Some(rl) = Rootless::new(Kind::SingleId) else {
        return;
    };
    let user = rl.user.clone();
    let Some((base, err)) = rl.import_busybox() else { return };
    assert!(base.starts_with("sha256:"), "{base}");
    assert!(
        err.contains("WARNING") && err.contains(SINGLE_ID_WARNING),
        "import as {} (no subordinate ids) printed no single-id warning: {err:?}",
        user.name
    );
    let map = std::fs::read_to_string(format!(
        "/proc/{}/uid_map",
        std::fs::read_to_string(rl.store().join("rootless.pid"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    ))
    .unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", &user.uid.to_string(), "1"],
        "uid_map of the pause process"
    );
    let (out, err) = rl.ok2(&["run", "--rm", "--network", "none", "busybox", "id", "-u"]);
    assert_eq!(out, "0\n");
    assert!(err.contains(SINGLE_ID_WARNING), "run: {err:?}");
    assert_eq!(host_owner(&rl.store(), "bin/busybox"), (user.uid, user.gid));

    // COPY --chown to an id the namespace has not: kept as the user's (0).
    let ctx = rl.context(
        "copy",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY --chown=1000:1000 hello.txt /app/hello.txt\nRUN stat -c '%u:%g' /app/hello.txt > /app/owner\n",
            ),
            ("hello.txt", "hello\n"),
        ],
    );
    rl.ok(&["build", "--network", "none", "-t", "copy:1", ctx.to_str().unwrap()]);
    let out = rl.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "copy:1",
        "sh",
        "-c",
        "cat /app/owner; stat -c '%u:%g %n' /app /app/hello.txt",
    ]);
    assert_eq!(out, "0:0\n0:0 /app\n0:0 /app/hello.txt\n");

    // An image whose files belong to others (root's build, saved) loads
    // with every file the user's.
    let Some(tar) = rl.busybox_tar() else { return };
    let root = root_store(&tar, None);
    let demo = rl.context("demo", &demo_files());
    root.ok(&["build", "--network", "none", "-t", "demo:1", demo.to_str().unwrap()]);
    let archive = rl.path("home/demo.tar");
    root.ok(&["save", "-o", archive.to_str().unwrap(), "demo:1"]);
    rl.give(&archive);
    rl.ok(&["load", "-i", archive.to_str().unwrap()]);
    let out = rl.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "demo:1",
        "stat",
        "-c",
        "%u:%g %a %n",
        "/data/f",
        "/data/nobody",
        "/app/tree/a.txt",
    ]);
    assert_eq!(out, "0:0 644 /data/f\n0:0 4755 /data/nobody\n0:0 644 /app/tree/a.txt\n");
    assert_eq!(host_owner(&rl.store(), "data/nobody"), (user.uid, user.gid));
}

/// A user without subordinate ids: a `RUN chown` to another id in a build
/// is ignored (the file stays the user's, shown as 0), not an error: the
/// chown family returns 0 under the container's seccomp filter in
/// single-id mode. (Rootless podman 4.3 with a single mapping fails this
/// build: busybox's `chown: /data/f: Invalid argument`, the kernel's EINVAL
/// for an unmapped id; #19 asks for chowns to be ignored.)
#[test]
fn single_id_user_run_chown_in_a_build_is_ignored() {
    let Some(rl) = Rootless::new(Kind::SingleId) else {
        return;
    };
    let Some(_) = rl.import_busybox() else { return };
    let ctx = rl.context(
        "chown",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN mkdir /data && touch /data/f && chown -R 1000:1000 /data\n",
        )],
    );
    let o = rl
        .cmd()
        .args(["build", "--network", "none", "-t", "chown:1", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "a build whose RUN chowns to 1000 failed as {} (single id):\n{}",
        rl.user.name,
        text(&o)
    );
    let out = rl.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "chown:1",
        "stat",
        "-c",
        "%u:%g %n",
        "/data",
        "/data/f",
    ]);
    assert_eq!(out, "0:0 /data\n0:0 /data/f\n");
}

/// A detached container's life as an ordinary user, each step its own
/// strata process joining the store's namespaces: run -d with a named
/// volume, ps, exec (as root and as 1000), cp both ways, logs, stop, start,
/// kill, wait, rm, the volume's owners kept, info naming the store; at the
/// end nothing runs in the namespace but the pause process and no
/// container root is left mounted in it.
#[test]
fn detached_container_lifecycle_as_an_ordinary_user() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let no_net = !default_network_usable();
    let ok = |args: &[&str]| rl.ok(&net_args(args, no_net));
    let user = rl.user.clone();
    let Some(_) = rl.import_busybox() else { return };
    let store = rl.store();
    assert_eq!(
        ok(&["info", "-f", "{{.DockerRootDir}}"]).trim(),
        store.to_str().unwrap(),
        "info's root is not $XDG_DATA_HOME/strata"
    );
    let id = rl
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-v",
            "data:/vol",
            "busybox",
            "sh",
            "-c",
            "echo started; echo hi > /vol/x && chown 1000:1000 /vol/x; exec sleep 300",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(ok(&["ps", "-q", "--no-trunc"]).trim(), id);
    // exec into what another process started (the pause's namespaces).
    let mut out = String::new();
    for _ in 0..50 {
        out = ok(&["exec", "web", "sh", "-c", "id -u; stat -c %u:%g /vol/x 2>/dev/null"]);
        if out.lines().count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(out, "0\n1000:1000\n");
    assert_eq!(ok(&["exec", "-u", "1000:1000", "web", "id", "-u"]), "1000\n");
    // cp in and out.
    let inp = rl.path("home/in.txt");
    std::fs::write(&inp, "from the host\n").unwrap();
    rl.give(&inp);
    ok(&["cp", inp.to_str().unwrap(), "web:/tmp/in.txt"]);
    assert_eq!(ok(&["exec", "web", "cat", "/tmp/in.txt"]), "from the host\n");
    let outp = rl.path("home/out-passwd");
    ok(&["cp", "web:/etc/passwd", outp.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&outp).unwrap(),
        std::fs::read_to_string(rl.path("busybox-rootfs/etc/passwd")).unwrap()
    );
    let m = std::fs::metadata(&outp).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (user.uid, user.gid),
        "a file cp'd out is the user's"
    );
    assert_eq!(ok(&["logs", "web"]), "started\n");
    // The volume's file on disk: container uid 1000.
    let vol = walk_for(&store, "x", 4);
    assert!(
        vol.iter()
            .any(|p| p.symlink_metadata().is_ok_and(|m| m.uid() == user.host_uid(1000))),
        "no x owned by {} (container 1000) in the store: {vol:?}",
        user.host_uid(1000)
    );

    ok(&["stop", "-t", "1", "web"]);
    assert_eq!(ok(&["ps", "-q"]), "");
    ok(&["start", "web"]);
    assert_eq!(ok(&["ps", "-q", "--no-trunc"]).trim(), id);
    ok(&["kill", "web"]);
    assert_eq!(ok(&["wait", "web"]), "137\n");
    ok(&["rm", "web"]);
    assert_eq!(ok(&["ps", "-a", "-q"]), "");
    let out = ok(&[
        "run",
        "--rm",
        "-v",
        "data:/vol",
        "busybox",
        "stat",
        "-c",
        "%u:%g",
        "/vol/x",
    ]);
    assert_eq!(out, "1000:1000\n");
    ok(&["volume", "rm", "data"]);

    // Nothing left in the namespace but its pause process, nothing mounted
    // from the store in its mount namespace.
    let pause = common::rootless::pause_pid(&store).expect("the store's pause process");
    let others = || -> Vec<i32> {
        let v = common::rootless::processes_in_user_ns_of(pause);
        v.into_iter().filter(|p| *p != pause).collect()
    };
    // A second for what is on its way out.
    let mut left = others();
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = others();
    }
    let left: Vec<String> = left.into_iter().map(common::rootless::describe_process).collect();
    assert!(
        left.is_empty(),
        "still running in the user namespace a second after rm: {left:#?}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pause}/mountinfo")).unwrap();
    let store_s = store.to_str().unwrap();
    let leaked: Vec<&str> = mounts.lines().filter(|l| l.contains(store_s)).collect();
    assert!(
        leaked.is_empty(),
        "mounts left in the pause's namespace:\n{}",
        leaked.join("\n")
    );
}

/// With `SOURCE_DATE_EPOCH`, the rootless build's image ID is root's with
/// each storage driver a rootless store may have: native overlay (with
/// `userxattr`) and fuse-overlayfs (where the kernel refuses overlay in a
/// user namespace, as Podman falls back) against root's overlay, vfs
/// against root's vfs (a copy diffed by walking both trees, as containerd's
/// naive differ: a hard link added to a lower file gives a layer with the
/// new name as a plain file, so its image differs from overlay's by
/// design); no fuse-overlayfs or other process is left running after.
#[test]
fn source_date_epoch_image_id_is_roots_with_every_rootless_storage_driver() {
    const EPOCH: &str = "1700000000";
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let Some(tar) = rl.busybox_tar() else { return };
    let ctx = rl.context("demo", &demo_files());
    let ctx = ctx.to_str().unwrap();
    let build = ["build", "-q", "--network", "none", "-t", "demo:1", ctx];
    // Root's builds, per driver, each in a store of its own.
    let root_id = |driver: &str| -> String {
        let root = root_store(&tar, Some(EPOCH));
        let o = root
            .cmd()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env("STRATA_STORAGE_DRIVER", driver)
            .args(build)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "root build ({driver}): {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let root_overlay = root_id("overlay");
    let root_vfs = root_id("vfs");
    let mut drivers = vec![("overlay", &root_overlay), ("vfs", &root_vfs)];
    if usable_by_all("/dev/fuse") && Path::new("/usr/bin/fuse-overlayfs").exists() {
        drivers.push(("fuse-overlayfs", &root_overlay));
    } else {
        eprintln!(
            "skipped: the fuse-overlayfs store (needs /usr/bin/fuse-overlayfs and a /dev/fuse the user may open: scripts/deps.d/rootless-devices.sh)"
        );
    }
    let mut wrong = Vec::new();
    for (driver, want) in drivers {
        let store = rl.path(&format!("home/store-{driver}"));
        let run = |args: &[&str]| {
            let o = rl
                .cmd_at(&store)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .env("STRATA_STORAGE_DRIVER", driver)
                .args(args)
                .output()
                .unwrap();
            rl.ok_out(o, args).0
        };
        run(&import_args(tar.to_str().unwrap()));
        let got = run(&build).trim().to_string();
        assert_eq!(run(&["info", "-f", "{{.Driver}}"]).trim(), driver, "the store's driver");
        // The image runs too, and shows the owners.
        let stat = ["run", "--rm", "--network", "none", "demo:1", "sh", "-c", DEMO_STAT];
        let out = run(&stat);
        if got != *want || out != DEMO_STAT_WANT {
            wrong.push(format!(
                "{driver}: image {got} (root's {want}); layers {}\n{out}",
                run(&["inspect", "-f", "{{json .RootFS.Layers}}", "demo:1"]).trim()
            ));
        }
        let pause = common::rootless::pause_pid(&store).expect("the store's pause process");
        let mut left = Vec::new();
        for _ in 0..20 {
            left = common::rootless::processes_in_user_ns_of(pause);
            left.retain(|p| *p != pause);
            if left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let left: Vec<String> = left.into_iter().map(common::rootless::describe_process).collect();
        assert!(
            left.is_empty(),
            "{driver}: left running after the build and run: {left:#?}"
        );
    }
    assert!(
        wrong.is_empty(),
        "with SOURCE_DATE_EPOCH the rootless build differs from root's:\n{}",
        wrong.join("\n")
    );
}

/// The store's pause process: made once when several first commands race
/// for it, remade when it is gone (a container created before starts in
/// the new namespace, the images are kept), and a pid file naming another
/// process (a reused pid: its start time differs) is never joined.
#[test]
fn pause_process_made_once_and_remade_when_gone() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    let Some(tar) = rl.busybox_tar() else { return };
    let store = rl.store();
    // Four first commands at once on a new store.
    let children: Vec<_> = (0..4)
        .map(|_| {
            rl.cmd()
                .args(["images", "-q"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "a racing first command: {}", text(&o));
    }
    let pauses = rl.own_processes_named("strata-pause");
    assert_eq!(
        pauses.len(),
        1,
        "pause processes after 4 racing first commands: {pauses:?}"
    );
    let first = common::rootless::pause_pid(&store).expect("rootless.pid names a live process");
    assert_eq!(pauses, vec![first]);

    rl.ok(&import_args(tar.to_str().unwrap()));
    rl.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "none",
        "busybox",
        "echo",
        "started later",
    ]);
    // The pause process dies (killed, the machine's OOM killer, …).
    // SAFETY: a signal to this test's own pause process.
    unsafe { libc::kill(first, libc::SIGKILL) };
    for _ in 0..100 {
        if !common::rootless::alive(first) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!common::rootless::alive(first));
    assert_eq!(rl.ok(&["images", "--format", "{{.Repository}}"]), "busybox\n");
    let second = common::rootless::pause_pid(&store).expect("a new pause process");
    assert_ne!(second, first);
    assert_eq!(rl.ok(&["start", "-a", "later"]), "started later\n");
    rl.ok(&["rm", "later"]);
    assert_eq!(
        rl.ok(&["run", "--rm", "--network", "none", "busybox", "id", "-u"]),
        "0\n"
    );

    // A pid file naming a live process that is not the pause process: pid
    // 1 with a start time it does not have.
    // SAFETY: as above.
    unsafe { libc::kill(second, libc::SIGKILL) };
    for _ in 0..100 {
        if !common::rootless::alive(second) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(store.join("rootless.pid"), "1 12345\n").unwrap();
    rl.give(&store.join("rootless.pid"));
    assert_eq!(
        rl.ok(&["run", "--rm", "--network", "none", "busybox", "id", "-u"]),
        "0\n"
    );
    let third = common::rootless::pause_pid(&store).expect("a new pause process");
    assert!(third != 1 && third != second, "{third}");
    assert_eq!(rl.own_processes_named("strata-pause"), vec![third]);
}

/// `GET /index.html` on 127.0.0.1:`port`, retried while the server starts;
/// the answer, or None after 10 s.
fn http_get(port: u16) -> Option<String> {
    use std::io::Write;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(
                &format!("127.0.0.1:{port}").parse().unwrap(),
                std::time::Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if r.contains("200 OK") => return Some(r),
            _ if std::time::Instant::now() > deadline => return None,
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// Whether the device `dev` may be opened for reading and writing by
/// anyone (as Debian's udev makes /dev/fuse and /dev/net/tun).
fn usable_by_all(dev: &str) -> bool {
    std::fs::metadata(dev).is_ok_and(|m| m.mode() & 0o006 == 0o006)
}

/// What the published container serves on 8080.
const SERVE: &str =
    "mkdir -p /www && echo hello from a rootless container > /www/index.html && exec httpd -f -p 8080 -h /www";

/// Nothing but the store's pause process runs in its user namespace (a
/// second allowed for what is on its way out).
fn assert_only_the_pause_left(rl: &Rootless, what: &str) {
    let pause = common::rootless::pause_pid(&rl.store()).expect("the store's pause process");
    let mut left = Vec::new();
    for _ in 0..20 {
        left = common::rootless::processes_in_user_ns_of(pause);
        left.retain(|p| *p != pause);
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left: Vec<String> = left.into_iter().map(common::rootless::describe_process).collect();
    assert!(left.is_empty(), "left running after {what}: {left:#?}");
}

/// A published port as an ordinary user answers on the host's 127.0.0.1
/// (`port` says where); `rm -f` closes it and leaves nothing running.
#[test]
fn published_port_as_an_ordinary_user() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    if !Path::new("/usr/bin/pasta").exists() || !usable_by_all("/dev/net/tun") {
        eprintln!(
            "skipped: rootless networking needs pasta and a /dev/net/tun the user may open (scripts/deps.d/rootless-devices.sh)"
        );
        return;
    }
    let Some(_) = rl.import_busybox() else { return };
    let serve = SERVE;
    let port = common::free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    rl.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "busybox", "sh", "-c", serve,
    ]);
    let answer = http_get(port);
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.contains("hello from a rootless container")),
        "127.0.0.1:{port} (published from the container's 8080): {answer:?}\nlogs: {}",
        rl.ok(&["logs", "web"])
    );
    assert_eq!(rl.ok(&["port", "web"]), format!("8080/tcp -> 127.0.0.1:{port}\n"));
    rl.ok(&["rm", "-f", "web"]);
    let mut answers = true;
    for _ in 0..40 {
        answers = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
        if !answers {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!answers, "127.0.0.1:{port} still answers 2 s after rm -f");
    assert_only_the_pause_left(&rl, "rm -f of a published container");
}
