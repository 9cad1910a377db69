//! `--cache-to type=inline` read by docker (#17): an image strata built
//! with an inline cache, pushed, gives CACHED steps to docker 20.10's
//! BuildKit (`docker build --cache-from`) on an empty build cache: strata's
//! records carry BuildKit's keys (FROM, RUN, COPY of context files).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::differential::{docker_client, docker_ok, unique};
use common::{Env, TestRegistry};

const STEPS: [&str; 4] = [
    "RUN echo one > /one",
    "RUN echo two > /two",
    "COPY f /w/f",
    "RUN echo three > /three",
];

fn context(env: &Env, base: &str) -> std::path::PathBuf {
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    let mut df = format!("FROM {base}\nENV A=1\n");
    for s in STEPS {
        df.push_str(s);
        df.push('\n');
    }
    std::fs::write(dir.join("Dockerfile"), df).unwrap();
    std::fs::write(dir.join("f"), "hello\n").unwrap();
    dir
}

/// `DOCKER_BUILDKIT=1 docker build --progress=plain --cache-from IMAGE -t TAG CTX`:
/// the titles of the steps it says CACHED (`RUN …`, `COPY …`), and its log.
fn docker_build(docker: &str, image: &str, tag: &str, ctx: &Path) -> (BTreeSet<String>, String) {
    let o = Command::new(docker)
        .args([
            "build",
            "--network",
            "none",
            "--progress=plain",
            "--cache-from",
            image,
            "-t",
            tag,
        ])
        .arg(ctx)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "docker build:\n{log}");
    let mut titles = std::collections::HashMap::new();
    let mut cached = BTreeSet::new();
    for line in log.lines() {
        let Some((n, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if let Some(t) = rest.strip_prefix('[')
            && let Some((_, title)) = t.split_once("] ")
        {
            titles.insert(n.to_string(), title.to_string());
        } else if rest == "CACHED"
            && let Some(t) = titles.get(n)
        {
            cached.insert(t.clone());
        }
    }
    (cached, log)
}

#[test]
fn docker_buildkit_reads_stratas_inline_cache() {
    let Some(docker) = docker_client() else { return };
    let env = Env::new();
    let reg = TestRegistry::strata();
    if env.import_busybox().is_none() {
        return;
    }
    let base = format!("{}/busybox:latest", reg.host);
    env.ok(&["tag", "busybox:latest", &base]);
    env.ok(&["push", &base]);
    let ctx = context(&env, &base);
    let name = unique("tostrata");
    let image = format!("{}/{name}:1", reg.host);
    let o = env.run(&[
        "build",
        "--progress",
        "plain",
        "--network",
        "none",
        "--cache-to",
        "type=inline",
        "-t",
        &image,
        ctx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.ok(&["push", &image]);
    // BuildKit's build arg gives the same cache.
    let image2 = format!("{}/{name}:2", reg.host);
    env.ok(&[
        "build",
        "--network",
        "none",
        "--build-arg",
        "BUILDKIT_INLINE_CACHE=1",
        "-t",
        &image2,
        ctx.to_str().unwrap(),
    ]);
    env.ok(&["push", &image2]);

    // docker: nothing of these images, an empty build cache.
    let tag = format!("{name}-docker");
    let _ = Command::new(&docker)
        .args(["rmi", "-f", &tag, &image, &image2])
        .output();
    docker_ok(&docker, &["builder", "prune", "-af"]);
    let (cached, log) = docker_build(&docker, &image, &tag, &ctx);
    let want: BTreeSet<String> = STEPS.iter().map(|s| s.to_string()).collect();
    assert_eq!(cached, want, "every step CACHED from strata's cache:\n{log}");
    let out = docker_ok(
        &docker,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &tag,
            "cat",
            "/one",
            "/two",
            "/w/f",
            "/three",
        ],
    );
    assert_eq!(out, "one\ntwo\nhello\nthree\n");

    // The other image's cache, on an empty build cache again, and another
    // content for f: the steps before the COPY are CACHED, not the COPY or after.
    docker_ok(&docker, &["rmi", "-f", &tag]);
    docker_ok(&docker, &["builder", "prune", "-af"]);
    std::fs::write(ctx.join("f"), "bye\n").unwrap();
    let (cached, log) = docker_build(&docker, &image2, &tag, &ctx);
    let want: BTreeSet<String> = STEPS[..2].iter().map(|s| s.to_string()).collect();
    assert_eq!(cached, want, "only the RUNs before the COPY CACHED:\n{log}");
    let out = docker_ok(&docker, &["run", "--rm", "--network", "none", &tag, "cat", "/w/f"]);
    assert_eq!(out, "bye\n");
    let _ = Command::new(&docker).args(["rmi", "-f", &tag]).output();
}
