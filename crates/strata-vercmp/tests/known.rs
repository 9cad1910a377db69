//! Known tricky cases, scheme by scheme, with the reference's answer (each
//! also checked by hand against the reference implementation the oracle
//! tests use), and the places where strata-vercmp deliberately differs.

use std::cmp::Ordering;

use strata_vercmp::{Scheme, VersionError, compare, is_valid};

/// Checks a chain like `"1.0~rc1 < 1.0 = 1.0-0 < 1.0a"`: every adjacent pair
/// compares as written, both ways round, and every version against every
/// later one is consistent with the chain (transitivity).
fn chain(scheme: Scheme, text: &str) {
    let words: Vec<&str> = text.split(' ').collect();
    let versions: Vec<&str> = words.iter().step_by(2).copied().collect();
    let ops: Vec<Ordering> = words
        .iter()
        .skip(1)
        .step_by(2)
        .map(|op| match *op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => panic!("bad op {op:?} in {text:?}"),
        })
        .collect();
    for i in 0..versions.len() {
        for j in i + 1..versions.len() {
            // The chain's verdict for i against j: the strictest op between them.
            let want = ops[i..j]
                .iter()
                .copied()
                .fold(Ordering::Equal, |acc, o| if o == Ordering::Equal { acc } else { o });
            let (a, b) = (versions[i], versions[j]);
            assert_eq!(compare(scheme, a, b), Ok(want), "{scheme}: {a} vs {b} in {text:?}");
            assert_eq!(
                compare(scheme, b, a),
                Ok(want.reverse()),
                "{scheme}: {b} vs {a} in {text:?}"
            );
        }
    }
}

fn invalid(scheme: Scheme, versions: &[&str]) {
    for v in versions {
        assert!(!is_valid(scheme, v), "{scheme}: {v:?} should be invalid");
        let err = compare(scheme, v, v).unwrap_err();
        assert_eq!(err.version, *v);
        assert_eq!(err.scheme, scheme);
    }
}

fn valid(scheme: Scheme, versions: &[&str]) {
    for v in versions {
        assert!(is_valid(scheme, v), "{scheme}: {v:?} should be valid");
    }
}

#[test]
fn dpkg() {
    let s = Scheme::Dpkg;
    chain(
        s,
        "1.0~~ < 1.0~~a < 1.0~ < 1.0 = 1.0-0 = 0:1.0 = 00:1.0 < 1.0a < 1.0a+ < 1.0+ < 1.0+dfsg < 1.0.1 < 1:0.1",
    );
    chain(
        s,
        "2.30-1ubuntu1~ < 2.30-1ubuntu1 < 2.30-1ubuntu1.1 < 2.30-1ubuntu2 < 2.30-2",
    );
    chain(
        s,
        "1.2.3 = 1.02.3 = 1.2.03 < 1.2.10 < 1.10 < 1.99999999999999999999998 < 1.99999999999999999999999",
    );
    chain(s, "1.0-1~bpo11+1 < 1.0-1 < 1.0-1+b1 < 1.0-1+deb12u1 < 1.0-1.1");
    // An upstream part may hold '-' and ':' (the last '-' starts the revision).
    chain(s, "1:2:3-4-5 > 1:2:3-4-4");
    assert_eq!(compare(s, " 1.0 ", "1.0"), Ok(Ordering::Equal));
    valid(s, &["0", "1:0", "+1:0", " -0:1", "2147483647:1", "1.0-a~b+c.d", "1a"]);
    invalid(
        s,
        &[
            "",
            "   ",
            "a1.0",
            "1.0-",
            "1:",
            ":1.0",
            "a:1.0",
            "-1:1.0",
            "2147483648:1.0",
            "1.0 2",
            "1.0_1",
            "1.0-1_1",
            "1é",
        ],
    );
    let err = compare(s, "1.0", "a:1").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid dpkg version "a:1": epoch in version is empty"#
    );
}

#[test]
fn apk() {
    let s = Scheme::Apk;
    chain(
        s,
        "1.0_alpha < 1.0_alpha1 < 1.0_beta < 1.0_pre < 1.0_rc < 1.0_rc1 < 1.0 < 1.0_cvs < 1.0_svn < 1.0_git < 1.0_hg < 1.0_p < 1.0_p1",
    );
    chain(s, "1.0 < 1.0-r0 < 1.0-r1 < 1.0-r10 < 1.0a < 1.0b < 1.0.1 < 1.1");
    // After a '.', a number with a leading zero compares as a string.
    chain(s, "1.001 < 1.01 < 1.1 = 01.1 < 1.2 < 1.10");
    chain(s, "1.0 < 1.0~1234-r0 < 1.0~1234-r1 < 1.0~2345-r0 < 1.0_p1~abc");
    // A commit hash or revision makes a version newer; so does "-r0".
    // apk's numbers are 64-bit and wrap: 2^64 + 1 reads as 1.
    assert_eq!(compare(s, "1.18446744073709551617", "1.1"), Ok(Ordering::Equal));
    valid(s, &["1", "0.1_pre2~1234abcd", "0.1_p1_pre2", "1.2.3a_rc1_p2~f00-r3"]);
    invalid(
        s,
        &[
            "",
            "a",
            "1.0bc",
            "0.1a1",
            "1.0_foo",
            "1.0_",
            "1.0-r",
            "1.0-r1-r2",
            "1.0-1",
            "1.0~",
            "1.0~ABC",
            "1.0A",
            ".1",
            "1..2",
        ],
    );
}

#[test]
fn rpm() {
    let s = Scheme::Rpm;
    chain(
        s,
        "1.0~rc1 < 1.0~rc1^git1 < 1.0 < 1.0^ < 1.0^git1 < 1.0a < 1.0.1 < 1.01.2",
    );
    chain(s, "1.0 < 1.0-0 < 1.0-1 = 0:1.0-1 = :1.0-1 < 1.0-1.el8 < 1.0-2 < 1:0.1");
    // Separators are all alike; leading zeros do not count; digits beat letters.
    chain(s, "1.0.a < 1.0.1 = 1_0_1 = 1+0+1 = 1..0.1 = 01.00.01 < 1.0.1a < 1.0.2");
    chain(s, "2.el9_3 < 2.el9_10 < 11.el9");
    assert_eq!(compare(s, "1.0", "1.0.").unwrap(), Ordering::Equal);
    valid(s, &["1:", "a", "-", "1.0 beta", "1é"]);
    invalid(s, &["", "1\0"]);
}

#[test]
fn pep440() {
    let s = Scheme::Pep440;
    chain(
        s,
        "1.0.dev1 < 1.0a1.dev1 < 1.0a1 < 1.0a1.post1.dev1 < 1.0a1.post1 < 1.0b1 < 1.0rc1 < 1.0 < 1.0+abc < 1.0+abc.1 < 1.0+1 < 1.0.post1.dev1 < 1.0.post1 < 1.1.dev1 < 1!0.1",
    );
    chain(
        s,
        "1.0RC1 = 1.0rc1 = 1.0c1 = 1.0-pre1 = 1.0.preview.1 = 1.0_rc_1 = v1.0rc1",
    );
    chain(s, "1.0alpha = 1.0a0 = 1.0A < 1.0b = 1.0beta0 < 1.0");
    chain(
        s,
        "1.0-1 = 1.0.post1 = 1.0post1 = 1.0-r1 = 1.0rev1 = 1.0.POST.1 < 1.0-2",
    );
    chain(s, "1 = 1.0 = 1.0.0 = 0!1.0 = V1.0 < 1.0.0.1 < 1.1");
    chain(s, "0.0 = 0 < 0.0.0.1");
    assert_eq!(compare(s, "  1.0\n", "1"), Ok(Ordering::Equal));
    assert_eq!(compare(s, "\u{a0}1.0\u{3000}", "1"), Ok(Ordering::Equal));
    valid(s, &["1.0a.", "1.0-dev", "1.0.post", "1.0+a-b_c.1"]);
    invalid(
        s,
        &[
            "", "foo", "1.0.x", "1..0", "1.0+", "1.0-", "1.0+a..b", "1.0 1", "1!", "1.0é", "1.0-1-1", "1.0ſ",
        ],
    );
}

#[test]
fn semver() {
    let s = Scheme::SemVer;
    // The specification's own example.
    chain(
        s,
        "1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0 < 2.0.0 < 2.1.0 < 2.1.1",
    );
    chain(
        s,
        "1.2.3 = v1.2.3 = 1.2.3+build.5 = 1.2.3+other < 1.2.4-0 < 1.2.4-1 < 1.2.4-A < 1.2.4-a < 1.2.4",
    );
    chain(s, "1.0.0-1 < 1.0.0-1.0 < 1.0.0-- < 1.0.0-1a");
    // Numbers compare exactly at any size, as the specification says: npm
    // refuses a major above 2^53 - 1 and rounds these pre-release numbers
    // (the one deliberate difference from npm's semver).
    chain(
        s,
        "1.0.0-9007199254740992 < 1.0.0-9007199254740993 < 99999999999999999998.0.0 < 99999999999999999999.0.0",
    );
    assert_eq!(compare(s, " 1.0.0 ", "1.0.0"), Ok(Ordering::Equal));
    invalid(
        s,
        &[
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.0.0-01",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-a..b",
            "=1.0.0",
            "V1.0.0",
            "vv1.0.0",
        ],
    );
}

#[test]
fn go() {
    let s = Scheme::Go;
    chain(
        s,
        "v1 = v1.0 = v1.0.0 = 1.0.0 = v1.0.0+meta < v1.0.1 < v1.2 < v2.0.0-rc.1 < v2.0.0+incompatible = v2.0.0",
    );
    // Pseudo-versions are pre-releases of the next patch (or of the base).
    chain(
        s,
        "v0.0.0-20191109021931-daa7c04131f5 < v0.0.0-20200101000000-aaaaaaaaaaaa < v0.0.1 < v1.2.3 < v1.2.4-0.20191109021931-daa7c04131f5 < v1.2.4",
    );
    chain(s, "v1.2.3-pre < v1.2.3-pre.0.20191109021931-daa7c04131f5 < v1.2.3");
    chain(s, "v1.0.0 < v99999999999999999999999.0.0");
    invalid(
        s,
        &[
            "",
            "v",
            "v1.2-pre",
            "v1+meta",
            "v01.0.0",
            "vv1.0.0",
            "v1.0.0-01",
            "v1.0.0-",
            "V1.0.0",
        ],
    );
    let v: strata_vercmp::GoVersion = strata_vercmp::GoVersion::parse("v2.3.4+incompatible").unwrap();
    assert!(v.is_incompatible());
}

#[test]
fn maven() {
    let s = Scheme::Maven;
    chain(
        s,
        "1-alpha < 1-alpha-1 < 1-beta < 1-milestone < 1-rc = 1-cr < 1-snapshot < 1 = 1-ga = 1-final = 1-release = 1.0 = 1.0.0 < 1-sp < 1-abc < 1-xyz < 1-1 < 1.1",
    );
    chain(
        s,
        "1a1 = 1-alpha-1 = 1.a1 < 1b1 = 1-beta-1 < 1m1 = 1-milestone-1 < 1-rc1 < 1",
    );
    chain(s, "1.0.0.RELEASE = 1.0.0.Final = 1 < 1.0.0.SP1 < 1.0.1");
    chain(s, "1.0-1 = 1-1 < 1.0.1 < 1.1-SNAPSHOT < 1.1");
    chain(s, "0 = 0.0 = 0-0 = 0-final < 0.0.1");
    assert_eq!(compare(s, "", "0"), Ok(Ordering::Equal));
    // Java's size classes: ten zeros make a `long` zero, above any `int`.
    chain(
        s,
        "1.999999999.1 < 1.0000000000.1 < 1.1000000000.1 < 1.0000000000000000000.1 < 1.1000000000000000000.1",
    );
    assert!(is_valid(s, "any thing / at all"));
    // Maven's order has cycles; ComparableVersion 3.8.7 answers the same.
    for (a, b) in [
        ("2", "2.r.p"),
        ("2.r.p", "2.rc"),
        ("2.rc", "2"),
        ("2.r.p", "2.a1"),
        ("2.a1", "2"),
    ] {
        assert_eq!(compare(s, a, b), Ok(Ordering::Less), "{a} < {b}");
    }
    assert!(!is_valid(s, &"1-".repeat(600)));
    invalid(s, &["1.0é"]);
}

#[test]
fn rubygems() {
    let s = Scheme::RubyGems;
    chain(
        s,
        "1.0.a < 1.0.a.1 < 1.0.b < 1.0-rc1 = 1.0.pre.rc1 < 1.0.rc1 < 1.0 = 1 = 1.0.0 < 1.0.0.1 < 1.1",
    );
    chain(s, "1.A < 1.B < 1.a < 1.b < 1");
    chain(s, "1.0.a9 < 1.0.a10 < 1.0");
    chain(
        s,
        "0 = 0.0 < 0.0.1 < 99999999999999999999999999 < 100000000000000000000000000",
    );
    assert_eq!(compare(s, "", "0"), Ok(Ordering::Equal));
    assert_eq!(compare(s, " \t1.0\n", "1"), Ok(Ordering::Equal));
    valid(s, &["1.0-a-b", "1--a", "1.0a", "1.a.b-c.d"]);
    invalid(s, &["1..0", "a1", "1.0-", "-1", "1.", ".1", "1_0", "1.0 1", "1.0é"]);
}

#[test]
fn ecosystems() {
    let cases = [
        ("Debian", Some(Scheme::Dpkg)),
        ("Debian:12", Some(Scheme::Dpkg)),
        ("Ubuntu:22.04:LTS", Some(Scheme::Dpkg)),
        ("Ubuntu:Pro:18.04:LTS", Some(Scheme::Dpkg)),
        ("Alpine:v3.18", Some(Scheme::Apk)),
        ("Wolfi", Some(Scheme::Apk)),
        ("Chainguard", Some(Scheme::Apk)),
        ("Red Hat:enterprise_linux:9::appstream", Some(Scheme::Rpm)),
        ("Rocky Linux:9", Some(Scheme::Rpm)),
        ("AlmaLinux:8", Some(Scheme::Rpm)),
        ("openSUSE:Tumbleweed", Some(Scheme::Rpm)),
        ("SUSE:Linux Enterprise Server 15 SP5", Some(Scheme::Rpm)),
        ("PyPI", Some(Scheme::Pep440)),
        ("npm", Some(Scheme::SemVer)),
        ("crates.io", Some(Scheme::SemVer)),
        ("NuGet", Some(Scheme::SemVer)),
        ("Go", Some(Scheme::Go)),
        ("Maven", Some(Scheme::Maven)),
        ("RubyGems", Some(Scheme::RubyGems)),
        ("Packagist", None),
        ("Pub", None),
        ("GIT", None),
        ("debian", None),
        ("", None),
    ];
    for (name, want) in cases {
        assert_eq!(Scheme::for_ecosystem(name), want, "{name:?}");
    }
}

#[test]
fn errors_name_the_string_and_scheme() {
    let err: VersionError = compare(Scheme::Pep440, "1.0", "not a version").unwrap_err();
    assert_eq!(err.version, "not a version");
    assert_eq!(err.scheme, Scheme::Pep440);
    assert!(
        err.to_string().contains("\"not a version\"") && err.to_string().contains("PEP 440"),
        "{err}"
    );
    // The first bad string is the one reported.
    assert_eq!(compare(Scheme::SemVer, "x", "y").unwrap_err().version, "x");
}
