//! `strata build`: real builds on the busybox base.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::Env;

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn context(env: &Env, name: &str, dockerfile: &str) -> PathBuf {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "Dockerfile", dockerfile);
    dir
}

/// Runs `strata build ARGS`; returns (success, stdout, stderr).
fn build(env: &Env, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let o: Output = env.run(&all);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn build_ok(env: &Env, args: &[&str]) -> (String, String) {
    let (ok, out, err) = build(env, args);
    assert!(ok, "strata build {args:?} failed:\nstdout: {out}\nstderr: {err}");
    (out, err)
}

fn build_fails(env: &Env, args: &[&str]) -> String {
    let (ok, out, err) = build(env, args);
    assert!(
        !ok,
        "strata build {args:?} unexpectedly succeeded:\nstdout: {out}\nstderr: {err}"
    );
    err
}

/// The image ID printed by `Successfully built`.
fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no image ID in {out}"))
        .trim()
        .to_string()
}

/// The progress block of the vertex whose title contains `title`.
fn vertex<'a>(err: &'a str, title: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = err.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with('#') && l.contains(title))
        .unwrap_or_else(|| panic!("no vertex {title:?} in:\n{err}"));
    let n = lines[start].split(' ').next().unwrap().to_string();
    lines[start..]
        .iter()
        .copied()
        .filter(|l| l.split(' ').next() == Some(n.as_str()))
        .collect()
}

fn is_cached(err: &str, title: &str) -> bool {
    vertex(err, title).iter().any(|l| l.ends_with(" CACHED"))
}

fn miss_reason(err: &str, title: &str) -> String {
    vertex(err, title)
        .iter()
        .find_map(|l| l.split_once(" cache miss: ").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no cache miss line for {title:?} in:\n{err}"))
}

const FIVE_STEPS: &str = "FROM busybox
ARG GREETING=hello
COPY app.txt /app/app.txt
RUN echo \"$GREETING from run\" > /app/run.txt && echo building
COPY conf/ /etc/conf/
RUN cat /app/app.txt /etc/conf/a.conf > /app/all.txt
CMD [\"cat\", \"/app/run.txt\", \"/app/all.txt\"]
";

fn five_step_context(env: &Env) -> PathBuf {
    let dir = context(env, "ctx", FIVE_STEPS);
    write(&dir, "app.txt", "app v1\n");
    write(&dir, "conf/a.conf", "conf a\n");
    dir
}

#[test]
fn builds_runs_and_rebuilds_from_cache() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = five_step_context(&env);
    let ctx = dir.to_str().unwrap();
    let (out, err) = build_ok(&env, &["-t", "five", ctx]);
    let id = built_id(&out);
    assert!(out.contains("Successfully tagged five:latest"), "{out}");
    assert!(err.contains("naming to docker.io/library/five:latest done"), "{err}");
    assert!(err.contains("writing image sha256:"), "{err}");
    // The RUN step's output is streamed with its vertex number.
    let run = vertex(&err, "RUN echo");
    assert!(run.iter().any(|l| l.ends_with(" building")), "{run:?}");
    assert!(run[0].contains("[3/5]"), "{run:?}");
    let got = env.ok(&["run", "--rm", "five"]);
    assert_eq!(got, "hello from run\napp v1\nconf a\n");

    // Nothing changed: every step is cached and the image is the same.
    let (out2, err2) = build_ok(&env, &["-t", "five", ctx]);
    for t in ["COPY app.txt", "RUN echo", "COPY conf/", "RUN cat"] {
        assert!(is_cached(&err2, t), "{t} not cached:\n{err2}");
    }
    assert_eq!(built_id(&out2), id);

    // history lists the steps, Docker/BuildKit style.
    let h = env.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "five"]);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines[0], "CMD [\"cat\" \"/app/run.txt\" \"/app/all.txt\"]");
    assert!(
        lines[1].starts_with("RUN |1 GREETING=hello /bin/sh -c cat /app/app.txt") && lines[1].ends_with("# buildkit"),
        "{h}"
    );
    assert_eq!(lines[2], "COPY conf/ /etc/conf/ # buildkit");
    assert_eq!(lines[4], "COPY app.txt /app/app.txt # buildkit");
    assert_eq!(lines[5], "ARG GREETING=hello");
}

#[test]
fn context_change_invalidates_from_its_copy_on() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = five_step_context(&env);
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "five", ctx]);
    write(&dir, "conf/a.conf", "conf a changed\n");
    let (_, err) = build_ok(&env, &["-t", "five", ctx]);
    assert!(is_cached(&err, "COPY app.txt"), "{err}");
    assert!(is_cached(&err, "RUN echo"), "{err}");
    assert!(!is_cached(&err, "COPY conf/"), "{err}");
    assert!(
        miss_reason(&err, "COPY conf/").contains("file changed: conf/a.conf"),
        "{err}"
    );
    assert!(!is_cached(&err, "RUN cat"), "{err}");
    assert_eq!(
        env.ok(&["run", "--rm", "five"]),
        "hello from run\napp v1\nconf a changed\n"
    );
    // Touching a file without changing it keeps the cache (times are not part of the key).
    let f = dir.join("app.txt");
    std::fs::write(&f, "app v1\n").unwrap();
    let (_, err) = build_ok(&env, &["-t", "five", ctx]);
    assert!(is_cached(&err, "COPY app.txt"), "{err}");
    assert!(is_cached(&err, "RUN cat"), "{err}");
    // A new file under a copied directory.
    write(&dir, "conf/b.conf", "b\n");
    let (_, err) = build_ok(&env, &["-t", "five", ctx]);
    assert!(
        miss_reason(&err, "COPY conf/").contains("file added: conf/b.conf"),
        "{err}"
    );
}

#[test]
fn build_arg_change_says_which_arg() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = five_step_context(&env);
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "five", ctx]);
    let (_, err) = build_ok(&env, &["-t", "five", "--build-arg", "GREETING=bonjour", ctx]);
    assert!(is_cached(&err, "COPY app.txt"), "{err}");
    let why = miss_reason(&err, "RUN echo");
    assert!(why.contains("GREETING") && why.contains("bonjour"), "{why}");
    assert_eq!(env.ok(&["run", "--rm", "five"]), "bonjour from run\napp v1\nconf a\n");
    // Back to the default: the first build's results are still cached.
    let (_, err) = build_ok(&env, &["-t", "five", ctx]);
    assert!(is_cached(&err, "RUN cat"), "{err}");
    // An argument nobody declares is reported.
    let (_, err) = build_ok(&env, &["--build-arg", "NOBODY=1", ctx]);
    assert!(
        err.contains("[Warning] One or more build-args [NOBODY] were not consumed"),
        "{err}"
    );
    // --no-cache runs everything again.
    let (_, err) = build_ok(&env, &["--no-cache", ctx]);
    assert!(!is_cached(&err, "COPY app.txt") && !is_cached(&err, "RUN cat"), "{err}");
}

#[test]
fn dockerignore_excludes_and_reincludes() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox\nCOPY . /src/\nRUN find /src | sort > /list\nCMD [\"cat\", \"/list\"]\n",
    );
    write(
        &dir,
        ".dockerignore",
        "# comment\n*.log\n!keep.log\n/secret\n**/node_modules\n",
    );
    write(&dir, "a.txt", "a\n");
    write(&dir, "debug.log", "noise\n");
    write(&dir, "keep.log", "kept\n");
    write(&dir, "secret/key", "k\n");
    write(&dir, "sub/node_modules/m.js", "m\n");
    write(&dir, "sub/main.js", "main\n");
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "ign", ctx]);
    let list = env.ok(&["run", "--rm", "ign"]);
    for present in [
        "/src/a.txt",
        "/src/keep.log",
        "/src/sub/main.js",
        "/src/Dockerfile",
        "/src/.dockerignore",
    ] {
        assert!(list.lines().any(|l| l == present), "{present} missing:\n{list}");
    }
    for absent in ["debug.log", "secret", "node_modules"] {
        assert!(!list.contains(absent), "{absent} copied:\n{list}");
    }
    // Changing an ignored file keeps the cache.
    write(&dir, "debug.log", "more noise\n");
    write(&dir, "secret/key", "other\n");
    let (_, err) = build_ok(&env, &["-t", "ign", ctx]);
    assert!(is_cached(&err, "COPY . /src/"), "{err}");
    // An ignored file cannot be named as a source.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY secret/key /key\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(err.contains("\"/secret/key\": not found"), "{err}");
}

#[test]
fn multi_stage_target_and_copy_from() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox AS build
RUN mkdir -p /out && echo built > /out/artifact && echo one > /out/one
FROM busybox AS other
RUN echo other > /other
FROM busybox AS broken
RUN exit 7
FROM scratch AS final
COPY --from=build /out/artifact /artifact
COPY --from=other /other /bin/busybox /
COPY --from=1 /other /again
FROM final AS test
COPY --from=build /out /outdir
",
    );
    let ctx = dir.to_str().unwrap();
    // The broken stage is not needed by any of these targets.
    let (_, err) = build_ok(&env, &["-t", "fin", "--target", "final", ctx]);
    assert!(!err.contains("RUN exit 7"), "{err}");
    assert!(!err.contains("[test "), "{err}");
    assert!(err.contains("[build 2/2] RUN mkdir"), "{err}");
    let out = env.ok(&["run", "--rm", "fin", "/busybox", "cat", "/artifact", "/other", "/again"]);
    assert_eq!(out, "built\nother\nother\n");
    let (_, err) = build_ok(&env, &["-t", "tst", ctx]);
    assert!(is_cached(&err, "[build 2/2] RUN mkdir"), "{err}");
    assert!(is_cached(&err, "COPY --from=build /out/artifact"), "{err}");
    let out = env.ok(&[
        "run",
        "--rm",
        "tst",
        "/busybox",
        "cat",
        "/outdir/artifact",
        "/outdir/one",
    ]);
    assert_eq!(out, "built\none\n");
    // The broken stage as target fails with its exit code.
    let err = build_fails(&env, &["--target", "broken", ctx]);
    assert!(
        err.contains("process \"/bin/sh -c exit 7\" did not complete successfully: exit code: 7"),
        "{err}"
    );
    let err = build_fails(&env, &["--target", "nope", ctx]);
    assert!(err.contains("target stage \"nope\" could not be found"), "{err}");
    // An unknown --from is neither a stage nor a local image.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY --from=nostage /x /x\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(
        err.contains("nostage") && err.contains("not found in the local store"),
        "{err}"
    );
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let base = context(
        &env,
        "base",
        "FROM busybox\nONBUILD RUN echo triggered > /trigger\nONBUILD COPY data.txt /data.txt\n",
    );
    build_ok(&env, &["-t", "onbase", base.to_str().unwrap()]);
    let inspect = env.ok(&["inspect", "--format", "{{json .Config.OnBuild}}", "onbase"]);
    assert!(inspect.contains("RUN echo triggered > /trigger"), "{inspect}");
    let child = context(&env, "child", "FROM onbase\nRUN cat /trigger /data.txt > /both\n");
    write(&child, "data.txt", "child data\n");
    build_ok(&env, &["-t", "onchild", child.to_str().unwrap()]);
    assert_eq!(
        env.ok(&["run", "--rm", "onchild", "cat", "/both"]),
        "triggered\nchild data\n"
    );
    // Triggers run once: the child image carries none.
    let inspect = env.ok(&["inspect", "--format", "{{json .Config.OnBuild}}", "onchild"]);
    assert!(!inspect.contains("triggered"), "{inspect}");
}

#[test]
fn heredocs_in_run_and_copy() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox
ARG NAME=world
RUN <<EOF
set -e
echo \"first $NAME\" > /one
echo second >> /one
EOF
RUN cat <<-END > /two
\tindented
\tEND
COPY <<CONF /etc/app.conf
name=$NAME
quoted=\"kept\"
CONF
COPY <<'RAW' <<OTHER /files/
raw $NAME
RAW
other $NAME
OTHER
",
    );
    build_ok(&env, &["-t", "here", dir.to_str().unwrap()]);
    let out = env.ok(&[
        "run",
        "--rm",
        "here",
        "cat",
        "/one",
        "/two",
        "/etc/app.conf",
        "/files/RAW",
        "/files/OTHER",
    ]);
    assert_eq!(
        out,
        "first world\nsecond\nindented\nname=world\nquoted=\"kept\"\nraw $NAME\nother world\n"
    );
}

#[test]
fn user_workdir_env_in_inspect() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox
ENV APP_HOME=/srv/app MODE=\"prod mode\"
WORKDIR $APP_HOME
WORKDIR sub
USER nobody
RUN pwd > /tmp/pwd && id -u >> /tmp/pwd
EXPOSE 8080 53/udp
VOLUME /data
LABEL org.example.name=demo
STOPSIGNAL SIGINT
ENTRYPOINT [\"/bin/sh\", \"-c\"]
CMD [\"cat /tmp/pwd\"]
HEALTHCHECK --interval=30s CMD true
",
    );
    build_ok(&env, &["-t", "meta", "--label", "extra=1", dir.to_str().unwrap()]);
    let f = |fmt: &str| env.ok(&["inspect", "--format", fmt, "meta"]).trim().to_string();
    assert_eq!(f("{{.Config.User}}"), "nobody");
    assert_eq!(f("{{.Config.WorkingDir}}"), "/srv/app/sub");
    let envs = f("{{json .Config.Env}}");
    assert!(
        envs.contains("\"APP_HOME=/srv/app\"") && envs.contains("\"MODE=prod mode\""),
        "{envs}"
    );
    assert!(envs.contains("PATH="), "{envs}");
    let ports = f("{{json .Config.ExposedPorts}}");
    assert!(ports.contains("8080/tcp") && ports.contains("53/udp"), "{ports}");
    assert!(f("{{json .Config.Volumes}}").contains("/data"));
    let labels = f("{{json .Config.Labels}}");
    assert!(
        labels.contains("\"org.example.name\":\"demo\"") && labels.contains("\"extra\":\"1\""),
        "{labels}"
    );
    assert_eq!(f("{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(env.ok(&["run", "--rm", "meta"]), "/srv/app/sub\n65534\n");
}

#[test]
fn reproducible_with_source_date_epoch() {
    let build_in = |env: &Env| -> String {
        let dir = context(
            env,
            "ctx",
            "FROM scratch\nCOPY files/ /files/\nENV A=1\nCOPY <<EOF /inline.txt\nhello\nEOF\nCMD [\"/x\"]\n",
        );
        write(&dir, "files/a.txt", "a\n");
        write(&dir, "files/d/b.txt", "b\n");
        let o = env
            .cmd()
            .args(["build", "-q", dir.to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let a = Env::new();
    let b = Env::new();
    let id_a = build_in(&a);
    // Different file times in the second context.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let id_b = build_in(&b);
    assert!(id_a.starts_with("sha256:"), "{id_a}");
    assert_eq!(id_a, id_b);
    let created = a.ok(&["inspect", "--format", "{{.Created}}", &id_a]);
    assert!(created.starts_with("2023-11-14T22:13:20"), "{created}");
}

#[test]
fn hostile_contexts_and_dockerfiles() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    std::fs::write(env.path("outside"), "outside secret\n").unwrap();
    let dir = context(&env, "ctx", "FROM busybox\nCOPY ../outside /x\n");
    let ctx = dir.to_str().unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(
        err.contains("failed to compute cache key: \"/outside\": not found"),
        "{err}"
    );
    // Absolute sources are inside the context too.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY /etc/passwd /x\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(err.contains("\"/etc/passwd\": not found"), "{err}");
    // A symlink pointing out of the context is resolved inside it.
    std::os::unix::fs::symlink("../outside", dir.join("up")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("abs")).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY up /x\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(err.contains("not found"), "{err}");
    // Copied as part of a directory, links stay links.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\nCMD readlink /ctx/up; readlink /ctx/abs\n",
    )
    .unwrap();
    build_ok(&env, &["-t", "links", ctx]);
    assert_eq!(env.ok(&["run", "--rm", "links"]), "../outside\n/etc/hostname\n");
    let o = env.run(&["run", "--rm", "links", "cat", "/ctx/up"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("outside secret"));
    // A destination through a symlink in the image stays in the image.
    std::fs::write(dir.join("data.txt"), "data\n").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN ln -s ../../../../../.. /escape\nCOPY data.txt /escape/data.txt\n",
    )
    .unwrap();
    build_ok(&env, &["-t", "dest", ctx]);
    assert_eq!(env.ok(&["run", "--rm", "dest", "cat", "/data.txt"]), "data\n");
    // Malformed Dockerfile: the error names the line.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\n\nFORM nothing\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(
        err.contains("dockerfile parse error on line 3: unknown instruction: FORM"),
        "{err}"
    );
    // A failing RUN gives its exit code and line.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN echo before\nRUN exit 3\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(
        err.contains("Dockerfile:3: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(err.contains(">>> RUN exit 3"), "{err}");
    // A base image that is not in the store.
    std::fs::write(dir.join("Dockerfile"), "FROM nosuchimage:1\n").unwrap();
    let err = build_fails(&env, &[ctx]);
    assert!(
        err.contains("pull access denied for nosuchimage:1") && err.contains("import or load it first"),
        "{err}"
    );
    // No snapshot or mount is left behind by the failures.
    let containers = std::fs::read_dir(env.root().join("containers")).unwrap().count();
    assert_eq!(containers, 0);
}

#[test]
fn dockerfile_from_stdin_iidfile_quiet_and_add() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = env.path("ctx");
    std::fs::create_dir_all(dir.join("tree/d")).unwrap();
    write(&dir, "tree/d/f.txt", "in tar\n");
    write(&dir, "plain.txt", "plain\n");
    let st = std::process::Command::new("tar")
        .args(["-czf", "arch.tar.gz", "-C", "tree", "."])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let iid = env.path("iid");
    let mut child = env
        .cmd()
        .args([
            "build",
            "-q",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "stdin:v1",
            "-f",
            "-",
        ])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nADD arch.tar.gz /unpacked/\nADD plain.txt /p/\nCOPY --chown=nobody:nogroup --chmod=600 plain.txt /owned\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let out = env.ok(&[
        "run",
        "--rm",
        "stdin:v1",
        "sh",
        "-c",
        "cat /unpacked/d/f.txt /p/plain.txt; stat -c '%U:%G %a' /owned",
    ]);
    assert_eq!(out, "in tar\nplain\nnobody:nogroup 600\n");
}

#[test]
fn independent_stages_build_in_parallel() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "ARG BASE=busybox
FROM $BASE AS slow
RUN sleep 3 && echo slow-done > /slow
FROM ${BASE} AS quick
RUN echo quick-done > /quick
FROM busybox
COPY --from=slow /slow /
COPY --from=quick /quick /
CMD [\"cat\", \"/slow\", \"/quick\"]
",
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let platform = format!("linux/{arch}");
    let (_, err) = build_ok(&env, &["-t", "par", "--platform", &platform, dir.to_str().unwrap()]);
    // The quick stage does not wait for the slow one.
    let pos = |needle: &str| {
        err.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in:\n{err}"))
    };
    let slow_done = vertex(&err, "[slow 2/2] RUN sleep 3").last().map(|l| pos(l)).unwrap();
    let quick_started = pos("[quick 2/2] RUN echo quick-done");
    assert!(quick_started < slow_done, "{err}");
    assert_eq!(env.ok(&["run", "--rm", "par"]), "slow-done\nquick-done\n");
    let err = build_fails(&env, &["--platform", "linux/s390x-other", dir.to_str().unwrap()]);
    assert!(
        err.contains("cannot build for linux/s390x-other: unknown platform"),
        "{err}"
    );
}

/// Every entry path of the layers of `image` above its first (the base's), with the bytes of all (to look for leaks).
fn layer_entries(env: &Env, image: &str) -> (Vec<String>, Vec<u8>) {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", image])).unwrap();
    let mut names = Vec::new();
    let mut bytes = Vec::new();
    for (i, l) in v[0]["RootFS"]["Layers"].as_array().unwrap().iter().enumerate() {
        let hex = l.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let blob = std::fs::read(env.root().join("blobs/sha256").join(hex)).unwrap();
        bytes.extend_from_slice(&blob);
        if i == 0 {
            continue;
        }
        for e in tar::Archive::new(&blob[..]).entries().unwrap() {
            let e = e.unwrap();
            names.push(e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string());
        }
    }
    (names, bytes)
}

const MOUNTS: &str = r#"FROM busybox AS base
RUN mkdir -p /etc && echo from-base > /etc/base.txt

FROM busybox
RUN --mount=type=cache,target=/var/cache/thing,id=c1 sh -c 'echo x >> /var/cache/thing/log; wc -l < /var/cache/thing/log | tr -d " " > /count'
RUN --mount=type=secret,id=tok,required grep -q 4711 /run/secrets/tok && test "$(stat -c %a /run/secrets/tok)" = 400 && echo ok > /secret-ok
RUN --mount=type=secret,id=tok,env=TOK,required sh -c 'case "$TOK" in *-4711) echo envok > /env-ok;; esac'
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent-ok
RUN --mount=type=bind,source=data,target=/mnt/data cp /mnt/data/f /copied && ! touch /mnt/data/ro 2>/dev/null
RUN --mount=type=bind,source=data,target=/mnt/rw,rw sh -c 'echo y > /mnt/rw/new && cp /mnt/rw/f /copied2'
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && ls /scratch > /tmpfs-list'
RUN --mount=type=bind,from=base,source=/etc/base.txt,target=/b.txt cp /b.txt /from-stage
"#;

#[test]
fn run_mounts_cache_secret_bind_tmpfs() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(&env, "ctx", MOUNTS);
    write(&dir, "data/f", "data file\n");
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "topsecret-4711").unwrap();
    let ctx = dir.to_str().unwrap();
    let sec = format!("id=tok,src={}", secret.display());
    let (_, err) = build_ok(&env, &["-t", "mounts", "--secret", &sec, ctx]);
    let got = env.ok(&[
        "run",
        "--rm",
        "mounts",
        "cat",
        "/count",
        "/secret-ok",
        "/env-ok",
        "/absent-ok",
        "/copied",
        "/copied2",
        "/tmpfs-list",
        "/from-stage",
    ]);
    assert_eq!(got, "1\nok\nenvok\nskipped\ndata file\ndata file\nt\nfrom-base\n");
    // Mount points that were not in the image do not land in it; the rw bind wrote nowhere.
    let (names, bytes) = layer_entries(&env, "mounts");
    for leaked in [
        "var/cache",
        "var/cache/thing",
        "run",
        "run/secrets",
        "mnt",
        "scratch",
        "b.txt",
    ] {
        assert!(
            !names.iter().any(|n| n == leaked),
            "{leaked} leaked into a layer: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "var"),
        "unchanged /var copied up into a layer: {names:?}"
    );
    assert!(!dir.join("data/new").exists());
    // The secret is in no layer, no history, no config.
    assert!(!bytes.windows(9).any(|w| w == b"topsecret"), "secret in a layer");
    let inspect = env.ok(&["inspect", "mounts"]);
    let history = env.ok(&["history", "--no-trunc", "mounts"]);
    assert!(!inspect.contains("topsecret") && !history.contains("topsecret") && !err.contains("topsecret"));
    // The cache directory persists in the store, outside the image.
    let (_, err2) = build_ok(&env, &["-t", "mounts", "--secret", &sec, "--no-cache", ctx]);
    let _ = err2;
    assert_eq!(env.ok(&["run", "--rm", "mounts", "cat", "/count"]), "2\n");
    // A required secret that is not given fails the step.
    let e = build_fails(&env, &["--no-cache", ctx]);
    assert!(e.contains("secret tok not found"), "{e}");
    // Cached: the secret's value is not part of the key.
    std::fs::write(&secret, "other").unwrap();
    let sec2 = format!("id=tok,src={}", secret.display());
    let (_, err3) = build_ok(&env, &["-t", "mounts", "--secret", &sec2, ctx]);
    assert!(
        is_cached(&err3, "RUN --mount=type=secret,id=tok,required grep"),
        "{err3}"
    );
    // A changed bind source misses.
    write(&dir, "data/f", "data file v2\n");
    let (_, err4) = build_ok(&env, &["-t", "mounts", "--secret", &sec, ctx]);
    assert!(
        !is_cached(&err4, "RUN --mount=type=bind,source=data,target=/mnt/data"),
        "{err4}"
    );
}

#[test]
fn run_mount_targets_are_confined() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox\nRUN --mount=type=cache,id=../../../../etc,target=../../../tmp/c touch /tmp/c/x\nRUN --mount=type=bind,source=../../..,target=/h ls /h > /listing\n",
    );
    write(&dir, "inside", "1");
    let (_, _) = build_ok(&env, &["-t", "confined", dir.to_str().unwrap()]);
    // The cache id is a name in the store, not a path.
    let caches: Vec<String> = std::fs::read_dir(env.root().join("build-mounts/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        caches.iter().all(|c| !c.contains('/') && !c.starts_with('.')),
        "{caches:?}"
    );
    assert!(!Path::new("/etc/x").exists());
    // `source=../../..` is the context's root.
    let listing = env.ok(&["run", "--rm", "confined", "cat", "/listing"]);
    assert!(
        listing.contains("inside") && listing.contains("Dockerfile"),
        "{listing}"
    );
}

#[test]
fn copy_exclude_and_parents() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox\nCOPY --exclude=*.log --exclude=tmp src/ /app/\nCOPY --parents a/b/f.txt a/c/g.txt /p/\nCOPY --parents ./a/./b/f.txt /q/\n",
    );
    write(&dir, "src/keep.txt", "k");
    write(&dir, "src/drop.log", "d");
    write(&dir, "src/tmp/x", "x");
    write(&dir, "src/sub/deep.log", "d");
    write(&dir, "src/sub/ok", "o");
    write(&dir, "a/b/f.txt", "f");
    write(&dir, "a/c/g.txt", "g");
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "ex", ctx]);
    let got = env.ok(&[
        "run",
        "--rm",
        "ex",
        "sh",
        "-c",
        "cd /app && find . | sort; find /p /q -type f | sort",
    ]);
    assert_eq!(
        got,
        ".\n./keep.txt\n./sub\n./sub/deep.log\n./sub/ok\n/p/a/b/f.txt\n/p/a/c/g.txt\n/q/b/f.txt\n"
    );
    // An excluded file's change does not invalidate the step.
    write(&dir, "src/drop.log", "changed");
    let (_, err) = build_ok(&env, &["-t", "ex", ctx]);
    assert!(is_cached(&err, "COPY --exclude"), "{err}");
}

#[test]
fn network_no_cache_filter_and_pull_flags() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox AS one\nRUN sleep 1 && echo one > /one\nFROM busybox\nCOPY --from=one /one /one\nRUN ls /sys/class/net > /nets\n",
    );
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "net", "--network", "none", ctx]);
    let nets = env.ok(&["run", "--rm", "net", "cat", "/nets"]);
    assert_eq!(nets.trim(), "lo", "{nets}");
    // Stage one runs again (and writes /one a second or more later), but the
    // copied content is the same: the COPY and what follows stay cached.
    let (_, err) = build_ok(
        &env,
        &["-t", "net", "--network", "none", "--no-cache-filter", "one", ctx],
    );
    assert!(!is_cached(&err, "RUN sleep 1 && echo one"), "{err}");
    assert!(is_cached(&err, "COPY --from=one /one /one"), "{err}");
    assert!(is_cached(&err, "RUN ls /sys/class/net"), "{err}");
    let e = build_fails(&env, &["--network", "bridge", ctx]);
    assert!(e.contains("--network=bridge is not supported"), "{e}");
    let e = build_fails(&env, &["--no-cache-filter", "nosuch", ctx]);
    assert!(e.contains("no stage named"), "{e}");
}

#[test]
fn add_url_with_checksum() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    // A one-shot HTTP server on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = b"remote content\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    let sum = "sha256:2a5e8d23a4e0e1f4e6d1d3f3b5b6a0b1b6b4e0f1a2b3c4d5e6f708192a3b4c5d";
    let url = format!("http://127.0.0.1:{port}/files/remote.txt");
    let good = format!("sha256:{}", common::sha256_hex(b"remote content\n"));
    let dir = context(
        &env,
        "ctx",
        &format!("FROM busybox\nADD {url} /dl/\nADD --checksum={good} {url} /c.txt\n"),
    );
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "url", ctx]);
    let got = env.ok(&[
        "run",
        "--rm",
        "url",
        "sh",
        "-c",
        "cat /dl/remote.txt /c.txt; stat -c '%a %Y' /dl/remote.txt",
    ]);
    assert_eq!(got, "remote content\nremote content\n600 784111777\n");
    // With a checksum, a rebuild does not fetch again.
    let before = served.load(std::sync::atomic::Ordering::SeqCst);
    let (_, err) = build_ok(&env, &["-t", "url", ctx]);
    assert!(is_cached(&err, "ADD --checksum"), "{err}");
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "only the unchecked URL is fetched"
    );
    let bad = context(
        &env,
        "bad",
        &format!("FROM busybox\nADD --checksum={sum} {url} /c.txt\n"),
    );
    let e = build_fails(&env, &[bad.to_str().unwrap()]);
    assert!(e.contains("digest mismatch"), "{e}");
}

#[test]
fn builds_with_the_vfs_driver() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox\nRUN mkdir -p /a/b && echo 1 > /a/b/f && rm /etc/group\nCOPY app.txt /app/\nRUN --mount=type=cache,target=/var/cache/v echo 2 >> /a/b/f && rm -r /a/b/f && echo 3 > /a/g\nWORKDIR /w\n",
    );
    write(&dir, "app.txt", "app\n");
    let ctx = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--storage-driver", "vfs", "build"];
        all.extend_from_slice(args);
        let o = env.run(&all);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "vfs build failed: {err}");
        err
    };
    run(&["-t", "vfs", ctx]);
    let got = env.ok(&[
        "--storage-driver",
        "vfs",
        "run",
        "--rm",
        "vfs",
        "sh",
        "-c",
        "cat /app/app.txt /a/g; ls /a/b; test ! -e /etc/group && echo nogroup; test ! -e /var/cache/v && echo nocache; pwd",
    ]);
    assert_eq!(got, "app\n3\nnogroup\nnocache\n/w\n");
    // Each RUN layer holds only its changes: the deletion as a whiteout.
    let (names, _) = layer_entries(&env, "vfs");
    assert!(names.iter().any(|n| n == "etc/.wh.group"), "{names:?}");
    assert!(names.iter().any(|n| n == "a/b/.wh.f"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("bin/")), "{names:?}");
    assert!(!names.iter().any(|n| n == "var/cache"), "{names:?}");
    let err = run(&["-t", "vfs", ctx]);
    assert!(is_cached(&err, "RUN mkdir"), "{err}");
}

#[test]
fn ten_thousand_file_context_rebuilds_all_cached() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = context(
        &env,
        "ctx",
        "FROM busybox\nENV A=1\nWORKDIR /app\nCOPY src/d1 /app/d1\nRUN echo hi > /hi\nCOPY src /app/src\nARG X=1\nRUN ls /app/src | wc -l > /count\nLABEL a=b\nCMD [\"cat\", \"/count\"]\n",
    );
    for d in 0..100 {
        let sub = dir.join(format!("src/d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100 {
            std::fs::write(sub.join(format!("f{f}.txt")), format!("file {d} {f}\n")).unwrap();
        }
    }
    let ctx = dir.to_str().unwrap();
    build_ok(&env, &["-t", "big", ctx]);
    assert_eq!(env.ok(&["run", "--rm", "big"]), "100\n");
    let (_, err) = build_ok(&env, &["-t", "big", ctx]);
    for t in [
        "WORKDIR /app",
        "COPY src/d1",
        "RUN echo hi",
        "COPY src /app/src",
        "RUN ls /app/src",
    ] {
        assert!(is_cached(&err, t), "{t} not cached:\n{err}");
    }
    // One changed file among 10,000 is found (and only the steps that see it rebuild).
    std::fs::write(dir.join("src/d50/f7.txt"), "changed\n").unwrap();
    let (_, err) = build_ok(&env, &["-t", "big", ctx]);
    assert!(is_cached(&err, "COPY src/d1"), "{err}");
    assert!(
        miss_reason(&err, "COPY src /app/src").contains("src/d50/f7.txt"),
        "{err}"
    );
}
