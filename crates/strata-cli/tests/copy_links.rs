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

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::Env;
use common::differential::{Differential, OLD, Pair, assert_same_listing, docker_ok, unique};

/// Builds with strata and docker (when there is one): the exported root
/// filesystems compared, strata's listing and image size returned.
/// `sizes`: the image sizes must agree within 10% too (meant for a few
/// large layers: each layer's tar framing counts differently). `recent`:
/// directories whose time must be the build's (true) or an old source's
/// (false). strata's image is also saved and loaded into docker, and must
/// export the same root filesystem there.
fn build(both: &Differential, dir: &Path, name: &str, sizes: bool, recent: &[(&str, bool)]) -> (Pair, u64) {
    let pair = both.build(dir, name, &[]);
    let tag = pair.tag.clone();
    let s = &pair.strata.rootfs;
    let s_size = pair.strata.inspect["Size"].as_u64().unwrap();
    for (p, t) in recent {
        let st = s.dir_times.get(*p);
        assert_eq!(st.map(|x| *x > OLD), Some(*t), "{tag}: /{p}: {st:?}");
    }
    let (Some(docker), Some(d)) = (&both.docker, &pair.docker) else {
        return (pair, s_size);
    };
    pair.assert_same_rootfs();
    let d_listing = &d.rootfs;
    for (p, t) in recent {
        let (st, dt) = (s.dir_times.get(*p), d_listing.dir_times.get(*p));
        assert_eq!(
            (st.map(|x| *x > OLD), dt.map(|x| *x > OLD)),
            (Some(*t), Some(*t)),
            "{tag}: /{p}: made by the copy (strata, docker: {st:?}, {dt:?})"
        );
    }
    let d_size = d.inspect["Size"].as_u64().unwrap();
    // Sizes agree within 10% (layer tars differ in padding and headers).
    assert!(
        !sizes || s_size * 10 <= d_size * 11 && d_size * 10 <= s_size * 11,
        "{tag}: image sizes differ: strata {s_size}, docker {d_size}"
    );
    // strata's layers (with their hard-link entries) as docker loads them.
    let saved = format!("{tag}-saved");
    let archive = both.env.path(&format!("{tag}-saved.tar"));
    both.env.ok(&["tag", &tag, &saved]);
    both.env.ok(&["save", "-o", archive.to_str().unwrap(), &saved]);
    docker_ok(docker, &["load", "-i", archive.to_str().unwrap()]);
    both.made_in_docker(&saved);
    let loaded = both.docker_built(docker, &saved);
    assert_same_listing(
        &format!("{tag} (saved by strata, loaded by docker)"),
        &loaded.rootfs,
        d_listing,
    );
    let _ = std::fs::remove_file(archive);
    (pair, s_size)
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
    let Some(both) = Differential::new(&env, "links") else {
        return;
    };
    let dir = both.context("links", LINKS, &[]);
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
    let (pair, size) = build(&both, &dir, "links", true, &[]);
    let (tag, s) = (&pair.tag, &pair.strata.rootfs);

    // strata's own result, docker or not.
    let applets = s.entries.keys().filter(|k| k.starts_with("bin2/")).count();
    assert!(applets > 100, "{applets} entries in /bin2");
    assert_eq!(
        s.bodies.get("bin2"),
        Some(&1),
        "/bin2 holds one busybox: {:?}",
        s.bodies
    );
    let group = s.group_of("bin2/sh");
    let outside: Vec<(&String, &String)> = s
        .entries
        .iter()
        .filter(|(k, _)| k.starts_with("bin2/") && !group.contains(k))
        .collect();
    assert!(outside.is_empty(), "not linked to /bin2/sh: {outside:?}");
    for top in ["from-tree", "owned", "moded", "real2"] {
        assert_eq!(
            s.group_of(&format!("{top}/d/f")),
            [format!("{top}/d/f"), format!("{top}/d/h"), format!("{top}/g")],
            "{top}"
        );
        assert_eq!(s.group_of(&format!("{top}/lone")), [format!("{top}/lone")]);
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
            s.group_of(&format!("{top}/a")),
            [format!("{top}/a"), format!("{top}/b"), format!("{top}/sub/c")],
            "{top}"
        );
        assert!(s.entries[&format!("{top}/b")].starts_with("file 644 0:0 "));
    }
    // Separate sources are copied separately (BuildKit copies each on its own).
    assert_eq!(s.group_of("pair/a"), ["pair/a"]);
    assert_eq!(s.group_of("pair2/g"), ["pair2/g"]);
    // So are a wildcard's matches (BuildKit too: compared above).
    let wild = s.entries.keys().filter(|k| k.starts_with("wild/")).count() as u64;
    assert!(wild > 5, "{wild}");
    assert_eq!(s.group_of("wild/sh"), ["wild/sh"]);
    assert_eq!(s.group_of("ctxwild/a"), ["ctxwild/a"]);
    // The image holds busybox twice (the base's and /bin2's) and once per
    // wildcard match, not once per applet.
    let bb = std::fs::metadata(env.busybox_rootfs().unwrap().join("bin/busybox"))
        .unwrap()
        .len();
    assert!(size < (3 + wild) * bb, "image size {size} for a busybox of {bb} bytes");
    // The COPY --from layer holds one busybox body and a hard-link entry per other applet.
    let layers = layers(&env, tag);
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
    let Some(both) = Differential::new(&env, "dirmeta") else {
        return;
    };
    let dir = both.context("dirmeta", DIR_META, &[]);
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
    let (pair, _) = build(&both, &dir, "dirmeta", false, &[("ctx", true), ("ctx-setid", true)]);
    let s = &pair.strata.rootfs;
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
