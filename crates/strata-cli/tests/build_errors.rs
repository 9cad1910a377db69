//! Bad Dockerfiles fail with the file, the line and the reason, before
//! anything runs: the store is left as it was.

mod common;

use std::path::PathBuf;

use common::Env;

fn context(env: &Env, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path(name);
    for (f, content) in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

fn image_ids(env: &Env) -> String {
    env.ok(&["images", "-a", "-q", "--no-trunc"])
}

/// Builds `dockerfile` (as `Dockerfile`, or as `file_name` given with -f)
/// and insists that it fails with `file:line` and every one of `reasons`
/// in its error, changing nothing in the store.
fn fails_cleanly(env: &Env, file_name: Option<&str>, dockerfile: &str, line: usize, reasons: &[&str]) {
    let name = file_name.unwrap_or("Dockerfile");
    let dir = context(env, "ctx", &[(name, dockerfile), ("data.txt", "data\n")]);
    let before = env.snapshot();
    let ids = image_ids(env);
    let mut args = vec!["build".to_string(), "-t".into(), "bad:1".into()];
    if let Some(f) = file_name {
        args.push("-f".into());
        args.push(dir.join(f).to_str().unwrap().to_string());
    }
    args.push(dir.to_str().unwrap().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = env.fails(&args);
    // The last line is the error itself; the progress above it may say more.
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(
        last.contains(&format!("{name}:{line}:")),
        "{dockerfile:?}: no {name}:{line} in the error {last:?}; stderr:\n{err}"
    );
    for r in reasons {
        assert!(
            last.contains(r),
            "{dockerfile:?}: no {r:?} in the error {last:?}; stderr:\n{err}"
        );
    }
    // No step ran: nothing in blobs, layers, tmp or the images.
    assert_eq!(
        env.snapshot(),
        before,
        "{dockerfile:?} changed the store; stderr:\n{err}"
    );
    assert_eq!(image_ids(env), ids, "{dockerfile:?}");
    assert_eq!(
        std::fs::read_dir(env.root().join("containers"))
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "{dockerfile:?} left a container"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parse_errors_name_the_line() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nBOGUS arguments\n",
        3,
        &["unknown instruction: BOGUS"],
    );
    // With a suggestion when it looks like a known one.
    fails_cleanly(
        &env,
        None,
        "FROM busybox\n\n# comment\nRUNN echo\n",
        4,
        &["unknown instruction: RUNN"],
    );
    // Bad flags: unknown, a bad boolean, a missing value, one given twice.
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nCOPY --nope data.txt /x\n",
        3,
        &["Unknown flag: nope"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nCOPY --link=maybe data.txt /x\n",
        2,
        &["Expecting boolean value for flag link"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo a\nCOPY --chown data.txt /x\n",
        3,
        &["Missing a value on flag: chown"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN --network=none --network=host true\n",
        2,
        &["Duplicate flag specified: network"],
    );
    fails_cleanly(&env, None, "FROM --pull busybox\n", 1, &["Unknown flag: pull"]);
    // An unterminated heredoc: the line of its instruction.
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nCOPY <<EOF /x\nabc\n",
        3,
        &["unterminated heredoc \"EOF\""],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN <<EOF\necho never\nEOFX\n",
        2,
        &["unterminated heredoc"],
    );
    // An instruction before the first FROM.
    fails_cleanly(&env, None, "RUN echo hi\nFROM busybox\n", 1, &["FROM"]);
    // The name given with -f is the one reported.
    fails_cleanly(
        &env,
        Some("build.dockerfile"),
        "FROM busybox\nRUN echo step-one > /one\nBOGUS x\n",
        3,
        &["unknown instruction: BOGUS"],
    );
}

#[test]
fn unknown_copy_from_and_outside_sources_fail_before_any_step_runs() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    std::fs::write(env.path("outside"), "outside secret\n").unwrap();
    // The RUN before would make a layer if it ran.
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nCOPY --from=nostage /x /y\n",
        3,
        &["COPY --from=nostage", "no stage or image named nostage"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox AS build\nRUN echo built > /b\nFROM busybox\nRUN echo two > /two\nCOPY --from=buidl /b /b\n",
        5,
        &["no stage or image named buidl"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nCOPY ../outside /x\n",
        3,
        &["\"/outside\": not found"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nADD data.txt ../../outside /x/\n",
        3,
        &["\"/outside\": not found"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nCOPY nodir/nothing-*.txt /x/\n",
        3,
        &["\"/nodir\": not found"],
    );
    fails_cleanly(
        &env,
        None,
        "FROM busybox\nRUN echo step-one > /one\nCOPY https://example.com/x /x\n",
        3,
        &["source can't be a URL for COPY"],
    );
    // A stage not needed by the target is not checked (nor built).
    let dir = context(
        &env,
        "ok",
        &[(
            "Dockerfile",
            "FROM busybox AS unused\nCOPY --from=nostage /x /y\nFROM busybox\nRUN echo fine > /fine\n",
        )],
    );
    env.ok(&["build", "-q", dir.to_str().unwrap()]);
}

#[test]
fn cycles_between_stages_are_errors_not_hangs() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    // FROM a stage defined later that is built from this one.
    fails_cleanly(
        &env,
        None,
        "FROM a AS b\nRUN echo b > /b\nFROM b AS a\nRUN echo a > /a\n",
        1,
        &["circular dependency detected on stage: b", "FROM a"],
    );
    // COPY --from both ways.
    fails_cleanly(
        &env,
        None,
        "FROM busybox AS a\nRUN echo a > /a\nCOPY --from=b /b /b\nFROM busybox AS b\nCOPY --from=a /a /a\n",
        3,
        &["circular dependency detected on stage", "COPY --from=b"],
    );
    // Through three stages, one of them by number.
    fails_cleanly(
        &env,
        None,
        "FROM busybox AS a\nCOPY --from=2 /c /c\nFROM a AS b\nRUN true\nFROM busybox AS c\nCOPY --from=b /b /b\n",
        2,
        &["circular dependency detected on stage", "COPY --from=2"],
    );
    // A stage copying from itself.
    fails_cleanly(
        &env,
        None,
        "FROM busybox AS self\nRUN echo x > /x\nCOPY --from=self /x /y\n",
        3,
        &["circular dependency detected on stage: self", "names the stage itself"],
    );
    // RUN --mount from= counts too.
    fails_cleanly(
        &env,
        None,
        "FROM busybox AS a\nRUN --mount=type=bind,from=b,target=/m true\nFROM busybox AS b\nCOPY --from=a /etc/passwd /p\n",
        2,
        &["circular dependency detected on stage", "RUN --mount --from=b"],
    );
}

#[test]
fn copy_from_a_later_stage_is_not_a_cycle() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    // BuildKit allows COPY --from to name a stage defined further down.
    let dir = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS app\nCOPY --from=tools /tool /usr/local/bin/tool\nCMD [\"cat\", \"/usr/local/bin/tool\"]\nFROM busybox AS tools\nRUN echo tool-v1 > /tool\nFROM app\n",
        )],
    );
    env.ok(&["build", "-t", "fwd", dir.to_str().unwrap()]);
    assert_eq!(env.ok(&["run", "--rm", "fwd"]), "tool-v1\n");
    // `FROM x AS x` names the image x, not itself (as in BuildKit).
    let dir = context(
        &env,
        "ctx2",
        &[("Dockerfile", "FROM busybox AS busybox\nRUN echo same > /same\n")],
    );
    env.ok(&["build", "-t", "same", dir.to_str().unwrap()]);
    assert_eq!(env.ok(&["run", "--rm", "same", "cat", "/same"]), "same\n");
}
