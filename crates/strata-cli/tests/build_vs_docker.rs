//! `strata build` against `docker build` (BuildKit) for the same
//! Dockerfiles on the same busybox base: the same files, owners, modes and
//! symlinks in the final root filesystem, and the same runtime config.
//!
//! Every Dockerfile is built with strata and checked whatever happens; the
//! comparison with docker is skipped, with a printed reason, when no docker
//! daemon answers or its BuildKit cannot build the Dockerfile (Docker 20.10's
//! built-in frontend has no heredocs, for one).

mod common;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Env;

/// The busybox base's config changes, as `Env::import_busybox` makes it.
const BASE_CHANGES: [&str; 2] = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    r#"CMD ["/bin/sh"]"#,
];

/// The config fields compared.
const FIELDS: &[&str] = &[
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
/// container, and BuildKit's RUN mount points: not the build's doing.
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
/// (with the reason printed). The `docker` on PATH may lack the buildx
/// plugin while an older /usr/bin/docker has BuildKit built in.
fn docker_client() -> Option<String> {
    let mut why = Vec::new();
    for c in ["docker", "/usr/bin/docker"] {
        let info = Command::new(c).arg("info").stdin(Stdio::null()).output();
        match info {
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
    eprintln!("skipped the docker comparison: {}", why.join("; "));
    None
}

fn docker_ok(docker: &str, args: &[&str]) -> String {
    let o = sh(Command::new(docker).args(args));
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Names unique to this test process, the same in strata and docker.
fn unique(name: &str) -> String {
    format!("strata-bvd-{}-{name}", std::process::id())
}

struct Cmp<'a> {
    env: &'a Env,
    docker: Option<String>,
    /// Images made in docker, removed at the end.
    made: std::cell::RefCell<Vec<String>>,
    base: String,
}

impl<'a> Cmp<'a> {
    /// busybox in the store and, with a daemon, the same tar imported into docker; both as `base`.
    fn new(env: &'a Env) -> Option<Cmp<'a>> {
        env.import_busybox()?;
        let base = format!("{}:latest", unique("busybox"));
        env.ok(&["tag", "busybox", &base]);
        let mut docker = docker_client();
        if let Some(d) = &docker {
            let rootfs = env.busybox_rootfs().unwrap();
            let tar = env.path("busybox.tar");
            let st = Command::new("tar")
                .args(["--numeric-owner", "-C"])
                .arg(&rootfs)
                .args(["-cf"])
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
                eprintln!("skipped the docker comparison: docker import failed: {}", text(&o));
                docker = None;
            }
        }
        let cmp = Cmp {
            env,
            docker,
            made: Default::default(),
            base,
        };
        cmp.made.borrow_mut().push(cmp.base.clone());
        Some(cmp)
    }

    /// A build context with `files` and the Dockerfile, `@BASE@` naming the base.
    fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
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

    /// Builds `dir` as `tag` with strata (and docker, when there is one) and
    /// compares the two; returns whether docker took part.
    fn build(&self, dir: &Path, tag: &str, extra: &[&str]) -> bool {
        let mut args = vec!["build", "--network", "none", "-t", tag];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        self.env.ok(&args);
        let Some(docker) = &self.docker else { return false };
        let mut cmd = Command::new(docker);
        cmd.args(["build", "--network", "none", "-t", tag])
            .args(extra)
            .arg(dir)
            .env("DOCKER_BUILDKIT", "1");
        let o = sh(&mut cmd);
        if !o.status.success() {
            let t = text(&o);
            if t.contains("unknown instruction") || t.contains("Unknown flag") || t.contains("unknown flag") {
                eprintln!(
                    "skipped the docker comparison for {tag}: this docker's Dockerfile frontend does not know the syntax: {}",
                    t.lines().last().unwrap_or("")
                );
                return false;
            }
            panic!("docker build of {tag} failed:\n{t}");
        }
        self.made.borrow_mut().push(tag.to_string());
        self.compare_config(docker, tag);
        self.compare_rootfs(docker, tag);
        true
    }

    fn compare_config(&self, docker: &str, tag: &str) {
        let s: serde_json::Value = serde_json::from_str(&self.env.ok(&["inspect", tag])).unwrap();
        let d: serde_json::Value = serde_json::from_str(&docker_ok(docker, &["image", "inspect", tag])).unwrap();
        let (s, d) = (&s[0]["Config"], &d[0]["Config"]);
        for f in FIELDS {
            assert_eq!(
                normalize(&s[f]),
                normalize(&d[f]),
                "{tag}: Config.{f} differs (strata, docker)\nstrata: {s}\ndocker: {d}"
            );
        }
    }

    fn compare_rootfs(&self, docker: &str, tag: &str) {
        let s_tar = self.env.path(&format!("{tag}-strata.tar"));
        let id = self.env.ok(&["create", tag, "true"]).trim().to_string();
        self.env.ok(&["export", "-o", s_tar.to_str().unwrap(), &id]);
        self.env.ok(&["rm", &id]);
        let d_tar = self.env.path(&format!("{tag}-docker.tar"));
        let cid = docker_ok(docker, &["create", tag, "true"]).trim().to_string();
        docker_ok(docker, &["export", "-o", d_tar.to_str().unwrap(), &cid]);
        docker_ok(docker, &["rm", &cid]);
        let s = listing(&s_tar);
        let d = listing(&d_tar);
        let mut diffs = Vec::new();
        let keys: std::collections::BTreeSet<&String> = s.keys().chain(d.keys()).collect();
        for k in keys {
            match (s.get(k), d.get(k)) {
                (Some(a), Some(b)) if a == b => {}
                (a, b) => diffs.push(format!(
                    "/{k}: strata {} | docker {}",
                    a.map(String::as_str).unwrap_or("(none)"),
                    b.map(String::as_str).unwrap_or("(none)")
                )),
            }
        }
        assert!(
            diffs.is_empty(),
            "{tag}: the root filesystems differ:\n{}",
            diffs.join("\n")
        );
        let _ = std::fs::remove_file(s_tar);
        let _ = std::fs::remove_file(d_tar);
    }

    /// A config value of the strata image.
    fn config(&self, tag: &str, field: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.env.ok(&["inspect", tag])).unwrap();
        normalize(&v[0]["Config"][field])
    }

    fn run(&self, tag: &str, script: &str) -> String {
        self.env.ok(&[
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "/bin/sh",
            tag,
            "-c",
            script,
        ])
    }
}

impl Drop for Cmp<'_> {
    fn drop(&mut self) {
        if let Some(d) = &self.docker {
            for m in self.made.borrow().iter().rev() {
                let _ = sh(Command::new(d).args(["rmi", "-f", m]));
            }
        }
    }
}

/// Null, absent, `[]`, `{}` and `""` are all "not set" (docker 20.10 says
/// null where strata leaves a field out, and the other way round).
fn normalize(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
        serde_json::Value::Object(o) if o.is_empty() => serde_json::Value::Null,
        serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
        other => other.clone(),
    }
}

/// Every path of an exported root filesystem: type, mode, owner, link
/// target and content hash (times are left out). Hard links are listed as
/// the file they link to (which name comes first is the archiver's choice).
fn listing(tar: &Path) -> BTreeMap<String, String> {
    let f = std::fs::File::open(tar).unwrap();
    let mut a = tar::Archive::new(f);
    let mut out = BTreeMap::new();
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
                format!("file {mode:o} {uid}:{gid} {}b {:016x}", bytes.len(), hasher.finish())
            }
            tar::EntryType::Link => {
                let target = link.trim_start_matches("./").trim_start_matches('/').to_string();
                let t = out.get(&target).cloned().unwrap_or_else(|| format!("link to {target}"));
                // The target's mode and owner are the link's.
                t.to_string()
            }
            tar::EntryType::Symlink => format!("symlink {uid}:{gid} -> {link}"),
            tar::EntryType::Directory => format!("dir {mode:o} {uid}:{gid}"),
            other => format!("{other:?} {mode:o} {uid}:{gid}"),
        };
        out.insert(path, desc);
    }
    out
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
    let Some(cmp) = Cmp::new(&env) else { return };
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
    let tag = unique("everything");
    let compared = cmp.build(&dir, &tag, &[]);
    // strata's own result, whatever docker says.
    let out = cmp.run(
        &tag,
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
    let c = |f: &str| cmp.config(&tag, f);
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
    let Some(cmp) = Cmp::new(&env) else { return };
    let base_tag = unique("onbase");
    let dir = cmp.context(
        "onbase",
        "FROM @BASE@\nLABEL stage=base\nONBUILD COPY onbuild.txt /onbuild/\nONBUILD RUN echo triggered > /onbuild/ran\nONBUILD ENV FROM_TRIGGER=yes\n",
        &[],
    );
    cmp.build(&dir, &base_tag, &[]);
    assert_eq!(
        cmp.config(&base_tag, "OnBuild"),
        serde_json::json!([
            "COPY onbuild.txt /onbuild/",
            "RUN echo triggered > /onbuild/ran",
            "ENV FROM_TRIGGER=yes"
        ])
    );
    let child_tag = unique("onchild");
    let child = cmp.context(
        "onchild",
        &format!("FROM {base_tag}\nRUN cat /onbuild/onbuild.txt /onbuild/ran > /both\n"),
        &[("onbuild.txt", "child file\n")],
    );
    cmp.build(&child, &child_tag, &[]);
    assert_eq!(
        cmp.run(&child_tag, "cat /both; echo $FROM_TRIGGER"),
        "child file\ntriggered\nyes\n"
    );
    assert_eq!(cmp.config(&child_tag, "OnBuild"), serde_json::Value::Null);
    assert_eq!(cmp.config(&child_tag, "Labels"), serde_json::json!({"stage": "base"}));
}

#[test]
fn multi_stage_with_target_matches_docker() {
    let env = Env::new();
    let Some(cmp) = Cmp::new(&env) else { return };
    let dir = cmp.context(
        "multi",
        "FROM @BASE@ AS one\nRUN echo one > /one && mkdir /shared && echo 1 > /shared/one\nENV STAGE=one\n\
         FROM one AS two\nRUN echo two > /two && rm /one && echo 2 > /shared/two\nCMD [\"cat\", \"/two\"]\nEXPOSE 7/udp\n\
         FROM @BASE@ AS three\nCOPY --from=two /two /shared /\nRUN exit 1\n",
        &[],
    );
    let tag = unique("multi");
    cmp.build(&dir, &tag, &["--target", "two"]);
    assert_eq!(
        cmp.run(
            &tag,
            "cat /two /shared/one /shared/two; test ! -e /one && echo gone; echo $STAGE"
        ),
        "two\n1\n2\ngone\none\n"
    );
    assert_eq!(cmp.config(&tag, "Cmd"), serde_json::json!(["cat", "/two"]));
}

#[test]
fn deletions_links_and_special_modes_match_docker() {
    let env = Env::new();
    let Some(cmp) = Cmp::new(&env) else { return };
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
    let tag = unique("modes");
    cmp.build(&dir, &tag, &[]);
    let out = cmp.run(
        &tag,
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
    let Some(cmp) = Cmp::new(&env) else { return };
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
    let tag = unique("heredoc");
    cmp.build(&dir, &tag, &[]);
    let out = cmp.run(
        &tag,
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
