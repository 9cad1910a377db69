//! Deterministic generators of version pairs, one grammar per scheme.
//!
//! Each scheme draws a pool of versions from grammar pieces that hit its
//! edge cases (epochs, tildes, carets, letters and case, leading zeros,
//! pre-releases, numbers past 32, 53 and 64 bits, empty parts, stray
//! characters), then pairs them: a version with a small mutation of itself
//! (most pairs: that is where orderings are subtle), with a respelling,
//! with itself, and with an unrelated version from the pool.

use crate::harness::Rng;
use strata_vercmp::{Scheme, is_valid};

/// Numbers that sit on the edges implementations care about.
const BOUNDARY_NUMBERS: &[&str] = &[
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "999999999",
    "1000000000",
    "999999999999999999",
    "1000000000000000000",
    "9007199254740991",
    "9007199254740990",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "18446744073709551617",
    "20191109021931",
    "20240101",
];

/// A decimal number: mostly small, sometimes with leading zeros, sometimes
/// long or on a boundary. `max_digits` caps long ones (0: no long ones).
pub fn number(r: &mut Rng, max_digits: usize, leading_zeros: bool) -> String {
    match r.below(20) {
        0..=8 => r.below(10).to_string(),
        9..=11 => (10 + r.below(90)).to_string(),
        12 => (100 + r.below(9900)).to_string(),
        13 | 14 if leading_zeros => format!("{}{}", "0".repeat(1 + r.below(3)), r.below(20)),
        15 if max_digits >= 20 => {
            let len = 10 + r.below(max_digits - 9);
            let mut s = (1 + r.below(9)).to_string();
            for _ in 1..len {
                s.push(char::from(b'0' + r.below(10) as u8));
            }
            s
        }
        16 if max_digits >= 20 => r.pick(BOUNDARY_NUMBERS).to_owned(),
        17 if max_digits >= 20 && leading_zeros => "0".repeat(1 + r.below(25)),
        _ => r.below(4).to_string(),
    }
}

/// Pairs drawn from `pool` until `ordered` of them are valid on both sides
/// by strata-vercmp's own verdict; of the others (a side invalid), two in
/// five are kept, so that refusals are checked against the reference as
/// well without having it spend most of its time on them.
pub fn pairs(
    r: &mut Rng,
    scheme: Scheme,
    pool: &[String],
    ordered: usize,
    mutate: &dyn Fn(&mut Rng, &str) -> String,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(ordered * 3 / 2);
    let mut valid = 0;
    while valid < ordered {
        let a = pool[r.below(pool.len())].clone();
        let b = match r.below(20) {
            0..=8 => mutate(r, &a),
            9..=11 => {
                let m = mutate(r, &a);
                mutate(r, &m)
            }
            12 | 13 => a.clone(),
            14 => respell(r, &a),
            _ => pool[r.below(pool.len())].clone(),
        };
        if is_valid(scheme, &a) && is_valid(scheme, &b) {
            valid += 1;
        } else if !r.chance(40) {
            continue;
        }
        out.push(if r.chance(50) { (a, b) } else { (b, a) });
    }
    out
}

/// The same version written differently: case changed, or zeros added in
/// front of a number.
fn respell(r: &mut Rng, s: &str) -> String {
    if r.chance(50) {
        s.chars()
            .map(|c| {
                if r.chance(50) {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    } else {
        let runs = digit_runs(s);
        if runs.is_empty() {
            return s.to_owned();
        }
        let (start, _) = runs[r.below(runs.len())];
        format!("{}0{}", &s[..start], &s[start..])
    }
}

/// (start, end) of each run of ASCII digits.
fn digit_runs(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// A generic small edit, using `pieces` for insertions and `num` for new
/// numbers.
pub fn mutate_with(r: &mut Rng, s: &str, pieces: &[&str], num: &dyn Fn(&mut Rng) -> String) -> String {
    let boundaries: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
    let at = |r: &mut Rng| boundaries[r.below(boundaries.len())];
    match r.below(12) {
        0..=2 => {
            let runs = digit_runs(s);
            if runs.is_empty() {
                return format!("{s}{}", num(r));
            }
            let (a, b) = runs[r.below(runs.len())];
            format!("{}{}{}", &s[..a], num(r), &s[b..])
        }
        3 => {
            // Bump the last digit of a number up or down.
            let runs = digit_runs(s);
            let Some(&(_, end)) = runs.get(r.below(runs.len().max(1))) else {
                return s.to_owned();
            };
            let d = s.as_bytes()[end - 1] - b'0';
            let nd = if r.chance(50) { (d + 1) % 10 } else { (d + 9) % 10 };
            format!("{}{}{}", &s[..end - 1], nd, &s[end..])
        }
        4..=6 => format!("{s}{}", r.pick(pieces)),
        7 | 8 => {
            let i = at(r);
            format!("{}{}{}", &s[..i], r.pick(pieces), &s[i..])
        }
        9 => {
            // Delete one character.
            if boundaries.len() < 2 {
                return s.to_owned();
            }
            let k = r.below(boundaries.len() - 1);
            format!("{}{}", &s[..boundaries[k]], &s[boundaries[k + 1]..])
        }
        10 => {
            // Cut the end off.
            let i = at(r);
            s[..i].to_owned()
        }
        _ => respell(r, s),
    }
}

/// A string made of `count` pieces from `pieces` (or numbers, one in three).
pub fn run_of(r: &mut Rng, count: usize, pieces: &[&str], num: &dyn Fn(&mut Rng) -> String) -> String {
    (0..count)
        .map(|_| {
            if r.chance(33) {
                num(r)
            } else {
                r.pick(pieces).to_owned()
            }
        })
        .collect()
}

// ---- dpkg ----

const DPKG_PIECES: &[&str] = &[
    ".",
    ".",
    "+",
    "~",
    "~",
    "-",
    ":",
    "a",
    "b",
    "z",
    "A",
    "Z",
    "rc",
    "beta",
    "dfsg",
    "git",
    "ubuntu",
    "really",
    "deb",
    "bpo",
    "~rc1",
    "~~",
    "~beta2",
    "+dfsg1",
    "+git20200101.abcdef",
    "+b1",
    "build",
    "1",
    "0",
    "00",
];
const DPKG_NOISE: &[&str] = &["_", "@", " ", "é", "!", "%", "/", "\t", "-", ":", ""];

pub fn dpkg_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 30, true);
    let mut s = String::new();
    if r.chance(25) {
        s += r.pick(&[
            "0",
            "1",
            "2",
            "00",
            "10",
            "+1",
            "2147483647",
            "2147483648",
            "a",
            "",
            "1a",
            " -0",
            "007",
        ]);
        s += ":";
    }
    if r.chance(92) {
        s += &num(r);
    } else {
        s += r.pick(&["a", "~", ".", "+", "Z"]);
    }
    let n = r.below(6);
    s += &run_of(r, n, DPKG_PIECES, &num);
    if r.chance(50) {
        s += "-";
        let n = 1 + r.below(3);
        s += &run_of(
            r,
            n,
            &["ubuntu", "build", "deb12u", "~", "+b", ".", "+", "~bpo11+1", "a", "~~"],
            &num,
        );
    }
    if r.chance(6) {
        let i = (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .nth(r.below(s.chars().count() + 1))
            .unwrap();
        s.insert_str(i, r.pick(DPKG_NOISE));
    }
    if r.chance(3) {
        s = format!("  {s} ");
    }
    dpkg_argv_safe(s)
}

/// dpkg's command line takes an argument starting with `-` for an option,
/// and an argument cannot hold a NUL: such strings cannot be asked.
fn dpkg_argv_safe(s: String) -> String {
    let s = s.replace('\0', "");
    if s.starts_with('-') { format!("0{s}") } else { s }
}

pub fn dpkg_mutate(r: &mut Rng, s: &str) -> String {
    dpkg_argv_safe(mutate_with(r, s, DPKG_PIECES, &|r| number(r, 30, true)))
}

// ---- apk ----

const APK_SUFFIXES: &[&str] = &["_alpha", "_beta", "_pre", "_rc", "_cvs", "_svn", "_git", "_hg", "_p"];
const APK_NOISE: &[&str] = &[
    "_foo",
    "_",
    "_pre_",
    "_P",
    "_alpha_",
    "A",
    "~",
    "~ABC",
    "~1234xbcd",
    "-",
    "-R1",
    "-r1-r2",
    "-r",
    "..",
    "1a1",
    "-r1.1",
];
const APK_PIECES: &[&str] = &[
    ".",
    "a",
    "b",
    "z",
    "_alpha",
    "_beta",
    "_pre",
    "_rc",
    "_p",
    "_git",
    "_cvs",
    "_svn",
    "_hg",
    "-r",
    "-r0",
    "-r1",
    "~",
    "~abc123",
    "~deadbeef",
    "~1234x",
    "_rc1",
    "_p2",
    ".0",
    "A",
    "-",
    "_foo",
    "bc",
    "_alpha1",
    "_p1",
    "-r2",
];

pub fn apk_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 24, true);
    let mut s = if r.chance(98) {
        num(r)
    } else {
        r.pick(&["", "a", ".1", "_pre1", "-r1", "v1"]).to_owned()
    };
    for _ in 0..r.below(4) {
        s += ".";
        s += &num(r);
    }
    if r.chance(20) {
        s += r.pick(&["a", "b", "c", "z", "x", "p"]);
    }
    for _ in 0..r.below(3) {
        if r.chance(70) {
            s += r.pick(APK_SUFFIXES);
            if r.chance(60) {
                s += &num(r);
            }
        }
    }
    if r.chance(15) {
        s += "~";
        s += r.pick(&["1234abcd", "0", "deadbeef", "f", "abc", "0123456789abcdef"]);
    }
    if r.chance(40) {
        s += "-r";
        s += &num(r);
    }
    if r.chance(10) {
        let i = r.below(s.len() + 1);
        if s.is_char_boundary(i) {
            s.insert_str(i, r.pick(APK_NOISE));
        }
    }
    s
}

pub fn apk_mutate(r: &mut Rng, s: &str) -> String {
    mutate_with(r, s, APK_PIECES, &|r| number(r, 24, true))
}

// ---- rpm ----

const RPM_PIECES: &[&str] = &[
    ".",
    ".",
    "_",
    "+",
    "~",
    "~",
    "^",
    "^",
    "-",
    "a",
    "b",
    "Z",
    "rc",
    "git",
    "el8",
    "fc39",
    "~beta",
    "^20230101git",
    "~rc1",
    "el9_3",
    "..",
    "%",
    " ",
    "é",
    "~~",
    "^^",
    "1",
    "0",
    "00",
    "alpha",
    "post",
];

pub fn rpm_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 40, true);
    let mut s = String::new();
    if r.chance(20) {
        s += r.pick(&["0", "1", "2", "00", "10", "", "4294967296", "a"]);
        s += ":";
    }
    if r.chance(90) {
        s += &num(r);
    }
    let n = r.below(6);
    s += &run_of(r, n, RPM_PIECES, &num);
    if r.chance(60) {
        s += "-";
        let n = 1 + r.below(4);
        s += &run_of(
            r,
            n,
            &[".", "el8", "fc39", "el9_3", "~", "^", "rc", "git", "a", ".1", "_"],
            &num,
        );
    }
    if s.is_empty() && r.chance(50) {
        "1".to_owned()
    } else {
        s
    }
}

pub fn rpm_mutate(r: &mut Rng, s: &str) -> String {
    mutate_with(r, s, RPM_PIECES, &|r| number(r, 40, true))
}

// ---- PEP 440 ----

const PEP_LABELS: &[&str] = &[
    "a", "alpha", "b", "beta", "c", "rc", "pre", "preview", "A", "ALPHA", "Rc", "RC", "Beta", "PREVIEW",
];
const PEP_SEPS: &[&str] = &["", "", "", ".", "-", "_"];
const PEP_PIECES: &[&str] = &[
    ".",
    "-",
    "_",
    "a",
    "b",
    "rc",
    "c",
    "alpha",
    "beta",
    "pre",
    "preview",
    "post",
    "rev",
    "r",
    "dev",
    ".dev",
    ".post",
    "-1",
    "+",
    "+local",
    "+ubuntu.1",
    "+1.2",
    "+a-b_c",
    "!",
    "1!",
    "v",
    " ",
    ".0",
    "DEV",
    "Post",
    "RC",
    "+ABC",
    "+abc..1",
    "+0",
    "+00",
    "++",
    "..",
    "é",
];

pub fn pep440_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 30, true);
    let mut s = String::new();
    if r.chance(8) {
        s += r.pick(&[" ", "  ", "\t", "\n", "\u{a0}", "\u{3000}", "\x0c", "\u{2028}"]);
    }
    if r.chance(10) {
        s += r.pick(&["v", "V"]);
    }
    if r.chance(12) {
        s += &num(r);
        s += "!";
    }
    s += &num(r);
    for _ in 0..r.below(4) {
        s += ".";
        s += &num(r);
    }
    if r.chance(40) {
        s += r.pick(PEP_SEPS);
        s += r.pick(PEP_LABELS);
        s += r.pick(PEP_SEPS);
        if r.chance(70) {
            s += &num(r);
        }
    }
    if r.chance(30) {
        if r.chance(30) {
            s += "-";
            s += &num(r);
        } else {
            s += r.pick(PEP_SEPS);
            s += r.pick(&["post", "rev", "r", "POST", "Rev", "R"]);
            s += r.pick(PEP_SEPS);
            if r.chance(70) {
                s += &num(r);
            }
        }
    }
    if r.chance(30) {
        s += r.pick(PEP_SEPS);
        s += r.pick(&["dev", "DEV", "Dev"]);
        s += r.pick(PEP_SEPS);
        if r.chance(70) {
            s += &num(r);
        }
    }
    if r.chance(20) {
        s += "+";
        let n = 1 + r.below(4);
        for i in 0..n {
            if i > 0 {
                s += r.pick(&[".", "-", "_"]);
            }
            s += &if r.chance(50) {
                num(r)
            } else {
                r.pick(&["ubuntu", "abc", "Z", "a1", "1a", "x", "deadbeef"]).to_owned()
            };
        }
    }
    if r.chance(8) {
        s += r.pick(&[" ", "\n", " \t", "\u{a0}", "\u{205f}"]);
    }
    s
}

pub fn pep440_mutate(r: &mut Rng, s: &str) -> String {
    mutate_with(r, s, PEP_PIECES, &|r| number(r, 30, true))
}

// ---- SemVer ----

const SEMVER_IDS: &[&str] = &[
    "alpha",
    "beta",
    "rc",
    "0",
    "1",
    "2",
    "10",
    "11",
    "01",
    "a1",
    "1a",
    "-",
    "--",
    "x-y",
    "A",
    "Z",
    "a",
    "b",
    "alpha1",
    "beta-2",
    "SNAPSHOT",
    "9007199254740991",
    "9007199254740990",
    "123456789012",
    "0a",
    "00a",
];

/// npm's semver refuses main numbers above 2^53 - 1 and compares larger
/// numeric pre-release identifiers as floating point; SemVer (and
/// strata-vercmp) does neither, so the numbers drawn stay below that.
fn semver_number(r: &mut Rng) -> String {
    let n = number(r, 0, false);
    if r.chance(3) {
        r.pick(&["9007199254740991", "4294967296", "2147483648", "01", "00"])
            .to_owned()
    } else {
        n
    }
}

fn semver_tail(r: &mut Rng, s: &mut String) {
    if r.chance(45) {
        s.push('-');
        let n = 1 + r.below(4);
        for i in 0..n {
            if i > 0 {
                s.push('.');
            }
            if r.chance(40) {
                *s += &semver_number(r);
            } else {
                *s += r.pick(SEMVER_IDS);
            }
        }
    }
    if r.chance(20) {
        s.push('+');
        *s += r.pick(&["build", "001", "sha.abc", "b-1.2", "x.y.z", "", "a..b", "incompatible"]);
    }
}

pub fn semver_version(r: &mut Rng) -> String {
    let mut s = String::new();
    if r.chance(5) {
        s += r.pick(&[" ", "  ", "=", "V", "vv", "\t"]);
    }
    if r.chance(15) {
        s.push('v');
    }
    let parts = match r.below(20) {
        0 => 2,
        1 => 4,
        _ => 3,
    };
    let nums: Vec<String> = (0..parts).map(|_| semver_number(r)).collect();
    s += &nums.join(".");
    semver_tail(r, &mut s);
    if r.chance(4) {
        s += r.pick(&[" ", "\n", "-", "+", "."]);
    }
    s
}

const SEMVER_PIECES: &[&str] = &[
    "-alpha", "-beta.1", "-rc.1", ".1", ".0", "-0", "+build", "-", ".", "+", "-a.b", "-01", "-1a", "a", "-x-y", "v",
];

pub fn semver_mutate(r: &mut Rng, s: &str) -> String {
    mutate_with(r, s, SEMVER_PIECES, &semver_number)
}

// ---- Go ----

const GO_PSEUDO: &[&str] = &[
    "-20191109021931-daa7c04131f5",
    "-0.20191109021931-daa7c04131f5",
    "-0.20200101000000-000000000000",
    "-pre.0.20191109021931-daa7c04131f5",
    "-20230101120000-abcdefabcdef",
];

pub fn go_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 40, false);
    let mut s = String::new();
    if r.chance(80) {
        s.push('v');
    }
    let parts = match r.below(10) {
        0 => 1,
        1 => 2,
        _ => 3,
    };
    let nums: Vec<String> = (0..parts).map(|_| num(r)).collect();
    s += &nums.join(".");
    if r.chance(20) {
        s += r.pick(GO_PSEUDO);
    } else {
        semver_tail(r, &mut s);
    }
    if r.chance(10) {
        s += "+incompatible";
    }
    s
}

pub fn go_mutate(r: &mut Rng, s: &str) -> String {
    let mut pieces = SEMVER_PIECES.to_vec();
    pieces.extend_from_slice(GO_PSEUDO);
    pieces.push("+incompatible");
    mutate_with(r, s, &pieces, &|r| number(r, 40, true))
}

// ---- Maven ----

const MAVEN_QUALIFIERS: &[&str] = &[
    "alpha",
    "a",
    "beta",
    "b",
    "milestone",
    "m",
    "rc",
    "cr",
    "snapshot",
    "ga",
    "final",
    "release",
    "sp",
    "SP",
    "RC",
    "Final",
    "SNAPSHOT",
    "RELEASE",
    "GA",
    "foo",
    "xyz",
    "abc",
    "jre",
    "android",
    "M",
    "A",
    "B",
    "c",
    "z",
    "_",
    "+",
    "alpha-",
    "b.",
    "sp-1",
    "",
];

pub fn maven_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 25, true);
    let mut s = num(r);
    if r.chance(5) {
        s = r.pick(MAVEN_QUALIFIERS).to_owned();
    }
    for _ in 0..r.below(6) {
        match r.below(10) {
            0..=3 => {
                s += ".";
                s += &num(r);
            }
            4 => {
                s += "-";
                s += &num(r);
            }
            5 | 6 => {
                s += r.pick(&["-", ".", "", "-", "_"]);
                s += r.pick(MAVEN_QUALIFIERS);
            }
            7 => {
                s += r.pick(&["", "-", "."]);
                s += r.pick(&["a", "b", "m", "rc", "alpha", "beta", "c"]);
                s += &num(r);
            }
            8 => s += r.pick(&[".", "-", "..", "--", ".-", "-."]),
            _ => {
                s += r.pick(&["-", "."]);
                s += r.pick(MAVEN_QUALIFIERS);
                s += r.pick(&["-", "."]);
                s += &num(r);
            }
        }
    }
    s
}

pub fn maven_mutate(r: &mut Rng, s: &str) -> String {
    let mut pieces: Vec<&str> = MAVEN_QUALIFIERS.to_vec();
    pieces.extend_from_slice(&[".", "-", ".0", "-0", ".0.0", "-1", ".1", "0", "00"]);
    mutate_with(r, s, &pieces, &|r| number(r, 25, true))
}

// ---- RubyGems ----

const GEM_SEGMENTS: &[&str] = &[
    "a", "b", "rc", "pre", "alpha", "beta", "rc1", "1a", "b2", "Z", "A", "x0", "0a", "p1",
];

pub fn gem_version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| number(r, 40, true);
    let mut s = String::new();
    if r.chance(5) {
        s += r.pick(&[" ", "\t", "\n ", "\x0b"]);
    }
    if r.chance(2) {
        return s;
    }
    s += &num(r);
    for _ in 0..r.below(5) {
        s.push('.');
        s += &if r.chance(70) {
            num(r)
        } else {
            r.pick(GEM_SEGMENTS).to_owned()
        };
    }
    if r.chance(20) {
        s.push('-');
        let n = 1 + r.below(3);
        for i in 0..n {
            if i > 0 {
                s.push('.');
            }
            s += &if r.chance(40) {
                num(r)
            } else {
                r.pick(&["pre", "rc", "a-b", "1", "x", "-", "beta-1"]).to_owned()
            };
        }
    }
    if r.chance(5) {
        s += r.pick(&[" ", "\n", "  ", ".", "-", "..1", "_1", "é"]);
    }
    s
}

pub fn gem_mutate(r: &mut Rng, s: &str) -> String {
    let mut pieces: Vec<&str> = GEM_SEGMENTS.iter().map(|_| ".").collect();
    pieces.extend_from_slice(GEM_SEGMENTS);
    pieces.extend_from_slice(&[".0", ".a", "-1", "-pre", ".pre", "-", "..", "0", ".rc1"]);
    mutate_with(r, s, &pieces, &|r| number(r, 40, true))
}

/// A pool of `n` versions from `gen` (duplicates are fine).
pub fn pool(r: &mut Rng, n: usize, generator: fn(&mut Rng) -> String) -> Vec<String> {
    (0..n).map(|_| generator(r)).collect()
}
