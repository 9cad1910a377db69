//! Issue #13's done-means, end to end: bases made offline from Debian's
//! busybox-static for amd64, arm64 and armhf, imported per platform and
//! pushed as one index to Debian's docker-registry; a Dockerfile with a
//! `FROM --platform=$BUILDPLATFORM` stage, a COPY --from of it and a RUN
//! recording `uname -m` built for linux/amd64, linux/arm64 and linux/arm/v7
//! (arm64 and arm/v7 under qemu-user-static) and pushed as an index; skopeo
//! sees the three platforms, docker pulls and runs the arm64 one
//! (`aarch64`), `strata run --platform linux/arm/v7` prints `armv7l`, and the
//! native stage ran once.
//!
//! Needs root, Debian's qemu-user-static handlers registered with F
//! (`strata buildx install-emulators arm64 arm`, done here when missing) and
//! the foreign .debs in /opt/strata-deps/foreign-busybox
//! (`scripts/deps.d/emulation.sh`); says `skipped: …` otherwise.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const FOREIGN: &str = "/opt/strata-deps/foreign-busybox";

/// The host's busybox rootfs with Debian's `ARCH` busybox-static in place
/// of /bin/busybox (the applet links are the same), or None.
fn foreign_rootfs(env: &Env, host_rootfs: &Path, deb_arch: &str) -> Option<PathBuf> {
    let deb = std::fs::read_dir(FOREIGN)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(&format!("_{deb_arch}.deb")))?;
    let dir = env.path(&format!("rootfs-{deb_arch}"));
    let x = env.path(&format!("deb-{deb_arch}"));
    sh_ok(&format!(
        "cp -a {src} {dir} && mkdir -p {x} && dpkg-deb -x {deb} {x} && cp {x}/bin/busybox {dir}/bin/busybox",
        src = shell_quote(host_rootfs.to_str().unwrap()),
        dir = shell_quote(dir.to_str().unwrap()),
        x = shell_quote(x.to_str().unwrap()),
        deb = shell_quote(deb.to_str().unwrap()),
    ));
    Some(dir)
}

/// Pushes `parts` (platform, rootfs) as one index named `target`: each
/// imported and pushed alone, then combined by `imagetools create`.
fn push_base(env: &Env, target: &str, parts: &[(&str, PathBuf)]) {
    let mut sources = Vec::new();
    for (i, (platform, rootfs)) in parts.iter().enumerate() {
        let part = format!("{target}-part{i}");
        env.ok(&["import", "--platform", platform, rootfs.to_str().unwrap(), &part]);
        env.ok(&["push", "-q", &part]);
        sources.push(part);
    }
    let mut args = vec!["buildx", "imagetools", "create", "-t", target];
    args.extend(sources.iter().map(String::as_str));
    env.ok(&args);
}

#[test]
fn a_three_platform_build_runs_everywhere() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (emulators, containers)");
        return;
    }
    let env = Env::new();
    let Some(host_rootfs) = env.busybox_rootfs() else {
        return;
    };
    let (Some(arm64), Some(armhf)) = (
        foreign_rootfs(&env, &host_rootfs, "arm64"),
        foreign_rootfs(&env, &host_rootfs, "armhf"),
    ) else {
        eprintln!("skipped: no foreign busybox-static in {FOREIGN} (scripts/deps.d/emulation.sh)");
        return;
    };
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: written for an amd64 host");
        return;
    }
    let ls = env.ok(&["buildx", "ls"]);
    if !(ls.contains("linux/arm64") && ls.contains("linux/arm/v7")) {
        let o = env.run(&["buildx", "install-emulators", "arm64", "arm"]);
        let ls = env.ok(&["buildx", "ls"]);
        if !(ls.contains("linux/arm64") && ls.contains("linux/arm/v7")) {
            eprintln!(
                "skipped: no arm64/arm emulators ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
    }
    let Some(reg) = TestRegistry::distribution(false, "") else {
        return;
    };
    let base = format!("{}/base/busybox:1", reg.host);
    push_base(
        &env,
        &base,
        &[
            ("linux/amd64", host_rootfs.clone()),
            ("linux/arm64", arm64),
            ("linux/arm/v7", armhf),
        ],
    );

    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {base} AS tool\n\
             ARG BUILDARCH\n\
             RUN echo built-on-$BUILDARCH > /tool\n\
             FROM {base}\n\
             COPY --from=tool /tool /tool\n\
             RUN uname -m > /arch\n\
             CMD [\"cat\", \"/arch\"]\n"
        ),
    )
    .unwrap();
    // A fresh store: the base comes from the registry, per platform.
    let builder = Env::new();
    let app = format!("{}/app/multi:1", reg.host);
    let o = builder.run(&[
        "build",
        "--progress",
        "plain",
        "--platform",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "--push",
        "-t",
        &app,
        ctx.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{log}");
    // The native stage ran once: its RUN ran for the first platform and was
    // a cache hit for the other two.
    let ran = log
        .lines()
        .filter(|l| l.contains("RUN echo built-on-$BUILDARCH") && !l.contains("CACHED"))
        .count();
    assert!(ran >= 1, "{log}");
    let cached = log.lines().filter(|l| l.ends_with("CACHED")).count();
    assert!(
        cached >= 2,
        "the build-platform stage should be cached for two platforms:\n{log}"
    );

    // skopeo sees the three platforms.
    if have("skopeo") {
        let raw: serde_json::Value = serde_json::from_str(&sh_ok(&format!(
            "skopeo inspect --tls-verify=false --raw docker://{app}"
        )))
        .unwrap();
        let mut platforms: Vec<String> = raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let p = &m["platform"];
                match p["variant"].as_str() {
                    Some(v) => format!(
                        "{}/{}/{v}",
                        p["os"].as_str().unwrap(),
                        p["architecture"].as_str().unwrap()
                    ),
                    None => format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap()),
                }
            })
            .collect();
        platforms.sort();
        assert_eq!(platforms, ["linux/amd64", "linux/arm/v7", "linux/arm64"], "{raw}");
    }

    // strata elsewhere: each platform from the pushed index.
    let runner = Env::new();
    runner.ok(&["pull", "-q", "--all-platforms", &app]);
    assert_eq!(
        runner.ok(&["run", "--rm", "--platform", "linux/arm/v7", &app]).trim(),
        "armv7l"
    );
    assert_eq!(
        runner.ok(&["run", "--rm", "--platform", "linux/arm64", &app]).trim(),
        "aarch64"
    );
    assert_eq!(
        runner.ok(&["run", "--rm", "--platform", "linux/amd64", &app]).trim(),
        "x86_64"
    );
    assert_eq!(
        runner
            .ok(&["run", "--rm", "--platform", "linux/arm64", &app, "cat", "/tool"])
            .trim(),
        "built-on-amd64"
    );

    // docker pulls and runs the arm64 image.
    if docker_daemon() {
        let q = shell_quote(&app);
        sh_ok(&format!("docker pull -q --platform linux/arm64 {q} >/dev/null"));
        let out = sh_ok(&format!("docker run --rm --platform linux/arm64 {q}"));
        assert_eq!(out.trim(), "aarch64");
        let _ = sh(&format!("docker rmi -f {q} >/dev/null 2>&1"));
    }
}
