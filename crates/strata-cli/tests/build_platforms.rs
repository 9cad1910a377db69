//! `build --platform P1,P2,…` (issue #13, item 2): one build per platform
//! from a multi-platform base made offline (the busybox rootfs imported per
//! platform, combined into an OCI index with `strata copy --all`), the
//! result an index of their images under the `-t` name; a
//! `FROM --platform=$BUILDPLATFORM` stage runs once (CACHED for the next
//! platforms); TARGET*/BUILD* arguments; bad platforms refused before any
//! step.
//!
//! What runs here depends on the host: linux/386 when an amd64 kernel runs
//! 32-bit x86 itself, linux/arm64 when a qemu-aarch64 binfmt_misc handler
//! with the F flag is registered and `/opt/strata-deps/foreign-busybox/`
//! has Debian's arm64 busybox-static (`scripts/deps.d/emulation.sh`); what
//! is left out is printed as `skipped: …`.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const FOREIGN: &str = "/opt/strata-deps/foreign-busybox";

fn host_platform() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("linux/amd64"),
        _ => None,
    }
}

/// Whether binfmt_misc has an enabled handler with the F flag whose
/// interpreter is QEMU's for `qemu_arch` (`aarch64`).
fn emulated(qemu_arch: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/sys/fs/binfmt_misc") else {
        return false;
    };
    if std::fs::read_to_string("/proc/sys/fs/binfmt_misc/status").is_ok_and(|s| s.trim() != "enabled") {
        return false;
    }
    dir.flatten().any(|e| {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            return false;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        text.lines().next() == Some("enabled")
            && field("interpreter").contains(&format!("qemu-{qemu_arch}"))
            && field("flags:").contains('F')
    })
}

/// An arm64 busybox rootfs: the host's with Debian's arm64 busybox-static
/// in place of /bin/busybox (the applet links are the same), or None.
fn arm64_rootfs(env: &Env, host_rootfs: &Path) -> Option<PathBuf> {
    let deb = std::fs::read_dir(FOREIGN)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_arm64.deb"))?;
    let dir = env.path("rootfs-arm64");
    let x = env.path("deb-arm64");
    sh_ok(&format!(
        "cp -a {src} {dir} && mkdir -p {x} && dpkg-deb -x {deb} {x} && cp {x}/bin/busybox {dir}/bin/busybox",
        src = shell_quote(host_rootfs.to_str().unwrap()),
        dir = shell_quote(dir.to_str().unwrap()),
        x = shell_quote(x.to_str().unwrap()),
        deb = shell_quote(deb.to_str().unwrap()),
    ));
    Some(dir)
}

/// `name` in the store: a multi-platform image of `parts` (platform, rootfs
/// directory), each imported for its platform (with a marker file), written
/// as an OCI layout with an index (`multi` in it, returned) and copied in
/// with `copy --all`.
fn multi_platform_base(env: &Env, name: &str, parts: &[(&str, &Path)]) -> PathBuf {
    let layout = env.path(&format!("layout-{}", name.replace([':', '/'], "-")));
    for (i, (platform, rootfs)) in parts.iter().enumerate() {
        let dir = env.path(&format!("rootfs-{name}-{i}").replace([':', '/'], "-"));
        sh_ok(&format!(
            "cp -a {} {d} && echo {} > {d}/platform",
            shell_quote(rootfs.to_str().unwrap()),
            shell_quote(platform),
            d = shell_quote(dir.to_str().unwrap()),
        ));
        let part = format!("part-{}:{i}", name.replace([':', '/'], "-"));
        env.ok(&["import", "--platform", platform, dir.to_str().unwrap(), &part]);
        env.ok(&[
            "copy",
            "-q",
            &format!("strata:{part}"),
            &format!("oci:{}:p{i}", layout.display()),
        ]);
    }
    let refs: Vec<String> = (0..parts.len()).map(|i| format!("p{i}")).collect();
    let entries: Vec<(&str, &str)> = refs
        .iter()
        .map(String::as_str)
        .zip(parts.iter().map(|(p, _)| *p))
        .collect();
    write_layout_index(&layout, &entries, "multi");
    env.ok(&[
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", layout.display()),
        &format!("strata:{name}"),
    ]);
    layout
}

/// Runs `strata build` with plain progress; returns (success, stdout, stderr).
fn build(env: &Env, args: &[&str]) -> (bool, String, String) {
    let mut a = vec!["build", "--progress", "plain"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn build_ok(env: &Env, args: &[&str]) -> String {
    let (ok, out, err) = build(env, args);
    assert!(ok, "strata build {args:?} failed:\nstdout: {out}\nstderr: {err}");
    err
}

/// Fails before any step ran, and leaves the store's images as they were.
fn build_fails_early(env: &Env, args: &[&str]) -> String {
    let before = env.ok(&["images", "-a", "-q", "--no-trunc"]);
    let (ok, out, err) = build(env, args);
    assert!(
        !ok,
        "strata build {args:?} unexpectedly succeeded:\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        !err.contains("] RUN ") && !err.contains("] COPY "),
        "a step ran:\n{err}"
    );
    assert_eq!(env.ok(&["images", "-a", "-q", "--no-trunc"]), before, "{err}");
    err
}

/// The status lines of the vertex named exactly `name` (`[linux/386 tool 2/2] RUN …`).
fn vertex_status(err: &str, name: &str) -> Vec<String> {
    let n = err
        .lines()
        .find_map(|l| {
            let (num, rest) = l.split_once(' ')?;
            (rest == name).then(|| num.to_string())
        })
        .unwrap_or_else(|| panic!("no vertex {name:?} in:\n{err}"));
    err.lines()
        .filter_map(|l| l.strip_prefix(&format!("{n} ")))
        .filter(|l| *l != name)
        .map(str::to_string)
        .collect()
}

/// The kernel runs 32-bit x86 here (strata says so by building for it).
fn runs_386(env: &Env, ctx: &Path) -> bool {
    let (ok, _, err) = build(env, &["--platform", "linux/386", ctx.to_str().unwrap()]);
    if !ok {
        assert!(err.contains("cannot build for linux/386"), "{err}");
        eprintln!("skipped: linux/386 (this kernel does not run it: {})", err.trim());
    }
    ok
}

const DOCKERFILE: &str = "FROM --platform=$BUILDPLATFORM base AS tool
ARG BUILDARCH
RUN echo built-on-$BUILDARCH > /tool
FROM base
COPY --from=tool /tool /tool
RUN uname -m > /arch
ARG TARGETPLATFORM
RUN echo $TARGETPLATFORM > /target
";

#[test]
fn builds_each_platform_into_one_index_and_the_build_platform_stage_once() {
    let Some(host) = host_platform() else {
        eprintln!("skipped: these tests are written for an x86_64 host");
        return;
    };
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else {
        return;
    };
    let scratch_ctx = env.path("scratch-ctx");
    std::fs::create_dir_all(&scratch_ctx).unwrap();
    std::fs::write(scratch_ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    std::fs::write(scratch_ctx.join("f"), "x").unwrap();

    // The platforms this host can build: its own, 32-bit x86 when the
    // kernel runs it, arm64 through QEMU when registered.
    let mut platforms: Vec<(&str, PathBuf)> = vec![(host, rootfs.clone())];
    if runs_386(&env, &scratch_ctx) {
        // A single foreign --platform from scratch: the config says the platform.
        build_ok(
            &env,
            &[
                "--platform",
                "linux/386",
                "-t",
                "scratch386",
                scratch_ctx.to_str().unwrap(),
            ],
        );
        assert_eq!(
            env.ok(&["inspect", "-f", "{{.Os}}/{{.Architecture}}", "scratch386"])
                .trim(),
            "linux/386"
        );
        // Busybox for x86_64 stands in for an i386 build (same machine, labelled 386).
        platforms.push(("linux/386", rootfs.clone()));
    }
    let arm64 = if !emulated("aarch64") {
        eprintln!("skipped: linux/arm64 (no qemu-aarch64 binfmt_misc handler with the F flag is registered)");
        false
    } else {
        match arm64_rootfs(&env, &rootfs) {
            Some(r) => {
                platforms.push(("linux/arm64", r));
                true
            }
            None => {
                eprintln!("skipped: linux/arm64 (no arm64 busybox-static .deb in {FOREIGN})");
                false
            }
        }
    };
    if platforms.len() < 2 {
        eprintln!("skipped: a multi-platform build (this host builds only {host})");
        return;
    }
    let parts: Vec<(&str, &Path)> = platforms.iter().map(|(p, r)| (*p, r.as_path())).collect();
    multi_platform_base(&env, "base", &parts);
    let tree = env.ok(&["images", "--tree"]);
    for (p, _) in &platforms {
        assert!(tree.contains(p), "{tree}");
    }

    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let list = platforms.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(",");
    let err = build_ok(
        &env,
        &["--platform", &list, "-t", "mp:1", "-t", "mp:2", ctx.to_str().unwrap()],
    );

    // The build-platform stage runs for the first platform, and is a cache
    // hit for every other; the target stage runs for each.
    for (i, (p, _)) in platforms.iter().enumerate() {
        let tool = vertex_status(&err, &format!("[{p} tool 2/2] RUN echo built-on-$BUILDARCH > /tool"));
        let target = vertex_status(&err, &format!("[{p} stage-1 4/4] RUN echo $TARGETPLATFORM > /target"));
        if i == 0 {
            assert!(!tool.contains(&"CACHED".to_string()), "{err}");
        } else {
            assert_eq!(tool, ["CACHED"], "{p}: the build-platform stage ran again:\n{err}");
        }
        assert!(!target.contains(&"CACHED".to_string()), "{p}: {err}");
    }

    // One name, an index of every platform.
    let tree = env.ok(&["images", "--tree"]);
    let block: Vec<&str> = tree.lines().skip_while(|l| !l.starts_with("mp:1")).skip(1).collect();
    for (p, _) in &platforms {
        assert!(block.iter().any(|l| l.contains(p)), "{p} not under mp:1:\n{tree}");
    }
    let digests = env.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
        "mp",
    ]);
    let ds: Vec<&str> = digests.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(ds.len(), 2, "{digests}");
    assert_eq!(ds[0], ds[1], "both names point at the index:\n{digests}");
    for (p, _) in &platforms {
        let got = env.ok(&["inspect", "--platform", p, "-f", "{{.Os}}/{{.Architecture}}", "mp:1"]);
        assert_eq!(got.trim(), *p);
        // Each platform's files, read through its image ID.
        let id = env.ok(&["inspect", "--platform", p, "-f", "{{.Id}}", "mp:1"]);
        let cat = |f: &str| env.ok(&["run", "--rm", id.trim(), "cat", f]);
        assert_eq!(cat("/target").trim(), *p);
        assert_eq!(
            cat("/tool").trim(),
            "built-on-amd64",
            "the tool stage runs on the build platform"
        );
        assert_eq!(cat("/platform").trim(), *p, "the base for {p}");
        let arch = cat("/arch");
        let want: &[&str] = match *p {
            "linux/arm64" => &["aarch64"],
            _ => &["x86_64", "i686"],
        };
        assert!(want.contains(&arch.trim()), "{p}: uname -m said {arch}");
    }
    if arm64 {
        let run_help = env.ok(&["run", "--help"]);
        if run_help.contains("--platform") {
            let o = env.run(&["run", "--rm", "--platform", "linux/arm64", "mp:1", "cat", "/arch"]);
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                assert_eq!(String::from_utf8_lossy(&o.stdout), "aarch64\n");
            } else if err.contains("does not match the specified platform") {
                // `run` checks the name's default image instead of choosing the platform's.
                eprintln!(
                    "skipped: `run --platform` of a multi-platform name (not supported by run yet: {})",
                    err.trim()
                );
            } else {
                panic!("run --platform linux/arm64 mp:1 failed: {err}");
            }
        } else {
            eprintln!("skipped: `run --platform` (not in this strata yet)");
        }
    }

    // Again: every step of every platform is cached, and the index is the same.
    let err = build_ok(&env, &["--platform", &list, "-t", "mp:1", ctx.to_str().unwrap()]);
    for (p, _) in &platforms {
        let run = vertex_status(&err, &format!("[{p} stage-1 3/4] RUN uname -m > /arch"));
        assert_eq!(run, ["CACHED"], "{err}");
    }
    let again = env.ok(&["images", "--digests", "--format", "{{.Digest}}", "mp:1"]);
    assert_eq!(again.trim(), ds[0]);
}

#[test]
fn bad_platforms_are_refused_before_any_step() {
    let Some(host) = host_platform() else {
        eprintln!("skipped: these tests are written for an x86_64 host");
        return;
    };
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else {
        return;
    };
    // A base for two platforms: the host's with a variant, and one the host cannot run.
    multi_platform_base(&env, "two", &[("linux/amd64/v2", &rootfs), ("linux/arm/v7", &rootfs)]);
    env.ok(&[
        "import",
        "--platform",
        &format!("{host}/v2"),
        rootfs.to_str().unwrap(),
        "single",
    ]);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let c = ctx.to_str().unwrap();
    let dockerfile = |text: &str| std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    dockerfile("FROM two\nRUN echo hi > /hi\n");

    // The platform strings.
    let err = build_fails_early(&env, &["--platform", "linux", c]);
    assert!(err.contains("invalid platform \"linux\""), "{err}");
    let err = build_fails_early(&env, &["--platform", "linux/amd64,linux/nosucharch", c]);
    assert!(
        err.contains("cannot build for linux/nosucharch: unknown platform linux/nosucharch"),
        "{err}"
    );
    let err = build_fails_early(&env, &["--platform", ",", c]);
    assert!(err.contains("names no platform"), "{err}");

    // A platform no emulator runs: the error names the fix (platform, QEMU's name, strata's).
    let unrunnable = [
        ("linux/s390x", "s390x", "s390x"),
        ("linux/ppc64le", "ppc64le", "ppc64le"),
        ("linux/riscv64", "riscv64", "riscv64"),
        ("linux/mips64le", "mips64el", "mips64le"),
        ("linux/loong64", "loongarch64", "loong64"),
    ]
    .into_iter()
    .find(|(_, qemu, _)| !emulated(qemu));
    match unrunnable {
        None => eprintln!("skipped: the no-emulator error (every platform tried has an emulator here)"),
        Some((foreign, _, arch)) => {
            let err = build_fails_early(&env, &["--platform", &format!("{host},{foreign}"), c]);
            assert!(
                err.contains(&format!("cannot build for {foreign}"))
                    && err.contains(&format!("strata buildx install-emulators {arch}")),
                "{err}"
            );
            // The same from FROM --platform.
            dockerfile(&format!(
                "FROM scratch AS a\nCOPY Dockerfile /\nFROM --platform={foreign} two\nCOPY --from=a /Dockerfile /\n"
            ));
            let err = build_fails_early(&env, &[c]);
            assert!(
                err.contains("Dockerfile:3") && err.contains(&format!("cannot build for {foreign}")),
                "{err}"
            );
        }
    }

    // A platform the base lacks: the error lists those it has.
    dockerfile("FROM scratch AS a\nCOPY Dockerfile /\nFROM two\nCOPY --from=a /Dockerfile /\nRUN echo hi\n");
    let err = build_fails_early(&env, &["--platform", &format!("{host}/v2,{host}/v3"), c]);
    assert!(
        err.contains("base image two for platform linux/amd64/v3")
            && err.contains("no image for platform linux/amd64/v3 (the image has linux/amd64/v2, linux/arm/v7)"),
        "{err}"
    );
    // A single-platform base for another platform.
    dockerfile("FROM single\nRUN echo hi\n");
    let err = build_fails_early(&env, &["--platform", &format!("{host}/v3"), c]);
    assert!(
        err.contains("does not match the specified platform (linux/amd64/v3)"),
        "{err}"
    );

    // And what is right builds: the variant asked for, in the config.
    dockerfile("FROM two\nARG TARGETVARIANT\nRUN echo $TARGETVARIANT > /v\n");
    build_ok(&env, &["--platform", &format!("{host}/v2"), "-t", "v2", c]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Os}}/{{.Architecture}}/{{.Variant}}", "v2"])
            .trim(),
        "linux/amd64/v2"
    );
    assert_eq!(env.ok(&["run", "--rm", "v2", "cat", "/v"]), "v2\n");
}

#[test]
fn a_registry_base_is_pulled_once_for_every_platform_and_the_result_pushes() {
    let Some(host) = host_platform() else {
        eprintln!("skipped: these tests are written for an x86_64 host");
        return;
    };
    let staging = Env::new();
    let Some(rootfs) = staging.busybox_rootfs() else {
        return;
    };
    let scratch_ctx = staging.path("scratch-ctx");
    std::fs::create_dir_all(&scratch_ctx).unwrap();
    std::fs::write(scratch_ctx.join("Dockerfile"), "FROM scratch\nCOPY Dockerfile /\n").unwrap();
    // The registry's base has four platforms; the build wants those this host runs.
    let arm64 = if emulated("aarch64") {
        arm64_rootfs(&staging, &rootfs)
    } else {
        None
    };
    if arm64.is_none() {
        eprintln!("skipped: building linux/arm64 (no emulator or no arm64 busybox here)");
    }
    let arm64_fs = arm64.clone().unwrap_or_else(|| rootfs.clone());
    let layout = multi_platform_base(
        &staging,
        "base",
        &[
            (host, &rootfs),
            ("linux/386", &rootfs),
            ("linux/arm64", &arm64_fs),
            ("linux/arm/v7", &rootfs),
        ],
    );
    let reg = TestRegistry::strata();
    let base = format!("{}/mp/base:1", reg.host);
    staging.ok(&[
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{base}"),
    ]);
    let mut wanted = vec![host];
    if runs_386(&staging, &scratch_ctx) {
        wanted.push("linux/386");
    }
    if arm64.is_some() {
        wanted.push("linux/arm64");
    }
    let list = wanted.join(",");

    // A fresh store: the base comes from the registry, once, for every platform wanted.
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE.replace(" base", &format!(" {base}"))).unwrap();
    let err = build_ok(&env, &["--platform", &list, "-t", "mp:1", ctx.to_str().unwrap()]);
    let pulls: Vec<&str> = err.lines().filter(|l| l.contains("load metadata for")).collect();
    assert_eq!(pulls.len(), 1, "the base is pulled once for every platform:\n{err}");
    assert!(
        pulls[0].ends_with(&format!("load metadata for {base} for {list} (not in the local store)")),
        "{err}"
    );
    for p in &wanted {
        let id = env.ok(&["inspect", "--platform", p, "-f", "{{.Id}}", "mp:1"]);
        assert_eq!(env.ok(&["run", "--rm", id.trim(), "cat", "/target"]).trim(), *p);
        assert_eq!(env.ok(&["run", "--rm", id.trim(), "cat", "/platform"]).trim(), *p);
    }
    if wanted.len() > 1 {
        // The pulled base keeps the registry's index: the platforms not wanted are absent.
        let tree = env.ok(&["images", "--tree"]);
        assert!(tree.contains("linux/arm/v7") && tree.contains("absent"), "{tree}");
        // A platform held already is not pulled again.
        let err = build_ok(&env, &["--platform", wanted[1], "-t", "one", ctx.to_str().unwrap()]);
        assert!(!err.contains("load metadata for"), "held already:\n{err}");
    }

    // The result pushes as an index of its platforms.
    let pushed = format!("{}/out/app:1", reg.host);
    env.ok(&["tag", "mp:1", &pushed]);
    env.ok(&["push", "-q", &pushed]);
    let other = Env::new();
    other.ok(&["pull", "-q", "--all-platforms", &pushed]);
    let tree = other.ok(&["images", "--tree"]);
    for p in &wanted {
        let got = other.ok(&["inspect", "--platform", p, "-f", "{{.Os}}/{{.Architecture}}", &pushed]);
        assert_eq!(got.trim(), *p, "{tree}");
    }
    assert!(!tree.contains("linux/arm/v7"), "only the built platforms:\n{tree}");
}
