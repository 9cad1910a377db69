//! Attacks on `strata build` from a Dockerfile or its URLs: each test does
//! the attack and checks that nothing outside the build is touched or leaked.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// `strata build ARGS`: (success, stdout + stderr).
fn build(env: &Env, args: &[&str]) -> (bool, String) {
    let mut all = vec!["build", "--progress=plain"];
    all.extend_from_slice(args);
    let o = env.run(&all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// Every path under `dir` (not following symlinks) owned by `uid`.
fn owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let Ok(m) = e.path().symlink_metadata() else { continue };
        if m.uid() == uid {
            out.push(e.path());
        }
        if m.is_dir() {
            out.extend(owned_by(&e.path(), uid));
        }
    }
    out
}

/// Files under `dir` whose content contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let Ok(m) = e.path().symlink_metadata() else { continue };
        if m.is_dir() {
            out.extend(files_containing(&e.path(), needle));
        } else if m.is_file()
            && let Ok(b) = std::fs::read(e.path())
            && b.windows(needle.len()).any(|w| w == needle)
        {
            out.push(e.path());
        }
    }
    out
}

/// Reads one HTTP request's head; returns its request line and headers (lower-cased names).
fn read_request(s: &TcpStream) -> (String, Vec<(String, String)>) {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (line.trim().to_string(), headers)
}

fn respond(mut s: &TcpStream, status: &str, extra: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = s.flush();
}

// --- 3: build mount teardown must not follow symlinks the step planted -----

/// A RUN whose mount points' parent is swapped for a symlink to a host
/// directory: removing the mount points afterwards must not delete the
/// host's empty directory and empty file of the same names.
#[test]
fn mount_teardown_does_not_follow_planted_symlinks() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    // The host directory the step points at: what the builder would remove
    // (an empty directory `c`, an empty file `f`) and a sentinel.
    let host = env.path("host-scratch");
    std::fs::create_dir_all(host.join("c")).unwrap();
    std::fs::write(host.join("f"), "").unwrap();
    std::fs::create_dir_all(host.join("z")).unwrap();
    std::fs::write(host.join("keep"), "sentinel").unwrap();
    let df = format!(
        "FROM busybox\n\
         RUN --mount=type=bind,source=empty,target=/a/b/f --mount=type=tmpfs,target=/a/b/c \
         mv /a/b /a/moved && ln -s {} /a/b\n\
         RUN --mount=type=tmpfs,target=/x/y/z mv /x/y /x/moved && ln -s ../../../../../../../../../../../../{} /x/y\n",
        host.display(),
        host.display().to_string().trim_start_matches('/'),
    );
    let dir = context(&env, "ctx", &df);
    write(&dir, "empty", "");
    let (ok, out) = build(&env, &["-t", "planted", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        host.join("c").is_dir(),
        "the host's empty directory was removed:\n{out}"
    );
    assert!(host.join("f").is_file(), "the host's empty file was removed:\n{out}");
    assert!(
        host.join("z").is_dir(),
        "the host's empty directory was removed:\n{out}"
    );
    assert_eq!(std::fs::read_to_string(host.join("keep")).unwrap(), "sentinel");
    // The step's own result is kept as it made it: the symlink, and the
    // moved mount points (no longer what the builder made, so left alone).
    let got = env.ok(&[
        "run",
        "--rm",
        "planted",
        "sh",
        "-c",
        "readlink /a/b; ls -A /a/moved | tr '\\n' ' '",
    ]);
    assert_eq!(got, format!("{}\nc f ", host.display()));
}

// --- 8: build secrets are private on the host ------------------------------

/// Where the builder keeps a secret's host copy: a `strata-secret-*`
/// directory in /dev/shm or the store's tmp; the copy whose content is `value`.
fn find_host_copies(store: &Path, value: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in [Path::new("/dev/shm").to_path_buf(), store.join("tmp")] {
        let Ok(rd) = std::fs::read_dir(&base) else { continue };
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().starts_with("strata-secret-")
                && !e.file_name().to_string_lossy().starts_with("secret-")
            {
                continue;
            }
            out.extend(files_containing(&e.path(), value));
        }
    }
    out
}

/// Whether user `nobody` (65534) can read `path`.
fn nobody_can_read(path: &Path) -> bool {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("cat")
        .arg(path)
        .uid(65534)
        // (std drops root's supplementary groups when it sets the uid)
        .gid(65534)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn build_secrets_are_private_on_the_host() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let value = format!("topsecret-{}", std::process::id());
    let secret = env.path("secret.txt");
    std::fs::write(&secret, &value).unwrap();
    // While the RUN holds its secrets it asks this server, which checks the
    // host copies before answering: no timing involved.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
    let store = env.root();
    let (seen2, value2) = (seen.clone(), value.clone());
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let _ = read_request(&s);
        let mut problems = Vec::new();
        let copies = find_host_copies(&store, value2.as_bytes());
        if copies.is_empty() {
            problems.push("no host copy of the secret found".to_string());
        }
        for c in &copies {
            let m = c.metadata().unwrap();
            let d = c.parent().unwrap().metadata().unwrap();
            if m.uid() != 0 || m.gid() != 0 {
                problems.push(format!("{} is owned by {}:{}", c.display(), m.uid(), m.gid()));
            }
            if m.mode() & 0o777 != 0o400 {
                problems.push(format!("{} has mode {:o}", c.display(), m.mode() & 0o7777));
            }
            if d.mode() & 0o777 != 0o700 || d.uid() != 0 {
                problems.push(format!(
                    "{} has mode {:o}, owner {}",
                    c.parent().unwrap().display(),
                    d.mode() & 0o7777,
                    d.uid()
                ));
            }
            if nobody_can_read(c) {
                problems.push(format!("nobody can read {}", c.display()));
            }
            for p in owned_by(c.parent().unwrap(), 1000) {
                problems.push(format!("{} is owned by uid 1000", p.display()));
            }
        }
        *seen2.lock().unwrap() = Some(problems);
        respond(&s, "200 OK", "", "ok");
    });
    let dir = context(
        &env,
        "ctx",
        "FROM busybox\n\
         ARG PORT\n\
         RUN --mount=type=secret,id=tok,uid=1000,mode=0440 --mount=type=secret,id=tok,target=/run/secrets/pub,mode=0444 \
         stat -c '%u %g %a' /run/secrets/tok /run/secrets/pub > /stat.txt && grep -q topsecret /run/secrets/tok \
         && wget -q -O /dev/null http://127.0.0.1:$PORT/wait\n",
    );
    let sec = format!("id=tok,src={}", secret.display());
    let port_arg = format!("PORT={port}");
    let (ok, out) = build(
        &env,
        &[
            "-t",
            "secrets",
            "--secret",
            &sec,
            "--build-arg",
            &port_arg,
            dir.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    // (b) and (c) while the RUN ran.
    let problems = seen.lock().unwrap().take().expect("the RUN asked the server");
    assert!(problems.is_empty(), "{problems:#?}");
    // (a) inside the RUN the owner and mode are the Dockerfile's.
    let got = env.ok(&["run", "--rm", "secrets", "cat", "/stat.txt"]);
    assert_eq!(got, "1000 0 440\n0 0 444\n");
    // The secret is in no layer, and nothing of the build is owned by uid 1000.
    env.ok(&["run", "--rm", "secrets", "sh", "-c", "test ! -e /run/secrets"]);
    assert_eq!(files_containing(&env.root(), value.as_bytes()), Vec::<PathBuf>::new());
    assert_eq!(owned_by(env.dir.path(), 1000), Vec::<PathBuf>::new());
    assert_eq!(find_host_copies(&env.root(), value.as_bytes()), Vec::<PathBuf>::new());
}

// --- 11: credentials in an ADD URL -----------------------------------------

const PASSWORD: &str = "s3cr3tpw";

/// A server that serves `/file.txt` only with Basic auth `user:s3cr3tpw`;
/// returns its port and the Authorization headers it got.
fn auth_server() -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let got2 = got.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let (_line, headers) = read_request(&s);
            let auth = headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone());
            got2.lock().unwrap().push(auth.clone());
            // base64("user:s3cr3tpw")
            if auth.as_deref() == Some("Basic dXNlcjpzM2NyM3Rwdw==") {
                respond(&s, "200 OK", "", "downloaded with auth\n");
            } else {
                respond(&s, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"t\"\r\n", "");
            }
        }
    });
    (port, got)
}

#[test]
fn add_url_credentials_are_sent_and_never_shown() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let (port, got) = auth_server();
    let dir = context(
        &env,
        "ctx",
        &format!("FROM busybox\nADD http://user:{PASSWORD}@127.0.0.1:{port}/file.txt /file.txt\n"),
    );
    let (ok, out) = build(&env, &["-t", "withauth", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        got.lock()
            .unwrap()
            .iter()
            .any(|a| a.as_deref() == Some("Basic dXNlcjpzM2NyM3Rwdw==")),
        "the credentials were not sent: {:?}",
        got.lock().unwrap()
    );
    assert_eq!(
        env.ok(&["run", "--rm", "withauth", "cat", "/file.txt"]),
        "downloaded with auth\n"
    );
    assert!(!out.contains(PASSWORD), "the build output shows the password:\n{out}");
    let history = env.ok(&["history", "--no-trunc", "withauth"]);
    assert!(!history.contains(PASSWORD), "{history}");
    assert!(
        history.contains(&format!("http://xxxxx:xxxxx@127.0.0.1:{port}/file.txt")),
        "{history}"
    );
    let inspect = env.ok(&["inspect", "withauth"]);
    assert!(!inspect.contains(PASSWORD), "{inspect}");
    // Not in the image config, the cache records or anywhere else in the store.
    assert_eq!(
        files_containing(&env.root(), PASSWORD.as_bytes()),
        Vec::<PathBuf>::new()
    );

    // A wrong password: refused by the server, and not in the error either.
    let dir = context(
        &env,
        "ctx-wrong",
        &format!("FROM busybox\nADD http://user:wrong-{PASSWORD}@127.0.0.1:{port}/file.txt /file.txt\n"),
    );
    let (ok, out) = build(&env, &[dir.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("401"), "{out}");
    assert!(!out.contains(PASSWORD), "the error shows the password:\n{out}");
}

#[test]
fn secret_dir_helpers_see_modes() {
    // The checks above rely on these helpers seeing what is there.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x");
    std::fs::write(&f, "v").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(!nobody_can_read(&f));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(nobody_can_read(&f));
}
