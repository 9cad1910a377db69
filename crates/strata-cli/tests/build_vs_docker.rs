//! `strata build` against `docker build` (BuildKit) for the same
//! Dockerfiles on the same busybox base: the same files, owners, modes and
//! symlinks in the final root filesystem, and the same runtime config.
//!
//! Every Dockerfile is built with strata and checked whatever happens; the
//! comparison with docker is skipped, with a printed reason, when no docker
//! daemon answers or its BuildKit cannot build the Dockerfile (Docker 20.10's
//! built-in frontend has no heredocs, for one).

mod common;

use std::path::Path;
use std::process::Command;

use common::Env;
use common::differential::{Differential, Pair};

/// Builds with both and compares the root filesystems and configs.
fn build(cmp: &Differential, dir: &Path, name: &str, extra: &[&str]) -> Pair {
    let pair = cmp.build(dir, name, extra);
    pair.assert_same_rootfs().assert_same_config();
    pair
}

fn mode_file(dir: &Path, name: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Most instructions, over two stages.
const EVERYTHING: &str = r#"# A comment, then ARGs before the first FROM.
ARG BASE=@BASE@
ARG GREETING=hello
FROM --platform=$BUILDPLATFORM $BASE AS build
ARG GREETING
ARG TARGETOS
SHELL ["/bin/sh", "-ec"]
RUN mkdir -p /out/sub && echo "$GREETING from $TARGETOS" > /out/greeting \
 && ln -s greeting /out/link && chmod 640 /out/greeting && chown 12:34 /out/sub
RUN ["/bin/sh", "-c", "echo exec-form > /out/exec.txt && ln -s /nowhere /out/dangling"]
WORKDIR rel/dir
RUN pwd > /out/pwd && touch here.txt && mkdir -m 700 private

FROM $BASE
MAINTAINER Jane Doe <jane@example.com>
ENV A=1 B="two words"
ENV C $A-$B
LABEL org.example.a="x y" b=2 "quoted key"=v
COPY files/ /app/files/
COPY *.txt /app/txt/
COPY --chown=1234:5678 files/one.conf /app/owned-num
COPY --chown=nobody:nogroup files/one.conf files/sub /app/owned-name/
COPY --chmod=0751 files/run.sh /app/run.sh
COPY --from=build /out/ /app/out/
COPY --from=build /rel/dir/here.txt /app/
COPY --from=build /rel /app/rel
ADD archive.tar /app/unpacked/
ADD plain.txt /app/added.txt
WORKDIR app2
RUN touch made-in-workdir && echo "$C" > env.txt && mkdir -p /home/nobody && chown nobody /home/nobody
USER nobody
WORKDIR /home/nobody/work
RUN touch /home/nobody/work/by-nobody && echo "$(id -u):$(id -g)" > /tmp/ids
USER 65534:65534
EXPOSE 8080 53/udp 9000/tcp
VOLUME ["/data", "/cache"]
VOLUME /logs
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=4 CMD wget -q -O- http://localhost:8080/ || exit 1
STOPSIGNAL SIGTERM
"#;

#[test]
fn every_instruction_matches_docker() {
    let env = Env::new();
    let Some(cmp) = Differential::new(&env, "everything") else {
        return;
    };
    let dir = cmp.context(
        "everything",
        EVERYTHING,
        &[
            ("files/one.conf", "one\n"),
            ("files/two.conf", "two\n"),
            ("files/sub/three.conf", "three\n"),
            ("files/secret.key", "k\n"),
            ("files/run.sh", "#!/bin/sh\necho run\n"),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("plain.txt", "plain\n"),
            ("tree/d/f.txt", "in tar\n"),
            ("tree/x.sh", "#!/bin/sh\n"),
        ],
    );
    mode_file(&dir, "files/secret.key", 0o600);
    mode_file(&dir, "files/sub", 0o750);
    mode_file(&dir, "tree/x.sh", 0o755);
    std::os::unix::fs::symlink("one.conf", dir.join("files/link.conf")).unwrap();
    std::os::unix::fs::symlink("f.txt", dir.join("tree/d/l")).unwrap();
    let st = Command::new("tar")
        .args([
            "--numeric-owner",
            "--owner=1000",
            "--group=2000",
            "-cf",
            "archive.tar",
            "-C",
            "tree",
            ".",
        ])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(dir.join("tree")).unwrap();
    let pair = build(&cmp, &dir, "everything", &[]);
    let tag = pair.tag.clone();
    let compared = pair.docker.is_some();
    // strata's own result, whatever docker says.
    let out = cmp.run(
        &pair,
        "cat /app/out/greeting /app/out/exec.txt /app/out/pwd /app2/env.txt /tmp/ids; \
         for l in /app/out/link /app/out/dangling /app/files/link.conf; do readlink $l; done; \
         stat -c '%n %a %u:%g' /app/owned-num /app/owned-name /app/owned-name/one.conf /app/owned-name/three.conf /app/run.sh \
           /app/files/secret.key /app/files/sub /app/out/greeting /app/out/sub /app/rel/dir/private \
           /app/unpacked/d/f.txt /app/unpacked/x.sh /home/nobody/work/by-nobody /app2/made-in-workdir; \
         ls /app/txt; cat /app/added.txt /app/unpacked/d/l",
    );
    assert_eq!(
        out,
        "hello from linux\nexec-form\n/rel/dir\n1-two words\n65534:65534\n\
         greeting\n/nowhere\none.conf\n\
         /app/owned-num 644 1234:5678\n/app/owned-name 755 65534:65534\n/app/owned-name/one.conf 644 65534:65534\n/app/owned-name/three.conf 644 65534:65534\n\
         /app/run.sh 751 0:0\n/app/files/secret.key 600 0:0\n/app/files/sub 750 0:0\n/app/out/greeting 640 0:0\n\
         /app/out/sub 755 12:34\n/app/rel/dir/private 700 0:0\n/app/unpacked/d/f.txt 644 1000:2000\n\
         /app/unpacked/x.sh 755 1000:2000\n/home/nobody/work/by-nobody 644 65534:65534\n/app2/made-in-workdir 644 0:0\n\
         a.txt\nb.txt\nplain.txt\nplain\nin tar\n",
        "{out}"
    );
    let c = |f: &str| pair.strata.config(f);
    assert_eq!(c("User"), "65534:65534");
    assert_eq!(c("WorkingDir"), "/home/nobody/work");
    assert_eq!(c("Entrypoint"), serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c("Cmd"), serde_json::json!(["echo hi"]));
    assert_eq!(c("StopSignal"), "SIGTERM");
    assert_eq!(
        c("ExposedPorts"),
        serde_json::json!({"53/udp": {}, "8080/tcp": {}, "9000/tcp": {}})
    );
    assert_eq!(
        c("Volumes"),
        serde_json::json!({"/cache": {}, "/data": {}, "/logs": {}})
    );
    assert_eq!(
        c("Labels"),
        serde_json::json!({"b": "2", "org.example.a": "x y", "quoted key": "v"})
    );
    let hc = c("Healthcheck");
    assert_eq!(
        hc,
        serde_json::json!({
            "Test": ["CMD-SHELL", "wget -q -O- http://localhost:8080/ || exit 1"],
            "Interval": 30_000_000_000u64, "Timeout": 5_000_000_000u64,
            "StartPeriod": 10_000_000_000u64, "Retries": 4
        })
    );
    let envs = c("Env");
    for e in ["A=1", "B=two words", "C=1-two words"] {
        assert!(envs.as_array().unwrap().iter().any(|v| v == e), "{envs}");
    }
    // The build stage's SHELL stays in it.
    assert_eq!(c("Shell"), serde_json::Value::Null);
    let author = env.ok(&["inspect", "--format", "{{.Author}}", &tag]);
    assert_eq!(author.trim(), "Jane Doe <jane@example.com>");
    if !compared {
        eprintln!("note: built and checked with strata only");
    }
}

#[test]
fn onbuild_in_a_base_then_a_child_matches_docker() {
    let env = Env::new();
    let Some(cmp) = Differential::new(&env, "onbuild") else {
        return;
    };
    let dir = cmp.context(
        "onbase",
        "FROM @BASE@\nLABEL stage=base\nONBUILD COPY onbuild.txt /onbuild/\nONBUILD RUN echo triggered > /onbuild/ran\nONBUILD ENV FROM_TRIGGER=yes\n",
        &[],
    );
    let base = build(&cmp, &dir, "onbase", &[]);
    assert_eq!(
        base.strata.config("OnBuild"),
        serde_json::json!([
            "COPY onbuild.txt /onbuild/",
            "RUN echo triggered > /onbuild/ran",
            "ENV FROM_TRIGGER=yes"
        ])
    );
    let child = cmp.context(
        "onchild",
        &format!("FROM {}\nRUN cat /onbuild/onbuild.txt /onbuild/ran > /both\n", base.tag),
        &[("onbuild.txt", "child file\n")],
    );
    let child = build(&cmp, &child, "onchild", &[]);
    assert_eq!(
        cmp.run(&child, "cat /both; echo $FROM_TRIGGER"),
        "child file\ntriggered\nyes\n"
    );
    assert_eq!(child.strata.config("OnBuild"), serde_json::Value::Null);
    assert_eq!(child.strata.config("Labels"), serde_json::json!({"stage": "base"}));
}

#[test]
fn multi_stage_with_target_matches_docker() {
    let env = Env::new();
    let Some(cmp) = Differential::new(&env, "multi") else {
        return;
    };
    let dir = cmp.context(
        "multi",
        "FROM @BASE@ AS one\nRUN echo one > /one && mkdir /shared && echo 1 > /shared/one\nENV STAGE=one\n\
         FROM one AS two\nRUN echo two > /two && rm /one && echo 2 > /shared/two\nCMD [\"cat\", \"/two\"]\nEXPOSE 7/udp\n\
         FROM @BASE@ AS three\nCOPY --from=two /two /shared /\nRUN exit 1\n",
        &[],
    );
    let pair = build(&cmp, &dir, "multi", &["--target", "two"]);
    assert_eq!(
        cmp.run(
            &pair,
            "cat /two /shared/one /shared/two; test ! -e /one && echo gone; echo $STAGE"
        ),
        "two\n1\n2\ngone\none\n"
    );
    assert_eq!(pair.strata.config("Cmd"), serde_json::json!(["cat", "/two"]));
}

#[test]
fn deletions_links_and_special_modes_match_docker() {
    let env = Env::new();
    let Some(cmp) = Differential::new(&env, "modes") else {
        return;
    };
    let dir = cmp.context(
        "modes",
        "FROM @BASE@\n\
         RUN rm /etc/group && rm /bin/vi && mkdir -p /a/b/c && echo x > /a/b/c/f && ln /a/b/c/f /a/hard \
          && chmod 4755 /a/b/c/f && chmod 1777 /a/b && mkfifo /a/fifo && touch /a/empty && chmod 000 /a/empty\n\
         RUN rm -r /a/b/c && mkdir /a/b/c && ln -sf /bin/busybox /a/b/c/bb && chown -h 5:6 /a/b/c/bb\n\
         COPY --chmod=755 dir/ /a/copied/\n\
         WORKDIR /new/deep/workdir\n",
        &[("dir/f", "f\n"), ("dir/sub/g", "g\n")],
    );
    let pair = build(&cmp, &dir, "modes", &[]);
    let out = cmp.run(
        &pair,
        "test ! -e /etc/group && test ! -e /bin/vi && echo deleted; stat -c '%n %a %u:%g' /a/hard /a/b /a/empty /a/copied/f /a/copied/sub /new/deep/workdir; \
         readlink /a/b/c/bb; stat -c '%u:%g' /a/b/c/bb; test -p /a/fifo && echo fifo",
    );
    assert_eq!(
        out,
        "deleted\n/a/hard 4755 0:0\n/a/b 1777 0:0\n/a/empty 0 0:0\n/a/copied/f 755 0:0\n/a/copied/sub 755 0:0\n/new/deep/workdir 755 0:0\n/bin/busybox\n5:6\nfifo\n"
    );
}

/// Heredocs: a `#!` script is run by its interpreter (BuildKit writes it to
/// /dev/pipes and runs it); without one, the body goes to the shell.
#[test]
fn heredocs_and_shebang_scripts() {
    let env = Env::new();
    let Some(cmp) = Differential::new(&env, "heredoc") else {
        return;
    };
    let dir = cmp.context(
        "heredoc",
        "FROM @BASE@\n\
         ARG WHO=world\n\
         RUN <<EOF\n\
         echo \"plain $WHO\" > /plain\n\
         EOF\n\
         RUN <<EOF\n\
         #!/bin/awk -f\n\
         BEGIN { print \"awk here\" > \"/awk.txt\"; printf \"%s\\n\", ENVIRON[\"WHO\"] > \"/awk-env.txt\" }\n\
         EOF\n\
         RUN <<SCRIPT\n\
         #!/bin/sh\n\
         echo \"$0 $WHO\" > /shebang.txt\n\
         SCRIPT\n\
         USER nobody\n\
         RUN <<EOF\n\
         #!/bin/sh -e\n\
         id -u > /tmp/as-nobody\n\
         EOF\n\
         USER root\n\
         COPY <<EOF /etc/conf.txt\n\
         who=$WHO\n\
         EOF\n",
        &[],
    );
    let pair = build(&cmp, &dir, "heredoc", &[]);
    let tag = pair.tag.clone();
    let out = cmp.run(
        &pair,
        "cat /plain /awk.txt /awk-env.txt /shebang.txt /tmp/as-nobody /etc/conf.txt; test -e /dev/pipes || echo no-pipes",
    );
    assert_eq!(
        out,
        "plain world\nawk here\nworld\n/dev/pipes/SCRIPT world\n65534\nwho=world\nno-pipes\n"
    );
    // The script file is not in any layer the build made (the first is the base's).
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &tag])).unwrap();
    for l in v[0]["RootFS"]["Layers"].as_array().unwrap().iter().skip(1) {
        let hex = l.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let f = std::fs::File::open(env.root().join("blobs/sha256").join(hex)).unwrap();
        for e in tar::Archive::new(f).entries().unwrap() {
            let p = e.unwrap().path().unwrap().to_string_lossy().into_owned();
            assert!(!p.contains("pipes") && !p.starts_with("dev/"), "{p} in a layer");
        }
    }
    // `#!/bin/sh -e` is obeyed: the script stops at the first failure,
    // where `sh -c` with the same text would go on.
    let bad = cmp.context(
        "heredoc-e",
        "FROM @BASE@\nRUN <<EOF\n#!/bin/sh -e\nfalse\necho not-reached > /x\nEOF\n",
        &[],
    );
    let err = env.fails(&["build", bad.to_str().unwrap()]);
    assert!(
        err.contains("process \"/dev/pipes/EOF\" did not complete successfully: exit code: 1"),
        "{err}"
    );
}
