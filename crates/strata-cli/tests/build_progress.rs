//! `strata build --progress=auto|plain|tty|quiet`: BuildKit's tty display
//! (redrawn in place), its plain output, and auto choosing between them.

mod common;

use std::path::{Path, PathBuf};

use common::Env;

/// A context: a file and a Dockerfile that needs no base image.
fn context(env: &Env) -> PathBuf {
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL purpose=progress\n",
    )
    .unwrap();
    dir
}

/// Builds with `--progress=<mode>`; returns stderr, insisting on success.
fn build(env: &Env, mode: &str, dir: &Path) -> String {
    let o = env.run(&["build", "--progress", mode, "-t", "progress:1", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build --progress={mode} failed:\n{out}\n{err}");
    assert!(out.contains("Successfully built "), "{out}");
    err
}

/// The last frame of a tty display, without escape sequences.
fn last_frame(err: &str) -> String {
    let at = err
        .rfind("[+] Building")
        .unwrap_or_else(|| panic!("no display in:\n{err}"));
    strip_escapes(&err[at..])
}

fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Lines like plain progress's `#1 [internal] ...`.
fn has_plain_lines(err: &str) -> bool {
    err.lines().any(|l| l.starts_with("#1 ")) && err.lines().any(|l| l.starts_with('#') && l.contains(" DONE "))
}

#[test]
fn tty_display_and_cached_rebuild() {
    let env = Env::new();
    let dir = context(&env);
    let err = build(&env, "tty", &dir);
    assert!(err.contains("[+] Building"), "{err}");
    assert!(err.contains("=> ["), "{err}");
    // Redrawn in place: the cursor goes back up over the display.
    assert!(err.contains("\x1b[") && err.contains("A\r"), "{err:?}");
    assert!(!has_plain_lines(&err), "plain lines in the tty display:\n{err}");
    let last = last_frame(&err);
    assert!(last.lines().next().unwrap().ends_with("FINISHED"), "{last}");
    // LABEL changes only the config: no vertex of its own.
    assert!(last.contains(" => [1/2] FROM scratch"), "{last}");
    assert!(last.contains(" => [2/2] COPY hello.txt /hello.txt"), "{last}");
    assert!(last.contains(" => exporting to image"), "{last}");
    assert!(!last.contains("CACHED"), "{last}");
    // 80 columns when neither the terminal nor COLUMNS says otherwise.
    for l in last.lines() {
        assert!(l.chars().count() <= 80, "{l:?}");
    }

    let err = build(&env, "tty", &dir);
    let last = last_frame(&err);
    assert!(last.contains("=> CACHED [2/2] COPY hello.txt /hello.txt"), "{last}");
}

#[test]
fn tty_lines_follow_columns() {
    let env = Env::new();
    let dir = context(&env);
    let o = env
        .cmd()
        .env("COLUMNS", "30")
        .args(["build", "--progress=tty", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let last = last_frame(&err);
    assert!(last.contains(" => [2/2] COPY hello"), "{last}");
    for l in last.lines() {
        assert!(l.chars().count() <= 30, "{l:?} is wider than COLUMNS=30");
    }
}

#[test]
fn plain_and_auto_without_a_terminal() {
    let env = Env::new();
    let dir = context(&env);
    for mode in ["plain", "auto"] {
        let err = build(&env, mode, &dir);
        assert!(has_plain_lines(&err), "--progress={mode}:\n{err}");
        assert!(!err.contains("[+] Building"), "--progress={mode}:\n{err}");
        assert!(!err.contains('\x1b'), "--progress={mode}:\n{err:?}");
    }
    // The rebuild above was cached, in plain's words.
    assert!(build(&env, "plain", &dir).lines().any(|l| l.ends_with(" CACHED")));
}

#[test]
fn quiet_and_invalid_modes() {
    let env = Env::new();
    let dir = context(&env);
    let o = env.run(&["build", "--progress=quiet", dir.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).trim().starts_with("sha256:"));

    let err = env.fails(&["build", "--progress=fancy", dir.to_str().unwrap()]);
    assert!(err.contains("invalid progress mode"), "{err}");
}

/// Runs `strata build --progress=auto` on a pty (util-linux `script`), with
/// `TERM` set to `term`; returns what the terminal got, or None without `script`.
fn build_on_a_terminal(env: &Env, dir: &Path, term: &str) -> Option<String> {
    let (ok, text) = env.on_terminal(&["build", "--progress=auto", dir.to_str().unwrap()], term)?;
    assert!(ok, "build on a terminal failed:\n{text}");
    assert!(text.contains("Successfully built "), "{text}");
    Some(text)
}

#[test]
fn auto_on_a_terminal_is_tty_unless_dumb() {
    let env = Env::new();
    let dir = context(&env);
    let Some(text) = build_on_a_terminal(&env, &dir, "xterm") else {
        return;
    };
    assert!(text.contains("[+] Building"), "{text:?}");
    assert!(text.contains("=> ["), "{text:?}");
    assert!(!has_plain_lines(&text.replace('\r', "")), "{text:?}");

    let text = build_on_a_terminal(&env, &dir, "dumb").unwrap().replace('\r', "");
    assert!(!text.contains("[+] Building"), "{text:?}");
    assert!(has_plain_lines(&text), "{text:?}");
}

#[test]
fn tty_failed_step_output_is_printed_after_the_display() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let dir = env.path("failing");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN echo first-failing-line; echo second-failing-line >&2; exit 3\n",
    )
    .unwrap();
    let err = env.fails(&["build", "--progress=tty", dir.to_str().unwrap()]);
    let last = last_frame(&err);
    let (display, after) = last
        .split_once("------\n")
        .unwrap_or_else(|| panic!("no step log after the display:\n{last}"));
    assert!(
        display.contains(" => ERROR [2/2] RUN echo first-failing-line"),
        "{display}"
    );
    assert!(!display.contains("=> => #"), "{display}");
    assert!(after.starts_with(" > [2/2] RUN echo first-failing-line"), "{after}");
    let first = after.find(" first-failing-line\n").unwrap_or_else(|| panic!("{after}"));
    let second = after
        .find(" second-failing-line\n")
        .unwrap_or_else(|| panic!("{after}"));
    assert!(first < second, "{after}");
    // The error itself is still the last line.
    let end = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(end.contains("Dockerfile:2"), "{err}");
}
