//! Expansion cases from BuildKit's `TestProcessWithMatches` (lex_test.go): results, and which
//! variables were found and not found.

use std::collections::{BTreeSet, HashMap};

use strata_build::Lex;

struct Case {
    input: &'static str,
    envs: &'static [(&'static str, &'static str)],
    expected: Option<&'static str>, // None: must fail
    matches: &'static [&'static str],
    unmatched: &'static [&'static str],
}

const fn ok(
    input: &'static str,
    envs: &'static [(&'static str, &'static str)],
    expected: &'static str,
    matches: &'static [&'static str],
    unmatched: &'static [&'static str],
) -> Case {
    Case {
        input,
        envs,
        expected: Some(expected),
        matches,
        unmatched,
    }
}

const fn fails(input: &'static str, envs: &'static [(&'static str, &'static str)]) -> Case {
    Case {
        input,
        envs,
        expected: None,
        matches: &[],
        unmatched: &[],
    }
}

const FB: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
const XY: &[(&str, &str)] = &[("FOO", "xxyy")];

const CASES: &[Case] = &[
    ok("x", &[("DUMMY", "dummy")], "x", &[], &[]),
    ok("x ${UNUSED}", &[("DUMMY", "dummy")], "x ", &[], &["UNUSED"]),
    ok("x ${FOO}", &[("FOO", "y")], "x y", &["FOO"], &[]),
    ok(
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        FB,
        "xxx  ccc",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok(
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        FB,
        "xxx bbb ccc",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok("${FOO:-}", FB, "xxx", &["FOO"], &[]),
    ok("${FOO:-}", &[], "", &[], &["FOO"]),
    ok(
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        FB,
        "aaa bbb ",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok(
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        FB,
        "aaa  ",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok("${FOO?aaa}", FB, "xxx", &["FOO"], &[]),
    ok("${BAR?bbb}", FB, "", &["BAR"], &[]),
    fails("${BAZ?ccc}", FB),
    ok("${FOO:?aaa}", FB, "xxx", &["FOO"], &[]),
    fails("${BAR:?bbb}", FB),
    fails("${BAZ:?ccc}", FB),
    fails("${BAZ:?}", FB),
    fails("${FOO=aaa}", FB),
    fails("${FOO=:aaa}", FB),
    fails("${FOO=}", &[]),
    ok(
        "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
        &[("FOO", "()[]{}^$.*?|\\x")],
        "x",
        &["FOO"],
        &[],
    ),
    ok("${FOO%%\\**}", &[("FOO", "xx**")], "xx", &["FOO"], &[]),
    ok("${FOO#*x*y}", XY, "y", &["FOO"], &[]),
    ok("${FOO#*}", XY, "xxyy", &["FOO"], &[]),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "x")],
        "xyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok("${FOO#}", XY, "xxyy", &["FOO"], &[]),
    ok("${FOO##*x}", XY, "yy", &["FOO"], &[]),
    ok("${FOO##}", XY, "xxyy", &["FOO"], &[]),
    ok("${FOO#?\\?}", &[("FOO", "???y")], "?y", &["FOO"], &[]),
    ok("${ABC:-.}${FOO%x}${ABC:-.}", XY, ".xxyy.", &["FOO"], &["ABC"]),
    ok("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a", &["FOO"], &[]),
    ok("${FOO%}", XY, "xxyy", &["FOO"], &[]),
    ok(
        "${FOO%%$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["FOO", "BAR"],
        &[],
    ),
    fails("${FOO:#}", &[]),
    fails("${FOO:##}", &[]),
    fails("${FOO:%}", &[]),
    fails("${FOO:%%}", &[]),
    ok(
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
        "/foo.*/*.txt - /foo..*.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        "/tmp/bar.txt - /bar.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")],
        "/foo/b/c.txt - /foo/c.txt",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "http://google.de"),
            ("NEEDLE", "http://"),
            ("REPLACEMENT", "https://"),
        ],
        "https://google.de",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        "${FOO//\\//\\/}",
        &[("FOO", "/tmp/foo.txt")],
        "\\/tmp\\/foo.txt",
        &["FOO"],
        &[],
    ),
    ok(
        "${FOO/$BAR/ww}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "wwxxyy",
        &["FOO", "BAR"],
        &[],
    ),
    fails("${FOO//ww}", XY),
    fails("${FOO//}", XY),
    ok("${FOO///}", XY, "xxyy", &["FOO"], &[]),
    ok("${FOO///}", &[], "", &[], &["FOO"]),
];

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn process_with_matches() {
    let lex = Lex::new('\\');
    let mut failures = Vec::new();
    for case in CASES {
        let map: HashMap<&str, &str> = case.envs.iter().copied().collect();
        let env = |name: &str| map.get(name).map(|v| v.to_string());
        let got = lex.process(case.input, &env);
        match (&got, case.expected) {
            (Err(_), None) => {}
            (Ok(e), Some(want))
                if e.result == want && e.matched == set(case.matches) && e.unmatched == set(case.unmatched) => {}
            _ => failures.push(format!("{:?}: expected {:?}, got {got:?}", case.input, case.expected)),
        }
    }
    println!(
        "TestProcessWithMatches: {}/{} cases pass",
        CASES.len() - failures.len(),
        CASES.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn platform_release_names() {
    let lex = Lex::new('\\');
    let release = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let run = |vars: &[(&str, &str)]| {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        lex.process_word(release, &|n: &str| map.get(n).map(|v| v.to_string()))
            .unwrap()
    };
    let base = [("VERSION", "v1.2.3"), ("TARGETOS", "linux")];
    let with =
        |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> { base.iter().chain(extra).copied().collect() };
    assert_eq!(
        run(&with(&[("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")])),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    assert_eq!(
        run(&with(&[("TARGETARCH", "arm64"), ("TARGETVARIANT", "")])),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
    assert_eq!(
        run(&with(&[("TARGETARCH", "arm64")])),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
}
