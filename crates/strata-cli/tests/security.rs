//! The container escapes of the security review, each performed as the
//! attack first and then shown to fail: host devices (a node made with
//! mknod, shipped in an image, or in a volume, opening a scratch loop
//! device), Docker's default confinement (seccomp, masked and read-only
//! paths, capabilities, no-new-privileges) and the host binary through
//! `/proc/PID/exe` during `exec`. Needs root and busybox (skips otherwise).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;

/// A loop device backed by a scratch file holding `SCRATCH-DATA`; detached on drop.
struct ScratchLoop {
    dev: PathBuf,
    major: u32,
    minor: u32,
}

impl ScratchLoop {
    fn new(dir: &Path) -> Option<ScratchLoop> {
        let file = dir.join("scratch.img");
        let mut data = b"SCRATCH-DATA".to_vec();
        data.resize(1 << 20, 0);
        std::fs::write(&file, data).unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("skipped (loop part): losetup: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let rdev = rustix::fs::stat(&dev).unwrap().st_rdev;
        Some(ScratchLoop {
            major: rustix::fs::major(rdev),
            minor: rustix::fs::minor(rdev),
            dev,
        })
    }
}

impl Drop for ScratchLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    let o = env.run(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn mknod_in_a_container_opens_no_host_device() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    // The acceptance line of the review.
    let (code, _, err) = run(
        &env,
        &["run", "--rm", "busybox", "sh", "-c", "mknod /d b 7 0 && head -c1 /d"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");

    let Some(lo) = ScratchLoop::new(&env.path("")) else {
        return;
    };
    let script = format!("mknod /d b {} {} ; head -c12 /d", lo.major, lo.minor);
    // With every device allowed (as the review found every container) the attack reads the host's device...
    let (code, out, _) = run(&env, &["run", "--rm", "--privileged", "busybox", "sh", "-c", &script]);
    assert_eq!(
        (code, out.as_str()),
        (0, "SCRATCH-DATA"),
        "the privileged control case must reach the device"
    );
    // ...a default container does not, even with CAP_MKNOD.
    let (code, out, err) = run(&env, &["run", "--rm", "busybox", "sh", "-c", &script]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("SCRATCH"), "{out}");
    assert!(err.contains("Operation not permitted"), "{err}");
    // --device gives exactly that device.
    let dev = lo.dev.to_str().unwrap();
    let (code, out, err) = run(
        &env,
        &[
            "run",
            "--rm",
            "--device",
            &format!("{dev}:/dev/xda:r"),
            "busybox",
            "head",
            "-c12",
            "/dev/xda",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "SCRATCH-DATA"), "{err}");
}

#[test]
fn device_nodes_in_images_and_volumes_open_nothing() {
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else { return };
    let Some(lo) = ScratchLoop::new(&env.path("")) else {
        return;
    };
    let node = |dir: &Path| {
        let rdev = rustix::fs::makedev(lo.major, lo.minor);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("disk"),
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rdev,
        )
        .unwrap();
    };
    // An image that ships the node.
    let img = env.path("devimg");
    Command::new("cp").arg("-a").arg(&rootfs).arg(&img).status().unwrap();
    node(&img);
    env.ok(&[
        "import",
        "--change",
        r#"CMD ["/bin/sh"]"#,
        img.to_str().unwrap(),
        "devimg",
    ]);
    let (code, out, err) = run(&env, &["run", "--rm", "devimg", "head", "-c12", "/disk"]);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("SCRATCH"), "{out}");
    assert!(
        err.contains("Permission denied") || err.contains("Operation not permitted"),
        "{err}"
    );
    // A bind volume that holds one.
    let vol = env.path("vol");
    std::fs::create_dir(&vol).unwrap();
    node(&vol);
    let (code, out, _) = run(
        &env,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{}:/v", vol.display()),
            "devimg",
            "head",
            "-c12",
            "/v/disk",
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("SCRATCH"), "{out}");
    // A build step gets the same.
    let ctx = env.path("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM devimg\nRUN head -c12 /disk > /out; mknod /d2 b {} {} && head -c12 /d2 >> /out; cat /out; test ! -s /out\n", lo.major, lo.minor),
    )
    .unwrap();
    let o = env.run(&["build", "--progress=plain", "-t", "devbuild", ctx.to_str().unwrap()]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{all}");
    assert!(!all.contains("SCRATCH"), "{all}");
}

fn status_line(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn dockers_default_confinement() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let status = |flags: &[&str]| -> String {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
        env.ok(&args)
    };
    // The acceptance line: the default seccomp profile is on.
    assert_eq!(
        env.ok(&["run", "--rm", "busybox", "grep", "Seccomp:", "/proc/self/status"])
            .split_whitespace()
            .nth(1),
        Some("2")
    );
    let s = status(&[]);
    assert_eq!(status_line(&s, "CapEff"), "00000000a80425fb");
    assert_eq!(status_line(&s, "NoNewPrivs"), "0");
    assert_eq!(
        status_line(&status(&["--security-opt", "seccomp=unconfined"]), "Seccomp"),
        "0"
    );
    assert_eq!(
        status_line(&status(&["--security-opt", "no-new-privileges"]), "NoNewPrivs"),
        "1"
    );
    assert_eq!(
        status_line(&status(&["--cap-drop", "ALL", "--cap-add", "chown"]), "CapEff"),
        "0000000000000001"
    );
    assert_eq!(
        status_line(&status(&["--cap-drop", "NET_RAW"]), "CapEff"),
        "00000000a80405fb"
    );
    let p = status(&["--privileged"]);
    assert_eq!(status_line(&p, "Seccomp"), "0");
    assert_eq!(
        status_line(&p, "CapEff"),
        status_line(&std::fs::read_to_string("/proc/self/status").unwrap(), "CapBnd")
    );
    assert!(
        env.fails(&["run", "--rm", "--cap-add", "NOPE", "busybox", "true"])
            .contains("unknown capability")
    );
    assert!(
        env.fails(&["run", "--rm", "--security-opt", "bogus=1", "busybox", "true"])
            .contains("invalid --security-opt")
    );

    // What the default profile refuses, with CAP_SYS_ADMIN out of the way so seccomp is what answers.
    let (code, _, err) = run(&env, &["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    // A profile of one's own (Docker's JSON format).
    let profile = env.path("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (code, _, err) = run(&env, &["run", "--rm", "--security-opt", &opt, "busybox", "mkdir", "/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("Operation not permitted"), "{err}");
    std::fs::write(&profile, "{ not json").unwrap();
    assert!(
        env.fails(&["run", "--rm", "--security-opt", &opt, "busybox", "true"])
            .contains("seccomp profile")
    );

    // Masked and read-only paths.
    // (Only those this kernel has: a masked file reads empty, a masked directory lists nothing.)
    let masked: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/acpi",
        "/sys/firmware",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    assert!(!masked.is_empty());
    let script: String = masked
        .iter()
        .map(|p| format!("cat {p} 2>/dev/null | wc -c; ls {p} 2>/dev/null | grep -v '^{p}$' | wc -l;"))
        .collect();
    assert_eq!(
        env.ok(&["run", "--rm", "busybox", "sh", "-c", &script]),
        "0\n0\n".repeat(masked.len())
    );
    // The host's view of one of them is not empty: the mask is what hides it.
    let host = std::fs::read_to_string("/proc/keys").map(|s| s.len()).unwrap_or(1)
        + std::fs::read_dir("/sys/firmware").map(|d| d.count()).unwrap_or(1);
    assert!(host > 0);
    let (code, _, _) = run(
        &env,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo 1 > /proc/sys/kernel/domainname",
        ],
    );
    assert_ne!(code, 0);
    let (code, _, _) = run(
        &env,
        &["run", "--rm", "busybox", "sh", "-c", "echo h > /proc/sysrq-trigger"],
    );
    assert_ne!(code, 0);
}

#[test]
fn exec_runs_from_a_sealed_copy_of_the_binary() {
    // The joining process itself is non-dumpable until its execve (the
    // attack is strata-runtime's exec_exe test); on top of that `strata exec`
    // runs from a sealed memfd copy, so even a process allowed to open
    // /proc/PID/exe (CAP_SYS_PTRACE) finds nothing it can write.
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let id = env
        .ok(&["run", "-d", "--cap-add", "SYS_PTRACE", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let mut child = env.cmd().args(["exec", &id, "sleep", "5"]).spawn().unwrap();
    let exe = format!("/proc/{}/exe", child.id());
    let mut target = String::new();
    for _ in 0..500 {
        target = std::fs::read_link(&exe)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if target.starts_with("/memfd:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        target.starts_with("/memfd:strata-sealed"),
        "strata exec runs from {target}"
    );
    let write = std::fs::OpenOptions::new()
        .append(true)
        .open(&exe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
    assert!(write.is_err(), "the sealed copy could be written");
    // A container process (with CAP_SYS_PTRACE) finds its own exec'd processes only.
    let seen = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for d in /proc/[0-9]*; do readlink $d/exe; done | sort -u",
    ]);
    assert!(
        !seen.contains("strata") || seen.contains("/memfd:strata-sealed"),
        "{seen}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    env.ok(&["rm", "-f", &id]);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_strata"));
    assert_eq!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o111, 0o111);
}

/// The same confinement as Docker's: strata and dockerd (runc) run the same
/// busybox image with the same flags; the kernel's view of the process
/// (seccomp mode, capabilities, no_new_privs) and the outcome of what the
/// default confinement refuses are compared.
#[test]
fn confinement_matches_docker() {
    if !common::docker_daemon() {
        return;
    }
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let tag = format!("strata-sec-{}:1", std::process::id());
    env.ok(&["tag", "busybox", &tag]);
    let archive = env.path("bb.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), &tag]);
    common::sh_ok(&format!("docker load -i {} >/dev/null", archive.display()));
    let probe = "grep -E '^(Seccomp|CapEff|CapBnd|NoNewPrivs):' /proc/self/status; \
                 mknod /d c 1 3 2>&1 | sed 's/.*: //'; unshare -U true 2>&1 | sed 's/.*: //'; \
                 cat /proc/keys 2>&1 | wc -c; echo 1 2>&1 > /proc/sys/kernel/domainname | sed 's/.*: //'; \
                 mkdir /x 2>&1 | sed 's/.*: //'";
    let profile = env.path("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let seccomp_file = format!("seccomp={}", profile.display());
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--security-opt", "seccomp=unconfined"],
        vec!["--security-opt", "no-new-privileges"],
        vec!["--security-opt", &seccomp_file],
        vec!["--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "net_raw"],
        vec!["--cap-add", "SYS_ADMIN"],
        vec!["--cap-drop", "MKNOD"],
    ];
    for flags in cases {
        let docker = common::sh(&format!(
            "/usr/bin/docker run --rm --network none {} {tag} sh -c {}",
            flags.join(" "),
            common::shell_quote(probe)
        ));
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&[&tag, "sh", "-c", probe]);
        let ours = env.run(&args);
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&docker.stdout),
            "strata and docker differ with {flags:?}"
        );
        assert_eq!(ours.status.code(), docker.status.code(), "{flags:?}");
        assert!(
            String::from_utf8_lossy(&docker.stdout).contains("Seccomp:"),
            "docker did not run the probe"
        );
    }
    common::sh(&format!("docker rmi -f {tag} >/dev/null 2>&1"));
}

/// `.wh.` names are whiteouts only when image layers are applied: an `ADD`
/// of a local archive holding `etc/.wh..wh..opq` used to empty `/etc`.
#[test]
fn add_of_an_archive_with_whiteout_names_deletes_nothing() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("src/etc")).unwrap();
    std::fs::write(ctx.join("src/etc/.wh..wh..opq"), "").unwrap();
    std::fs::write(ctx.join("src/etc/.wh.passwd"), "").unwrap();
    std::fs::write(ctx.join("src/etc/new"), "n").unwrap();
    common::sh_ok(&format!(
        "tar -C {} -cf {} etc",
        ctx.join("src").display(),
        ctx.join("app.tar").display()
    ));
    std::fs::remove_dir_all(ctx.join("src")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nADD app.tar /\nRUN test -s /etc/passwd && test -f /etc/new && test -f /etc/.wh..wh..opq && test -f /etc/.wh.passwd\n",
    )
    .unwrap();
    let o = env.run(&["build", "--progress=plain", "-t", "whadd", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
