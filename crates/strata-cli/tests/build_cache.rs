//! The build cache: keyed by content and the build args a step uses, never
//! by file times or ignored files.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::Env;

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Builds; returns (image ID, the titles of the steps that ran, the titles of the cached ones).
fn build(env: &Env, args: &[&str]) -> (String, Vec<String>, Vec<String>) {
    let (id, ran, cached, _) = build_err(env, args);
    (id, ran, cached)
}

/// The reason logged for the miss of the step titled `title`.
fn miss_reason(err: &str, title: &str) -> String {
    let n = err
        .lines()
        .find(|l| l.starts_with('#') && l.ends_with(&format!("] {title}")))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no step {title:?} in:\n{err}"));
    err.lines()
        .find_map(|l| l.strip_prefix(&format!("{n} cache miss: ")))
        .unwrap_or_else(|| panic!("no cache miss line for {title:?} in:\n{err}"))
        .to_string()
}

/// [`build`], with the progress output too.
fn build_err(env: &Env, args: &[&str]) -> (String, Vec<String>, Vec<String>, String) {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    let o = env.run(&all);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build {args:?} failed:\n{out}\n{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap()
        .trim()
        .to_string();
    // `#N [k/n] TITLE` lines, then `#N CACHED` or `#N DONE`.
    let mut titles = std::collections::BTreeMap::new();
    let (mut ran, mut cached) = (Vec::new(), Vec::new());
    for l in err.lines() {
        let Some((n, rest)) = l.split_once(' ') else { continue };
        if !n.starts_with('#') {
            continue;
        }
        if rest.starts_with('[') && rest.contains("] ") && !rest.starts_with("[internal]") {
            let title = rest.split_once("] ").unwrap().1.to_string();
            if !title.starts_with("FROM ") {
                titles.insert(n.to_string(), title);
            }
        } else if let Some(t) = titles.get(n) {
            if rest == "CACHED" {
                cached.push(t.clone());
            } else if rest.starts_with("DONE") && !cached.contains(t) {
                ran.push(t.clone());
            }
        }
    }
    (id, ran, cached, err)
}

const DOCKERFILE: &str = "FROM busybox
ARG EARLY=e1
COPY a.txt /a.txt
RUN cat /a.txt > /from-a
COPY b.txt /b.txt
RUN cat /b.txt > /from-b
ARG LATE=l1
RUN echo $LATE > /late
COPY c.txt /c.txt
RUN echo $EARLY > /early
";

const STEPS: [&str; 7] = [
    "COPY a.txt /a.txt",
    "RUN cat /a.txt > /from-a",
    "COPY b.txt /b.txt",
    "RUN cat /b.txt > /from-b",
    "RUN echo $LATE > /late",
    "COPY c.txt /c.txt",
    "RUN echo $EARLY > /early",
];

fn steps(from: usize) -> (Vec<String>, Vec<String>) {
    (
        STEPS[..from].iter().map(|s| s.to_string()).collect(),
        STEPS[from..].iter().map(|s| s.to_string()).collect(),
    )
}

fn ctx(env: &Env) -> PathBuf {
    let dir = env.path("ctx");
    write(&dir, "Dockerfile", DOCKERFILE);
    write(&dir, "a.txt", "aaaa\n");
    write(&dir, "b.txt", "bbbb\n");
    write(&dir, "c.txt", "cccc\n");
    write(&dir, ".dockerignore", "ignored/\n*.tmp\n");
    write(&dir, "ignored/x", "x\n");
    write(&dir, "junk.tmp", "junk\n");
    dir
}

#[test]
fn touching_files_keeps_the_cache() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = ctx(&env);
    let c = dir.to_str().unwrap();
    let (id, ran, _) = build(&env, &[c]);
    assert_eq!(ran.len(), STEPS.len(), "{ran:?}");
    // Older, newer, and rewritten with the same bytes: every file's times change.
    set_mtime(
        &dir.join("a.txt"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    );
    set_mtime(&dir.join("b.txt"), SystemTime::now() + Duration::from_secs(3600));
    std::fs::write(dir.join("c.txt"), "cccc\n").unwrap();
    set_mtime(&dir.join("Dockerfile"), SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    let (id2, ran, cached) = build(&env, &[c]);
    assert!(ran.is_empty(), "ran: {ran:?}");
    assert_eq!(cached.len(), STEPS.len(), "{cached:?}");
    assert_eq!(id2, id);
}

#[test]
fn one_changed_byte_misses_from_the_first_step_that_uses_it() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = ctx(&env);
    let c = dir.to_str().unwrap();
    let (id, _, _) = build(&env, &[c]);
    // Same size, same mtime: one byte differs (the ctime tells the index to look).
    let b = dir.join("b.txt");
    let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
    std::fs::write(&b, "bbXb\n").unwrap();
    set_mtime(&b, mtime);
    let (id2, ran, cached) = build(&env, &[c]);
    let (before, after) = steps(2);
    assert_eq!(cached, before);
    assert_eq!(ran, after);
    assert_ne!(id2, id);
    assert_eq!(env.ok(&["run", "--rm", &id2, "cat", "/from-b"]), "bbXb\n");
    // The last file: only its COPY and what follows.
    std::fs::write(dir.join("c.txt"), "cccC\n").unwrap();
    let (_, ran, cached) = build(&env, &[c]);
    let (before, after) = steps(5);
    assert_eq!(cached, before);
    assert_eq!(ran, after);
    // Back to the first content: all cached again, the first image again.
    std::fs::write(&b, "bbbb\n").unwrap();
    std::fs::write(dir.join("c.txt"), "cccc\n").unwrap();
    let (id3, ran, _) = build(&env, &[c]);
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(id3, id);
}

#[test]
fn a_changed_build_arg_misses_from_the_first_step_that_uses_it() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = ctx(&env);
    let c = dir.to_str().unwrap();
    build(&env, &[c]);
    // LATE is first used by `RUN echo $LATE`.
    let (_, ran, cached) = build(&env, &["--build-arg", "LATE=l2", c]);
    let (before, after) = steps(4);
    assert_eq!(cached, before);
    assert_eq!(ran, after);
    // EARLY is declared at the top and named only by the last step, but RUN
    // sees every ARG in scope in its environment (as in BuildKit): the first
    // step that uses it is the first RUN after its declaration.
    let (_, ran, cached) = build(&env, &["--build-arg", "EARLY=e2", c]);
    let (before, after) = steps(1);
    assert_eq!(cached, before);
    assert_eq!(ran, after);
    // The same value as the default is the same build.
    let (_, ran, _) = build(&env, &["--build-arg", "LATE=l1", c]);
    assert!(ran.is_empty(), "{ran:?}");
}

#[test]
fn ignored_files_never_affect_the_cache() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = ctx(&env);
    // Copying the whole context: ignored files are not part of it.
    write(&dir, "Dockerfile", &format!("{DOCKERFILE}COPY . /ctx/\n"));
    let c = dir.to_str().unwrap();
    let (id, _, _) = build(&env, &[c]);
    write(&dir, "ignored/x", "changed\n");
    write(&dir, "ignored/new", "new\n");
    write(&dir, "junk.tmp", "changed\n");
    write(&dir, "more.tmp", "added\n");
    let (id2, ran, _) = build(&env, &[c]);
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(id2, id);
    let list = env.ok(&["run", "--rm", &id, "find", "/ctx"]);
    assert!(!list.contains("ignored") && !list.contains(".tmp"), "{list}");
    // A file that is not ignored does count.
    write(&dir, "new.txt", "n\n");
    let (_, ran, _) = build(&env, &[c]);
    assert_eq!(ran, vec!["COPY . /ctx/".to_string()]);
}

const FROM_STAGE: &str = "FROM busybox AS one
ARG V=1
ARG W=a
RUN sleep 1 && mkdir -p /out/sub && echo $W > /out/f && echo sub > /out/sub/g && ln -s f /out/link && echo $V > /other
FROM busybox
COPY --from=one /out /app
RUN cat /app/f /app/link > /copied
RUN --mount=type=bind,from=one,source=/out,target=/m cat /m/f > /mounted
";

const STAGE_RUN: &str = "RUN sleep 1 && mkdir -p /out/sub && echo $W > /out/f && echo sub > /out/sub/g && ln -s f /out/link && echo $V > /other";

const FROM_STEPS: [&str; 3] = [
    "COPY --from=one /out /app",
    "RUN cat /app/f /app/link > /copied",
    "RUN --mount=type=bind,from=one,source=/out,target=/m cat /m/f > /mounted",
];

#[test]
fn a_rebuilt_stage_with_the_same_content_keeps_copy_from_cached() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = env.path("ctx");
    write(&dir, "Dockerfile", FROM_STAGE);
    let c = dir.to_str().unwrap();
    let (id, ran, _) = build(&env, &[c]);
    assert_eq!(ran.len(), 4, "{ran:?}");
    let stamp = env.ok(&["run", "--rm", &id, "stat", "-c", "%Y", "/app/f"]);
    // The stage runs again: new layers, new file times (a second or more
    // later), the same files. What copies or mounts them stays cached.
    let (id2, ran, cached) = build(&env, &["--no-cache-filter", "one", c]);
    assert_eq!(ran, vec![STAGE_RUN.to_string()]);
    assert_eq!(cached, FROM_STEPS.map(String::from).to_vec());
    assert_eq!(id2, id);
    // A file of the stage that is not copied changes: still cached.
    let (id3, ran, cached) = build(&env, &["--build-arg", "V=2", c]);
    assert_eq!(ran, vec![STAGE_RUN.to_string()]);
    assert_eq!(cached, FROM_STEPS.map(String::from).to_vec());
    assert_eq!(id3, id);
    assert_eq!(env.ok(&["run", "--rm", &id3, "stat", "-c", "%Y", "/app/f"]), stamp);
}

#[test]
fn a_changed_file_copied_from_a_stage_misses_and_is_named() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = env.path("ctx");
    write(&dir, "Dockerfile", FROM_STAGE);
    let c = dir.to_str().unwrap();
    let (id, _, _) = build(&env, &[c]);
    let (id2, ran, cached, err) = build_err(&env, &["--build-arg", "W=b", c]);
    let mut all = vec![STAGE_RUN.to_string()];
    all.extend(FROM_STEPS.map(String::from));
    assert_eq!(ran, all);
    assert!(cached.is_empty(), "{cached:?}");
    assert_ne!(id2, id);
    let why = miss_reason(&err, FROM_STEPS[0]);
    assert!(
        why.contains("file changed: /out/f") && why.contains("copied from stage one"),
        "{why}"
    );
    assert_eq!(
        env.ok(&["run", "--rm", &id2, "cat", "/copied", "/mounted"]),
        "b\nb\nb\n"
    );
    // Back to the first content: cached again, the first image again.
    let (id3, ran, _) = build(&env, &["--build-arg", "W=a", c]);
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(id3, id);
    // Only an owner of a copied file changes (kept by COPY --from without
    // --chown): a miss, where the same content with the same owners hit.
    write(
        &dir,
        "Dockerfile",
        &FROM_STAGE.replace("> /other\n", "> /other && chown 1:1 /out/sub/g\n"),
    );
    let (_, ran, _, err) = build_err(&env, &[c]);
    assert!(ran.contains(&FROM_STEPS[0].to_string()), "{ran:?}");
    let why = miss_reason(&err, FROM_STEPS[0]);
    assert!(why.contains("file changed: ") && why.contains("/out/sub/g"), "{why}");
}
