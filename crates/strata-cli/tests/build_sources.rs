//! COPY and ADD sources and destinations, strata beside docker (BuildKit) on
//! the same context and busybox base (issue #15, build items 3–5):
//! wildcards that match nothing, several sources to a destination without
//! `/`, URL sources of COPY, a lone `!` in .dockerignore, compressed local
//! archives told by their magic bytes, symlinks in the image followed
//! inside the root by COPY and ADD, and `.wh.` names in an ADDed tar.
//!
//! strata's half always runs with its expectations asserted; the docker
//! comparison prints `skipped: …` when no docker daemon answers.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Env;
use common::differential::{Differential, Listing, assert_same_listing, docker_ok};

/// Runs a shell script in `dir`, insisting on success.
fn sh_in(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

/// `tar` of the paths under `src` (relative to it) into `out`, numeric owners.
fn tar_of(src: &Path, out: &Path, paths: &[&str]) {
    let st = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(src)
        .arg("-cf")
        .arg(out)
        .args(paths)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_wildcard_that_matches_nothing_selects_nothing() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "emptywild") else {
        return;
    };
    let dir = both.context(
        "emptywild",
        "FROM @BASE@\n\
         COPY foo nomatch* /out/\n\
         COPY foo nomatch* /single\n\
         COPY nomatch* /alone/\n\
         COPY nomatch* /alone2\n\
         COPY sub/nomatch* foo sub/*.none /third/\n",
        &[("foo", "foo\n"), ("sub/x", "x\n")],
    );
    let pair = both.build(&dir, "emptywild", &[]);
    let s = &pair.strata.rootfs;
    s.assert_has(
        &pair.tag,
        &[
            ("out/foo", "file 644 0:0 "),
            ("out", "dir 755 0:0"),
            // One source left: a destination without `/` is the file itself.
            ("single", "file 644 0:0 "),
            ("third/foo", "file 644 0:0 "),
            // A wildcard alone that matches nothing copies nothing, not even
            // the destination directory (BuildKit's AllowEmptyWildcard).
            ("alone", "(none)"),
            ("alone2", "(none)"),
        ],
    );
    assert_eq!(s.get("single"), s.get("out/foo"));
    pair.assert_same();

    // The directory a wildcard is matched in must exist (BuildKit walks it).
    let bad = both.context(
        "emptywild-bad",
        "FROM @BASE@\nCOPY foo nodir/* /out/\n",
        &[("foo", "foo\n")],
    );
    let f = both.build_fails(&bad, "emptywild-bad", &[]);
    assert!(f.strata.contains(r#""/nodir": not found"#), "{}", f.strata);
    if let Some(d) = f.docker {
        assert!(d.contains("nodir"), "{d}");
    }
}

#[test]
fn several_sources_to_a_destination_without_a_slash_are_copied_in_turn() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "manysrc") else {
        return;
    };
    let dir = both.context(
        "manysrc",
        "FROM @BASE@\n\
         COPY a b /last\n\
         COPY a1 a2 /glob-ref/\n\
         COPY a* /glob\n\
         COPY dir a /merged\n\
         COPY dir dir2 /both\n\
         RUN mkdir /existing\n\
         COPY a b /existing\n",
        &[
            ("a", "a\n"),
            ("b", "bee\n"),
            ("a1", "a one\n"),
            ("a2", "a two\n"),
            ("dir/x", "x\n"),
            ("dir2/y", "y\n"),
        ],
    );
    let pair = both.build(&dir, "manysrc", &[]);
    let s = &pair.strata.rootfs;
    s.assert_has(
        &pair.tag,
        &[
            ("last", "file 644 0:0 "),
            ("glob", "file 644 0:0 "),
            ("merged", "dir 755 0:0"),
            ("merged/x", "file 644 0:0 "),
            ("merged/a", "file 644 0:0 "),
            ("both/x", "file 644 0:0 "),
            ("both/y", "file 644 0:0 "),
            ("existing/a", "file 644 0:0 "),
            ("existing/b", "file 644 0:0 "),
        ],
    );
    // The last source wins: `b`, and the last match of `a*` (`a2`).
    assert_eq!(s.get("last"), s.get("existing/b"));
    assert_eq!(s.get("glob"), s.get("glob-ref/a2"));
    pair.assert_same();

    // A directory after a file: the destination is a file by then.
    let bad = both.context(
        "manysrc-bad",
        "FROM @BASE@\nCOPY a dir /out\n",
        &[("a", "a\n"), ("dir/x", "x\n")],
    );
    let f = both.build_fails(&bad, "manysrc-bad", &[]);
    assert!(f.strata.contains("cannot copy to non-directory: /out"), "{}", f.strata);
    if let Some(d) = f.docker {
        assert!(d.contains("cannot copy to non-directory"), "{d}");
    }
}

#[test]
fn copy_refuses_a_url_source_even_when_the_context_has_that_path() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "copyurl") else {
        return;
    };
    let dir = both.context(
        "copyurl",
        "FROM @BASE@\nCOPY http://example.com/x /out\n",
        &[("http:/example.com/x", "a file named like a URL\n")],
    );
    let f = both.build_fails(&dir, "copyurl", &[]);
    assert!(f.strata.contains("source can't be a URL for COPY"), "{}", f.strata);
    assert!(f.strata.contains("Dockerfile:2"), "{}", f.strata);
    if let Some(d) = f.docker {
        assert!(d.contains("source can't be a URL for COPY"), "{d}");
    }
    // Through a variable too (known only when the step runs).
    let dir = both.context(
        "copyurl-arg",
        "FROM @BASE@\nARG SRC=https://example.com/x\nCOPY $SRC /out\n",
        &[("https:/example.com/x", "x\n")],
    );
    let f = both.build_fails(&dir, "copyurl-arg", &[]);
    assert!(f.strata.contains("source can't be a URL for COPY"), "{}", f.strata);
    if let Some(d) = f.docker {
        assert!(d.contains("source can't be a URL for COPY"), "{d}");
    }
}

#[test]
fn a_lone_exclamation_mark_in_dockerignore_is_an_error() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "bang") else {
        return;
    };
    for (name, ignore) in [("bang", "!\n"), ("bang-spaced", "*.log\n  !  \n")] {
        let dir = both.context(
            name,
            "FROM @BASE@\nCOPY a /a\n",
            &[("a", "a\n"), (".dockerignore", ignore)],
        );
        let f = both.build_fails(&dir, name, &[]);
        assert!(f.strata.contains(r#"illegal exclusion pattern: "!""#), "{}", f.strata);
        if let Some(d) = f.docker {
            assert!(d.contains(r#"illegal exclusion pattern: "!""#), "{d}");
        }
    }
}

#[test]
fn add_unpacks_bzip2_and_xz_archives_told_by_their_magic() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "compressed") else {
        return;
    };
    if !["bzip2", "xz", "gzip", "zstd"].iter().all(|t| common::have(t)) {
        eprintln!("skipped: bzip2, xz, gzip and zstd are needed to make the archives");
        return;
    }
    let dir = both.context(
        "compressed",
        "FROM @BASE@\nADD a.tar.bz2 b.tar.xz misnamed.bin text.bz2 fake.tar.gz /out/\n",
        &[
            ("src/bz/f", "bz\n"),
            ("src/xz/f", "xz\n"),
            ("src/gz/f", "gz\n"),
            ("src/zs/f", "zs\n"),
        ],
    );
    sh_in(
        &dir,
        "tar --numeric-owner --owner=0 --group=0 -C src -cf - bz | bzip2 > a.tar.bz2 && \
         tar --numeric-owner --owner=0 --group=0 -C src -cf - xz | xz > b.tar.xz && \
         tar --numeric-owner --owner=0 --group=0 -C src -cf - gz | gzip > misnamed.bin && \
         tar --numeric-owner --owner=0 --group=0 -C src -cf - zs | zstd -q > c.tar.zst && \
         echo 'not a tar' | bzip2 > text.bz2 && echo 'not gzip' > fake.tar.gz",
    );
    let pair = both.build(&dir, "compressed", &[]);
    pair.strata.rootfs.assert_has(
        &pair.tag,
        &[
            ("out/bz/f", "file 644 0:0 3b "),
            ("out/xz/f", "file 644 0:0 3b "),
            // Told by its content, not its name.
            ("out/gz/f", "file 644 0:0 3b "),
            ("out/misnamed.bin", "(none)"),
            // Compressed but no tar, and named like an archive but none: copied.
            ("out/text.bz2", "file 644 0:0 "),
            ("out/fake.tar.gz", "file 644 0:0 "),
        ],
    );
    pair.assert_same();

    // zstd: unpacked as current BuildKit does (Docker 20.10's builder copies
    // it as a file; see the README).
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}\nADD c.tar.zst /out/\n", both.base),
    )
    .unwrap();
    let tag = common::differential::unique("compressed-zstd");
    env.ok(&["build", "--network", "none", "-t", &tag, dir.to_str().unwrap()]);
    both.strata_built(&tag)
        .rootfs
        .assert_has(&tag, &[("out/zs/f", "file 644 0:0 3b "), ("out/c.tar.zst", "(none)")]);
}

/// A base stage with symlinks: relative and dangling, absolute, and one
/// climbing out of the root.
const LINKS: &str = "FROM @BASE@\n\
RUN ln -s ../tmp/target /link && ln -s /nowhere/deep /dang && mkdir -p /srv /real \
 && ln -s /srv /var/svc && ln -s ../../../../../@ESCAPE@ /esc && ln -s real /via \
 && mkdir /out && ln -s /srv /out/sub\n";

#[test]
fn copy_follows_symlinks_in_the_destination_inside_the_root() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "destlinks") else {
        return;
    };
    // A host directory the escaping link names: it must stay untouched.
    let escape = format!("strata-escape-{}", std::process::id());
    let host = Path::new("/").join(&escape);
    let df = format!(
        "{}COPY foo /link/\nCOPY foo /dang/x/\nCOPY bar /via\nCOPY dir /var/svc\nCOPY foo /esc/\n",
        LINKS.replace("@ESCAPE@", &escape)
    );
    let dir = both.context(
        "destlinks",
        &df,
        &[("foo", "foo\n"), ("bar", "bar\n"), ("dir/in", "in\n")],
    );
    let pair = both.build(&dir, "destlinks", &[]);
    let s = &pair.strata.rootfs;
    s.assert_has(
        &pair.tag,
        &[
            ("link", "symlink 0:0 -> ../tmp/target"),
            ("tmp/target", "dir 755 0:0"),
            ("tmp/target/foo", "file 644 0:0 "),
            ("dang", "symlink 0:0 -> /nowhere/deep"),
            ("nowhere/deep/x/foo", "file 644 0:0 "),
            // The last component is followed too: /via -> real is a directory.
            ("via", "symlink 0:0 -> real"),
            ("real/bar", "file 644 0:0 "),
            ("var/svc", "symlink 0:0 -> /srv"),
            ("srv/in", "file 644 0:0 "),
            ("esc", &format!("symlink 0:0 -> ../../../../../{escape}")),
            (&format!("{escape}/foo"), "file 644 0:0 "),
        ],
    );
    assert!(!host.exists(), "{} was created on the host", host.display());
    pair.assert_same();

    // A directory of the copied tree meets a symlink at the destination: an
    // error, as in BuildKit (not written through it).
    let bad = both.context(
        "destlinks-bad",
        &format!("{}COPY dir /out\n", LINKS.replace("@ESCAPE@", &escape)),
        &[("dir/sub/x", "x\n")],
    );
    let f = both.build_fails(&bad, "destlinks-bad", &[]);
    assert!(
        f.strata.contains("cannot copy to non-directory: /out/sub"),
        "{}",
        f.strata
    );
    if let Some(d) = f.docker {
        assert!(d.contains("cannot copy to non-directory"), "{d}");
    }
    assert!(!host.exists());
}

#[test]
fn add_of_a_tar_follows_symlinks_already_in_the_image_inside_the_root() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "tarlinks") else {
        return;
    };
    let escape = format!("strata-escape-tar-{}", std::process::id());
    let host = Path::new("/").join(&escape);
    let df = format!(
        "{}RUN mkdir -p /srv2 /opt/srv2 /{escape} /opt2/srv && ln -s /srv2 /opt/abs\n\
         ADD rootfs.tar /\n\
         ADD opt.tar /opt/\n\
         ADD planted.tar /opt2/\n",
        LINKS.replace("@ESCAPE@", &escape)
    );
    let dir = both.context(
        "tarlinks",
        &df,
        &[
            ("src/var/svc/conf", "conf\n"),
            ("src/var/svc/sub/f", "f\n"),
            ("src/esc/x", "x\n"),
            ("src/opt/abs/y", "y\n"),
        ],
    );
    // No entry for var/svc itself: the entries pass through the image's symlink.
    tar_of(
        &dir.join("src"),
        &dir.join("rootfs.tar"),
        &["var/svc/conf", "var/svc/sub", "esc/x"],
    );
    tar_of(&dir.join("src/opt"), &dir.join("opt.tar"), &["abs/y"]);
    // Symlinks the archive plants are followed as well (chrooted in /opt2):
    // l -> /srv is /opt2/srv, up -> ../../.. is /opt2, and a hard link
    // through l.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "l", "/srv").unwrap();
    b.append_link(&mut h, "up", "../../..").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(8);
    b.append_data(&mut h, "l/x", &b"through\n"[..]).unwrap();
    h.set_size(3);
    b.append_data(&mut h, "up/top", &b"up\n"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    // (Docker sets a hard link entry's mode on the file: the same as it has.)
    h.set_mode(0o644);
    b.append_link(&mut h, "hl", "l/x").unwrap();
    std::fs::write(dir.join("planted.tar"), b.into_inner().unwrap()).unwrap();
    let pair = both.build(&dir, "tarlinks", &[]);
    pair.strata.rootfs.assert_has(
        &pair.tag,
        &[
            ("var/svc", "symlink 0:0 -> /srv"),
            ("srv/conf", "file 644 0:0 "),
            ("srv/sub", "dir 755 0:0"),
            ("srv/sub/f", "file 644 0:0 "),
            (&format!("{escape}/x"), "file 644 0:0 "),
            // Resolved inside the destination directory, as BuildKit's
            // untar chrooted there: /opt/abs -> /srv2 is /opt/srv2.
            ("opt/abs", "symlink 0:0 -> /srv2"),
            ("opt/srv2/y", "file 644 0:0 "),
            ("srv2/y", "(none)"),
            ("opt2/l", "symlink 0:0 -> /srv"),
            ("opt2/srv/x", "file 644 0:0 8b "),
            ("opt2/top", "file 644 0:0 3b "),
            ("srv/x", "(none)"),
            ("top", "(none)"),
        ],
    );
    assert_eq!(pair.strata.rootfs.group_of("opt2/hl"), ["opt2/hl", "opt2/srv/x"]);
    assert!(!host.exists(), "{} was created on the host", host.display());
    pair.assert_same();
}

#[test]
fn add_of_a_tar_with_whiteout_names_writes_plain_files() {
    let env = Env::new();
    let Some(both) = Differential::new(&env, "whnames") else {
        return;
    };
    let dir = both.context(
        "whnames",
        "FROM @BASE@\n\
         RUN mkdir -p /d /o && echo foo > /d/foo && echo keep > /o/keep\n\
         ADD wh.tar /\n",
        &[("src/d/.wh.foo", "wh\n"), ("src/o/.wh..wh..opq", "o\n")],
    );
    tar_of(&dir.join("src"), &dir.join("wh.tar"), &["d", "o"]);
    let pair = both.build(&dir, "whnames", &[]);
    // In the build's image: plain files, nothing deleted.
    pair.strata.rootfs.assert_has(
        &pair.tag,
        &[
            ("d/foo", "file 644 0:0 "),
            ("d/.wh.foo", "file 644 0:0 "),
            ("o/keep", "file 644 0:0 "),
            ("o/.wh..wh..opq", "file 644 0:0 "),
        ],
    );
    pair.assert_same();

    // Read back as a layer (saved, then loaded into another store), the
    // names are whiteouts: d/foo deleted, o made opaque, no .wh. file left.
    let archive = env.path("whnames-saved.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), &pair.tag]);
    let other = Env::new();
    other.ok(&["load", "-i", archive.to_str().unwrap()]);
    let id = other.ok(&["create", &pair.tag, "true"]).trim().to_string();
    let exported = other.path("whnames-export.tar");
    other.ok(&["export", "-o", exported.to_str().unwrap(), &id]);
    let loaded = Listing::of_tar(&exported);
    loaded.assert_has(
        &format!("{} (loaded)", pair.tag),
        &[
            ("d", "dir 755 0:0"),
            ("d/foo", "(none)"),
            ("d/.wh.foo", "(none)"),
            ("o", "dir 755 0:0"),
            ("o/keep", "(none)"),
            ("o/.wh..wh..opq", "(none)"),
        ],
    );
    // docker reads strata's saved layers the same way.
    if let (Some(docker), Some(_)) = (&both.docker, &pair.docker) {
        let saved = format!("{}-saved", pair.tag);
        env.ok(&["tag", &pair.tag, &saved]);
        env.ok(&["save", "-o", archive.to_str().unwrap(), &saved]);
        docker_ok(docker, &["load", "-i", archive.to_str().unwrap()]);
        both.made_in_docker(&saved);
        // Exported from a container (docker's `save` of a loaded layer
        // with whiteouts fails in 20.10: `docker_built` cannot be used).
        let cid = docker_ok(docker, &["create", &saved, "true"]).trim().to_string();
        let tar = env.path("whnames-docker-export.tar");
        docker_ok(docker, &["export", "-o", tar.to_str().unwrap(), &cid]);
        docker_ok(docker, &["rm", &cid]);
        assert_same_listing(&format!("{saved} (loaded by docker)"), &loaded, &Listing::of_tar(&tar));
    }
}
