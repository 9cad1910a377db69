#![allow(dead_code)]

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use strata_runtime::Stdio;

pub const BUSYBOX: &str = "/bin/busybox";

/// True when the tests can run: root (namespaces, mounts) and a static busybox.
pub fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the runtime tests need root (namespaces, mounts)");
        return false;
    }
    if !Path::new(BUSYBOX).is_file() {
        eprintln!("skipped: {BUSYBOX} not found (apt-get install -y busybox-static)");
        return false;
    }
    true
}

/// A tiny root: a copy of busybox, a symlink per applet, /etc/passwd and /etc/group.
pub fn make_busybox_root(root: &Path) {
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "usr/bin", "var"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let out = std::process::Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
    )
    .unwrap();
}

pub struct TestRoot {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn busybox_root() -> TestRoot {
    let dir = tempfile::Builder::new().prefix("strata-rt-test").tempdir().unwrap();
    let root = dir.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    make_busybox_root(&root);
    TestRoot { dir, root }
}

pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Stdio that captures stdout and stderr in files; read them with [`Captured::out`].
pub struct Captured {
    out: PathBuf,
    err: PathBuf,
}

impl Captured {
    pub fn new(dir: &Path, name: &str) -> (Captured, Stdio) {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let o: OwnedFd = fs::File::create(&out).unwrap().into();
        let e: OwnedFd = fs::File::create(&err).unwrap().into();
        (
            Captured { out, err },
            Stdio {
                stdin: None,
                stdout: Some(o),
                stderr: Some(e),
            },
        )
    }
    pub fn out(&self) -> String {
        fs::read_to_string(&self.out).unwrap()
    }
    pub fn err(&self) -> String {
        fs::read_to_string(&self.err).unwrap()
    }
}
