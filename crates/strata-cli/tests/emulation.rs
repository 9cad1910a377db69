//! Foreign platforms through QEMU and binfmt_misc: `buildx
//! install-emulators`, `buildx ls`, `run --platform`. The foreign root
//! filesystems are Debian's busybox-static for arm64 and armhf
//! (scripts/deps.d/emulation.sh puts the .debs in
//! /opt/strata-deps/foreign-busybox); the foreign busybox never runs on
//! the host, only in containers.
//!
//! binfmt_misc is the kernel's, shared by every test: these register arm64
//! and arm (and leave them: others may use them too), use mips64le only as
//! an architecture nobody registers, and register then remove mips64 under
//! a lock file.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;

const DEBS: &str = "/opt/strata-deps/foreign-busybox";
const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Holds an exclusive lock for tests that change binfmt_misc beyond
/// registering arm64/arm.
struct BinfmtLock(#[allow(dead_code)] fs::File);

fn binfmt_lock() -> BinfmtLock {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/strata-binfmt-tests.lock")
        .unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    BinfmtLock(f)
}

/// A root filesystem of Debian's busybox-static for `deb_arch` (arm64,
/// armhf), its applet links as the host's busybox lists them.
fn foreign_rootfs(env: &Env, deb_arch: &str) -> Option<PathBuf> {
    let deb = fs::read_dir(DEBS).ok().and_then(|rd| {
        rd.filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("_{deb_arch}.deb")))
    });
    let Some(deb) = deb else {
        eprintln!("skipped: no busybox-static_*_{deb_arch}.deb in {DEBS} (scripts/deps.d/emulation.sh)");
        return None;
    };
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox not found (apt-get install busybox-static)");
        return None;
    }
    let x = env.path(&format!("deb-{deb_arch}"));
    let st = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x).status().unwrap();
    assert!(st.success());
    let r = env.path(&format!("rootfs-{deb_arch}"));
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "usr/bin", "var"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::copy(x.join("bin/busybox"), r.join("bin/busybox")).unwrap();
    // The same Debian version on every architecture: the host's list is theirs.
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if a != "busybox" {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
    }
    fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    Some(r)
}

fn import(env: &Env, rootfs: &Path, platform: &str, name: &str) {
    env.ok(&[
        "import",
        "--platform",
        platform,
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        r#"CMD ["/bin/sh"]"#,
        rootfs.to_str().unwrap(),
        name,
    ]);
}

/// Makes `name` an index of the store images `parts` (name, platform):
/// each copied into an OCI layout, an index written there, the whole
/// copied back into the store.
fn multi_platform(env: &Env, parts: &[(&str, &str)], name: &str) {
    let layout = env.path("layout");
    for (i, (part, _)) in parts.iter().enumerate() {
        env.ok(&[
            "copy",
            "-q",
            &format!("strata:{part}"),
            &format!("oci:{}:p{i}", layout.display()),
        ]);
    }
    let top_path = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&fs::read(&top_path).unwrap()).unwrap();
    let mut entries = Vec::new();
    for (i, (_, platform)) in parts.iter().enumerate() {
        let m = top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == format!("p{i}"))
            .unwrap();
        let p: Vec<&str> = platform.split('/').collect();
        let mut plat = serde_json::json!({"os": p[0], "architecture": p[1]});
        if let Some(v) = p.get(2) {
            plat["variant"] = serde_json::json!(v);
        }
        entries.push(serde_json::json!({
            "mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": plat,
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let hex = common::sha256_hex(&index);
    fs::write(layout.join("blobs/sha256").join(&hex), &index).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"),
        "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }));
    fs::write(&top_path, serde_json::to_vec(&top).unwrap()).unwrap();
    env.ok(&[
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", layout.display()),
        &format!("strata:{name}"),
    ]);
}

/// Registers QEMU for arm64 and arm, or says why not.
fn emulators(env: &Env) -> bool {
    if !is_root() {
        eprintln!("skipped: registering emulators needs root");
        return false;
    }
    for q in ["qemu-aarch64-static", "qemu-arm-static"] {
        if !Path::new("/usr/bin").join(q).exists() {
            eprintln!("skipped: /usr/bin/{q} not found (scripts/deps.d/emulation.sh installs qemu-user-static)");
            return false;
        }
    }
    let out = env.ok(&["buildx", "install-emulators", "arm64", "arm"]);
    assert!(
        out.contains("installing: arm64 ") && out.contains("installing: arm "),
        "{out}"
    );
    true
}

fn host_amd64() -> bool {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: these foreign platforms are chosen for an amd64 host");
        return false;
    }
    true
}

#[test]
fn arm64_and_armv7_images_run_under_qemu() {
    let env = Env::new();
    if !host_amd64() || !emulators(&env) {
        return;
    }
    let (Some(arm64), Some(armhf)) = (foreign_rootfs(&env, "arm64"), foreign_rootfs(&env, "armhf")) else {
        return;
    };
    import(&env, &arm64, "linux/arm64", "bb:arm64");
    import(&env, &armhf, "linux/arm/v7", "bb:armv7");

    let out = env.ok(&["run", "--rm", "--platform", "linux/arm64", "bb:arm64", "uname", "-m"]);
    assert_eq!(out, "aarch64\n");
    let out = env.ok(&["run", "--rm", "--platform", "linux/arm/v7", "bb:armv7", "uname", "-m"]);
    assert_eq!(out, "armv7l\n");
    // The container sees no QEMU: the kernel holds the interpreter (F).
    let out = env.ok(&[
        "run",
        "--rm",
        "bb:arm64",
        "sh",
        "-c",
        "ls /usr/bin/qemu* 2>/dev/null | wc -l",
    ]);
    assert_eq!(out.trim(), "0");

    // Without --platform: Docker's warning, then it runs.
    let o = env.run(&["run", "--rm", "bb:arm64", "uname", "-m"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "aarch64\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "WARNING: The requested image's platform (linux/arm64) does not match the detected host platform (linux/amd64) and no specific platform was requested"
        ),
        "{err}"
    );

    // create + start -a: the same through the lifecycle.
    let id = env.ok(&["create", "--platform", "linux/arm64", "bb:arm64", "uname", "-m"]);
    let out = env.ok(&["start", "-a", id.trim()]);
    assert_eq!(out, "aarch64\n");
    env.ok(&["rm", id.trim()]);

    // The image must be for the platform asked.
    let o = env.run(&["run", "--rm", "--platform", "linux/amd64", "bb:arm64", "uname", "-m"]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "image with reference bb:arm64 was found but its platform (linux/arm64) does not match the specified platform (linux/amd64)"
        ),
        "{err}"
    );
    let err = env.fails(&["create", "--platform", "linux/arm/v6", "bb:armv7"]);
    assert!(
        err.contains("its platform (linux/arm/v7) does not match the specified platform (linux/arm/v6)"),
        "{err}"
    );
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");

    // One name for three platforms (an index in the store): --platform
    // picks the image, and none runs the host's, without a warning.
    let Some(native) = env.busybox_rootfs() else { return };
    import(&env, &native, "linux/amd64", "bb:amd64");
    multi_platform(
        &env,
        &[
            ("bb:amd64", "linux/amd64"),
            ("bb:arm64", "linux/arm64"),
            ("bb:armv7", "linux/arm/v7"),
        ],
        "multi:1",
    );
    for (platform, machine) in [
        ("linux/arm64", "aarch64"),
        ("linux/arm/v7", "armv7l"),
        ("linux/amd64", "x86_64"),
    ] {
        let out = env.ok(&["run", "--rm", "--platform", platform, "multi:1", "uname", "-m"]);
        assert_eq!(out.trim(), machine, "{platform}");
    }
    let o = env.run(&["run", "--rm", "multi:1", "uname", "-m"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x86_64\n");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("WARNING"));

    // buildx ls: the builder and what it runs, native first.
    let out = env.ok(&["buildx", "ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME/NODE") && lines[0].contains("DRIVER/ENDPOINT"),
        "{out}"
    );
    assert!(lines[1].starts_with("strata*"), "{out}");
    assert!(
        lines[2].starts_with(" \\_ strata") && lines[2].contains("running"),
        "{out}"
    );
    let plats = lines[2].split("   ").last().unwrap().trim();
    assert!(plats.starts_with("linux/amd64"), "{out}");
    for p in ["linux/arm64", "linux/arm/v7", "linux/arm/v6"] {
        assert!(plats.split(", ").any(|x| x == p), "{p} in {out}");
    }
}

#[test]
fn foreign_platform_without_emulator_and_bad_platforms_fail_before_anything() {
    let env = Env::new();
    if !host_amd64() {
        return;
    }
    let Some(rootfs) = env.busybox_rootfs() else { return };
    // mips64le: a known platform nobody here registers an emulator for.
    if Path::new(BINFMT).join("qemu-mips64el").exists() {
        eprintln!("skipped: a mips64le emulator is registered on this host");
        return;
    }
    import(&env, &rootfs, "linux/mips64le", "far:away");
    import(&env, &rootfs, "linux/amd64", "bb:native");
    for args in [
        &["run", "--rm", "far:away", "uname", "-m"][..],
        &["run", "--rm", "--platform", "linux/mips64le", "far:away", "uname", "-m"],
        &["create", "far:away"],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("platform linux/mips64le cannot run on this host (linux/amd64): no emulator is registered"),
            "{err}"
        );
        assert!(err.contains("`strata buildx install-emulators mips64le`"), "{err}");
        assert!(o.stdout.is_empty());
    }
    let err = env.fails(&["run", "--rm", "--platform", "linux/foo", "bb:native", "true"]);
    assert!(
        err.contains("unknown platform linux/foo: strata knows linux/amd64, linux/arm64"),
        "{err}"
    );
    let err = env.fails(&["run", "--rm", "--platform", "nonsense", "bb:native", "true"]);
    assert!(err.contains("invalid platform \"nonsense\""), "{err}");
    // Nothing was made.
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    // The host's own platform asked: it just runs.
    assert_eq!(
        env.ok(&["run", "--rm", "--platform", "linux/amd64", "bb:native", "echo", "hi"]),
        "hi\n"
    );
}

/// The platforms `buildx ls` lists for the strata node.
fn ls_platforms(env: &Env) -> Vec<String> {
    let out = env.ok(&["buildx", "ls", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["Nodes"][0]["Platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

fn entry(name: &str) -> Option<String> {
    fs::read_to_string(Path::new(BINFMT).join(name)).ok()
}

#[test]
fn install_emulators_and_uninstall_round_trip() {
    let env = Env::new();
    if !host_amd64() || !is_root() {
        eprintln!("skipped: needs root on amd64");
        return;
    }
    let qemu = Path::new("/usr/bin/qemu-mips64-static");
    if !qemu.exists() {
        eprintln!("skipped: {} not found (scripts/deps.d/emulation.sh)", qemu.display());
        return;
    }
    let Some(rootfs) = env.busybox_rootfs() else { return };
    import(&env, &rootfs, "linux/mips64", "mips:be");
    let _lock = binfmt_lock();
    // mips64 is this test's alone: start from none.
    env.ok(&["buildx", "install-emulators", "--uninstall", "mips64"]);
    assert!(entry("qemu-mips64").is_none());

    let out = env.ok(&["buildx", "install-emulators", "mips64"]);
    assert!(
        out.contains("installing: mips64 OK (qemu-mips64: /usr/bin/qemu-mips64-static)"),
        "{out}"
    );
    let e = entry("qemu-mips64").unwrap();
    assert!(e.starts_with("enabled\n"), "{e}");
    assert!(e.contains("interpreter /usr/bin/qemu-mips64-static\n"), "{e}");
    assert!(e.contains("flags: POCF\n"), "{e}");
    assert!(e.contains("magic 7f454c46020201000000000000000000000200"), "{e}");
    assert!(ls_platforms(&env).contains(&"linux/mips64".to_string()));
    let out = env.ok(&["buildx", "install-emulators", "mips64"]);
    assert!(out.contains("installing: mips64 already installed"), "{out}");

    // Disabled, it runs nothing, and says how to get it back.
    fs::write(Path::new(BINFMT).join("qemu-mips64"), "0").unwrap();
    let err = env.fails(&["run", "--rm", "mips:be", "true"]);
    assert!(
        err.contains("linux/mips64")
            && err.contains("qemu-mips64 is disabled")
            && err.contains("install-emulators mips64"),
        "{err}"
    );
    assert!(!ls_platforms(&env).contains(&"linux/mips64".to_string()));
    let out = env.ok(&["buildx", "install-emulators", "mips64"]);
    assert!(
        out.contains("installing: mips64 OK") && out.contains("replacing disabled"),
        "{out}"
    );

    // Registered without F (as binfmt-support once did), it cannot work
    // in a container: strata says so, and install-emulators replaces it.
    env.ok(&["buildx", "install-emulators", "--uninstall", "mips64"]);
    let no_f = r":qemu-mips64:M::\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08:\xff\xff\xff\xff\xff\xff\xff\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff:/usr/bin/qemu-mips64-static:";
    fs::write(Path::new(BINFMT).join("register"), no_f).unwrap();
    let err = env.fails(&["run", "--rm", "mips:be", "true"]);
    assert!(err.contains("without the F (fix binary) flag"), "{err}");
    let out = env.ok(&["buildx", "install-emulators", "mips64"]);
    assert!(
        out.contains("replacing enabled /usr/bin/qemu-mips64-static flags \"\""),
        "{out}"
    );

    let out = env.ok(&["buildx", "install-emulators", "--uninstall", "mips64"]);
    assert!(out.contains("uninstalling: mips64 OK (qemu-mips64)"), "{out}");
    assert!(entry("qemu-mips64").is_none());
    assert!(!ls_platforms(&env).contains(&"linux/mips64".to_string()));
    let out = env.ok(&["buildx", "install-emulators", "--uninstall", "mips64"]);
    assert!(out.contains("uninstalling: mips64 not installed"), "{out}");
}

#[test]
fn install_emulators_refuses_unknown_architectures() {
    let env = Env::new();
    let err = env.fails(&["buildx", "install-emulators", "sparc"]);
    assert!(
        err.contains("unknown architecture \"sparc\": strata knows amd64, arm64"),
        "{err}"
    );
}
