//! Running a reference implementation over many pairs at once and checking
//! that strata-vercmp agrees with every answer.
//!
//! Pairs travel to the oracle in a file, one pair a line, each string
//! hex-encoded (`HEXA,HEXB`), so any character survives; the oracle prints
//! one line per pair: `1` or `0` for each side's validity, then `<`, `=`,
//! `>`, or `x` when a side is invalid.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_vercmp::{Scheme, compare, is_valid};

/// splitmix64: small, deterministic, good enough to draw test cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// What the oracle said about one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub a_valid: bool,
    pub b_valid: bool,
    /// `None` when a side is invalid.
    pub order: Option<Ordering>,
}

pub fn parse_verdict(line: &str) -> Verdict {
    let b = line.trim_end().as_bytes();
    assert_eq!(b.len(), 3, "oracle line {line:?}");
    let order = match b[2] {
        b'<' => Some(Ordering::Less),
        b'=' => Some(Ordering::Equal),
        b'>' => Some(Ordering::Greater),
        b'x' => None,
        _ => panic!("oracle line {line:?}"),
    };
    Verdict {
        a_valid: b[0] == b'1',
        b_valid: b[1] == b'1',
        order,
    }
}

pub fn write_pairs(dir: &Path, pairs: &[(String, String)]) -> PathBuf {
    let path = dir.join("pairs.txt");
    let text: String = pairs.iter().map(|(a, b)| format!("{},{}\n", hex(a), hex(b))).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the oracle (which gets the pairs file as its last argument) and
/// returns one verdict per pair.
pub fn run_oracle(mut cmd: Command, pairs_file: &Path, n: usize) -> Vec<Verdict> {
    let out = cmd.arg(pairs_file).output().expect("oracle runs");
    assert!(
        out.status.success(),
        "oracle {cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let verdicts: Vec<Verdict> = stdout.lines().map(parse_verdict).collect();
    assert_eq!(verdicts.len(), n, "oracle answered {} of {n} pairs", verdicts.len());
    verdicts
}

/// Checks every pair against the oracle's verdict; panics listing the
/// disagreements (each pair printed). Returns how many pairs both sides
/// found valid and compared.
pub fn assert_agrees(scheme: Scheme, oracle: &str, pairs: &[(String, String)], verdicts: &[Verdict]) -> usize {
    let mut bad = Vec::new();
    let mut compared = 0;
    for ((a, b), v) in pairs.iter().zip(verdicts) {
        let (va, vb) = (is_valid(scheme, a), is_valid(scheme, b));
        if (va, vb) != (v.a_valid, v.b_valid) {
            bad.push(format!(
                "{a:?} vs {b:?}: validity ours ({va}, {vb}), {oracle} ({}, {})",
                v.a_valid, v.b_valid
            ));
            continue;
        }
        let ours = compare(scheme, a, b);
        match (v.order, &ours) {
            (Some(want), Ok(got)) if want == *got => compared += 1,
            (None, Err(_)) => {}
            _ => bad.push(format!("{a:?} vs {b:?}: ours {ours:?}, {oracle} {:?}", v.order)),
        }
    }
    let total = bad.len();
    bad.truncate(60);
    assert!(
        total == 0,
        "{scheme}: {total} disagreements with {oracle} (first {}):\n{}",
        bad.len(),
        bad.join("\n")
    );
    compared
}

/// The first of `candidates` that exists and runs (`ARG` succeeds).
pub fn find_tool(candidates: &[&str], arg: &str) -> Option<String> {
    candidates
        .iter()
        .find(|c| Command::new(c).arg(arg).output().is_ok_and(|o| o.status.success()))
        .map(|c| c.to_string())
}
