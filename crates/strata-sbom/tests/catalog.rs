//! Each cataloguer on real-format databases in layer tars built here, with
//! attribution to layers and deletions by later layers.

mod support;

use std::io::Write;
use std::process::Command;

use support::*;

const KEEP: &str = "Package: strata-keep\nStatus: install ok installed\nPriority: optional\nArchitecture: all\n\
Source: strata-src (0.9-1)\nVersion: 1.0-1\nDescription: kept\n";
const GONE: &str = "Package: strata-gone\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.0\nDescription: removed later\n";
const DEP5: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\n\
Copyright: 2024 Strata\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: MIT\n";

fn metadata(name: &str, version: &str, license: &str) -> String {
    format!(
        "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: {license}\nSummary: x\n\nLong description.\n"
    )
}

#[test]
fn debian_layers_dpkg_python_npm() {
    let Ok(status) = std::fs::read_to_string("/var/lib/dpkg/status") else {
        eprintln!("skipped: no /var/lib/dpkg/status on this machine (the test reads a real one)");
        return;
    };
    let installed: Vec<&str> = status
        .split("\n\n")
        .filter(|s| s.lines().any(|l| l.starts_with("Status:") && l.ends_with(" installed")))
        .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("Package: ")))
        .collect();
    assert!(
        installed.contains(&"bash") && installed.contains(&"libc6"),
        "a Debian status file"
    );
    let base_status = status.trim_end().to_owned() + "\n";
    let status1 = format!("{base_status}\n{KEEP}\n{GONE}");
    let status2 = format!("{base_status}\n{KEEP}");
    let copyright_bash = std::fs::read("/usr/share/doc/bash/copyright").unwrap_or_else(|_| DEP5.as_bytes().to_vec());

    let l0 = Layer::new("/bin/sh -c #(nop) ADD file:1234 in /")
        .dir("etc")
        .file("usr/lib/os-release", DEBIAN_OS_RELEASE)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("var/lib/dpkg/status", &base_status)
        .file("usr/share/doc/bash/copyright", copyright_bash)
        .file("usr/share/doc/strata-keep-doc/copyright", DEP5)
        .symlink("usr/share/doc/strata-keep", "strata-keep-doc");
    let sp = "usr/lib/python3/dist-packages";
    let l1 = Layer::new("RUN apt-get install -y strata-keep strata-gone && pip install requests six")
        .file("var/lib/dpkg/status", &status1)
        .file(
            &format!("{sp}/requests-2.19.0.dist-info/METADATA"),
            metadata("requests", "2.19.0", "Apache 2.0"),
        )
        .file(
            &format!("{sp}/six-1.16.0.dist-info/METADATA"),
            metadata("six", "1.16.0", "MIT"),
        )
        .file(
            "app/node_modules/left-pad/package.json",
            r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
        )
        .file(
            "app/node_modules/@babel/core/package.json",
            r#"{"name":"@babel/core","version":"7.23.0","license":"MIT"}"#,
        )
        .file(
            "app/package-lock.json",
            r#"{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},
               "node_modules/left-pad":{"version":"1.3.0","license":"WTFPL"},
               "node_modules/@babel/core":{"version":"7.23.0","license":"MIT"}}}"#,
        );
    let l2 = Layer::new("RUN apt-get remove -y strata-gone && pip uninstall -y six")
        .file("var/lib/dpkg/status", &status2)
        .whiteout(&format!("{sp}/six-1.16.0.dist-info"));
    let sbom = run(vec![l0, l1, l2]);
    assert!(sbom.warnings.is_empty(), "{:#?}", sbom.warnings);

    let distro = sbom.distro.as_ref().expect("os-release through its symlink");
    assert_eq!(
        (distro.id.as_str(), distro.version_id.as_deref()),
        ("debian", Some("12"))
    );

    // Every installed stanza of the real file, plus strata-keep; strata-gone was removed in layer 2.
    let debs = summary(&sbom, "deb");
    assert_eq!(debs.len(), installed.len() + 1, "deb packages");
    assert!(find(&sbom, "deb", "strata-gone").is_none());
    let bash = find(&sbom, "deb", "bash").unwrap();
    assert_eq!(
        bash.layer, 0,
        "present from the bottom layer on, though layers 1 and 2 rewrote the status file"
    );
    assert_eq!(bash.layer_digest.as_deref(), Some(digest(0).as_str()));
    assert!(
        bash.purl.starts_with("pkg:deb/debian/bash@") && bash.purl.contains("arch=amd64&distro=debian-12"),
        "{}",
        bash.purl
    );
    assert!(!bash.licenses.is_empty(), "bash's copyright names its license");
    assert_eq!(bash.locations, vec!["/var/lib/dpkg/status"]);
    let libc = find(&sbom, "deb", "libc6").unwrap();
    assert_eq!(libc.source.as_ref().unwrap().name, "glibc");
    assert!(libc.purl.contains("upstream=glibc"), "{}", libc.purl);
    let keep = find(&sbom, "deb", "strata-keep").unwrap();
    assert_eq!(keep.layer, 1);
    assert_eq!(
        keep.created_by.as_deref(),
        Some("RUN apt-get install -y strata-keep strata-gone && pip install requests six")
    );
    assert_eq!(
        keep.licenses,
        vec!["GPL-2+", "MIT"],
        "from the copyright file, through the doc dir symlink"
    );
    assert_eq!(
        keep.source.as_ref().map(|s| (s.name.as_str(), s.version.as_str())),
        Some(("strata-src", "0.9-1"))
    );
    assert_eq!(
        keep.purl,
        "pkg:deb/debian/strata-keep@1.0-1?arch=all&distro=debian-12&upstream=strata-src%400.9-1"
    );

    assert_eq!(
        summary(&sbom, "python"),
        vec![("requests".into(), "2.19.0".into(), 1)],
        "six was deleted by a whiteout"
    );
    let requests = find(&sbom, "python", "requests").unwrap();
    assert_eq!(requests.purl, "pkg:pypi/requests@2.19.0");
    assert_eq!(requests.licenses, vec!["Apache 2.0"]);

    // The installed manifest and the lockfile entry of one package are one package with two locations.
    let babel = find(&sbom, "npm", "@babel/core").unwrap();
    assert_eq!(babel.purl, "pkg:npm/%40babel/core@7.23.0");
    assert_eq!(
        babel.locations,
        vec!["/app/node_modules/@babel/core/package.json", "/app/package-lock.json"]
    );
    assert_eq!(summary(&sbom, "npm").len(), 2);

    let table = sbom.to_table();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["requests", "2.19.0", "python"])
    );
}

#[test]
fn alpine_apk_gem_cargo_lock_and_java() {
    let apk = "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\n\
U:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1700000000\nc:abc\n\
F:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1xyz=\n\n\
C:Q1def=\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\n";
    let gemspec = "# -*- encoding: utf-8 -*-\n# stub: rake 13.0.6 ruby lib\n\nGem::Specification.new do |s|\n  \
s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.licenses = [\"MIT\".freeze]\nend\n";
    let lock = "version = 3\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.9\"\n\
source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"af150ab\"\n\n\
[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"itoa\",\n]\n";
    let l0 = Layer::new("ADD alpine-minirootfs.tar.gz /")
        .file("etc/os-release", ALPINE_OS_RELEASE)
        .file("lib/apk/db/installed", apk);
    let l1 = Layer::new("RUN gem install rake")
        .file("usr/lib/ruby/gems/3.2.0/specifications/rake-13.0.6.gemspec", gemspec)
        .file("src/app/Cargo.lock", lock)
        .file("opt/app/app.jar", jar_with_nested())
        .hardlink("opt/app/same.jar", "opt/app/app.jar");
    let sbom = run(vec![l0, l1]);
    assert!(sbom.warnings.is_empty(), "{:#?}", sbom.warnings);
    let musl = find(&sbom, "apk", "musl").unwrap();
    assert_eq!(
        musl.purl,
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
    );
    assert_eq!(musl.licenses, vec!["MIT"]);
    assert_eq!(summary(&sbom, "apk").len(), 2);
    assert_eq!(find(&sbom, "gem", "rake").unwrap().purl, "pkg:gem/rake@13.0.6");
    assert_eq!(find(&sbom, "cargo", "itoa").unwrap().purl, "pkg:cargo/itoa@1.0.9");
    assert_eq!(summary(&sbom, "cargo").len(), 2);

    let java = summary(&sbom, "java-archive");
    let names: Vec<(&str, &str)> = java.iter().map(|(n, v, _)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        names,
        [
            ("app", "1.0.0"),
            ("guava", "32.1.2-jre"),
            ("jsr305", "3.0.2"),
            ("slf4j-api", "2.0.9")
        ]
    );
    let slf4j = find(&sbom, "java-archive", "slf4j-api").unwrap();
    assert_eq!(slf4j.purl, "pkg:maven/org.slf4j/slf4j-api@2.0.9");
    assert_eq!(
        slf4j.locations,
        vec![
            "/opt/app/app.jar:BOOT-INF/lib/slf4j-api-2.0.9.jar",
            "/opt/app/same.jar:BOOT-INF/lib/slf4j-api-2.0.9.jar"
        ]
    );
    let jsr = find(&sbom, "java-archive", "jsr305").unwrap();
    assert_eq!(
        jsr.locations[0],
        "/opt/app/app.jar:BOOT-INF/lib/guava-32.1.2-jre.jar:lib/jsr305-3.0.2.jar"
    );
}

pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, o).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A Spring-Boot-like jar: its own pom.properties, a nested jar with one,
/// a nested jar with only a manifest, which nests another.
fn jar_with_nested() -> Vec<u8> {
    let jsr = zip_of(&[(
        "META-INF/MANIFEST.MF",
        b"Manifest-Version: 1.0\r\nBundle-Version: 3.0.2\r\n\r\n",
    )]);
    let guava = zip_of(&[
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nBundle-SymbolicName: com.google.guava\r\n\r\n",
        ),
        ("lib/jsr305-3.0.2.jar", &jsr),
    ]);
    let slf4j = zip_of(&[(
        "META-INF/maven/org.slf4j/slf4j-api/pom.properties",
        b"#Generated by Maven\ngroupId=org.slf4j\nartifactId=slf4j-api\nversion=2.0.9\n",
    )]);
    zip_of(&[
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nMain-Class: x\r\n\r\n",
        ),
        (
            "META-INF/maven/com.example/app/pom.properties",
            b"groupId=com.example\nartifactId=app\nversion=1.0.0\n",
        ),
        ("BOOT-INF/lib/slf4j-api-2.0.9.jar", &slf4j),
        ("BOOT-INF/lib/guava-32.1.2-jre.jar", &guava),
    ])
}

#[test]
fn rpm_sqlite_database_made_by_rpm() {
    let (Some(rpm), Some(rpmbuild)) = (tool("rpm"), tool("rpmbuild")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("strata-hello.spec");
    std::fs::write(
        &spec,
        "Name: strata-hello\nVersion: 1.2.3\nRelease: 4.fc40\nEpoch: 2\nSummary: test\nLicense: MIT and (BSD or GPLv2+)\n\
BuildArch: noarch\n%description\ntest\n%files\n",
    )
    .unwrap();
    let top = dir.path().join("top");
    let out = Command::new(rpmbuild)
        .args(["--define", &format!("_topdir {}", top.display()), "-bb"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpmbuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = dir.path().join("db");
    let rpm_file = top.join("RPMS/noarch/strata-hello-1.2.3-4.fc40.noarch.rpm");
    for args in [
        vec!["--initdb"],
        vec!["-i", "--justdb", "--nodeps", "--noscripts", rpm_file.to_str().unwrap()],
    ] {
        let out = Command::new(&rpm)
            .arg("--dbpath")
            .arg(&db)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rpm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sqlite = std::fs::read(db.join("rpmdb.sqlite")).expect("rpm made an SQLite database");
    let fedora = "NAME=\"Fedora Linux\"\nVERSION=\"40 (Container Image)\"\nID=fedora\nVERSION_ID=40\n";
    let l0 = Layer::new("ADD fedora.tar /")
        .file("etc/os-release", fedora)
        .file("usr/lib/sysimage/rpm/rpmdb.sqlite", &sqlite);
    let sbom = run(vec![l0]);
    assert!(sbom.warnings.is_empty(), "{:#?}", sbom.warnings);
    assert_eq!(
        summary(&sbom, "rpm"),
        vec![("strata-hello".into(), "2:1.2.3-4.fc40".into(), 0)]
    );
    let p = find(&sbom, "rpm", "strata-hello").unwrap();
    assert_eq!(
        p.purl,
        "pkg:rpm/fedora/strata-hello@1.2.3-4.fc40?arch=noarch&distro=fedora-40&epoch=2&upstream=strata-hello-1.2.3-4.fc40.src.rpm"
    );
    assert_eq!(p.licenses, vec!["MIT and (BSD or GPLv2+)"]);
    assert_eq!(p.source.as_ref().unwrap().name, "strata-hello");
}

#[test]
fn go_binary_built_by_go() {
    let Some(go) = tool("go") else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path();
    std::fs::create_dir_all(m.join("dep")).unwrap();
    std::fs::write(
        m.join("go.mod"),
        "module example.com/hello\n\ngo 1.18\n\nrequire example.com/dep v1.2.3\n\nreplace example.com/dep v1.2.3 => ./dep\n",
    )
    .unwrap();
    std::fs::write(
        m.join("main.go"),
        "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Hello()) }\n",
    )
    .unwrap();
    std::fs::write(m.join("dep/go.mod"), "module example.com/dep\n\ngo 1.18\n").unwrap();
    std::fs::write(
        m.join("dep/dep.go"),
        "package dep\n\nfunc Hello() string { return \"hi\" }\n",
    )
    .unwrap();
    let out = Command::new(&go)
        .args(["build", "-trimpath", "-o", "hello", "."])
        .current_dir(m)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = Command::new(&go).args(["env", "GOVERSION"]).output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout)
        .trim()
        .trim_start_matches("go")
        .to_owned();
    let bin = std::fs::read(m.join("hello")).unwrap();
    let l0 = Layer::new("COPY hello /usr/local/bin/").exe("usr/local/bin/hello", &bin);
    let sbom = run(vec![l0]);
    assert!(sbom.warnings.is_empty(), "{:#?}", sbom.warnings);
    let mut got = summary(&sbom, "go-module");
    got.sort();
    assert_eq!(
        got,
        vec![
            ("example.com/dep".into(), "v1.2.3".into(), 0),
            ("example.com/hello".into(), "(devel)".into(), 0),
            ("stdlib".into(), version.clone(), 0),
        ]
    );
    assert_eq!(
        find(&sbom, "go-module", "stdlib").unwrap().purl,
        format!("pkg:golang/stdlib@{version}")
    );
    assert_eq!(
        find(&sbom, "go-module", "example.com/dep").unwrap().purl,
        "pkg:golang/example.com/dep@v1.2.3"
    );
    assert_eq!(
        find(&sbom, "go-module", "example.com/dep").unwrap().locations,
        vec!["/usr/local/bin/hello"]
    );
}

#[test]
fn cargo_auditable_section_added_with_objcopy() {
    let Some(objcopy) = tool("objcopy") else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = br#"{"packages":[{"name":"hello","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
        {"name":"itoa","version":"1.0.9","source":"crates.io"},{"name":"cc","version":"1.0.83","source":"crates.io","kind":"build"}]}"#;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(json).unwrap();
    std::fs::write(dir.path().join("dep-v0"), z.finish().unwrap()).unwrap();
    // Any ELF executable will do: the test binary itself is one.
    let me = std::env::current_exe().unwrap();
    let out_bin = dir.path().join("hello");
    let out = Command::new(objcopy)
        .arg("--add-section")
        .arg(format!(".dep-v0={}", dir.path().join("dep-v0").display()))
        .arg(&me)
        .arg(&out_bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "objcopy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l0 = Layer::new("COPY hello /usr/bin/").exe("usr/bin/hello", std::fs::read(&out_bin).unwrap());
    let sbom = run(vec![l0]);
    let mut got = summary(&sbom, "cargo");
    got.sort();
    assert_eq!(
        got,
        vec![
            ("cc".into(), "1.0.83".into(), 0),
            ("hello".into(), "0.1.0".into(), 0),
            ("itoa".into(), "1.0.9".into(), 0)
        ]
    );
    assert_eq!(find(&sbom, "cargo", "itoa").unwrap().purl, "pkg:cargo/itoa@1.0.9");
}

#[test]
fn parallel_and_serial_scans_agree_and_output_is_reproducible() {
    let layers = || {
        (0..6)
            .map(|i| {
                Layer::new(&format!("RUN step {i}"))
                    .file(
                        &format!("usr/lib/python3/site-packages/p{i}-1.{i}.dist-info/METADATA"),
                        metadata(&format!("p{i}"), &format!("1.{i}"), "MIT"),
                    )
                    .file(
                        "app/Cargo.lock",
                        format!("[[package]]\nname = \"c\"\nversion = \"0.{i}.0\"\n"),
                    )
            })
            .collect::<Vec<_>>()
    };
    let serial = run_with(layers(), &strata_sbom::Options { threads: 1, ..opts() });
    let parallel = run_with(layers(), &strata_sbom::Options { threads: 4, ..opts() });
    assert_eq!(serial, parallel);
    assert_eq!(summary(&serial, "python").len(), 6);
    assert_eq!(
        summary(&serial, "cargo"),
        vec![("c".into(), "0.5.0".into(), 5)],
        "only the top layer's Cargo.lock survives"
    );
    assert_eq!(serial.to_spdx_json(), parallel.to_spdx_json());
    assert_eq!(serial.to_cyclonedx_json(), parallel.to_cyclonedx_json());
    assert!(
        serial
            .to_cyclonedx_json()
            .contains("\"timestamp\": \"2023-11-14T22:13:20Z\"")
    );
}

#[test]
fn file_index_and_merged_view() {
    let l0 = Layer::new("a")
        .dir("etc")
        .file("etc/a", "1")
        .file("etc/b", "22")
        .dir("opt")
        .file("opt/x", "x");
    let l1 = Layer::new("b")
        .whiteout("etc/a")
        .opaque("opt")
        .file("opt/y", "yy")
        .symlink("lnk", "etc/b");
    let scans = strata_sbom::scan_layers(
        [l0, l1].into_iter().map(|l| strata_sbom::LayerInput {
            reader: std::io::Cursor::new(l.finish()),
            digest: None,
            created_by: None,
        }),
        &opts(),
    )
    .unwrap();
    assert_eq!(
        scans[1]
            .index
            .entries
            .iter()
            .filter(|e| e.kind == strata_sbom::EntryKind::Whiteout)
            .count(),
        1
    );
    let merged = strata_sbom::MergedIndex::build(scans.iter().map(|s| &s.index));
    let paths: Vec<(&str, usize)> = merged.iter().map(|(p, m)| (p, m.layer)).collect();
    assert_eq!(paths, [("etc", 0), ("etc/b", 0), ("lnk", 1), ("opt", 0), ("opt/y", 1)]);
    assert_eq!(merged.resolve("lnk").unwrap(), "etc/b");
}

#[test]
fn source_date_epoch_makes_documents_reproducible() {
    // nextest runs each test in its own process, so the variable is ours.
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "1700000000") };
    let layers = || vec![Layer::new("x").file("app/Cargo.lock", "[[package]]\nname = \"c\"\nversion = \"1.0.0\"\n")];
    let o = strata_sbom::Options::default();
    let (a, b) = (run_with(layers(), &o), run_with(layers(), &o));
    assert!(a.reproducible);
    assert_eq!(a.to_spdx_json(), b.to_spdx_json());
    assert_eq!(a.to_cyclonedx_json(), b.to_cyclonedx_json());
    unsafe { std::env::remove_var("SOURCE_DATE_EPOCH") };
    let (c, d) = (run_with(layers(), &o), run_with(layers(), &o));
    assert!(!c.reproducible);
    assert_ne!(
        c.to_cyclonedx_json(),
        d.to_cyclonedx_json(),
        "a fresh serial number each time"
    );
}

#[test]
fn a_hard_link_under_another_name_is_not_a_second_database() {
    let status = "Package: a\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n";
    let l0 = Layer::new("x")
        .file("var/lib/dpkg/status", status)
        .hardlink("var/lib/dpkg/status-old", "var/lib/dpkg/status");
    let sbom = run(vec![l0]);
    assert_eq!(find(&sbom, "deb", "a").unwrap().locations, vec!["/var/lib/dpkg/status"]);
}
