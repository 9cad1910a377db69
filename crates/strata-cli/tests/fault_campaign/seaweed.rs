//! SeaweedFS (`weed mini`) for the fault campaign's S3-backed registry: on
//! fixed ports in a directory, so that it can be killed and started again
//! on the same data (a restart under a push).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY: &str = "strata-test-key";
pub const SECRET: &str = "strata-test-secret-0123456789";

pub struct Weed {
    child: Option<Child>,
    dir: PathBuf,
    ports: Vec<u16>,
}

/// A free port below 55000 (SeaweedFS's gRPC ports are +10000).
fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if p < 55000 {
            return p;
        }
    }
}

/// Seven free ports none of which is another's gRPC port (+10000): weed
/// refuses to start on such a set ("reserved for gRPC calculation", met in CI).
fn weed_ports() -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 7 {
        let p = free_port();
        let clashes = ports
            .iter()
            .any(|&q| q == p || q as u32 + 10000 == p as u32 || p as u32 + 10000 == q as u32);
        if !clashes {
            ports.push(p);
        }
    }
    ports
}

impl Weed {
    /// SeaweedFS in `dir`, or None (said) when `weed` is not installed.
    pub fn start(dir: &Path) -> Option<Weed> {
        if Command::new("weed").arg("version").output().is_err() {
            eprintln!("skipped: `weed` (SeaweedFS) is not installed (scripts/install-deps.sh)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let mut w = Weed {
            child: None,
            dir: dir.to_path_buf(),
            ports: weed_ports(),
        };
        w.spawn();
        Some(w)
    }

    pub fn s3_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3])
    }

    fn spawn(&mut self) {
        let p = &self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))
            .unwrap();
        let mut c = Command::new("weed");
        c.arg("mini")
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-dir={}", self.dir.display()))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-volume.port={}", p[1]))
            .arg(format!("-filer.port={}", p[2]))
            .arg(format!("-s3.port={}", p[3]))
            .arg(format!("-webdav.port={}", p[4]))
            .arg(format!("-admin.port={}", p[5]))
            .arg(format!("-debug.port={}", p[6]))
            .args([
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-bucket=registry",
            ])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        self.child = Some(c.spawn().expect("spawning weed"));
    }

    /// Waits until its S3 port accepts connections.
    pub fn wait_listening(&self) {
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.ports[3])).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "SeaweedFS does not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL to it and its children.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::common::campaign::kill_group(c.id());
            let _ = c.wait();
        }
        // Its ports free again before it starts on them.
        let t = Instant::now();
        while self.ports.iter().any(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok()) {
            assert!(t.elapsed() < Duration::from_secs(60), "SeaweedFS's ports stay taken");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Killed and started again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        log.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}
