//! Shared helpers for the CLI tests: a private store per test, the busybox
//! root filesystem, running `strata`, local registries (`registry.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod registry;
// Like dead code, a test binary that starts no registry does not use these.
#[allow(unused_imports)]
pub use registry::*;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.root());
        c.env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// Runs strata, returning the output whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().expect("run strata")
    }

    /// Runs strata and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// Runs strata and insists on failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "strata {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).expect("utf8")
    }

    /// A busybox root filesystem directory, or None (with a printed reason).
    pub fn busybox_rootfs(&self) -> Option<PathBuf> {
        let dir = self.path("busybox-rootfs");
        if dir.exists() {
            return Some(dir);
        }
        if !Path::new("/bin/busybox").exists() {
            eprintln!("skipped: /bin/busybox not found (apt-get install busybox-static)");
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let st = Command::new("bash")
            .arg(script)
            .arg(&dir)
            .status()
            .expect("busybox-rootfs.sh");
        assert!(st.success());
        Some(dir)
    }

    /// `busybox:latest` imported into the store, returning the image ID.
    pub fn import_busybox(&self) -> Option<String> {
        let rootfs = self.busybox_rootfs()?;
        let out = self.ok(&[
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            r#"CMD ["/bin/sh"]"#,
            rootfs.to_str().unwrap(),
            "busybox:latest",
        ]);
        Some(out.trim().to_string())
    }

    /// Every file under the store with its size, for "nothing changed" checks
    /// (the database is compared by its listing instead).
    pub fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.root();
        for sub in ["blobs", "layers", "tmp"] {
            walk(&root.join(sub), &root, &mut out);
        }
        out.sort();
        out.push(self.ok(&[
            "images",
            "-a",
            "--no-trunc",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}} {{.Size}}",
        ]));
        out
    }
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            // Per-layer lock files are not content (and are kept on purpose).
            if p.file_name().is_some_and(|n| n == ".locks") {
                continue;
            }
            walk(&p, root, out);
        } else {
            out.push(format!("{} {}", p.strip_prefix(root).unwrap().display(), m.len()));
        }
    }
}

pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success());
    if !matches!(found, Ok(true)) {
        eprintln!("skipped: {tool} is not installed");
        return false;
    }
    true
}

pub fn sh(script: &str) -> Output {
    Command::new("bash").arg("-c").arg(script).output().expect("bash")
}

pub fn sh_ok(script: &str) -> String {
    let o = sh(script);
    assert!(
        o.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
