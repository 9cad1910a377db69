//! Arbitrary strings never make a comparator panic, and every comparator is
//! a total order on what it accepts (reflexive, antisymmetric, transitive —
//! but for Maven, whose own order is not transitive), checked on random
//! strings, property-test style, with a fixed seed.

use std::cmp::Ordering;

use strata_vercmp::{Scheme, compare, is_valid};

const SCHEMES: [Scheme; 8] = [
    Scheme::Dpkg,
    Scheme::Apk,
    Scheme::Rpm,
    Scheme::Pep440,
    Scheme::SemVer,
    Scheme::Go,
    Scheme::Maven,
    Scheme::RubyGems,
];

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Characters versions are made of, plus some that they are not.
const ALPHABET: &[&str] = &[
    "0", "1", "2", "9", "0", "1", ".", ".", "-", "-", "_", "~", "^", "+", ":", "!", "v", "a", "b", "c", "p", "r", "rc",
    "alpha", "beta", "dev", "post", "pre", "sp", "snapshot", "ga", "git", "A", "Z", " ", "\t", "\n", "\0", "é", "ſ",
    "\u{a0}", "\u{3000}", "🦀", "'", "\"", "%", "/", "=", "<", "*",
];

fn random_string(r: &mut Rng) -> String {
    let len = match r.below(10) {
        0 => 0,
        1..=7 => 1 + r.below(12),
        _ => 10 + r.below(40),
    };
    (0..len).map(|_| ALPHABET[r.below(ALPHABET.len())]).collect()
}

#[test]
fn random_strings_never_panic() {
    let mut r = Rng(0x5EED);
    let strings: Vec<String> = (0..4000).map(|_| random_string(&mut r)).collect();
    for scheme in SCHEMES {
        for pair in strings.chunks(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let valid = is_valid(scheme, a) && is_valid(scheme, b);
            match compare(scheme, a, b) {
                Ok(_) => assert!(valid, "{scheme}: compared {a:?} and {b:?}, which are not both valid"),
                Err(e) => {
                    assert!(!valid, "{scheme}: refused {a:?} / {b:?}: {e}");
                    assert!(e.version == *a || e.version == *b);
                }
            }
        }
    }
}

#[test]
fn huge_inputs_are_fine() {
    let digits = "9".repeat(100_000);
    let dots = "1.".repeat(20_000) + "1";
    let dashes = "1-".repeat(20_000) + "1";
    for scheme in SCHEMES {
        for s in [&digits, &dots, &dashes] {
            if let Ok(o) = compare(scheme, s, s) {
                assert_eq!(o, Ordering::Equal, "{scheme}");
            }
        }
    }
}

/// Versions likely to be valid in most schemes: random strings from a
/// version-ish alphabet, kept when the scheme accepts them.
fn valid_versions(scheme: Scheme, r: &mut Rng, n: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "0", "1", "2", "10", "01", "00", ".", ".", "-", "~", "^", "+", "_", "a", "b", "rc", "alpha", "beta", "dev",
        "post", "pre", "p", "r", "sp", "ga", "git", "A", "-r1", "_p1",
    ];
    let mut out = Vec::new();
    let mut tries = 0;
    while out.len() < n && tries < n * 200 {
        tries += 1;
        let mut s = match scheme {
            Scheme::Go => "v1.".to_owned(),
            Scheme::SemVer => "1.2.".to_owned(),
            _ => String::new(),
        };
        s += ["0", "1", "2", "10"][r.below(4)];
        for _ in 0..r.below(6) {
            s += PIECES[r.below(PIECES.len())];
        }
        if is_valid(scheme, &s) {
            out.push(s);
        }
    }
    out
}

#[test]
fn comparators_are_total_orders() {
    let mut r = Rng(0x0DE5);
    for scheme in SCHEMES {
        let vs = valid_versions(scheme, &mut r, 300);
        assert!(vs.len() >= 100, "{scheme}: only {} valid versions drawn", vs.len());
        let cmp = |a: &String, b: &String| compare(scheme, a, b).unwrap();
        for a in &vs {
            assert_eq!(cmp(a, a), Ordering::Equal, "{scheme}: {a:?} against itself");
        }
        for (i, a) in vs.iter().enumerate() {
            for b in &vs[i + 1..] {
                assert_eq!(
                    cmp(a, b),
                    cmp(b, a).reverse(),
                    "{scheme}: {a:?} / {b:?} not antisymmetric"
                );
            }
        }
        if scheme == Scheme::Maven {
            // Maven's own order is not transitive (tests/known.rs shows a
            // cycle), so it cannot be sorted.
            continue;
        }
        // Transitivity: after sorting, every earlier element is <= every later one.
        let mut sorted = vs.clone();
        sorted.sort_by(cmp);
        for (i, a) in sorted.iter().enumerate() {
            for b in &sorted[i + 1..] {
                assert_ne!(
                    cmp(a, b),
                    Ordering::Greater,
                    "{scheme}: sorted order broken at {a:?} > {b:?}"
                );
            }
        }
    }
}
