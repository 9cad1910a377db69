//! Real containers from a busybox root (needs root and /bin/busybox).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use common::*;
use strata_runtime::{BindMount, Network, RunSpec, UserSpec, resolve_user, run_with_stdio, to_oci_spec, write_bundle};

fn spec(t: &TestRoot, args: Vec<String>) -> RunSpec {
    RunSpec::new(&t.root, args)
}

fn run_capture(t: &TestRoot, s: &RunSpec, name: &str) -> (Result<i32, strata_runtime::RunError>, Captured) {
    let (cap, io) = Captured::new(t.dir.path(), name);
    (run_with_stdio(s, io), cap)
}

#[test]
fn exit_codes_pass_through_with_dockers_codes() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let (r, _) = run_capture(&t, &spec(&t, vec!["true".into()]), "true");
    assert_eq!(r.unwrap(), 0);
    let (r, _) = run_capture(&t, &spec(&t, sh("exit 3")), "three");
    assert_eq!(r.unwrap(), 3);
    // A signal without a handler sent to PID 1 from inside is ignored (as in Docker).
    let (r, _) = run_capture(&t, &spec(&t, sh("kill -9 $$; echo survived; exit 4")), "pid1");
    assert_eq!(r.unwrap(), 4);
    let (r, _) = run_capture(&t, &spec(&t, sh("sh -c 'kill -9 $$'; exit $?")), "child-killed");
    assert_eq!(r.unwrap(), 137);

    let (r, _) = run_capture(&t, &spec(&t, vec!["nosuchcmd".into()]), "notfound");
    let e = r.unwrap_err();
    assert_eq!(e.code, 127);
    assert_eq!(e.message, "exec: \"nosuchcmd\": executable file not found in $PATH");
    let (r, _) = run_capture(&t, &spec(&t, vec!["/no/such".into()]), "nopath");
    assert_eq!(r.unwrap_err().code, 127);
    // Exists but is not executable.
    let (r, _) = run_capture(&t, &spec(&t, vec!["/etc/passwd".into()]), "noexec");
    let e = r.unwrap_err();
    assert_eq!(e.code, 126, "{e}");
    assert!(e.message.contains("permission denied"), "{e}");
    // An engine error: the root does not exist.
    let mut bad = spec(&t, vec!["true".into()]);
    bad.root = t.dir.path().join("missing");
    assert_eq!(run_capture(&t, &bad, "badroot").0.unwrap_err().code, 125);
}

#[test]
fn env_workdir_user_and_groups_are_applied() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let mut s = spec(
        &t,
        sh("echo FOO=$FOO; pwd; id -u; id -g; id -G; echo HOME=$HOME; ls -ld /work/sub | awk '{print $3}'"),
    );
    s.env.push("FOO=bar baz".into());
    s.cwd = "/work/sub".into();
    let u = resolve_user(&t.root, "app").unwrap();
    assert_eq!(u.user.uid, 1000);
    assert_eq!(u.user.additional_gids, vec![2000]);
    s.user = u.user;
    let (r, cap) = run_capture(&t, &s, "envs");
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    let out = cap.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "FOO=bar baz",
            "/work/sub",
            "1000",
            "1000",
            "1000 2000",
            "HOME=/home/app",
            "app"
        ],
        "{out}"
    );
    // The workdir was created inside the root.
    assert!(t.root.join("work/sub").is_dir());
}

#[test]
fn workdir_through_a_symlink_stays_in_the_root() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let outside = t.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // An absolute symlink to a host path: inside the container it means root/<that path>.
    std::os::unix::fs::symlink(&outside, t.root.join("escape")).unwrap();
    let mut s = spec(&t, sh("pwd"));
    s.cwd = "/escape/made".into();
    let (r, cap) = run_capture(&t, &s, "wd");
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    assert!(!outside.join("made").exists(), "workdir created outside the root");
    assert!(t.root.join(outside.strip_prefix("/").unwrap()).join("made").is_dir());
    // A workdir through a magic link (/proc/self/cwd, /proc/self/fd/N) is refused.
    for magic in ["/proc/self/cwd", "/proc/1/root/etc"] {
        let mut s = spec(&t, sh("pwd"));
        s.cwd = magic.into();
        let e = run_capture(&t, &s, "magic").0.unwrap_err();
        assert_eq!(e.code, 125, "{magic}: {e}");
        assert!(e.message.contains("working directory"), "{e}");
    }
}

#[test]
fn hostname_pid1_caps_and_no_leaked_fds() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    // An fd without close-on-exec in the caller must not reach the container.
    let leaked = unsafe { libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY) };
    assert!(leaked > 2);
    let mut s = spec(
        &t,
        sh(
            "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc/self/fd | tr '\\n' ' '; echo; grep CapBnd /proc/self/status; echo HOSTNAME=$HOSTNAME",
        ),
    );
    s.hostname = "ctr-host".into();
    let (r, cap) = run_capture(&t, &s, "ident");
    unsafe { libc::close(leaked) };
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    let out = cap.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ctr-host");
    assert_eq!(lines[1], "1");
    assert!(lines[2].starts_with("sh -c "), "{out}");
    // 0, 1, 2 and the fd ls uses to read the directory.
    assert_eq!(lines[3].trim(), "0 1 2 3", "{out}");
    assert_eq!(lines[4], "CapBnd:\t00000000a80425fb");
    assert_eq!(lines[5], "HOSTNAME=ctr-host");
    // No inheritable capabilities (as Docker), /dev/core only as runc makes
    // it (when the kernel has /proc/kcore), and a RUN-like process without
    // HOSTNAME in its environment.
    let mut s = spec(
        &t,
        sh("grep CapInh /proc/self/status; test -e /dev/core && echo core; env | grep -c ^HOSTNAME=; hostname"),
    );
    s.hostname = "buildkitsandbox".into();
    s.hostname_env = false;
    let (r, cap) = run_capture(&t, &s, "ident2");
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    let core = if std::path::Path::new("/proc/kcore").exists() {
        "core\n"
    } else {
        ""
    };
    assert_eq!(
        cap.out(),
        format!("CapInh:\t0000000000000000\n{core}0\nbuildkitsandbox\n")
    );
}

#[test]
fn network_none_has_only_lo_and_it_is_up() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let mut s = spec(
        &t,
        sh(
            "ls /sys/class/net | tr '\\n' ' '; echo; cat /sys/class/net/lo/flags; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo pinged",
        ),
    );
    s.network = Network::None;
    let (r, cap) = run_capture(&t, &s, "net");
    assert_eq!(r.unwrap(), 0, "{} {}", cap.out(), cap.err());
    let out = cap.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "lo");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up");
    assert_eq!(lines[2], "pinged");

    // Host network: more than lo is visible when the host has more.
    let host_ifaces = fs::read_dir("/sys/class/net").unwrap().count();
    let s = spec(&t, sh("ls /sys/class/net | wc -l"));
    let (r, cap) = run_capture(&t, &s, "hostnet");
    assert_eq!(r.unwrap(), 0);
    assert_eq!(cap.out().trim(), host_ifaces.to_string());
}

#[test]
fn readonly_root_sys_and_dev() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let mut s = spec(
        &t,
        sh(
            "touch /x 2>/dev/null && echo root-writable; touch /sys/x 2>/dev/null && echo sys-writable; echo ok > /dev/shm/f && cat /dev/shm/f; ls /dev | tr '\\n' ' '; echo; head -c 4 /dev/zero | wc -c; ls /dev/pts",
        ),
    );
    s.readonly_root = true;
    let (r, cap) = run_capture(&t, &s, "ro");
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    let out = cap.out();
    assert!(!out.contains("root-writable"), "{out}");
    assert!(!out.contains("sys-writable"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ok");
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin", "mqueue",
    ] {
        assert!(
            lines[1].split(' ').any(|n| n == node),
            "/dev/{node} missing: {}",
            lines[1]
        );
    }
    assert_eq!(lines[2].trim(), "4");
    assert_eq!(lines[3], "ptmx", "a new devpts instance: {out}");
    assert!(!t.root.join("x").exists());
}

#[test]
fn bind_volumes_rw_and_ro_resolved_inside_the_root() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let data = t.dir.path().join("data");
    let ro = t.dir.path().join("ro");
    let hostfile = t.dir.path().join("hostfile");
    fs::create_dir(&data).unwrap();
    fs::create_dir(&ro).unwrap();
    fs::write(data.join("f"), "from host").unwrap();
    fs::write(ro.join("g"), "ro data").unwrap();
    fs::write(&hostfile, "single file").unwrap();
    // A symlink in the image pointing at a host path: a volume under it lands inside the root.
    let outside = t.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, t.root.join("evil")).unwrap();
    let mut s = spec(
        &t,
        sh(
            "cat /data/f; echo; echo new > /data/new; cat /ro/g; echo; echo x > /ro/y 2>/dev/null || echo ro-refused; cat /etc/single; echo; ls /evil/vol",
        ),
    );
    s.mounts = vec![
        BindMount::parse(&format!("{}:/data", data.display())).unwrap(),
        BindMount::parse(&format!("{}:/deep/ro:ro", ro.display())).unwrap(),
        BindMount::parse(&format!("{}:/etc/single:ro", hostfile.display())).unwrap(),
        BindMount::parse(&format!("{}:/evil/vol", ro.display())).unwrap(),
    ];
    s.mounts[1].destination = "/ro".into();
    let (r, cap) = run_capture(&t, &s, "vol");
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    let out = cap.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["from host", "ro data", "ro-refused", "single file", "g"],
        "{out}"
    );
    assert_eq!(fs::read_to_string(data.join("new")).unwrap(), "new\n");
    assert!(!ro.join("y").exists());
    assert!(!outside.join("vol").exists(), "mount point created outside the root");
    assert!(t.root.join(outside.strip_prefix("/").unwrap()).join("vol").is_dir());
    assert!(BindMount::parse("relative:/x").is_err());
    assert!(BindMount::parse("/x:/y:bogus").is_err());
}

#[test]
fn overlay_root_writes_land_in_upper_and_deletions_are_whiteouts() {
    if !can_run() {
        return;
    }
    use strata_snapshot::{Driver, Snapshotter};
    let t = busybox_root();
    let store = t.dir.path().join("store");
    let snap = Snapshotter::new(&store, Driver::Overlay);
    let id = strata_oci::Digest::sha256_of(b"busybox layer");
    snap.ensure_layer(&id, |d| -> anyhow::Result<()> {
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", t.root.display()))
            .arg(d)
            .status()?;
        anyhow::ensure!(st.success(), "cp failed");
        Ok(())
    })
    .unwrap();
    let sn = snap.prepare("ctr1", std::slice::from_ref(&id)).unwrap();
    let merged = sn.merged_dir();
    snap.mount(&sn, &merged, false).unwrap();
    let s = RunSpec::new(&merged, sh("echo hi > /newfile && rm /etc/group && echo done"));
    let (cap, io) = Captured::new(t.dir.path(), "ovl");
    let r = run_with_stdio(&s, io);
    snap.unmount(&merged).unwrap();
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    assert_eq!(cap.out(), "done\n");
    let upper = snap.upper_dir(&sn);
    assert_eq!(fs::read_to_string(upper.join("newfile")).unwrap(), "hi\n");
    let lower = snap.layer_dir(&id);
    assert!(!lower.join("newfile").exists());
    assert!(lower.join("etc/group").is_file());
    let wh = fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    snap.remove("ctr1").unwrap();
}

#[test]
fn tty_gives_a_pty_from_the_containers_devpts() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let mut s = spec(&t, sh("tty; [ -t 0 ] && [ -t 1 ] && echo isatty; echo TERM=$TERM"));
    s.tty = true;
    let (r, cap) = run_capture(&t, &s, "tty");
    assert_eq!(r.unwrap(), 0);
    let out = cap.out().replace('\r', "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["/dev/pts/0", "isatty", "TERM=xterm"], "{out:?}");
}

#[test]
fn stdin_passthrough_with_i_and_devnull_without() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let input = t.dir.path().join("input");
    fs::write(&input, "line one\nline two\n").unwrap();
    let mut s = spec(&t, sh("wc -l"));
    s.stdin = true;
    let (cap, mut io) = Captured::new(t.dir.path(), "stdin");
    io.stdin = Some(fs::File::open(&input).unwrap().into());
    assert_eq!(run_with_stdio(&s, io).unwrap(), 0);
    assert_eq!(cap.out().trim(), "2");
    s.stdin = false;
    let (cap, mut io) = Captured::new(t.dir.path(), "nostdin");
    io.stdin = Some(fs::File::open(&input).unwrap().into());
    assert_eq!(run_with_stdio(&s, io).unwrap(), 0);
    assert_eq!(cap.out().trim(), "0");
}

#[test]
fn signals_reach_the_container() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let vol = t.dir.path().join("sig");
    fs::create_dir(&vol).unwrap();
    let mut s = spec(
        &t,
        sh("trap 'exit 42' USR1; touch /sig/ready; while true; do sleep 0.05; done"),
    );
    s.mounts = vec![BindMount::parse(&format!("{}:/sig", vol.display())).unwrap()];
    let ready = vol.join("ready");
    std::thread::scope(|sc| {
        let h = sc.spawn(|| run_capture(&t, &s, "sig").0);
        while !ready.exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The caller receives the signal; the runtime forwards it to the container.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
        assert_eq!(h.join().unwrap().unwrap(), 42);
    });
}

#[test]
fn user_resolution_follows_the_images_files() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let r = |s: &str| resolve_user(&t.root, s);
    let app = r("app").unwrap();
    assert_eq!(
        app.user,
        UserSpec {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![2000]
        }
    );
    assert_eq!(app.home, "/home/app");
    assert_eq!(r("1000").unwrap(), app);
    assert_eq!(r("app:extra").unwrap().user.gid, 2000);
    // A named group is the only one (as runc): no supplementary groups.
    assert_eq!(r("app:extra").unwrap().user.additional_gids, Vec::<u32>::new());
    assert_eq!(r("1000:5").unwrap().user.additional_gids, Vec::<u32>::new());
    assert_eq!(r("app:5").unwrap().user.gid, 5);
    let anon = r("4242").unwrap();
    assert_eq!((anon.user.uid, anon.user.gid, anon.home.as_str()), (4242, 0, "/"));
    assert_eq!(r("").unwrap().user.uid, 0);
    assert!(format!("{:#}", r("ghost").unwrap_err()).contains("no matching entries in passwd"));
    assert!(r("app:ghosts").is_err());
    assert!(format!("{:#}", r("4294967295").unwrap_err()).contains("out of range"));
    assert!(r("-1").is_err());
    assert!(r("0:2147483648").is_err());
    // /etc/passwd as an absolute symlink resolves inside the root, not on the host.
    fs::write(t.root.join("real_passwd"), "inside:x:777:777::/in:/bin/sh\n").unwrap();
    fs::remove_file(t.root.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("/../../../../real_passwd", t.root.join("etc/passwd")).unwrap();
    assert_eq!(r("inside").unwrap().user.uid, 777);
    assert!(r("root").is_err(), "the host's /etc/passwd was read");
}

#[test]
fn oci_spec_and_bundle() {
    let mut s = RunSpec::new("/tmp/rootfs", vec!["sh".into(), "-c".into(), "true".into()]);
    s.network = Network::None;
    s.user = UserSpec {
        uid: 5,
        gid: 6,
        additional_gids: vec![7],
    };
    s.readonly_root = true;
    s.mounts = vec![BindMount::parse("/srv:/data:ro").unwrap()];
    s.tty = true;
    let oci = to_oci_spec(&s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_bundle(&oci, dir.path()).unwrap();
    let back = oci_spec::runtime::Spec::load(dir.path().join("config.json")).unwrap();
    assert_eq!(back, oci);
    let json: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(json["process"]["args"][2], "true");
    assert_eq!(json["process"]["user"]["uid"], 5);
    assert_eq!(json["process"]["user"]["additionalGids"][0], 7);
    assert_eq!(json["process"]["terminal"], true);
    assert_eq!(json["root"]["path"], "/tmp/rootfs");
    assert_eq!(json["root"]["readonly"], true);
    let ns: Vec<&str> = json["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(
        ns.contains(&"network") && ns.contains(&"pid") && ns.contains(&"mount"),
        "{ns:?}"
    );
    let mounts = json["mounts"].as_array().unwrap();
    let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
    assert_eq!(data["source"], "/srv");
    assert!(data["options"].as_array().unwrap().iter().any(|o| o == "ro"));
    let caps = json["process"]["capabilities"]["bounding"].as_array().unwrap();
    assert_eq!(caps.len(), 14);
    assert!(caps.iter().any(|c| c == "CAP_NET_BIND_SERVICE"));
}

#[test]
fn secrets_get_their_owner_and_mode_inside_only() {
    if !can_run() {
        return;
    }
    let t = busybox_root();
    let host = t.dir.path().join("secret-src");
    fs::write(&host, "s3cr3t").unwrap();
    fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let mut s = spec(
        &t,
        sh("stat -c '%u %g %a' /run/secrets/tok; cat /run/secrets/tok; echo; echo x > /run/secrets/tok || echo ro"),
    );
    s.secrets.push(strata_runtime::SecretFile {
        source: host.clone(),
        destination: "/run/secrets/tok".into(),
        uid: 1000,
        gid: 1001,
        mode: 0o440,
    });
    let (r, cap) = run_capture(&t, &s, "secret");
    assert_eq!(r.unwrap(), 0, "{}", cap.err());
    let out = cap.out();
    assert!(out.starts_with("1000 1001 440\ns3cr3t\n"), "{out}");
    assert!(out.contains("ro"), "{out}");
    // The host copy is untouched: still root's, 0400.
    let md = fs::metadata(&host).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o400));
    // Nothing of it is left in the root: the mount point is an empty file.
    assert_eq!(fs::read(t.root.join("run/secrets/tok")).unwrap(), b"");
}
