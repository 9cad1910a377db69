//! Containers against the rules and the peers: whiteouts and opaque
//! directories through three layers, the writable layer's life, and
//! committed images read by docker and podman, whose own commit of the same
//! change gives the same layer.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::{Env, docker_daemon, have, sh, sh_ok};

/// path → (type, mode, uid, gid, link target, content hash) of a layer tar.
type Listing = BTreeMap<String, String>;

fn list_tar(bytes: &[u8]) -> Listing {
    let mut out = Listing::new();
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes())
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        let h = e.header().clone();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let kind = format!("{:?}", h.entry_type());
        out.insert(
            path,
            format!(
                "{kind} {:o} {}:{} {link} {}",
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                strata_oci::Digest::sha256_of(&data)
            ),
        );
    }
    out
}

/// The top layer of an image in a docker-archive (Docker 25+ or legacy layout).
fn top_layer(archive: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    sh_ok(&format!("tar -C {} -xf {}", dir.path().display(), archive.display()));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let layers = m[0]["Layers"].as_array().unwrap();
    let top = dir.path().join(layers.last().unwrap().as_str().unwrap());
    let raw = std::fs::read(top).unwrap();
    let mut plain = Vec::new();
    strata_layer::decompressor(std::io::BufReader::new(&raw[..]))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

#[test]
fn whiteouts_and_opaque_dirs_through_three_layers() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/b && echo s > /d/sub/s && echo keep > /k && echo x > /x\n\
         RUN rm -rf /d && mkdir /d && echo c > /d/c && rm /k\n\
         RUN rm /d/c && echo e > /d/e && echo y > /x\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "three", ctx.to_str().unwrap()]);
    // The merged view: the opaque dir hides layer 1's content, the
    // whiteouts remove /k and /d/c, the top layer's /x shadows the lower one.
    let out = env.ok(&[
        "run",
        "--rm",
        "three",
        "sh",
        "-c",
        "find /d | sort; cat /x; test -e /k || echo no-k",
    ]);
    assert_eq!(out, "/d\n/d/e\ny\nno-k\n");
    // In the layers themselves: layer 3 (RUN 2) carries the opaque marker and .wh.k.
    let archive = env.path("three.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "three"]);
    let dir = tempfile::tempdir().unwrap();
    sh_ok(&format!("tar -C {} -xf {}", dir.path().display(), archive.display()));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let layers: Vec<Listing> = m[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| list_tar(&std::fs::read(dir.path().join(l.as_str().unwrap())).unwrap()))
        .collect();
    assert_eq!(layers.len(), 4);
    assert!(layers[2].contains_key("d/.wh..wh..opq"), "{:?}", layers[2].keys());
    assert!(layers[2].contains_key(".wh.k"), "{:?}", layers[2].keys());
    assert!(layers[3].contains_key("d/.wh.c"), "{:?}", layers[3].keys());
    // A container's writes vanish with it, a volume keeps them.
    env.ok(&[
        "run",
        "--name",
        "wctr",
        "-v",
        "keep:/data",
        "three",
        "sh",
        "-c",
        "echo tmp > /tmpfile; echo v > /data/v",
    ]);
    env.ok(&["rm", "wctr"]);
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "three",
        "sh",
        "-c",
        "test -e /tmpfile || echo gone; cat /data/v",
    ]);
    assert_eq!(out, "gone\nv\n");
}

const CHANGE: &str = "mkdir -p /srv/app && echo hi > /srv/app/f && chmod 0640 /srv/app/f && chown 1:2 /srv/app/f \
                      && ln -s /srv/app/f /srv/link && rm /bin/ls && echo more >> /etc/passwd && mkdir /tmp/x && rmdir /tmp/x";

/// Runs CHANGE in a container named `chg` (with MODE=prod, workdir /srv).
fn run_change(env: &Env) {
    env.ok(&[
        "run",
        "--name",
        "chg",
        "-e",
        "MODE=prod",
        "-w",
        "/srv",
        "busybox",
        "sh",
        "-c",
        CHANGE,
    ]);
}

fn podman(env: &Env) -> Option<String> {
    if !have("podman") {
        return None;
    }
    let conf_dir = env.path("podman-conf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/podman-env.sh");
    let conf = sh(&format!("bash {} {}", script.display(), conf_dir.display()));
    if !conf.status.success() {
        eprintln!(
            "skipped: podman-env.sh failed: {}",
            String::from_utf8_lossy(&conf.stderr)
        );
        return None;
    }
    let conf = String::from_utf8_lossy(&conf.stdout).trim().to_string();
    Some(format!(
        "CONTAINERS_CONF={conf} podman --root {} --runroot {} --storage-driver vfs",
        env.path("podman-root").display(),
        env.path("podman-run").display()
    ))
}

#[test]
fn committed_image_runs_in_podman_and_matches_podman_commit() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let Some(podman) = podman(&env) else { return };
    // strata: run the change, commit, save.
    run_change(&env);
    env.ok(&["commit", "-c", "CMD [\"cat\", \"/srv/app/f\"]", "chg", "committed:1"]);
    let archive = env.path("committed.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "committed:1"]);
    // podman loads and runs it with the same config.
    sh_ok(&format!("{podman} load -i {} >/dev/null", archive.display()));
    let out = sh_ok(&format!("{podman} run --rm --network none committed:1"));
    assert_eq!(out, "hi\n");
    let out = sh_ok(&format!(
        "{podman} run --rm --network none committed:1 sh -c 'echo $MODE $(pwd)'"
    ));
    assert_eq!(out, "prod /srv\n");
    // podman makes the same change from the same base and commits it.
    let base = env.path("busybox.tar");
    env.ok(&["save", "-o", base.to_str().unwrap(), "busybox"]);
    sh_ok(&format!("{podman} load -i {} >/dev/null", base.display()));
    sh_ok(&format!(
        "{podman} run --name chg --network none busybox sh -c '{CHANGE}'"
    ));
    sh_ok(&format!("{podman} commit -q chg podman-committed:1 >/dev/null"));
    let parchive = env.path("podman-committed.tar");
    sh_ok(&format!(
        "{podman} save --format docker-archive -o {} podman-committed:1",
        parchive.display()
    ));
    let ours = list_tar(&top_layer(&archive));
    let theirs = list_tar(&top_layer(&parchive));
    // What podman's runtime adds to every container (mount points for the
    // files it bind-mounts) is not part of the change.
    let runtime_added = [
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/mtab",
        "run",
        "run/.containerenv",
        "etc",
    ];
    let strip = |l: &Listing| -> Listing {
        l.iter()
            .filter(|(p, _)| !runtime_added.contains(&p.as_str()))
            // Directory entries: podman records mode/owner of copied-up parents the same way,
            // but may list a parent we do not; compare files, links and whiteouts.
            .filter(|(_, v)| !v.starts_with("Directory"))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    };
    assert_eq!(strip(&ours), strip(&theirs), "strata's layer vs podman commit's");
    // Both list the changed and added directories too.
    for d in ["srv", "srv/app", "bin"] {
        assert!(
            ours.contains_key(d) && theirs.contains_key(d),
            "{d}: ours {:?} theirs {:?}",
            ours.keys(),
            theirs.keys()
        );
    }
    sh(&format!(
        "{podman} rm -f chg >/dev/null 2>&1; {podman} rmi -a -f >/dev/null 2>&1"
    ));
}

#[test]
fn committed_image_runs_in_docker_with_the_same_config() {
    if !docker_daemon() {
        return;
    }
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    run_change(&env);
    let tag = format!("strata-committed-{}:1", std::process::id());
    env.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/srv/app/f\"]",
        "-c",
        "EXPOSE 8080",
        "chg",
        &tag,
    ]);
    let archive = env.path("committed.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), &tag]);
    sh_ok(&format!("docker load -i {} >/dev/null", archive.display()));
    assert_eq!(sh_ok(&format!("docker run --rm --network none {tag}")), "hi\n");
    assert_eq!(
        sh_ok(&format!(
            "docker run --rm --network none {tag} sh -c 'echo $MODE $(pwd)'"
        )),
        "prod /srv\n"
    );
    let theirs: serde_json::Value = serde_json::from_str(&sh_ok(&format!("docker image inspect {tag}"))).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &tag])).unwrap();
    for k in ["Env", "Cmd", "WorkingDir", "ExposedPorts", "Entrypoint", "User"] {
        let norm = |v: &serde_json::Value| {
            if v.is_null() || v == "" {
                serde_json::Value::Null
            } else {
                v.clone()
            }
        };
        assert_eq!(norm(&ours[0]["Config"][k]), norm(&theirs[0]["Config"][k]), "Config.{k}");
    }
    assert_eq!(ours[0]["Id"], theirs[0]["Id"], "docker keeps the image ID");
    sh(&format!("docker rmi -f {tag} >/dev/null 2>&1"));
}

/// A container of an image with nothing but `/bin` (a `FROM scratch`
/// binary's kind): `diff` and `commit` show only what the process did, as
/// Docker's (its init layer holds `/proc`, `/sys`, `/dev`, `/etc/hosts`, …),
/// for the default network and `--network none`.
#[test]
fn diff_and_commit_of_a_minimal_image_match_docker() {
    if !docker_daemon() {
        return;
    }
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else { return };
    let minimal = env.path("minimal");
    std::fs::create_dir_all(minimal.join("bin")).unwrap();
    std::fs::copy(rootfs.join("bin/busybox"), minimal.join("bin/sh")).unwrap();
    let tar = env.path("minimal.tar");
    sh_ok(&format!("tar -C {} -cf {} .", minimal.display(), tar.display()));
    let tag = format!("strata-minimal-{}:1", std::process::id());
    env.ok(&["import", tar.to_str().unwrap(), &tag]);
    sh_ok(&format!("docker import {} {tag} >/dev/null", tar.display()));
    let script = "echo x > /g; /bin/sh -c 'echo y > /etc/added' 2>/dev/null; true";
    for net in [None, Some("none")] {
        let mut args = vec!["run", "--name", "mini"];
        let docker_net = match net {
            Some(n) => {
                args.extend(["--network", n]);
                "--network none"
            }
            // The private dockerd has no bridge: its default is none here.
            None => "--network none",
        };
        args.extend([tag.as_str(), "/bin/sh", "-c", script]);
        env.ok(&args);
        sh_ok(&format!(
            "docker run --name mini-{} {docker_net} {tag} /bin/sh -c \"{script}\"",
            std::process::id()
        ));
        let ours = env.ok(&["diff", "mini"]);
        let theirs = sh_ok(&format!("docker diff mini-{}", std::process::id()));
        // The same changes; docker's order is not stable (with the naive
        // diff of overlay2 it walks a Go map: `A /g` came first in one CI
        // run, last in others), strata's is by path.
        let sorted = |s: &str| {
            let mut v: Vec<&str> = s.lines().collect();
            v.sort();
            v.join("\n")
        };
        assert_eq!(sorted(&ours), sorted(&theirs), "diff ({net:?})");
        let paths: Vec<&str> = ours.lines().map(|l| l.get(2..).unwrap_or(l)).collect();
        assert!(paths.is_sorted(), "strata lists its changes by path: {ours}");
        env.ok(&["commit", "mini", "mini-committed:1"]);
        let saved = env.path("mini.tar");
        env.ok(&["save", "-o", saved.to_str().unwrap(), "mini-committed:1"]);
        let layer = top_layer(&saved);
        let names: Vec<String> = list_tar(&layer).keys().cloned().collect();
        assert_eq!(names, ["etc", "etc/added", "g"], "the committed layer ({net:?})");
        env.ok(&["rm", "mini"]);
        env.ok(&["rmi", "mini-committed:1"]);
        sh(&format!("docker rm mini-{} >/dev/null 2>&1", std::process::id()));
    }
    sh(&format!("docker rmi {tag} >/dev/null 2>&1"));
}
