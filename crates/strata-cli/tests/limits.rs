//! Resource limits (#18): `--memory` (an OOM kill is exit 137 with
//! `State.OOMKilled`), `--pids-limit` against a fork bomb, `--cpus` and
//! `--cpu-shares` in the container's cgroup, `inspect`'s `HostConfig`
//! values (compared with dockerd's when one runs), Docker's refusals, and no
//! cgroup left behind by `rm`. Needs root and busybox (skips otherwise).

mod common;

use std::path::{Path, PathBuf};

use common::{Env, docker_daemon, sh};

fn setup() -> Option<Env> {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: not root");
        return None;
    }
    let env = Env::new();
    env.import_busybox()?;
    Some(env)
}

fn code(env: &Env, args: &[&str]) -> (i32, String, String) {
    let o = env.run(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn inspect(env: &Env, name: &str, format: &str) -> String {
    env.ok(&["container", "inspect", "-f", format, name]).trim().to_string()
}

/// Allocates 64 MiB in the shell itself (a variable), which a 32 MiB limit cannot hold.
const ALLOC_64M: &str = r#"x=$(head -c 67108864 /dev/zero | tr '\0' a); echo survived ${#x}"#;

/// Every `strata/<name>` directory of every hierarchy that has a `strata` parent.
fn strata_cgroups() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let parent = h.path().join("strata");
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
            }
        }
    }
    out
}

/// The container's cgroup directories (from its PID 1's /proc/PID/cgroup).
fn cgroups_of(pid: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !path.starts_with("/strata/") {
            continue;
        }
        let mount = match ctrls {
            "" => "unified",
            c => c.trim_start_matches("name="),
        };
        out.push(Path::new("/sys/fs/cgroup").join(mount).join(&path[1..]));
    }
    out
}

#[test]
fn memory_limit_oom_kill_is_137_and_oomkilled() {
    let Some(env) = setup() else { return };
    // Foreground.
    let (rc, out, _) = code(
        &env,
        &[
            "run", "--name", "fg", "--memory", "32m", "busybox", "sh", "-c", ALLOC_64M,
        ],
    );
    assert_eq!(rc, 137, "{out}");
    assert!(!out.contains("survived"));
    assert_eq!(
        inspect(&env, "fg", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    // Detached: the monitor records it.
    env.ok(&[
        "run", "-d", "--name", "bg", "--memory", "32m", "busybox", "sh", "-c", ALLOC_64M,
    ]);
    assert_eq!(env.ok(&["wait", "bg"]).trim(), "137");
    assert_eq!(
        inspect(&env, "bg", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    // Under the limit: no OOM.
    let (rc, out, _) = code(
        &env,
        &[
            "run", "--name", "fits", "--memory", "512m", "busybox", "sh", "-c", ALLOC_64M,
        ],
    );
    assert_eq!((rc, out.trim()), (0, "survived 67108864"));
    assert_eq!(inspect(&env, "fits", "{{.State.OOMKilled}}"), "false");
    assert_eq!(
        inspect(&env, "fg", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"),
        "33554432 67108864"
    );
    env.ok(&["rm", "fg", "bg", "fits"]);

    if docker_daemon() {
        let rootfs = env.busybox_rootfs().unwrap();
        let tag = format!("strata-limits-busybox:{}", std::process::id());
        let o = sh(&format!(
            "tar -C {} -c . | docker import - {tag} >/dev/null && docker run --name strata-limits-{} --memory 32m {tag} /bin/sh -c {}; echo rc=$?; docker inspect -f '{{{{.State.OOMKilled}}}} {{{{.State.ExitCode}}}}' strata-limits-{}; docker rm strata-limits-{} >/dev/null; docker rmi {tag} >/dev/null",
            rootfs.display(),
            std::process::id(),
            common::shell_quote(ALLOC_64M),
            std::process::id(),
            std::process::id()
        ));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("rc=137\ntrue 137"), "docker: {text}");
    }
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let Some(env) = setup() else { return };
    let (rc, out, err) = code(
        &env,
        &[
            "run",
            "--rm",
            "--pids-limit",
            "10",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 50); do sleep 5 & echo forked; done; wait",
        ],
    );
    let forked = out.lines().filter(|l| *l == "forked").count();
    assert!(forked < 10, "{forked} forks: {out}");
    assert_ne!(rc, 0);
    assert!(err.contains("can't fork"), "{err}");
    // Without the limit all 50 start.
    let (rc, out, _) = code(
        &env,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 50); do sleep 0.1 & echo forked; done; wait",
        ],
    );
    assert_eq!((rc, out.lines().count()), (0, 50));
}

#[test]
fn cpu_limits_in_the_cgroup_and_rm_leaves_none() {
    let Some(env) = setup() else { return };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cpu",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "60",
    ]);
    let pid = inspect(&env, "cpu", "{{.State.Pid}}");
    let dirs = cgroups_of(&pid);
    assert!(!dirs.is_empty());
    let read = |file: &str| {
        dirs.iter()
            .map(|d| d.join(file))
            .find(|f| f.exists())
            .map(|f| std::fs::read_to_string(f).unwrap().trim().to_string())
    };
    match read("cpu.cfs_quota_us") {
        Some(q) => {
            assert_eq!(q, "50000");
            assert_eq!(read("cpu.cfs_period_us").unwrap(), "100000");
            assert_eq!(read("cpu.shares").unwrap(), "512");
            assert_eq!(read("memory.limit_in_bytes").unwrap(), "67108864");
        }
        None => {
            assert_eq!(read("cpu.max").unwrap(), "50000 100000");
            assert_eq!(read("memory.max").unwrap(), "67108864");
        }
    }
    assert_eq!(read("pids.max").unwrap(), "20");
    assert_eq!(
        inspect(
            &env,
            "cpu",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}"
        ),
        "500000000 512 20"
    );
    env.ok(&["rm", "-f", "cpu"]);
    for d in &dirs {
        assert!(!d.exists(), "left behind: {}", d.display());
    }
    let names: Vec<_> = dirs.iter().filter_map(|d| d.file_name()).collect();
    assert!(
        strata_cgroups()
            .iter()
            .all(|d| !names.contains(&d.file_name().unwrap())),
        "{:?}",
        strata_cgroups()
    );
}

#[test]
fn inspect_matches_docker_and_refusals() {
    let Some(env) = setup() else { return };
    let cases: [&[&str]; 4] = [
        &["--memory", "32m"],
        &[
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "10",
        ],
        &["--memory", "1g", "--memory-swap", "2g", "--pids-limit", "-1"],
        &[],
    ];
    let format = "{{json .HostConfig.Memory}} {{json .HostConfig.MemorySwap}} {{json .HostConfig.NanoCpus}} {{json .HostConfig.CpuShares}} {{json .HostConfig.PidsLimit}} {{json .State.OOMKilled}}";
    let expected = [
        "33554432 67108864 0 0 null false",
        "67108864 -1 500000000 512 10 false",
        "1073741824 2147483648 0 0 null false",
        "0 0 0 0 null false",
    ];
    let docker = docker_daemon();
    let rootfs = env.busybox_rootfs().unwrap();
    let tag = format!("strata-limits-inspect:{}", std::process::id());
    if docker {
        sh(&format!(
            "tar -C {} -c . | docker import - {tag} >/dev/null",
            rootfs.display()
        ));
    }
    for (i, (flags, want)) in cases.iter().zip(expected).enumerate() {
        let name = format!("c{i}");
        let mut args = vec!["create", "--name", &name];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        env.ok(&args);
        let got = inspect(&env, &name, format);
        assert_eq!(got, want, "{flags:?}");
        if docker {
            let dname = format!("strata-limits-{}-{i}", std::process::id());
            let o = sh(&format!(
                "docker create --name {dname} {} {tag} /bin/true >/dev/null && docker inspect -f '{format}' {dname}; docker rm {dname} >/dev/null",
                flags.join(" ")
            ));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), got, "docker, {flags:?}");
        }
    }
    if docker {
        sh(&format!("docker rmi {tag} >/dev/null"));
    }
    for (flags, msg) in [
        (&["--memory", "1m"][..], "Minimum memory limit allowed is 6MB"),
        (
            &["--memory-swap", "64m"],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (
            &["--memory", "64m", "--memory-swap", "32m"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (&["--cpus", "1000"], "Range of CPUs is from 0.01 to"),
        (&["--memory", "12x"], "invalid size: '12x'"),
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let err = env.fails(&args);
        assert!(err.contains(msg), "{flags:?}: {err}");
    }
}

#[test]
fn stats_no_stream_shows_dockers_columns() {
    let Some(env) = setup() else { return };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "spin",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    env.ok(&["create", "--name", "made", "busybox", "true"]);
    let out = env.ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS"
    );
    assert_eq!(lines.len(), 2, "{out}");
    let cols: Vec<&str> = lines[1].split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cols[1], "spin", "{out}");
    let cpu: f64 = cols[2].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 10.0, "a spinning shell uses a CPU: {out}");
    assert!(cols[3].ends_with(" / 64MiB"), "{out}");
    assert_eq!(cols[5..], ["0B / 0B", "0B / 0B", "1"], "{out}");
    // -a adds the created container, with nothing used.
    let all = env.ok(&["stats", "--no-stream", "-a"]);
    let made = all.lines().find(|l| l.contains(" made ")).expect("made listed");
    assert!(
        made.ends_with("0.00%     0B / 0B             0.00%     0B / 0B   0B / 0B     0"),
        "{all}"
    );
    assert!(
        env.fails(&["stats", "--no-stream", "nosuch"])
            .contains("No such container: nosuch")
    );
    env.ok(&["rm", "-f", "spin", "made"]);
}

/// Polls `inspect -f format` until it prints `want` (60 s at most: a bound
/// for a loaded CI machine, not a speed check).
fn wait_for(env: &Env, name: &str, format: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = inspect(env, name, format);
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn restart_policies() {
    let Some(env) = setup() else { return };
    // on-failure:2: two restarts, then it stays exited with its code.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "onf",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let got = wait_for(&env, "onf", "{{.RestartCount}} {{.State.ExitCode}}", "2 3");
    assert_eq!(got, "2 3", "State.Error: {}", inspect(&env, "onf", "{{.State.Error}}"));
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(inspect(&env, "onf", "{{.RestartCount}} {{.State.Status}}"), "2 exited");
    assert_eq!(env.ok(&["logs", "onf"]), "run\nrun\nrun\n");
    assert_eq!(
        inspect(
            &env,
            "onf",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure 2"
    );
    // on-failure does not restart a success.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    assert_eq!(wait_for(&env, "ok", "{{.State.Status}}", "exited"), "exited");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(inspect(&env, "ok", "{{.RestartCount}}"), "0");

    // always: restarted whatever the code, until stopped; start brings it back.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "alw",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.1",
    ]);
    assert_eq!(wait_for(&env, "alw", "{{.RestartCount}}", "2"), "2");
    env.ok(&["stop", "alw"]);
    let stopped = inspect(&env, "alw", "{{.RestartCount}} {{.State.Status}}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(inspect(&env, "alw", "{{.RestartCount}} {{.State.Status}}"), stopped);
    env.ok(&["start", "alw"]);
    assert_eq!(wait_for(&env, "alw", "{{.RestartCount}}", "1"), "1");
    // rm -f ends it for good: no process, no cgroup left.
    env.ok(&["rm", "-f", "alw", "onf", "ok"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let root = env.root();
    let ps = sh(&format!("ps -eo args | grep -F -- '{}' | grep -v grep", root.display()));
    assert!(String::from_utf8_lossy(&ps.stdout).trim().is_empty(), "{ps:?}");

    for (policy, msg) in [
        ("foo", "invalid restart policy 'foo'"),
        (
            "always:3",
            "maximum retry count cannot be used with restart policy 'always'",
        ),
        ("on-failure:x", "maximum retry count must be an integer"),
    ] {
        let err = env.fails(&["create", "--restart", policy, "busybox", "true"]);
        assert!(err.contains(msg), "{policy}: {err}");
    }
    let err = env.fails(&["create", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(err.contains("cannot specify both --restart and --rm"), "{err}");
}
