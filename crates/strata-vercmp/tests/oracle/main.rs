//! strata-vercmp against each ecosystem's reference implementation: for
//! every scheme, 6,000 generated pairs (see generate.rs) go to the reference in
//! one batched run, and every validity verdict and every ordering must
//! match. A reference that is not installed skips its test with a printed
//! reason (`scripts/deps.d/vercmp-oracles.sh` installs them all).
//!
//! apk-tools is not packaged in Debian, so apk's verdicts come from a record
//! made with apk-tools' own code (tests/data/apk-oracle.txt, see
//! tests/data/README.md) plus apk-tools' own test vectors.

mod generate;
mod harness;

use std::path::Path;
use std::process::Command;

use harness::{Rng, Verdict, assert_agrees, find_tool, run_oracle, write_pairs};
use strata_vercmp::{Scheme, compare, is_valid};

/// Pairs per scheme that are valid on both sides (more are generated: see
/// `generate::pairs`).
const ORDERED: usize = 5200;
const DEPS: &str = "/opt/strata-deps";

fn make_pairs(
    scheme: Scheme,
    seed: u64,
    pool_size: usize,
    version: fn(&mut Rng) -> String,
    mutate: fn(&mut Rng, &str) -> String,
) -> Vec<(String, String)> {
    let mut r = Rng::new(seed);
    let pool = generate::pool(&mut r, pool_size, version);
    generate::pairs(&mut r, scheme, &pool, ORDERED, &mutate)
}

/// Prints the tally, and insists that most pairs were really ordered (not
/// just refused on both sides).
fn report(scheme: Scheme, oracle: &str, pairs: &[(String, String)], compared: usize) {
    println!(
        "{scheme}: {} pairs agree with {oracle} ({compared} ordered, the rest invalid on a side)",
        pairs.len()
    );
    assert!(
        compared >= ORDERED.min(5000),
        "{scheme}: only {compared} of {} pairs were ordered",
        pairs.len()
    );
}

fn script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// ---- dpkg: `dpkg --validate-version` and `dpkg --compare-versions` ----

/// dpkg has no batch mode: one Python process runs dpkg for each distinct
/// string (validity) and each valid pair (`lt`, then `eq`), two at a time.
const DPKG_ORACLE: &str = r#"
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
pairs = [tuple(bytes.fromhex(h).decode() for h in l.rstrip("\n").split(",")) for l in open(sys.argv[1])]
def ok(*args):
    return subprocess.run(["dpkg", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
strings = sorted({s for p in pairs for s in p})
with ThreadPoolExecutor(2) as ex:
    valid = dict(zip(strings, ex.map(lambda s: ok("--validate-version", s), strings)))
    def order(p):
        a, b = p
        if not (valid[a] and valid[b]):
            return "x"
        if ok("--compare-versions", a, "lt", b):
            return "<"
        return "=" if ok("--compare-versions", a, "eq", b) else ">"
    orders = list(ex.map(order, pairs))
for (a, b), o in zip(pairs, orders):
    print(f"{int(valid[a])}{int(valid[b])}{o}")
"#;

#[test]
fn dpkg_agrees_with_dpkg() {
    if find_tool(&["dpkg"], "--version").is_none() {
        println!("skipped: dpkg not installed");
        return;
    }
    let pairs = make_pairs(
        Scheme::Dpkg,
        0xD9C6,
        2500,
        generate::dpkg_version,
        generate::dpkg_mutate,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_pairs(dir.path(), &pairs);
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script(dir.path(), "dpkg_oracle.py", DPKG_ORACLE));
    let verdicts = run_oracle(cmd, &file, pairs.len());
    let n = assert_agrees(Scheme::Dpkg, "dpkg", &pairs, &verdicts);
    report(Scheme::Dpkg, "dpkg --compare-versions", &pairs, n);
}

// ---- rpm: python3-rpm's `rpm.ver` ----

const RPM_ORACLE: &str = r#"
import sys, rpm
def ver(s):
    try:
        return rpm.ver(s)
    except Exception:
        return None
out = []
for l in open(sys.argv[1]):
    a, b = (bytes.fromhex(h).decode() for h in l.rstrip("\n").split(","))
    va, vb = ver(a), ver(b)
    o = "x" if va is None or vb is None else "<" if va < vb else ">" if va > vb else "="
    out.append(f"{int(va is not None)}{int(vb is not None)}{o}")
print("\n".join(out))
"#;

#[test]
fn rpm_agrees_with_python3_rpm() {
    let has_rpm = Command::new("/usr/bin/python3")
        .args(["-c", "import rpm"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_rpm {
        println!("skipped: python3-rpm not installed");
        return;
    }
    let pairs = make_pairs(Scheme::Rpm, 0x4B11, 3000, generate::rpm_version, generate::rpm_mutate);
    let dir = tempfile::tempdir().unwrap();
    let file = write_pairs(dir.path(), &pairs);
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script(dir.path(), "rpm_oracle.py", RPM_ORACLE));
    let verdicts = run_oracle(cmd, &file, pairs.len());
    let n = assert_agrees(Scheme::Rpm, "rpm.ver", &pairs, &verdicts);
    report(Scheme::Rpm, "python3-rpm rpm.ver", &pairs, n);
}

// ---- PEP 440: packaging.version.Version ----

const PEP440_ORACLE: &str = r#"
import sys
from packaging.version import Version
def ver(s):
    try:
        return Version(s)
    except Exception:
        return None
out = []
for l in open(sys.argv[1]):
    a, b = (bytes.fromhex(h).decode() for h in l.rstrip("\n").split(","))
    va, vb = ver(a), ver(b)
    o = "x" if va is None or vb is None else "<" if va < vb else ">" if va > vb else "="
    out.append(f"{int(va is not None)}{int(vb is not None)}{o}")
print("\n".join(out))
"#;

#[test]
fn pep440_agrees_with_packaging() {
    let python = format!("{DEPS}/pyoracle/bin/python");
    let has = Command::new(&python)
        .args(["-c", "import packaging.version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        println!("skipped: packaging not installed ({python})");
        return;
    }
    let pairs = make_pairs(
        Scheme::Pep440,
        0x9E9440,
        3000,
        generate::pep440_version,
        generate::pep440_mutate,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_pairs(dir.path(), &pairs);
    let mut cmd = Command::new(&python);
    cmd.arg(script(dir.path(), "pep440_oracle.py", PEP440_ORACLE));
    let verdicts = run_oracle(cmd, &file, pairs.len());
    let n = assert_agrees(Scheme::Pep440, "packaging", &pairs, &verdicts);
    report(Scheme::Pep440, "packaging.version.Version", &pairs, n);
}

// ---- SemVer: npm's semver ----

const SEMVER_ORACLE: &str = r#"
const semver = require(process.argv[2]);
const fs = require('fs');
const out = [];
for (const line of fs.readFileSync(process.argv[3], 'utf8').split('\n')) {
  if (!line) continue;
  const [a, b] = line.split(',').map((h) => Buffer.from(h, 'hex').toString('utf8'));
  const va = semver.valid(a) !== null, vb = semver.valid(b) !== null;
  let o = 'x';
  if (va && vb) { const c = semver.compare(a, b); o = c < 0 ? '<' : c > 0 ? '>' : '='; }
  out.push(`${+va}${+vb}${o}`);
}
process.stdout.write(out.join('\n') + '\n');
"#;

#[test]
fn semver_agrees_with_npm_semver() {
    let module = format!("{DEPS}/node-oracle/node_modules/semver");
    if find_tool(&["node"], "--version").is_none() || !Path::new(&module).join("package.json").exists() {
        println!("skipped: node or npm's semver not installed ({module})");
        return;
    }
    let pairs = make_pairs(
        Scheme::SemVer,
        0x5E3E,
        3000,
        generate::semver_version,
        generate::semver_mutate,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_pairs(dir.path(), &pairs);
    let mut cmd = Command::new("node");
    cmd.arg(script(dir.path(), "semver_oracle.js", SEMVER_ORACLE))
        .arg(&module);
    let verdicts = run_oracle(cmd, &file, pairs.len());
    let n = assert_agrees(Scheme::SemVer, "npm semver", &pairs, &verdicts);
    report(Scheme::SemVer, "npm semver", &pairs, n);
}

// ---- Go: golang.org/x/mod/semver, as vendored in the Go distribution ----

const GO_ORACLE: &str = r#"package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"oracle/semver"
)

// strata-vercmp supplies the "v" that OSV leaves off Go versions.
func norm(s string) string {
	if strings.HasPrefix(s, "v") {
		return s
	}
	return "v" + s
}

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	b2i := map[bool]int{false: 0, true: 1}
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ",", 2)
		a, _ := hex.DecodeString(parts[0])
		b, _ := hex.DecodeString(parts[1])
		va, vb := semver.IsValid(norm(string(a))), semver.IsValid(norm(string(b)))
		o := "x"
		if va && vb {
			o = map[int]string{-1: "<", 0: "=", 1: ">"}[semver.Compare(norm(string(a)), norm(string(b)))]
		}
		fmt.Fprintf(w, "%d%d%s\n", b2i[va], b2i[vb], o)
	}
}
"#;

#[test]
fn go_agrees_with_x_mod_semver() {
    let Some(go) = find_tool(&["go", "/usr/lib/go/bin/go"], "version") else {
        println!("skipped: go not installed");
        return;
    };
    let goroot = Command::new(&go).args(["env", "GOROOT"]).output().unwrap();
    let goroot = String::from_utf8_lossy(&goroot.stdout).trim().to_owned();
    let vendored = Path::new(&goroot).join("src/cmd/vendor/golang.org/x/mod/semver/semver.go");
    if !vendored.exists() {
        println!("skipped: golang.org/x/mod/semver not found in {goroot}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("semver")).unwrap();
    std::fs::copy(&vendored, dir.path().join("semver/semver.go")).unwrap();
    script(dir.path(), "go.mod", "module oracle\n\ngo 1.19\n");
    script(dir.path(), "main.go", GO_ORACLE);
    let build = Command::new(&go)
        .args(["build", "-o", "oracle", "."])
        .current_dir(dir.path())
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "building the Go oracle: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let pairs = make_pairs(Scheme::Go, 0x60, 3000, generate::go_version, generate::go_mutate);
    let file = write_pairs(dir.path(), &pairs);
    let verdicts = run_oracle(Command::new(dir.path().join("oracle")), &file, pairs.len());
    let n = assert_agrees(Scheme::Go, "x/mod/semver", &pairs, &verdicts);
    report(Scheme::Go, "golang.org/x/mod/semver.Compare", &pairs, n);
}

// ---- Maven: ComparableVersion from Debian's maven-artifact jar ----

const MAVEN_ORACLE: &str = r#"
import org.apache.maven.artifact.versioning.ComparableVersion;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

public class MavenOracle {
    static String unhex(String h) {
        byte[] b = new byte[h.length() / 2];
        for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        return new String(b, StandardCharsets.UTF_8);
    }
    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder();
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            String[] p = line.split(",", -1);
            int c = new ComparableVersion(unhex(p[0])).compareTo(new ComparableVersion(unhex(p[1])));
            out.append("11").append(c < 0 ? '<' : c > 0 ? '>' : '=').append('\n');
        }
        System.out.print(out);
    }
}
"#;

#[test]
fn maven_agrees_with_comparable_version() {
    let jars = [
        "/usr/share/java/maven3-artifact.jar",
        "/usr/share/java/maven-artifact-3.x.jar",
        "/usr/share/java/maven-artifact.jar",
    ];
    let Some(jar) = jars.iter().find(|j| Path::new(j).exists()) else {
        println!("skipped: maven-artifact jar not installed (libmaven3-core-java)");
        return;
    };
    // java runs the oracle from source, which takes a JDK, not just a JRE.
    if find_tool(&["javac"], "-version").is_none() {
        println!("skipped: a JDK (javac) not installed");
        return;
    }
    let pairs = make_pairs(
        Scheme::Maven,
        0x3A7E,
        3000,
        generate::maven_version,
        generate::maven_mutate,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_pairs(dir.path(), &pairs);
    let mut cmd = Command::new("java");
    cmd.args(["-cp", jar])
        .arg(script(dir.path(), "MavenOracle.java", MAVEN_ORACLE));
    let verdicts = run_oracle(cmd, &file, pairs.len());
    let n = assert_agrees(Scheme::Maven, "ComparableVersion", &pairs, &verdicts);
    report(Scheme::Maven, "maven-artifact ComparableVersion", &pairs, n);
}

// ---- RubyGems: Gem::Version ----

const GEM_ORACLE: &str = r##"
out = []
File.foreach(ARGV[0]) do |line|
  a, b = line.chomp.split(",", -1).map { |h| [h].pack("H*").force_encoding(Encoding::UTF_8) }
  va, vb = Gem::Version.correct?(a), Gem::Version.correct?(b)
  o = "x"
  if va && vb
    c = Gem::Version.new(a) <=> Gem::Version.new(b)
    o = c < 0 ? "<" : c > 0 ? ">" : "="
  end
  out << "#{va ? 1 : 0}#{vb ? 1 : 0}#{o}"
end
puts out
"##;

#[test]
fn rubygems_agrees_with_gem_version() {
    if find_tool(&["ruby"], "--version").is_none() {
        println!("skipped: ruby not installed");
        return;
    }
    let pairs = make_pairs(
        Scheme::RubyGems,
        0x6E3,
        3000,
        generate::gem_version,
        generate::gem_mutate,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_pairs(dir.path(), &pairs);
    let mut cmd = Command::new("ruby");
    cmd.arg(script(dir.path(), "gem_oracle.rb", GEM_ORACLE));
    let verdicts = run_oracle(cmd, &file, pairs.len());
    let n = assert_agrees(Scheme::RubyGems, "Gem::Version", &pairs, &verdicts);
    report(Scheme::RubyGems, "Gem::Version", &pairs, n);
}

// ---- apk: a record of apk-tools' own verdicts, and its test vectors ----

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn apk_agrees_with_recorded_apk_tools_verdicts() {
    let text = std::fs::read_to_string(data("apk-oracle.txt")).unwrap();
    let mut pairs = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    let word = |w: &str| if w == "\"\"" { String::new() } else { w.to_owned() };
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let [a, b, v] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("unreadable record line {line:?}")
        };
        pairs.push((word(a), word(b)));
        verdicts.push(harness::parse_verdict(v));
    }
    assert!(pairs.len() >= ORDERED, "the record has {} pairs", pairs.len());
    let n = assert_agrees(Scheme::Apk, "apk-tools (recorded)", &pairs, &verdicts);
    report(Scheme::Apk, "apk-tools 3.0.6 (recorded verdicts)", &pairs, n);
}

/// apk-tools' test/unit/version.data: `A OP B` (OP among `<`, `=`, `>`,
/// possibly negated with `!`), `V` (valid) and `!V` (invalid). Fuzzy
/// matches (`~`) are dependency matching, not ordering: skipped.
#[test]
fn apk_passes_apk_tools_test_vectors() {
    let text = std::fs::read_to_string(data("apk-version.data")).unwrap();
    let mut bad = Vec::new();
    let mut checked = 0;
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            [v] => {
                let (want, v) = match v.strip_prefix('!') {
                    Some(v) => (false, v),
                    None => (true, v),
                };
                checked += 1;
                if is_valid(Scheme::Apk, v) != want {
                    bad.push(format!("{v:?} valid: want {want}"));
                }
            }
            [a, op, b] => {
                let (negate, op) = match op.strip_prefix('!') {
                    Some(op) => (true, op),
                    None => (false, op),
                };
                if op.contains('~') {
                    continue;
                }
                checked += 1;
                // Upstream's own "invalid, do string sort" pairs: apk orders
                // them anyway; strata-vercmp refuses them.
                let Ok(got) = compare(Scheme::Apk, a, b) else {
                    if is_valid(Scheme::Apk, a) && is_valid(Scheme::Apk, b) {
                        bad.push(format!("{a} {op} {b}: refused"));
                    }
                    continue;
                };
                let sym = match got {
                    std::cmp::Ordering::Less => '<',
                    std::cmp::Ordering::Equal => '=',
                    std::cmp::Ordering::Greater => '>',
                };
                if op.contains(sym) == negate {
                    bad.push(format!("{a} {}{op} {b}: ours {sym}", if negate { "!" } else { "" }));
                }
            }
            _ => panic!("unreadable vector line {line:?}"),
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {checked} apk-tools vectors fail:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(checked > 700, "only {checked} vectors read");
    println!("apk: {checked} apk-tools test vectors pass");
}

/// Writes the pairs the apk record is made from (see tests/data/README.md).
#[test]
#[ignore = "run by hand to regenerate tests/data/apk-oracle.txt"]
fn apk_dump_pairs_for_the_record() {
    let path = std::env::var("STRATA_VERCMP_APK_PAIRS").expect("STRATA_VERCMP_APK_PAIRS=path");
    let pairs = make_pairs(Scheme::Apk, 0xA9C, 2500, generate::apk_version, generate::apk_mutate);
    let text: String = pairs
        .iter()
        .map(|(a, b)| format!("{},{}\n", harness::hex(a), harness::hex(b)))
        .collect();
    std::fs::write(path, text).unwrap();
}
