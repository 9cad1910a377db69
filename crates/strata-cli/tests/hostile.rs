//! Hostile inputs: each ends in a clear error and an unchanged store.

mod common;

use common::{Env, sh_ok};

/// Builds a tar with Python's tarfile, which writes whatever names it is given.
fn py_tar(path: &std::path::Path, body: &str) {
    let script = format!(
        "import tarfile, io, sys\nt = tarfile.open({:?}, 'w', format=tarfile.PAX_FORMAT)\ndef f(name, data=b'x', **kw):\n    i = tarfile.TarInfo(name); i.size = len(data)\n    for k, v in kw.items(): setattr(i, k, v)\n    t.addfile(i, io.BytesIO(data))\n{body}\nt.close()\n",
        path.display().to_string()
    );
    let py = path.with_extension("py");
    std::fs::write(&py, script).unwrap();
    sh_ok(&format!("python3 {}", py.display()));
}

fn refused(env: &Env, args: &[&str], needle: &str) {
    let before = env.snapshot();
    let err = env.fails(args);
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "expected {needle:?} in: {err}"
    );
    assert_eq!(before, env.snapshot(), "store changed after {args:?}");
}

#[test]
fn hostile_import_tarballs() {
    let env = Env::new();
    let _ = env.import_busybox();
    let cases = [
        ("traversal", "f('../../evil')", ".."),
        ("deep-traversal", "f('a/../../evil')", ".."),
        (
            "hardlink-out",
            "i = tarfile.TarInfo('link'); i.type = tarfile.LNKTYPE; i.linkname = '../../etc/passwd'; t.addfile(i)",
            "..",
        ),
        ("bogus-whiteout", "f('dir/.wh.', b'')", "whiteout"),
        ("bogus-whiteout-dots", "f('.wh..', b'')", "whiteout"),
    ];
    for (name, body, needle) in cases {
        let p = env.path(&format!("{name}.tar"));
        py_tar(&p, body);
        refused(&env, &["import", p.to_str().unwrap(), "evil:1"], needle);
    }
    // A tar whose header claims more bytes than follow.
    let p = env.path("liar.tar");
    py_tar(&p, "f('big', b'y' * 4096)");
    sh_ok(&format!("truncate -s 2048 {}", p.display()));
    refused(&env, &["import", p.to_str().unwrap(), "evil:1"], "truncated");
    // A truncated gzip stream.
    let ok = env.path("ok.tar");
    py_tar(&ok, "f('a', __import__('os').urandom(100000))");
    sh_ok(&format!("gzip -c {0} | head -c 30000 > {0}.gz", ok.display()));
    refused(&env, &["import", &format!("{}.gz", ok.display()), "evil:1"], "gzip");
    // Not a tarball at all.
    let junk = env.path("junk");
    std::fs::write(&junk, vec![0x42u8; 5000]).unwrap();
    refused(&env, &["import", junk.to_str().unwrap(), "evil:1"], "tar");
}

#[test]
fn hostile_load_archives() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let good = env.path("good.tar");
    env.ok(&["save", "-o", good.to_str().unwrap(), "busybox"]);
    let x = env.path("x");
    std::fs::create_dir_all(&x).unwrap();
    sh_ok(&format!("tar -C {} -xf {}", x.display(), good.display()));
    let layer = sh_ok(&format!(
        "python3 -c \"import json; print(json.load(open('{}/manifest.json'))[0]['Layers'][0])\"",
        x.display()
    ));
    let layer = layer.trim();
    let other = Env::new();
    other.import_busybox();
    other.ok(&["tag", "busybox", "keep:me"]);
    let pack = |name: &str| {
        let out = env.path(name);
        sh_ok(&format!("tar -C {} -cf {} .", x.display(), out.display()));
        out
    };
    // 1. A blob whose bytes do not match its digest.
    let layer_path = x.join(layer);
    let original = std::fs::read(&layer_path).unwrap();
    let mut bad = original.clone();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    std::fs::write(&layer_path, &bad).unwrap();
    let a = pack("bad-digest.tar");
    refused(
        &other,
        &["load", "-i", a.to_str().unwrap()],
        "does not match its digest",
    );
    std::fs::write(&layer_path, &original).unwrap();
    // 2. The manifest names a blob that is missing.
    std::fs::remove_file(&layer_path).unwrap();
    let a = pack("missing.tar");
    refused(&other, &["load", "-i", a.to_str().unwrap()], "not in the archive");
    std::fs::write(&layer_path, &original).unwrap();
    // 3. An index over 4 MiB.
    let index = x.join("index.json");
    let saved_index = std::fs::read(&index).unwrap();
    let mut big = b"{\"schemaVersion\":2,\"manifests\":[],\"pad\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024 + 10));
    big.extend(b"\"}");
    std::fs::write(&index, &big).unwrap();
    let a = pack("big-index.tar");
    refused(&other, &["load", "-i", a.to_str().unwrap()], "more than");
    std::fs::write(&index, &saved_index).unwrap();
    // 4. A manifest.json whose config says another diff ID than the layer has.
    let m = x.join("manifest.json");
    let saved_manifest = std::fs::read(&m).unwrap();
    std::fs::write(&m, br#"[{"Config":"nope.json","RepoTags":["evil:1"],"Layers":[]}]"#).unwrap();
    let a = pack("no-config.tar");
    refused(&other, &["load", "-i", a.to_str().unwrap()], "not in the archive");
    std::fs::write(&m, &saved_manifest).unwrap();
    // 5. A member name leaving the archive.
    let p = env.path("escape.tar");
    py_tar(&p, "f('../manifest.json', b'[]')");
    refused(&other, &["load", "-i", p.to_str().unwrap()], "leaves the archive");
    // 6. Not an image archive.
    let p = env.path("empty.tar");
    py_tar(&p, "f('hello', b'hi')");
    refused(&other, &["load", "-i", p.to_str().unwrap()], "neither manifest.json");
    // The intact archive still loads.
    let a = pack("intact.tar");
    other.ok(&["load", "-i", a.to_str().unwrap()]);
}

#[test]
fn hostile_references() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    for (r, why) in [
        ("UPPER:1", "lowercase"),
        ("a//b", "empty path component"),
        (&format!("a:{}", "t".repeat(129)) as &str, "at most 128"),
        ("a@sha256:1234", "64 lowercase hex"),
        ("a@sha256:../../etc/passwd", "64 lowercase hex"),
    ] {
        refused(&env, &["tag", "busybox", r], why);
    }
    refused(
        &env,
        &[
            "tag",
            "busybox",
            "x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ],
        "digest",
    );
}

/// CVE-2022-2879 class: a 1 GiB PAX record in the archive given to `load`
/// (the outer docker-archive, not a layer) is refused after at most 1 MiB of
/// it, not read into memory. The archive is streamed on stdin as it is
/// generated; the test counts how much of it strata read.
#[test]
fn load_refuses_an_oversized_pax_record_without_reading_it() {
    use std::io::Write;
    let env = Env::new();
    let mut child = env
        .cmd()
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let size: u64 = 1 << 30;
        let mut h = [0u8; 512];
        h[..17].copy_from_slice(b"PaxHeaders/big.x\0");
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'x';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut sent: u64 = 0;
        if stdin.write_all(&h).is_err() {
            return sent;
        }
        let chunk = vec![b'a'; 1 << 16];
        while sent < size {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    let sent = writer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("MiB") || err.contains("limit"), "{err}");
    // A pipe holds a little more than was read; nothing near the whole record.
    assert!(sent < 16 << 20, "strata read {sent} bytes of the 1 GiB record");
}
