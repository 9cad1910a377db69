//! Shared helpers for the CLI tests: a private store per test, the busybox
//! root filesystem, running `strata`, local registries (`registry.rs`).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod campaign;
pub mod differential;
mod registry;
pub mod rootless;
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
        succeeded(args, self.run(args))
    }

    /// Runs strata and insists on failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        failed(args, self.run(args))
    }

    /// Runs strata with a private Docker config directory (`DOCKER_CONFIG`,
    /// where login stores credentials) and `stdin` (None: nothing).
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.env("DOCKER_CONFIG", self.path("docker-config"));
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = c.spawn().expect("run strata");
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("run strata")
    }

    /// [`Env::run_with`], insisting on success; returns stdout.
    pub fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        succeeded(args, self.run_with(args, stdin))
    }

    /// [`Env::run_with`], insisting on failure; returns stderr.
    pub fn fails_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        failed(args, self.run_with(args, stdin))
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

    /// Runs strata with `args` on a pty (util-linux `script`) with `TERM`
    /// set to `term`; returns what the terminal got and whether it
    /// succeeded, or None (said) without `script`.
    pub fn on_terminal(&self, args: &[&str], term: &str) -> Option<(bool, String)> {
        if !have("script") {
            eprintln!("skipped: running on a terminal needs util-linux `script`");
            return None;
        }
        let mut cmd = vec![
            shell_quote(env!("CARGO_BIN_EXE_strata")),
            "--root".into(),
            shell_quote(self.root().to_str().unwrap()),
        ];
        cmd.extend(args.iter().map(|a| shell_quote(a)));
        let o = Command::new("script")
            .args(["-qec", &cmd.join(" "), "/dev/null"])
            .env("TERM", term)
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null())
            .output()
            .expect("run script");
        Some((o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned()))
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

/// stdout of a run of `strata args` that must have succeeded.
fn succeeded(args: &[&str], o: Output) -> String {
    assert!(
        o.status.success(),
        "strata {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf8")
}

/// stderr of a run of `strata args` that must have failed.
fn failed(args: &[&str], o: Output) -> String {
    assert!(
        !o.status.success(),
        "strata {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stderr).expect("utf8")
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

/// Whether `docker` is installed and a daemon answers; says why not.
pub fn docker_daemon() -> bool {
    if !have("docker") {
        return false;
    }
    if !sh("docker info >/dev/null 2>&1").status.success() {
        eprintln!("skipped: no docker daemon is running (scripts/test.sh starts one when docker.io is installed)");
        return false;
    }
    true
}

/// Single-quotes `s` for a shell command line.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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

/// Adds to the OCI layout at `layout` a multi-platform index of images it
/// holds: `parts` are (the image's `ref.name` in the layout, its platform
/// `os/arch[/variant]`); the index is named `name`. Returns its digest.
pub fn write_layout_index(layout: &Path, parts: &[(&str, &str)], name: &str) -> String {
    let top_path = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&std::fs::read(&top_path).unwrap()).unwrap();
    let entries: Vec<serde_json::Value> = parts
        .iter()
        .map(|(ref_name, platform)| {
            let m = top["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == *ref_name)
                .unwrap_or_else(|| panic!("no {ref_name} in {}", top_path.display()));
            let p: Vec<&str> = platform.split('/').collect();
            let mut pj = serde_json::json!({"os": p[0], "architecture": p[1]});
            if let Some(v) = p.get(2) {
                pj["variant"] = serde_json::json!(v);
            }
            serde_json::json!({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": pj})
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let hex = sha256_hex(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"),
        "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": name},
    }));
    std::fs::write(&top_path, serde_json::to_vec(&top).unwrap()).unwrap();
    format!("sha256:{hex}")
}
