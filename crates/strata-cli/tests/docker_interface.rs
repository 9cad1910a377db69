//! Docker's interface (#15 items 11–14): `inspect` typed as Docker's, output
//! to a closed pipe, the commands users reach for (`system prune`,
//! `builder`, the `image`/`container` groups, `version`, `info`,
//! `completion`) and uppercase registry hosts in `tag`. Compared with a
//! docker daemon where one answers (`skipped: …` printed where not).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run")
}

fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A docker whose `build` has BuildKit (the one on PATH may lack the buildx
/// plugin while Debian's /usr/bin/docker has BuildKit built in), or None.
fn buildkit_docker(ctx: &Path) -> Option<&'static str> {
    ["docker", "/usr/bin/docker"].into_iter().find(|c| {
        run(Command::new(c)
            .args(["build", "-q", "--network", "none", "-t", "strata-di-probe"])
            .arg(ctx)
            .env("DOCKER_BUILDKIT", "1"))
        .status
        .success()
    })
}

/// Docker image names unique to this run, removed from docker when dropped.
struct DockerImages(Vec<String>);

impl DockerImages {
    fn name(&mut self, what: &str) -> String {
        let n = format!("strata-di-{}-{what}", std::process::id());
        self.0.push(n.clone());
        n
    }
}

impl Drop for DockerImages {
    fn drop(&mut self) {
        let mut args = vec!["rmi", "-f"];
        args.extend(self.0.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

/// Docker's and strata's inspect objects compared: the same keys in the
/// same order, the same JSON types, the same values — except where they
/// must differ (sizes as each store counts them, the graph driver, the time
/// the name was set); strata adds its `Manifest`.
fn compare(path: &str, d: &Value, s: &Value, diffs: &mut Vec<String>) {
    const OWN: &[&str] = &[
        "/Parent",
        "/Size",
        "/VirtualSize",
        "/GraphDriver/Data",
        "/GraphDriver/Name",
        "/Metadata/LastTagTime",
    ];
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if kind(d) != kind(s) {
        diffs.push(format!("{path}: docker {d} | strata {s}"));
        return;
    }
    if OWN.contains(&path) {
        return;
    }
    match (d, s) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().filter(|k| !(path.is_empty() && *k == "Manifest")).collect();
            if ka != kb {
                diffs.push(format!("{path}: docker keys {ka:?} | strata keys {kb:?}"));
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    compare(&format!("{path}/{k}"), v, w, diffs);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}/{i}"), v, w, diffs);
            }
        }
        _ if d != s => diffs.push(format!("{path}: docker {d} | strata {s}")),
        _ => {}
    }
}

/// `-f` templates whose output must be docker's, byte for byte.
const TEMPLATES: &[&str] = &[
    "{{.Id}}|{{.Comment}}|{{.Container}}|{{.Author}}|{{.Created}}",
    "{{.Config.Healthcheck}}",
    "{{if .Config.Healthcheck}}healthy{{else}}none{{end}} {{with .Config.Healthcheck}}{{.Test}} {{.Interval}}{{end}}",
    "{{.Config.StopSignal}}|{{.Config.User}}|{{.Config.WorkingDir}}|{{.Config.ArgsEscaped}}|{{.Config.StopTimeout}}",
    "{{.Config.Labels}}|{{.Config.Env}}|{{.Config.ExposedPorts}}|{{.Config.Volumes}}",
    "{{.Config.Cmd}}|{{.Config.Entrypoint}}|{{.Config.Shell}}|{{.Config.OnBuild}}",
    "{{json .Config}}",
    "{{json .ContainerConfig}}",
    "{{json .Config.Labels}}|{{json .Config.Env}}|{{json .Config.Healthcheck}}|{{json .Config.ExposedPorts}}",
    "{{json .RootFS}}|{{.RootFS.Type}}|{{.RootFS.Layers}}|{{len .RootFS.Layers}}",
    "{{.DockerVersion}}|{{.Architecture}}|{{.Os}}|{{.Variant}}|{{.OsVersion}}",
    "{{range $p, $v := .Config.ExposedPorts}}{{$p}}={{$v}} {{end}}|{{range .Config.Env}}{{.}};{{end}}",
    "{{.RepoTags}}|{{len .RepoTags}}|{{.RepoDigests}}|{{.ContainerConfig.Cmd}}|{{.ContainerConfig.Labels}}",
    "{{index .Config.Labels \"a\"}}|{{index .Config.Labels \"missing\"}}|{{index .Config.Volumes \"/data\"}}",
    "{{index .Config.ExposedPorts \"80/tcp\"}}",
    "{{.Size}}",
];

/// A docker client of 20.10 (Debian's /usr/bin/docker beside a newer one):
/// `-f` templates run on the client's Go structs, and from Docker 25 on
/// `Config` is the OCI image config (fewer fields); strata's are 20.10's.
fn docker_20_10() -> Option<&'static str> {
    ["docker", "/usr/bin/docker"].into_iter().find(|c| {
        run(Command::new(c).args(["version", "--format", "{{.Client.Version}}"]))
            .stdout
            .starts_with(b"20.10")
    })
}

/// Item 11: images from docker (imported, imported with every change, a
/// legacy build with a ContainerConfig, a BuildKit `FROM scratch`) loaded
/// into strata inspect as docker inspects them.
#[test]
fn image_inspect_matches_docker_field_by_field() {
    if !docker_daemon() {
        return;
    }
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else { return };
    let mut names = DockerImages(vec![]);
    let tar = env.path("rootfs.tar");
    sh_ok(&format!("tar -C {} -cf {} .", rootfs.display(), tar.display()));
    let small = env.path("small");
    std::fs::create_dir_all(&small).unwrap();
    // Content of this run only: no other image of the daemon has this ID.
    std::fs::write(
        small.join("f"),
        format!("{} {:?}\n", std::process::id(), std::time::SystemTime::now()),
    )
    .unwrap();
    std::fs::write(small.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    sh_ok(&format!(
        "tar -C {} -cf {} f",
        small.display(),
        env.path("small.tar").display()
    ));

    let bb = names.name("bb");
    let imported = names.name("imported");
    let rich = names.name("rich");
    let legacy = names.name("legacy");
    let t = tar.to_str().unwrap();
    docker_ok(&[
        "import",
        "-c",
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        "-m",
        "hello",
        t,
        &bb,
    ]);
    docker_ok(&["import", env.path("small.tar").to_str().unwrap(), &imported]);
    #[rustfmt::skip]
    docker_ok(&["import", "-c", "EXPOSE 80/tcp 53/udp", "-c", "VOLUME /data", "-c", "LABEL a=b c=d",
        "-c", "USER 1:2", "-c", "WORKDIR /w", "-c", r#"ENTRYPOINT ["/bin/echo"]"#, "-c", r#"CMD ["x"]"#,
        "-c", "ONBUILD RUN echo hi", "-c", "HEALTHCHECK --interval=5s --retries=2 CMD true", t, &rich]);
    let ctx = env.path("legacy");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {bb}\nLABEL a=b\nSTOPSIGNAL SIGKILL\nCOPY Dockerfile /\n"),
    )
    .unwrap();
    let o = run(Command::new("docker")
        .args(["build", "-q", "-t", &legacy])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0"));
    let mut all = vec![bb.clone(), imported.clone(), rich.clone()];
    if o.status.success() {
        all.push(legacy.clone());
    } else {
        eprintln!("skipped the legacy builder's image: {}", text(&o).trim());
    }
    match buildkit_docker(&small) {
        Some(d) => {
            let scratch = names.name("scratch");
            let o = run(Command::new(d)
                .args(["build", "-q", "-t", &scratch])
                .arg(&small)
                .env("DOCKER_BUILDKIT", "1"));
            assert!(o.status.success(), "{}", text(&o));
            all.push(scratch);
        }
        None => eprintln!("skipped the BuildKit image: no docker build with BuildKit here"),
    }
    let _ = docker(&["rmi", "strata-di-probe"]);
    let archive = env.path("all.tar");
    let mut args = vec!["save", "-o", archive.to_str().unwrap()];
    args.extend(all.iter().map(String::as_str));
    docker_ok(&args);
    env.ok(&["load", "-i", archive.to_str().unwrap()]);

    let mut diffs = Vec::new();
    for name in &all {
        let d_text = docker_ok(&["inspect", "--type", "image", name]);
        let s_text = env.ok(&["inspect", name]);
        let d: Value = serde_json::from_str(&d_text).unwrap();
        let s: Value = serde_json::from_str(&s_text).unwrap();
        compare(&format!("[{name}]"), &d[0], &s[0], &mut diffs);
        // The text too: the CLI indents by four spaces.
        let head = |t: &str| {
            t.lines()
                .take(3)
                .map(|l| l.len() - l.trim_start().len())
                .collect::<Vec<_>>()
        };
        assert_eq!(head(&s_text), head(&d_text), "inspect's indentation");
        let mut rebased = Vec::new();
        compare("", &d[0], &s[0], &mut rebased);
        diffs.extend(rebased.into_iter().map(|r| format!("{name}: {r}")));
        let Some(client) = docker_20_10() else {
            eprintln!("skipped the -f templates: no docker 20.10 client here");
            continue;
        };
        for f in TEMPLATES {
            let theirs = run(Command::new(client).args(["inspect", "--type", "image", "-f", f, name]));
            let ours = env.run(&["inspect", "-f", f, name]);
            let (t, o) = (
                String::from_utf8_lossy(&theirs.stdout),
                String::from_utf8_lossy(&ours.stdout),
            );
            if f.contains(".Size") {
                // Sizes are each store's own count; both print a number.
                assert!(
                    t.trim().parse::<u64>().is_ok() && o.trim().parse::<u64>().is_ok(),
                    "{name} {f}: {t} | {o}"
                );
                continue;
            }
            if f == &"{{.Config.Healthcheck}}" && t.starts_with('{') {
                // A whole Go struct prints as `{v1 v2 …}`; strata's values
                // are maps (README: a known difference).
                assert!(o.starts_with("map["), "{name} {f}: {o}");
                continue;
            }
            // Both may fail (in their own words).
            let both_failed = !theirs.status.success() && !ours.status.success();
            if (t != o && !both_failed) || theirs.status.success() != ours.status.success() {
                diffs.push(format!(
                    "{name} -f {f}:\n  docker: {}\n  strata: {}",
                    text(&theirs).trim(),
                    text(&ours).trim()
                ));
            }
        }
        // A field neither has is an error in both.
        assert!(!docker(&["inspect", "-f", "{{.Config.Nope}}", name]).status.success());
        env.fails(&["inspect", "-f", "{{.Config.Nope}}", name]);
    }
    diffs.retain(|d| !d.starts_with('['));
    assert!(
        diffs.is_empty(),
        "strata's inspect differs from docker's:\n{}",
        diffs.join("\n")
    );
}

/// Item 11: a build does not inherit the base's `DockerVersion` (nor the
/// committing container's `Container` and `ContainerConfig`): BuildKit
/// writes none.
#[test]
fn build_does_not_inherit_docker_version() {
    if !docker_daemon() {
        return;
    }
    let env = Env::new();
    let mut names = DockerImages(vec![]);
    let base = names.name("dv-base");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("f"), "f\n").unwrap();
    sh_ok(&format!(
        "tar -C {} -cf {} f",
        ctx.display(),
        env.path("f.tar").display()
    ));
    docker_ok(&["import", env.path("f.tar").to_str().unwrap(), &base]);
    let version = docker_ok(&["inspect", "-f", "{{.DockerVersion}}", &base]);
    assert!(!version.trim().is_empty(), "docker import writes its version");
    let archive = env.path("base.tar");
    docker_ok(&["save", "-o", archive.to_str().unwrap(), &base]);
    env.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(env.ok(&["inspect", "-f", "{{.DockerVersion}}", &base]), version);
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nLABEL built=yes\n")).unwrap();
    env.ok(&["build", "-q", "-t", "built", ctx.to_str().unwrap()]);
    let f = "{{.DockerVersion}}|{{.Container}}|{{json .ContainerConfig}}";
    let ours = env.ok(&["inspect", "-f", f, "built"]);
    let zero = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#;
    assert_eq!(ours.trim(), format!("||{zero}"));
    if let Some(d) = buildkit_docker(&ctx) {
        let built = names.name("dv-built");
        let o = run(Command::new(d)
            .args(["build", "-q", "-t", &built])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "1"));
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            docker_ok(&["inspect", "-f", f, &built]),
            ours,
            "BuildKit's build of the same"
        );
    } else {
        eprintln!("skipped the BuildKit comparison: no docker build with BuildKit here");
    }
    let _ = docker(&["rmi", "strata-di-probe"]);
}

/// Runs `cmd | head -1` in bash: (head's line, the command's status, its stderr).
fn into_head(cmd: &str) -> (String, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("err");
    let o = sh(&format!("{cmd} 2>{} | head -1; exit ${{PIPESTATUS[0]}}", err.display()));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code().unwrap_or(-1),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

/// Item 12: long output into `head -1` ends quietly, killed by SIGPIPE as
/// docker is (status 141 in the shell), without a panic or a message.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let strata = format!("{} --root {}", env!("CARGO_BIN_EXE_strata"), env.root().display());
    let many = vec!["busybox"; 3000].join(" ");
    for cmd in [
        format!("{strata} inspect {many}"),
        format!("{strata} inspect -f '{{{{json .}}}}' {many}"),
        format!("{strata} completion bash"),
        format!("{strata} history --no-trunc busybox; {strata} inspect {many}"),
    ] {
        let (line, status, err) = into_head(&cmd);
        assert!(!line.is_empty(), "{cmd}: nothing came out");
        assert_eq!(status, 141, "{cmd}: status {status}, stderr {err}");
        assert_eq!(err, "", "{cmd}: stderr");
    }
    if docker_daemon() {
        // docker's own status for the same.
        let mut names = DockerImages(vec![]);
        let img = names.name("pipe");
        let small = env.path("small.tar");
        sh_ok(&format!(
            "tar -C {} -cf {} etc/passwd",
            env.busybox_rootfs().unwrap().display(),
            small.display()
        ));
        docker_ok(&["import", small.to_str().unwrap(), &img]);
        let many = vec![img.as_str(); 3000].join(" ");
        let (_, status, err) = into_head(&format!("docker inspect {many}"));
        assert_eq!((status, err.as_str()), (141, ""), "docker's status into a closed pipe");
    }
}

/// Item 13: `system prune` removes stopped containers, unused networks (as
/// `network prune`; none is made here: they are the host's), dangling
/// images and the build cache (`-a`: every unused image; `--volumes`: anonymous
/// volumes); without `-f` it asks, and `n` keeps everything.
#[test]
fn system_prune_removes_what_docker_does() {
    let env = Env::new();
    let Some(bb) = env.import_busybox() else { return };
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY f /f\n").unwrap();
    std::fs::write(ctx.join("f"), "one").unwrap();
    let first = env
        .ok(&["build", "-q", "-t", "app", ctx.to_str().unwrap()])
        .trim()
        .to_string();
    std::fs::write(ctx.join("f"), "two").unwrap();
    env.ok(&["build", "-q", "-t", "app", ctx.to_str().unwrap()]);
    // `first` is now dangling; a created (never started) container is stopped.
    let cid = env
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    let du = env.ok(&["builder", "du"]);
    assert!(!du.contains("Total:\t\t0B"), "{du}");

    let asked = env.ok_with(&["system", "prune"], Some("n\n"));
    for line in [
        "WARNING! This will remove:",
        "  - all stopped containers",
        "  - all networks not used by at least one container",
        "  - all dangling images",
        "  - all dangling build cache",
    ] {
        assert!(asked.contains(line), "{asked}");
    }
    assert!(env.ok(&["images", "-a", "-q", "--no-trunc"]).contains(&first));

    let out = env.ok(&["system", "prune", "-f"]);
    assert!(out.contains(&format!("Deleted Containers:\n{cid}\n")), "{out}");
    assert!(
        out.contains("Deleted Images:\n") && out.contains(&format!("deleted: {first}")),
        "{out}"
    );
    assert!(out.contains("Deleted build cache objects:\n"), "{out}");
    assert!(
        out.lines().last().unwrap().starts_with("Total reclaimed space: "),
        "{out}"
    );
    assert!(env.ok(&["ps", "-a", "-q"]).trim().is_empty());
    let left = env.ok(&["images", "-a", "-q", "--no-trunc"]);
    assert!(!left.contains(&first) && left.contains(&bb), "{left}");
    assert!(env.ok(&["builder", "du"]).contains("Total:\t\t0B"));

    let out = env.ok(&["system", "prune", "-a", "-f", "--volumes"]);
    assert!(out.contains(&format!("deleted: {bb}")), "{out}");
    assert!(env.ok(&["images", "-a", "-q"]).trim().is_empty());
}

/// Item 13: `builder du` and `builder prune` are `buildx du`/`prune` (one
/// cache); `--filter until=D` keeps what was used within D.
#[test]
fn builder_du_and_prune_with_until() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY f /f\n").unwrap();
    std::fs::write(ctx.join("f"), "f").unwrap();
    env.ok(&["builder", "build", "-q", "-t", "app", ctx.to_str().unwrap()]);
    // The entries' IDs (the last column is a time that moves on).
    let ids = |du: &str| -> Vec<String> {
        du.lines()
            .filter(|l| l.len() > 25 && !l.starts_with("ID "))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let du = env.ok(&["builder", "du"]);
    assert_eq!(ids(&du), ids(&env.ok(&["buildx", "du"])));
    let entries = ids(&du).len();
    assert!(entries > 0, "{du}");
    let out = env.ok(&["builder", "prune", "-f", "--filter", "until=24h"]);
    assert!(out.contains("Deleted build cache objects: 0"), "{out}");
    assert_eq!(ids(&env.ok(&["builder", "du"])), ids(&du));
    let err = env.fails(&["builder", "prune", "-f", "--filter", "until=soon"]);
    assert!(err.contains("until"), "{err}");
    let err = env.fails(&["builder", "prune", "-f", "--filter", "type=regular"]);
    assert!(err.contains("type"), "{err}");
    // A cut-off after now removes every entry.
    let later = "2999-01-01T00:00:00Z";
    let out = env.ok(&["builder", "prune", "-f", "--filter", &format!("until={later}")]);
    assert!(
        out.contains(&format!("Deleted build cache objects: {entries}")),
        "{out}"
    );
    assert!(env.ok(&["builder", "du"]).contains("Total:\t\t0B"));
}

/// Item 13: Docker's `image …` and `container …` groups hold every command
/// strata has that Docker puts there.
#[test]
fn image_and_container_groups_have_dockers_commands() {
    let env = Env::new();
    for group in [
        &[
            "image", "build", "pull", "push", "ls", "rm", "inspect", "tag", "save", "load", "import", "history",
            "prune",
        ][..],
        &[
            "container",
            "ls",
            "run",
            "create",
            "start",
            "stop",
            "restart",
            "kill",
            "rm",
            "exec",
            "logs",
            "inspect",
            "commit",
            "cp",
            "diff",
            "export",
            "wait",
            "stats",
            "prune",
        ][..],
        &["builder", "build", "du", "prune"][..],
        &["system", "df", "prune", "info", "check"][..],
    ] {
        for cmd in &group[1..] {
            let help = env.ok(&[group[0], cmd, "--help"]);
            assert!(help.contains("Usage:"), "{} {cmd}: {help}", group[0]);
        }
    }
    let Some(id) = env.import_busybox() else { return };
    assert!(env.ok(&["image", "ls", "-q", "--no-trunc"]).contains(&id));
    let cid = env.ok(&["container", "create", "busybox", "true"]).trim().to_string();
    assert!(env.ok(&["container", "ls", "-a", "-q", "--no-trunc"]).contains(&cid));
    assert_eq!(env.ok(&["container", "diff", &cid]), env.ok(&["diff", &cid]));
    env.ok(&["container", "rm", &cid]);
}

/// Item 13: `version` in Docker's shape: every key docker prints for the
/// client and the server, `--format` templates; the server is strata itself.
#[test]
fn version_has_dockers_shape() {
    let env = Env::new();
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        env.ok(&["version", "--format", "{{.Client.Version}} {{.Server.Version}}"])
            .trim(),
        format!("{v} {v}")
    );
    let ours: Value = serde_json::from_str(&env.ok(&["version", "--format", "{{json .}}"])).unwrap();
    let text = env.ok(&["version"]);
    assert!(
        text.starts_with("Client: strata\n Version:") && text.contains("\nServer: "),
        "{text}"
    );
    assert!(
        !env.ok(&["version", "-f", "{{.Server.KernelVersion}}"])
            .trim()
            .is_empty()
    );
    if docker_daemon() {
        let theirs: Value = serde_json::from_str(&docker_ok(&["version", "--format", "{{json .}}"])).unwrap();
        for side in ["Client", "Server"] {
            for k in theirs[side].as_object().unwrap().keys() {
                if k == "Experimental" {
                    continue; // omitempty in docker's struct, false here
                }
                assert!(ours[side].get(k).is_some(), "docker's {side}.{k} is missing: {ours}");
            }
        }
        let f = "{{.Client.APIVersion}}|{{.Server.APIVersion}}|{{.Server.Os}}|{{range .Server.Components}}{{.Name}} {{end}}";
        assert!(docker(&["version", "-f", f]).status.success());
        assert!(env.ok(&["version", "-f", f]).contains("|linux|Engine "));
    }
}

/// Item 13: `info` (and `system info`) in Docker's words: the keys strata
/// fills are docker's own, `--format` reads them.
#[test]
fn info_has_dockers_keys() {
    let env = Env::new();
    let id = env.import_busybox();
    assert_eq!(env.ok(&["info"]), env.ok(&["system", "info"]));
    let images = env.ok(&["info", "--format", "{{.Images}}"]);
    assert_eq!(images.trim(), if id.is_some() { "1" } else { "0" });
    let ours: Value = serde_json::from_str(&env.ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(ours["DockerRootDir"], env.root().to_str().unwrap());
    if docker_daemon() {
        let theirs: Value = serde_json::from_str(&docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
        for (k, v) in ours.as_object().unwrap() {
            let t = theirs.get(k).unwrap_or_else(|| panic!("docker's info has no {k}"));
            assert_eq!(
                std::mem::discriminant(t),
                std::mem::discriminant(v),
                "{k}: docker {t} | strata {v}"
            );
        }
    }
}

/// Item 13: completion scripts for bash, zsh and fish, which the shells parse.
#[test]
fn completion_scripts_parse() {
    let env = Env::new();
    for (shell, check) in [("bash", "bash -n"), ("zsh", "zsh -n"), ("fish", "fish --no-execute")] {
        let script = env.ok(&["completion", shell]);
        assert!(
            script.contains("strata") && script.contains("inspect") && script.contains("prune"),
            "{shell}"
        );
        if !have(shell) {
            eprintln!("skipped: {shell} is not installed to parse its script");
            continue;
        }
        let path = env.path(&format!("completion.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let o = sh(&format!("{check} {}", path.display()));
        assert!(o.status.success(), "{shell}: {}", text(&o));
    }
    let o = sh(&format!(
        "source <({} completion bash) && complete -p strata",
        env!("CARGO_BIN_EXE_strata")
    ));
    assert!(o.status.success() && text(&o).contains("strata"), "{}", text(&o));
    env.fails(&["completion", "powershell-7"]);
}

/// Item 14: a first component with a `.` or `:`, `localhost`, or an
/// uppercase letter is a registry host (Docker 24+'s reference rules), so
/// `tag img Registry.Example.com/x:1` works; the repository path stays
/// lowercase.
#[test]
fn tag_takes_an_uppercase_registry_host() {
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let ok = [
        "Registry.Example.com/x:1",
        "Localhost:5000/a/b",
        "REGISTRY:5000/x",
        "localhost/x",
        "Upper/x",
    ];
    let bad = [
        "Registry.Example.com/X:1",
        "registry.example.com/Upper/x",
        "x/Upper",
        "UPPER",
    ];
    for r in ok {
        env.ok(&["tag", "busybox", r]);
        assert_eq!(env.ok(&["inspect", "-f", "{{.Id}}", r]).trim(), id, "{r}");
    }
    let tags = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for r in [
        "Registry.Example.com/x:1",
        "Localhost:5000/a/b:latest",
        "Upper/x:latest",
    ] {
        assert!(tags.lines().any(|l| l == r), "{r} in {tags}");
    }
    for r in bad {
        let err = env.fails(&["tag", "busybox", r]);
        assert!(
            err.contains("must be lowercase") || err.contains("invalid reference"),
            "{r}: {err}"
        );
    }
    if docker_daemon() {
        // docker agrees on the hosts with a dot or a colon and on the
        // paths (its 20.10 daemon still refuses `Upper/x`: Docker 24+ took it).
        let mut names = DockerImages(vec![]);
        let src = names.name("tag-src");
        let small = env.path("small.tar");
        sh_ok(&format!(
            "tar -C {} -cf {} etc/passwd",
            env.busybox_rootfs().unwrap().display(),
            small.display()
        ));
        docker_ok(&["import", small.to_str().unwrap(), &src]);
        for r in &ok[..4] {
            let o = docker(&["tag", &src, r]);
            assert!(o.status.success(), "docker tag {r}: {}", text(&o));
            let _ = docker(&["rmi", r]);
        }
        for r in bad {
            assert!(!docker(&["tag", &src, r]).status.success(), "docker tag {r}");
        }
    }
}

/// Item 11 (containers): `container inspect`'s `Config` is Docker's
/// `container.Config` for the same image and command, typed in templates.
#[test]
fn container_inspect_config_matches_docker() {
    if !docker_daemon() {
        return;
    }
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else { return };
    let mut names = DockerImages(vec![]);
    let img = names.name("ctr");
    let tar = env.path("rootfs.tar");
    sh_ok(&format!("tar -C {} -cf {} .", rootfs.display(), tar.display()));
    #[rustfmt::skip]
    docker_ok(&["import", "-c", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-c", r#"CMD ["/bin/sh"]"#, "-c", "LABEL a=b",
        "-c", "WORKDIR /w", "-c", "EXPOSE 80/tcp", tar.to_str().unwrap(), &img]);
    let archive = env.path("img.tar");
    docker_ok(&["save", "-o", archive.to_str().unwrap(), &img]);
    env.ok(&["load", "-i", archive.to_str().unwrap()]);
    let theirs = docker_ok(&["create", "--network", "none", &img, "echo", "hi"])
        .trim()
        .to_string();
    let ours = env
        .ok(&["create", "--network", "none", &img, "echo", "hi"])
        .trim()
        .to_string();
    let d: Value = serde_json::from_str(&docker_ok(&["inspect", "--type", "container", &theirs])).unwrap();
    let s: Value = serde_json::from_str(&env.ok(&["container", "inspect", &ours])).unwrap();
    let _ = docker(&["rm", "-f", &theirs]);
    let keys = |v: &Value| v[0]["Config"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&s), keys(&d), "Config's fields");
    let Some(client) = docker_20_10() else {
        eprintln!("skipped the -f templates: no docker 20.10 client here");
        return;
    };
    #[rustfmt::skip]
    let f = concat!("{{json .Config.Env}}|{{json .Config.Cmd}}|{{json .Config.Labels}}|{{.Config.WorkingDir}}|",
        "{{.Config.ExposedPorts}}|{{.Config.Healthcheck}}|{{.Config.StopSignal}}|{{.Config.Image}}|{{len .Config.Hostname}}|",
        "{{.Config.Tty}}|{{.Config.OpenStdin}}|{{.Config.Entrypoint}}|{{.Config.User}}|{{.Config.Volumes}}|{{.Config.Shell}}|",
        "{{.Path}} {{.Args}}");
    let theirs = docker_ok(&["create", "--network", "none", &img, "echo", "hi"])
        .trim()
        .to_string();
    let t = run(Command::new(client).args(["inspect", "-f", f, &theirs]));
    let _ = docker(&["rm", "-f", &theirs]);
    assert_eq!(
        env.ok(&["container", "inspect", "-f", f, &ours]),
        String::from_utf8_lossy(&t.stdout)
    );
}

/// Item 11 (containers): `inspect` finds a container when no image has the
/// name, as docker's does (`--type` chooses), and names neither as docker.
#[test]
fn inspect_finds_containers_as_docker_does() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let id = env
        .ok(&["create", "--name", "c1", "busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}} {{.Id}}", "c1"]).trim(),
        format!("/c1 {id}")
    );
    assert_eq!(env.ok(&["inspect", "c1"]), env.ok(&["container", "inspect", "c1"]));
    assert_eq!(
        env.ok(&["inspect", "--type", "container", "c1"]),
        env.ok(&["container", "inspect", "c1"])
    );
    let both = env.ok(&["inspect", "-f", "{{.Id}}", "busybox", "c1"]);
    assert_eq!(both.lines().nth(1), Some(id.as_str()));
    assert!(
        env.fails(&["inspect", "--type", "image", "c1"])
            .contains("No such image")
    );
    assert!(
        env.fails(&["inspect", "--type", "container", "busybox"])
            .contains("No such container")
    );
    let err = env.fails(&["inspect", "nosuch"]);
    assert!(err.contains("No such object: nosuch"), "{err}");
    if docker_daemon() {
        let o = docker(&["inspect", "strata-di-nosuch"]);
        assert!(text(&o).contains("No such object: strata-di-nosuch"), "{}", text(&o));
    }
}
