//! Rootless strata in the tests (#19): users made for the purpose, as root
//! (one with a subordinate id range in /etc/subuid and /etc/subgid, one
//! without), a private directory per test owned by that user (its store
//! under `XDG_DATA_HOME`, `XDG_RUNTIME_DIR`, `HOME`, mode 0700), strata and
//! rootless podman run as that user, and a cleanup that stops what the
//! test's user namespaces hold (strata's pause process, podman's, and
//! anything still running in them) and removes the files, owned by
//! subordinate ids, as root.
//!
//! A test that cannot run here (not root, no `useradd`, no `newuidmap`,
//! unprivileged user namespaces off, rootless podman not working) prints
//! `skipped: …` and returns.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::differential::BASE_CHANGES;

/// The user with a subordinate range (65,536 ids), made by the tests.
pub const RANGES_USER: &str = "strata-tsub";
/// The user without subordinate ids, made by the tests.
pub const SINGLE_ID_USER: &str = "strata-tnosub";

/// Which of the two test users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`RANGES_USER`]: container ids 0..=65536 mapped.
    Ranges,
    /// [`SINGLE_ID_USER`]: only the user's own id mapped.
    SingleId,
}

/// A test user as /etc/passwd, /etc/subuid and /etc/subgid have it.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The user's subordinate uid ranges (start, count), in file order.
    pub subuids: Vec<(u32, u32)>,
    pub subgids: Vec<(u32, u32)>,
}

impl TestUser {
    /// The host uid container uid `n` has on disk: the user's own for 0,
    /// else the n-th subordinate id (Podman's layout: the first range's
    /// start + n - 1).
    pub fn host_uid(&self, n: u32) -> u32 {
        host_id(self.uid, &self.subuids, n)
    }

    /// The host gid of container gid `n` (see [`TestUser::host_uid`]).
    pub fn host_gid(&self, n: u32) -> u32 {
        host_id(self.gid, &self.subgids, n)
    }
}

fn host_id(own: u32, ranges: &[(u32, u32)], n: u32) -> u32 {
    if n == 0 {
        return own;
    }
    let mut k = n - 1;
    for &(start, count) in ranges {
        if k < count {
            return start + k;
        }
        k -= count;
    }
    panic!("container id {n} is outside the subordinate ranges {ranges:?}")
}

/// A file lock held while it lives (flock, released on drop).
struct Lock(std::fs::File);

impl Lock {
    fn take(path: &Path) -> Lock {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
        Lock(f)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// (uid, gid) of `name` in /etc/passwd.
fn passwd_entry(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// The ranges `file` gives the user `name` (or its numeric `uid`).
fn ranges_of(file: &str, name: &str, uid: u32) -> Vec<(u32, u32)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 || (f[0] != name && f[0] != uid) {
                return None;
            }
            let (start, count) = (f[1].parse().ok()?, f[2].parse::<u32>().ok()?);
            (count > 0).then_some((start, count))
        })
        .collect()
}

/// The first id after every range of `file` (at least 100000): where a new
/// range of 65,536 ids overlaps no one's.
fn free_start(file: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            (f.len() == 3).then(|| Some(f[1].parse::<u64>().ok()? + f[2].parse::<u64>().ok()?))?
        })
        .fold(100_000, u64::max)
}

fn run_tool(args: &[&str]) -> Result<(), String> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// Makes (once; idempotent, under a lock shared by every test process)
/// the test user of `kind`, with or without a subordinate range.
fn ensure_user(kind: Kind) -> Result<TestUser, String> {
    let name = match kind {
        Kind::Ranges => RANGES_USER,
        Kind::SingleId => SINGLE_ID_USER,
    };
    let _lock = Lock::take(&std::env::temp_dir().join("strata-tests-rootless-users.lock"));
    if passwd_entry(name).is_none() {
        let mut args = vec!["useradd", "-m", "-s", "/bin/sh", "-c", "strata rootless tests"];
        if kind == Kind::SingleId {
            args.extend(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        args.push(name);
        run_tool(&args)?;
    }
    let (uid, gid) = passwd_entry(name).ok_or_else(|| format!("{name} is not in /etc/passwd after useradd"))?;
    for (file, flag_add, flag_del) in [
        ("/etc/subuid", "--add-subuids", "--del-subuids"),
        ("/etc/subgid", "--add-subgids", "--del-subgids"),
    ] {
        let have = ranges_of(file, name, uid);
        match kind {
            Kind::Ranges if have.is_empty() => {
                let start = free_start(file);
                let range = format!("{start}-{}", start + 65_535);
                run_tool(&["usermod", flag_add, &range, name])?;
            }
            Kind::SingleId => {
                for (start, count) in have {
                    let range = format!("{start}-{}", start as u64 + count as u64 - 1);
                    run_tool(&["usermod", flag_del, &range, name])?;
                }
            }
            _ => {}
        }
    }
    let user = TestUser {
        name: name.to_string(),
        uid,
        gid,
        subuids: ranges_of("/etc/subuid", name, uid),
        subgids: ranges_of("/etc/subgid", name, uid),
    };
    match kind {
        Kind::Ranges if user.subuids.is_empty() || user.subgids.is_empty() => {
            Err(format!("{name} still has no subordinate ranges: {user:?}"))
        }
        Kind::SingleId if !user.subuids.is_empty() || !user.subgids.is_empty() => {
            Err(format!("{name} still has subordinate ranges: {user:?}"))
        }
        _ => Ok(user),
    }
}

/// Whether the tests can run rootless here at all, else why not.
fn preflight(kind: Kind) -> Result<TestUser, String> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the rootless tests run as root (they make their users)".into());
    }
    let mut tools = vec!["useradd", "usermod", "unshare"];
    if kind == Kind::Ranges {
        tools.extend(["newuidmap", "newgidmap"]);
    }
    for t in tools {
        if !tool_exists(t) {
            return Err(format!(
                "{t} is not installed (scripts/deps.d/rootless.sh installs uidmap, passwd, util-linux)"
            ));
        }
    }
    let user = ensure_user(kind)?;
    // An unprivileged user namespace as that user (Debian's
    // kernel.unprivileged_userns_clone, AppArmor's restriction, …).
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .uid(user.uid)
        .gid(user.gid)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{} cannot make a user namespace here (unshare --user: {})",
            user.name,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(user)
}

fn tool_exists(tool: &str) -> bool {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(tool).exists())
}

/// What [`preflight`] said per kind, once per test process.
fn user_for(kind: Kind) -> Option<TestUser> {
    static RANGES: OnceLock<Result<TestUser, String>> = OnceLock::new();
    static SINGLE: OnceLock<Result<TestUser, String>> = OnceLock::new();
    let cell = match kind {
        Kind::Ranges => &RANGES,
        Kind::SingleId => &SINGLE,
    };
    match cell.get_or_init(|| preflight(kind)) {
        Ok(u) => Some(u.clone()),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The PATH the test user's commands get.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One test's rootless world: its user, a directory owned by that user
/// (mode 0700) holding `home` (HOME), `run` (XDG_RUNTIME_DIR), `data`
/// (XDG_DATA_HOME: the default store is `data/strata`) and `tmp` (TMPDIR),
/// and the strata binary that user runs.
pub struct Rootless {
    pub user: TestUser,
    dir: Option<tempfile::TempDir>,
    bin: PathBuf,
}

impl Rootless {
    /// The world of a user of `kind`, or None (with the skip line).
    pub fn new(kind: Kind) -> Option<Rootless> {
        let user = user_for(kind)?;
        let dir = tempfile::Builder::new().prefix("strata-rootless-").tempdir().unwrap();
        let mut rl = Rootless {
            user,
            dir: Some(dir),
            bin: PathBuf::from(env!("CARGO_BIN_EXE_strata")),
        };
        for sub in ["home", "run", "data", "tmp"] {
            std::fs::create_dir(rl.path(sub)).unwrap();
        }
        rl.give(rl.dir());
        for sub in ["", "home", "run", "data", "tmp"] {
            std::fs::set_permissions(rl.path(sub), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        // The binary must be reachable by the user (target/ may sit under a
        // 0700 directory): else a copy in the test's directory.
        let probe = rl.as_user(&rl.bin).arg("--version").output();
        if !probe.is_ok_and(|o| o.status.success()) {
            let copy = rl.path("bin/strata");
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::copy(&rl.bin, &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
            rl.give(&rl.path("bin"));
            rl.bin = copy;
        }
        Some(rl)
    }

    /// The test's directory (owned by the user, mode 0700).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// The default store: `$XDG_DATA_HOME/strata`.
    pub fn store(&self) -> PathBuf {
        self.path("data/strata")
    }

    /// Makes `path` (recursively) the user's, as files the user wrote.
    pub fn give(&self, path: &Path) {
        let st = Command::new("chown")
            .args(["-R", &format!("{}:{}", self.user.uid, self.user.gid)])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "chown -R {}", path.display());
    }

    /// `program` as the user: its uid and gid (no supplementary groups), a
    /// clean environment of the test's directories, working directory
    /// `home`.
    pub fn as_user(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.uid(self.user.uid)
            .gid(self.user.gid)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", self.path("home"))
            .env("USER", &self.user.name)
            .env("LOGNAME", &self.user.name)
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("TMPDIR", self.path("tmp"))
            .env("RUST_BACKTRACE", "1")
            .current_dir(self.path("home"))
            .stdin(Stdio::null());
        c
    }

    /// strata as the user on the default store.
    pub fn cmd(&self) -> Command {
        self.as_user(&self.bin)
    }

    /// strata as the user on the store at `root` (`--root`).
    pub fn cmd_at(&self, root: &Path) -> Command {
        let mut c = self.cmd();
        c.arg("--root").arg(root);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run strata")
    }

    /// strata `args` as the user; must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_out(self.run(args), args).0
    }

    /// strata `args` as the user; must succeed; (stdout, stderr).
    pub fn ok2(&self, args: &[&str]) -> (String, String) {
        self.ok_out(self.run(args), args)
    }

    /// strata `args` as the user on the store `root`; must succeed; stdout.
    pub fn ok_at(&self, root: &Path, args: &[&str]) -> String {
        self.ok_out(self.cmd_at(root).args(args).output().expect("run strata"), args)
            .0
    }

    /// strata `args` as the user with `SOURCE_DATE_EPOCH`; must succeed; stdout.
    pub fn ok_epoch(&self, epoch: &str, args: &[&str]) -> String {
        let o = self
            .cmd()
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(args)
            .output()
            .expect("run strata");
        self.ok_out(o, args).0
    }

    /// strata `args` as the user; must fail; stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "strata {args:?} as {} unexpectedly succeeded: {}",
            self.user.name,
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Insists that `o`, a run of strata `args` as the user, succeeded;
    /// (stdout, stderr).
    pub fn ok_out(&self, o: Output, args: &[&str]) -> (String, String) {
        assert!(
            o.status.success(),
            "strata {args:?} as {} failed ({}):\nstdout: {}\nstderr: {}",
            self.user.name,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// A build context `home/NAME` with `files` (path, content), the user's.
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path("home").join(name);
        for (f, content) in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        self.give(&dir);
        dir
    }

    /// The busybox root filesystem (Debian's busybox-static, every file
    /// root's) as a reproducible tar the user can read, or None (said).
    /// A tar rather than the directory: the user's namespace sees host
    /// root's files as nobody's, a tar header says 0.
    pub fn busybox_tar(&self) -> Option<PathBuf> {
        let tar = self.path("busybox.tar");
        if tar.exists() {
            return Some(tar);
        }
        if !Path::new("/bin/busybox").exists() {
            eprintln!("skipped: /bin/busybox not found (apt-get install busybox-static)");
            return None;
        }
        let rootfs = self.path("busybox-rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let st = Command::new("bash").arg(script).arg(&rootfs).status().unwrap();
        assert!(st.success(), "busybox-rootfs.sh");
        let st = Command::new("tar")
            .args([
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--sort=name",
                "--mtime=@0",
                "-C",
            ])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the busybox rootfs");
        self.give(&tar);
        Some(tar)
    }

    /// `busybox:latest` imported by the user into the default store (as
    /// [`super::Env::import_busybox`] makes it, from the tar); (image ID,
    /// stderr). None without busybox.
    pub fn import_busybox(&self) -> Option<(String, String)> {
        let tar = self.busybox_tar()?;
        let tar = tar.to_str().unwrap();
        let (out, err) = self.ok2(&import_args(tar));
        Some((out.trim().to_string(), err))
    }

    /// Rootless podman for this user, its storage under the test's
    /// directory, or None (with the skip line) when it does not run here.
    pub fn podman(&self) -> Option<Podman<'_>> {
        if !tool_exists("podman") {
            eprintln!("skipped: podman is not installed (scripts/deps.d/rootless.sh)");
            return None;
        }
        // The host fixes (cgroup hybrid mode, rlimits) and a containers.conf
        // (netns none, cgroupfs, file events) from the scripts the other
        // podman tests use.
        let conf_dir = self.path("podman-conf");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/podman-env.sh");
        let o = Command::new("bash").arg(script).arg(&conf_dir).output().unwrap();
        if !o.status.success() {
            eprintln!("skipped: podman-env.sh failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        self.give(&conf_dir);
        let conf = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        let tar = self.busybox_tar()?;
        let mut why = Vec::new();
        for driver in ["overlay", "vfs"] {
            let p = Podman {
                rl: self,
                conf: conf.clone(),
                driver,
                root: self.path(&format!("home/podman-{driver}")),
            };
            let imported = p.run(&["import", "-q", tar.to_str().unwrap(), "strata-rootless-probe:1"]);
            let ran = imported.status.success().then(|| {
                p.run(&[
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "strata-rootless-probe:1",
                    "/bin/true",
                ])
            });
            match ran {
                Some(o) if o.status.success() => {
                    let _ = p.run(&["rmi", "strata-rootless-probe:1"]);
                    return Some(p);
                }
                Some(o) => why.push(format!(
                    "{driver}: podman run: {}",
                    super::differential::text(&o).trim()
                )),
                None => why.push(format!(
                    "{driver}: podman import: {}",
                    super::differential::text(&imported).trim()
                )),
            }
        }
        eprintln!("skipped: rootless podman does not run here: {}", why.join("; "));
        None
    }

    /// Pids and user namespaces of the pause processes this test's
    /// stores (any `rootless.pid` up to three levels below the test's
    /// directory) and podman hold.
    fn pauses(&self) -> Vec<(i32, String)> {
        let mut pids = Vec::new();
        let mut dirs = vec![(self.dir().to_path_buf(), 0)];
        while let Some((d, depth)) = dirs.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() && depth < 3 {
                    dirs.push((e.path(), depth + 1));
                } else if t.is_file()
                    && e.file_name() == "rootless.pid"
                    && let Some(pid) = live_pid(&e.path(), true)
                {
                    pids.push(pid);
                }
            }
        }
        if let Some(pid) = live_pid(&self.path("run/libpod/tmp/pause.pid"), false) {
            pids.push(pid);
        }
        pids.into_iter()
            .filter(|&pid| proc_uid(pid) == Some(self.user.uid))
            .filter_map(|pid| Some((pid, user_ns(pid)?)))
            .collect()
    }
}

/// strata's `import` arguments for the busybox base from `tar`.
pub fn import_args(tar: &str) -> Vec<&str> {
    vec![
        "import",
        "--change",
        BASE_CHANGES[0],
        "--change",
        BASE_CHANGES[1],
        tar,
        "busybox:latest",
    ]
}

/// The pid in a pid file (`PID` or strata's `PID STARTTIME`, the start
/// time checked when `with_start`) when that process lives.
fn live_pid(file: &Path, with_start: bool) -> Option<i32> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    if with_start && f.next().and_then(|s| s.parse::<u64>().ok()) != fields.get(19).and_then(|s| s.parse().ok()) {
        return None;
    }
    Some(pid)
}

fn proc_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn user_ns(pid: i32) -> Option<String> {
    Some(
        std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .ok()?
            .to_string_lossy()
            .into_owned(),
    )
}

/// Live processes whose user namespace is one of `namespaces`.
fn processes_in(namespaces: &BTreeSet<String>) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| user_ns(pid).is_some_and(|ns| namespaces.contains(&ns)) && alive(pid))
        .collect()
}

/// The live pause process of the store at `store` (`rootless.pid`, its
/// start time checked), or None.
pub fn pause_pid(store: &Path) -> Option<i32> {
    live_pid(&store.join("rootless.pid"), true)
}

/// The live processes in the user namespace of `pid` (itself included).
pub fn processes_in_user_ns_of(pid: i32) -> Vec<i32> {
    let Some(ns) = user_ns(pid) else { return Vec::new() };
    let mut v = processes_in(&BTreeSet::from([ns]));
    v.sort();
    v
}

/// `pid`'s name, state, parent and command line (`/proc/PID/stat`'s and
/// `cmdline`), for messages.
pub fn describe_process(pid: i32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
        .unwrap_or_default();
    let head: Vec<&str> = stat.splitn(5, ' ').take(4).collect();
    format!("{} [{cmdline}]", head.join(" "))
}

/// The live processes of this world's user named `comm` (as
/// `/proc/PID/comm` has it) whose environment is this test's (its
/// `XDG_RUNTIME_DIR`): e.g. the pause processes its commands made.
impl Rootless {
    pub fn own_processes_named(&self, comm: &str) -> Vec<i32> {
        let marker = format!("XDG_RUNTIME_DIR={}", self.path("run").display());
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut v: Vec<i32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| proc_uid(pid) == Some(self.user.uid) && alive(pid))
            .filter(|&pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
            })
            .collect();
        v.sort();
        v
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            Some(!matches!(
                s[s.rfind(')')? + 1..].split_whitespace().next(),
                Some("Z") | Some("X")
            ))
        })
        .unwrap_or(false)
}

impl Drop for Rootless {
    fn drop(&mut self) {
        // Stop what the test's namespaces hold: the pause processes and
        // anything still in their user namespaces (a detached container,
        // a monitor), by pid; then remove the files as root.
        let pauses = self.pauses();
        let namespaces: BTreeSet<String> = pauses.iter().map(|(_, ns)| ns.clone()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = processes_in(&namespaces);
            let pause_left: Vec<i32> = pauses.iter().map(|(p, _)| *p).filter(|p| alive(*p)).collect();
            if left.is_empty() && pause_left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "rootless cleanup: processes still running after SIGKILL: {:?}",
                    left.iter().chain(&pause_left).collect::<Vec<_>>()
                );
                break;
            }
            for pid in left.iter().chain(&pause_left) {
                // SAFETY: a signal to a process of this test's namespaces.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("rootless cleanup: removing {}: {e}", path.display());
            }
        }
    }
}

/// Rootless podman as the test's user: `--root` under the test's `home`,
/// `--runroot` under its `run`, cgroupfs, file events, no network.
pub struct Podman<'a> {
    rl: &'a Rootless,
    conf: PathBuf,
    pub driver: &'static str,
    root: PathBuf,
}

impl Podman<'_> {
    pub fn cmd(&self) -> Command {
        let mut c = self.rl.as_user("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(self.rl.path("run/podman"))
            .args(["--storage-driver", self.driver])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run podman")
    }

    /// podman `args` as the user; must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "podman {args:?} as {} failed ({}):\n{}",
            self.rl.user.name,
            o.status,
            super::differential::text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The command line this podman is, for messages and the report.
    pub fn describe(&self) -> String {
        format!(
            "CONTAINERS_CONF={} podman --root {} --runroot {} --storage-driver {} --cgroup-manager cgroupfs --events-backend file",
            self.conf.display(),
            self.root.display(),
            self.rl.path("run/podman").display(),
            self.driver
        )
    }
}

/// `ls -ln` output without what differs between two builds of the same
/// image at different times: `total` lines and the date columns.
pub fn ls_ln_normalized(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with("total "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 9 && (f[0].len() == 10 || f[0].len() == 11) {
                // perms links uid gid size MON DAY TIME|YEAR name [-> target]
                let mut keep: Vec<&str> = f[..5].to_vec();
                keep.extend(&f[8..]);
                keep.join(" ")
            } else {
                l.trim_end().to_string()
            }
        })
        .collect()
}
