//! Containers end to end on the busybox image: run, detached lifecycle,
//! exec, logs, diff, commit, cp, export, volumes, and Docker's rules.

mod common;

use common::Env;

fn code(env: &Env, args: &[&str]) -> i32 {
    env.run(args).status.code().unwrap_or(-1)
}

#[test]
fn run_passes_output_exit_codes_and_config() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    assert_eq!(env.ok(&["run", "--rm", "busybox", "echo", "hello"]), "hello\n");
    assert_eq!(code(&env, &["run", "--rm", "busybox", "sh", "-c", "exit 7"]), 7);
    // 127 not found, 126 not executable, 125 engine errors (Docker's codes).
    let o = env.run(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("executable file not found"));
    assert_eq!(code(&env, &["run", "--rm", "busybox", "/etc/passwd"]), 126);
    assert_eq!(code(&env, &["run", "--rm", "nosuchimage"]), 125);
    // Env, workdir, user, hostname, entrypoint.
    let out = env.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp/work",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u) $(hostname)",
    ]);
    assert_eq!(out, "1 /tmp/work 65534 box\n");
    assert_eq!(
        env.ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"]),
        "a b\n"
    );
    let err = env.fails(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert!(err.contains("nosuchuser"), "{err}");
    let err = env.fails(&["run", "--rm", "-u", "4294967296", "busybox", "true"]);
    assert!(!err.is_empty());
    // The image default command runs with its CMD.
    let name = env.ok(&["run", "busybox"]);
    assert_eq!(name, "");
    // --read-only and --network none.
    assert_ne!(code(&env, &["run", "--rm", "--read-only", "busybox", "touch", "/x"]), 0);
    let out = env.ok(&["run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev"]);
    assert!(out.contains("lo:") && !out.contains("eth0"), "{out}");
    // --rm leaves nothing behind; the plain run stays as exited.
    let ps = env.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert_eq!(ps.lines().count(), 1, "{ps}");
    assert!(ps.starts_with("Exited (0)"), "{ps}");
}

#[test]
fn detached_lifecycle_exec_logs_stop_rm() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; echo oops >&2; sleep 300",
    ]);
    assert_eq!(id.trim().len(), 64);
    // Runs after strata exited; ps shows it Up.
    assert!(
        env.ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
            .starts_with("web Up")
    );
    // PID 1 is the container's own process (busybox sh execs its last command).
    assert_eq!(
        env.ok(&["exec", "web", "cat", "/proc/1/cmdline"])
            .replace('\0', " ")
            .trim(),
        "sleep 300"
    );
    assert_eq!(code(&env, &["exec", "web", "sh", "-c", "exit 4"]), 4);
    let mut logs = String::new();
    for _ in 0..200 {
        logs = env.ok(&["logs", "web"]);
        if logs.contains("started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(logs, "started\n");
    let o = env.run(&["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    // rm refuses a running container; rmi refuses its image.
    let err = env.fails(&["rm", "web"]);
    assert!(
        err.contains("stop the container before removing or force remove"),
        "{err}"
    );
    let err = env.fails(&["rmi", "busybox"]);
    assert!(err.contains("container"), "{err}");
    env.ok(&["stop", "-t", "1", "web"]);
    let st = env.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(
        st.starts_with("Exited (137)"),
        "sh ignores SIGTERM as PID 1, so it is killed: {st}"
    );
    assert_eq!(env.ok(&["wait", "web"]).trim(), "137");
    env.ok(&["start", "web"]);
    assert!(env.ok(&["ps", "--format", "{{.Status}}"]).starts_with("Up"));
    env.ok(&["kill", "web"]);
    env.ok(&["rm", "web"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    // Force removal of a running one.
    env.ok(&["run", "-d", "--name", "xx", "busybox", "sleep", "300"]);
    env.ok(&["rm", "-f", "xx"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    env.ok(&["rmi", "busybox"]);
}

#[test]
fn diff_commit_cp_export() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    env.ok(&[
        "run",
        "--name",
        "ctr",
        "-e",
        "KEEP=me",
        "-w",
        "/srv",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /new/dir && echo x > /new/dir/f && echo y >> /etc/passwd && rm /bin/ls",
    ]);
    let diff = env.ok(&["diff", "ctr"]);
    assert_eq!(
        diff,
        "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /new\nA /new/dir\nA /new/dir/f\nA /srv\n"
    );
    let id = env
        .ok(&[
            "commit",
            "-a",
            "me",
            "-m",
            "msg",
            "-c",
            "LABEL k=v",
            "ctr",
            "committed:1",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"));
    let out = env.ok(&[
        "run",
        "--rm",
        "committed:1",
        "sh",
        "-c",
        "cat /new/dir/f; echo $KEEP; pwd; ls /bin/ls || true",
    ]);
    assert_eq!(out, "x\nme\n/srv\n");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "committed:1"])).unwrap();
    assert_eq!(v[0]["Author"], "me");
    assert_eq!(v[0]["Config"]["Labels"]["k"], "v");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let hist = env.ok(&["history", "committed:1"]);
    assert!(hist.contains("msg"), "{hist}");
    // cp both ways, directories and files, Docker's naming rules.
    let host = env.path("h");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "hi").unwrap();
    env.ok(&["cp", host.join("file").to_str().unwrap(), "ctr:/etc/"]);
    env.ok(&["cp", "ctr:/etc/file", env.path("back").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(env.path("back")).unwrap(), "hi");
    env.ok(&["cp", "ctr:/new", env.path("newcopy").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(env.path("newcopy/dir/f")).unwrap(), "x\n");
    env.ok(&["cp", "ctr:/new", host.to_str().unwrap()]);
    assert!(host.join("new/dir/f").exists());
    // A symlink in the container never leads a copy out of its root.
    env.ok(&[
        "run",
        "--name",
        "evil",
        "busybox",
        "sh",
        "-c",
        "ln -s / /escape && ln -s ../../../../../etc /up",
    ]);
    env.ok(&["cp", "evil:/up/passwd", env.path("got").to_str().unwrap()]);
    let inside = env.ok(&["run", "--rm", "busybox", "cat", "/etc/passwd"]);
    assert_eq!(
        std::fs::read_to_string(env.path("got")).unwrap(),
        inside,
        "the container's passwd, not the host's"
    );
    let marker = env.path("marker");
    std::fs::write(&marker, "m").unwrap();
    let _ = env.run(&[
        "cp",
        marker.to_str().unwrap(),
        &format!("evil:/escape{}", env.path("planted").display()),
    ]);
    assert!(
        !env.path("planted").exists(),
        "cp wrote through a container symlink onto the host"
    );
    // export is the whole filesystem.
    let tar = env.path("c.tar");
    env.ok(&["export", "-o", tar.to_str().unwrap(), "ctr"]);
    let mut names = Vec::new();
    for e in tar::Archive::new(std::fs::File::open(&tar).unwrap()).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"new/dir/f".to_string()) && names.contains(&"bin/busybox".to_string()));
    assert!(!names.contains(&"bin/ls".to_string()));
}

#[test]
fn volumes_outlive_containers() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    assert_eq!(env.ok(&["volume", "create", "data"]).trim(), "data");
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f"]),
        "kept\n"
    );
    assert_ne!(
        code(
            &env,
            &["run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/g"]
        ),
        0
    );
    let host = env.path("bind");
    std::fs::create_dir_all(&host).unwrap();
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/b", host.display()),
        "busybox",
        "sh",
        "-c",
        "echo b > /b/x",
    ]);
    assert_eq!(std::fs::read_to_string(host.join("x")).unwrap(), "b\n");
    env.ok(&["run", "--name", "user", "-v", "data:/data", "busybox", "true"]);
    let err = env.fails(&["volume", "rm", "data"]);
    assert!(err.contains("in use"), "{err}");
    env.ok(&["rm", "user"]);
    let ls = env.ok(&["volume", "ls", "-q"]);
    assert_eq!(ls.trim(), "data");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(v[0]["Driver"], "local");
    env.ok(&["volume", "rm", "data"]);
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    let err = env.fails(&["run", "--rm", "-v", "../x:/x", "busybox", "true"]);
    assert!(err.contains("invalid characters"), "{err}");
    env.ok(&["run", "--name", "pruned", "busybox", "true"]);
    let out = env.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
}

#[test]
fn interactive_stdin_and_detached_auto_remove() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let mut child = env
        .cmd()
        .args(["run", "-i", "--name", "cat1", "busybox", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"through stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    assert!(
        env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
            .starts_with("cat1 Exited (0)")
    );
    env.ok(&["run", "-d", "--rm", "--name", "gone", "busybox", "true"]);
    // Either still there (then wait returns its code) or already reaped.
    let _ = env.run(&["wait", "gone"]);
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!ps.contains("gone"), "a --rm container is removed once it exited: {ps}");
}

#[test]
fn signals_reach_a_foreground_container() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let child = env
        .cmd()
        .args([
            "run",
            "--name",
            "sig",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Wait for the container to be up (its output says so), then signal strata.
    let mut ready = false;
    for _ in 0..500 {
        if String::from_utf8_lossy(&env.run(&["logs", "sig"]).stdout).contains("ready") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ready, "the container never printed ready");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("got TERM"));
}
