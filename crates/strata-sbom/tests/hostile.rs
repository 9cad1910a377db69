//! Malformed and hostile content: a warning naming the file, never a panic,
//! an error or a hang. Symlinks are tar entries: the scan never follows one
//! (only `MergedIndex::resolve` does, inside the index, at most 40 hops), so
//! a loop in node_modules cannot make it walk forever.

mod support;

use std::io::{Cursor, Read, Write};
use std::time::Instant;

use strata_sbom::{LayerInput, Options, SbomError, catalog};
use support::*;

fn warned(sbom: &strata_sbom::Sbom, path: &str, needle: &str) -> bool {
    sbom.warnings
        .iter()
        .any(|w| w.path.as_deref() == Some(path) && w.message.contains(needle))
}

/// Deterministic noise.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn truncated_status_and_garbage_metadata() {
    let status = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n\n\
Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\nPackage: coreutils\nStatus: inst";
    let l0 = Layer::new("x")
        .file("var/lib/dpkg/status", status)
        .file(
            "usr/lib/python3/dist-packages/evil-1.0.dist-info/METADATA",
            noise(1, 4096),
        )
        .file("usr/lib/python3/dist-packages/empty-1.0.dist-info/METADATA", "")
        .file(
            "usr/lib/python3/dist-packages/weird.egg-info",
            "Name: \x01\x02\nVersion: 1\n",
        )
        .file("srv/node_modules/bad/package.json", "{\"name\": \"bad\", \"version\": ")
        .file("srv/node_modules/arr/package.json", "[1,2,3]")
        .file("srv/package-lock.json", noise(2, 1000))
        .file("srv/Cargo.lock", noise(3, 1000))
        .file("usr/lib/ruby/gems/3.2.0/specifications/x.gemspec", noise(4, 300));
    let sbom = run(vec![l0]);
    assert_eq!(summary(&sbom, "deb").len(), 2, "the complete stanzas are read");
    assert!(
        warned(&sbom, "/var/lib/dpkg/status", "Package: coreutils"),
        "{:#?}",
        sbom.warnings
    );
    assert!(warned(
        &sbom,
        "/usr/lib/python3/dist-packages/evil-1.0.dist-info/METADATA",
        "not Python package metadata"
    ));
    assert!(warned(
        &sbom,
        "/usr/lib/python3/dist-packages/empty-1.0.dist-info/METADATA",
        "without a Name"
    ));
    assert!(warned(
        &sbom,
        "/usr/lib/python3/dist-packages/weird.egg-info",
        "malformed"
    ));
    assert!(warned(&sbom, "/srv/node_modules/bad/package.json", "not valid JSON"));
    assert!(warned(&sbom, "/srv/node_modules/arr/package.json", "not a JSON object"));
    assert!(warned(&sbom, "/srv/package-lock.json", "not valid JSON"));
    assert!(warned(&sbom, "/srv/Cargo.lock", "not TOML"));
    assert!(warned(
        &sbom,
        "/usr/lib/ruby/gems/3.2.0/specifications/x.gemspec",
        "without a name"
    ));
    assert!(summary(&sbom, "python").is_empty() && summary(&sbom, "npm").is_empty());
    for w in &sbom.warnings {
        assert_eq!(w.layer, Some(0));
        assert!(w.to_string().starts_with("layer 0: /"), "{w}");
    }
}

/// A layer tar holding one file of `size` bytes, generated as it is read.
fn huge_file_layer(path: &str, size: u64) -> impl Read + Send {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let pad = (512 - size % 512) % 512;
    Cursor::new(h.as_bytes().to_vec())
        .chain(std::io::repeat(b' ').take(size))
        .chain(std::io::repeat(0).take(pad + 1024))
}

#[test]
fn a_1gib_package_json_is_skipped_unread() {
    let started = Instant::now();
    let layers = vec![
        LayerInput {
            reader: Box::new(huge_file_layer("app/node_modules/huge/package.json", 1 << 30)) as Box<dyn Read + Send>,
            digest: Some(digest(0)),
            created_by: None,
        },
        LayerInput {
            reader: Box::new(Cursor::new(
                Layer::new("y")
                    .file("app/node_modules/ok/package.json", r#"{"name":"ok","version":"1.0.0"}"#)
                    .finish(),
            )),
            digest: Some(digest(1)),
            created_by: None,
        },
    ];
    let sbom = catalog(layers, &opts()).unwrap();
    assert!(
        warned(&sbom, "/app/node_modules/huge/package.json", "over the 64 MiB limit"),
        "{:#?}",
        sbom.warnings
    );
    assert_eq!(summary(&sbom, "npm"), vec![("ok".into(), "1.0.0".into(), 1)]);
    eprintln!("1 GiB layer scanned in {:?}", started.elapsed());
}

#[test]
fn symlink_loops_do_not_hang() {
    let l0 = Layer::new("x")
        .file("app/node_modules/a/package.json", r#"{"name":"a","version":"1.0.0"}"#)
        .symlink("app/node_modules/a/node_modules/loop", "../..")
        .symlink("app/node_modules/b", "c")
        .symlink("app/node_modules/c", "b")
        .symlink("app/node_modules/self", ".")
        .symlink("etc/os-release", "os-release2")
        .symlink("etc/os-release2", "/etc/os-release");
    let started = Instant::now();
    let sbom = run(vec![l0]);
    assert!(started.elapsed().as_secs() < 10);
    assert_eq!(summary(&sbom, "npm"), vec![("a".into(), "1.0.0".into(), 0)]);
    assert!(warned(&sbom, "/etc/os-release", "symlink loop"), "{:#?}", sbom.warnings);
    assert!(sbom.distro.is_none());
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, data) in entries {
        z.start_file(*name, o).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[test]
fn zip_bombs_and_deep_nesting_in_jars() {
    let zeros = vec![0u8; 64 << 20];
    let bomb = zip_of(&[
        ("META-INF/maven/g/a/pom.properties", &zeros[..4 << 20]),
        ("BOOT-INF/lib/bomb.jar", &zeros),
    ]);
    assert!(bomb.len() < 1 << 20, "64 MiB of zeros compress well: {}", bomb.len());
    let mut deep = zip_of(&[(
        "META-INF/maven/g/deep/pom.properties",
        b"groupId=g\nartifactId=deep\nversion=1\n",
    )]);
    for i in 0..7 {
        deep = zip_of(&[(&format!("lib/level{i}.jar"), &deep)]);
    }
    let ok = zip_of(&[(
        "META-INF/maven/g/ok/pom.properties",
        b"groupId=g\nartifactId=ok\nversion=2.0\n",
    )]);
    let l0 = Layer::new("x")
        .file("opt/bomb.jar", &bomb)
        .file("opt/deep.jar", &deep)
        .file("opt/garbage.jar", noise(5, 5000))
        .file("opt/truncated.jar", &ok[..ok.len() / 2])
        .file("opt/ok.jar", &ok);
    let o = Options {
        max_archive_expanded: 16 << 20,
        ..opts()
    };
    let started = Instant::now();
    let sbom = run_with(vec![l0], &o);
    assert!(started.elapsed().as_secs() < 20);
    assert!(
        warned(
            &sbom,
            "/opt/bomb.jar",
            "META-INF/maven/g/a/pom.properties: expands beyond 1 MiB"
        ),
        "{:#?}",
        sbom.warnings
    );
    assert!(warned(&sbom, "/opt/bomb.jar", "16 MiB in all"), "{:#?}", sbom.warnings);
    assert!(
        warned(&sbom, "/opt/deep.jar", "nested deeper than 4 levels"),
        "{:#?}",
        sbom.warnings
    );
    assert!(warned(&sbom, "/opt/garbage.jar", "not a readable Java archive"));
    assert!(warned(&sbom, "/opt/truncated.jar", "not a readable Java archive"));
    assert_eq!(summary(&sbom, "java-archive"), vec![("ok".into(), "2.0".into(), 0)]);
}

#[test]
fn noise_in_every_cataloguer_never_panics() {
    let paths = [
        "var/lib/dpkg/status",
        "var/lib/dpkg/status.d/base",
        "usr/share/doc/x/copyright",
        "lib/apk/db/installed",
        "var/lib/rpm/rpmdb.sqlite",
        "etc/os-release",
        "p/x-1.dist-info/METADATA",
        "node_modules/x/package.json",
        "package-lock.json",
        "Cargo.lock",
        "specifications/x.gemspec",
        "x.jar",
    ];
    // Each layer has noise of one length at every path (most are fixed paths).
    let sizes = [0usize, 1, 17, 512, 70_000];
    let mut layers: Vec<Layer> = Vec::new();
    for (j, n) in sizes.iter().enumerate() {
        let mut layer = Layer::new("noise");
        for (i, p) in paths.iter().enumerate() {
            layer = layer.file(p, noise((i * 10 + j) as u64, *n));
        }
        layers.push(layer);
    }
    let mut layer = Layer::new("elves");
    // ELF-looking noise: the magic, then garbage, and a real ELF cut short.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    for (j, n) in [64usize, 1000, 100_000].iter().enumerate() {
        let mut b = b"\x7fELF\x02\x01\x01".to_vec();
        b.extend(noise(99 + j as u64, *n));
        layer = layer.exe(&format!("bin/elf{j}"), b);
        layer = layer.exe(&format!("bin/cut{j}"), &me[..(*n).min(me.len())]);
    }
    layers.push(layer);
    let sbom = run(layers);
    assert!(sbom.packages.is_empty(), "{:#?}", sbom.packages);
    for w in &sbom.warnings {
        eprintln!("{w}");
    }
    for p in paths
        .iter()
        .filter(|p| !["etc/os-release", "usr/share/doc/x/copyright"].contains(p))
    {
        assert!(
            sbom.warnings
                .iter()
                .any(|w| w.path.as_deref() == Some(&format!("/{p}"))),
            "no warning for {p}"
        );
    }
}

#[test]
fn an_unreadable_layer_stream_is_an_error_naming_the_layer() {
    let good = Layer::new("a").file("etc/os-release", DEBIAN_OS_RELEASE).finish();
    let mut bad = Layer::new("b").file("big", vec![7u8; 10_000]).finish();
    bad.truncate(3000);
    let inputs = vec![
        LayerInput {
            reader: Cursor::new(good),
            digest: Some(digest(0)),
            created_by: None,
        },
        LayerInput {
            reader: Cursor::new(bad),
            digest: Some(digest(1)),
            created_by: None,
        },
    ];
    match catalog(inputs, &opts()) {
        Err(e @ SbomError::Layer { index: 1, .. }) => assert!(e.to_string().contains(&digest(1)), "{e}"),
        other => panic!("{other:?}"),
    }
}
