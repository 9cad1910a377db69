//! What the reliability campaigns (#16: crash_campaign, concurrency_campaign,
//! fault_campaign) share: a seeded PRNG, strata in its own process group
//! (so a kill reaches its children), and the store's consistency checks.

use std::path::Path;
use std::process::{Command, Stdio};

use super::Env;

/// A small PRNG (xorshift64*): random choices that a seed repeats.
pub struct Rng(u64);

impl Rng {
    /// A stream for `name` from the seed in the environment variable
    /// `seed_var` (else the clock); returns the stream and the seed.
    pub fn new(seed_var: &str, name: &str) -> (Rng, u64) {
        let seed = std::env::var(seed_var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        // Each name its own stream from one seed.
        let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        (Rng(h | 1), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A number from the environment variable `var`, else `default`.
pub fn env_number<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// strata with the store of `env`, reproducible times, in its own process
/// group (see [`kill_group`]), its output piped.
pub fn strata_group(env: &Env, args: &[String]) -> Command {
    let mut c = env.cmd();
    c.args(args)
        .env("SOURCE_DATE_EPOCH", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c
}

/// SIGKILL to the process group `pgid` (a process started by [`strata_group`]).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
}

pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Mount points under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&d))
        .collect()
}

/// `system check` of `env`'s store: its report when it found a problem.
pub fn check_problems(env: &Env) -> Option<String> {
    let o = env.run(&["system", "check"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status.success() && out.trim_end().ends_with("no problems") {
        return None;
    }
    Some(format!("{out}{}", String::from_utf8_lossy(&o.stderr)))
}
