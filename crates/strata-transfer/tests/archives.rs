//! oci-archive and docker-archive: round trips through copy(), a legacy
//! docker-archive made by hand, skopeo and umoci on what we write and we on
//! what skopeo writes, and hostile archives (refused, the target untouched).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_oci::{Descriptor, Digest, Manifest, media};
use strata_transfer::docker_archive::DockerArchive;
use strata_transfer::layout::Layout;
use strata_transfer::oci_archive::OciArchive;
use strata_transfer::{CopyOptions, PlatformChoice, Source, TransferError, copy, no_progress};

fn put(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256_of(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), bytes).unwrap();
    d
}

/// A layer tar holding `files`.
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn host_arch() -> String {
    strata_oci::Platform::host().architecture
}

fn config_json(arch: &str, diff_ids: &[Digest]) -> String {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{"Cmd":["/hello"]}}}}"#,
        ids.join(",")
    )
}

/// An image in the layout `dir`: a plain layer and a gzip one; its manifest descriptor.
fn image(dir: &Path, arch: &str, tag: &str) -> Descriptor {
    let plain = layer_tar(&[("hello", format!("hello from {arch} {tag}\n").as_bytes())]);
    let second = layer_tar(&[("etc/motd", b"second layer\n")]);
    let gz = gzip(&second);
    let (l1, l2) = (put(dir, &plain), put(dir, &gz));
    let config = config_json(arch, &[Digest::sha256_of(&plain), Digest::sha256_of(&second)]);
    let c = put(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l1}","size":{}}},{{"mediaType":"{}","digest":"{l2}","size":{}}}]}}"#,
        media::OCI_MANIFEST,
        media::OCI_CONFIG,
        config.len(),
        media::OCI_LAYER_TAR,
        plain.len(),
        media::OCI_LAYER_GZIP,
        gz.len()
    );
    let m = put(dir, manifest.as_bytes());
    Descriptor::new(media::OCI_MANIFEST, m, manifest.len() as u64)
}

/// Names `entries` (descriptor, ref.name, platform arch) in the layout's `index.json`.
fn name(dir: &Path, entries: &[(&Descriptor, &str)]) {
    let e: Vec<String> = entries
        .iter()
        .map(|(d, n)| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{n}"}}}}"#,
                d.media_type, d.digest, d.size
            )
        })
        .collect();
    std::fs::write(
        dir.join("index.json"),
        format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, e.join(",")),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn manifest_of(layout: &Path, d: &Digest) -> Manifest {
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap()).unwrap()
}

/// The archive's files, by name.
fn members(archive: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut t = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for e in t.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        out.insert(name, b);
    }
    out
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

fn opts() -> CopyOptions {
    CopyOptions::default()
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_archive_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let m = image(&src, &host_arch(), "1");
    name(&src, &[(&m, "app:1")]);
    let file = t.path().join("app.tar");

    let dst = OciArchive::create(&file).unwrap();
    copy(
        &Layout::open(&src).unwrap(),
        &dst,
        Some("app:1"),
        &["app:1".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    drop(dst);
    let files = members(&file);
    assert!(
        files.contains_key("oci-layout") && files.contains_key("index.json"),
        "{:?}",
        files.keys()
    );
    assert!(!files.contains_key("manifest.json"));
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "app:1"
    );

    // Back: the manifest digest is unchanged, by name or as the only image.
    let back = OciArchive::open(&file).await.unwrap();
    assert_eq!(back.resolve(Some("app:1")).await.unwrap().digest, m.digest);
    assert_eq!(back.resolve(None).await.unwrap().digest, m.digest);
    let e = back.resolve(Some("nope")).await.unwrap_err();
    assert!(e.to_string().contains("app:1"), "{e}");
    let out = t.path().join("out");
    let r = copy(
        &back,
        &Layout::create(&out).unwrap(),
        None,
        &["v1".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, m.digest);
    assert_eq!(r.blobs_copied, 3);

    // A compressed archive is read the same.
    let gz = t.path().join("app.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&file).unwrap())).unwrap();
    let back = OciArchive::open(&gz).await.unwrap();
    assert_eq!(back.resolve(None).await.unwrap().digest, m.digest);

    if !have("skopeo") {
        eprintln!("skipped: skopeo is not installed");
    } else {
        let v: serde_json::Value = serde_json::from_str(&run(skopeo()
            .arg("inspect")
            .arg(format!("oci-archive:{}", file.display()))))
        .unwrap();
        assert_eq!(v["Digest"], m.digest.to_string());
    }
    if !have("umoci") {
        eprintln!("skipped: umoci is not installed");
    } else {
        let bundle = t.path().join("bundle");
        let mut cmd = Command::new("umoci");
        cmd.arg("unpack");
        if rustix_is_not_root() {
            cmd.arg("--rootless");
        }
        run(cmd.arg("--image").arg(format!("{}:v1", out.display())).arg(&bundle));
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/hello")).unwrap(),
            format!("hello from {} 1\n", host_arch())
        );
        assert!(bundle.join("rootfs/etc/motd").exists());
    }
}

fn rustix_is_not_root() -> bool {
    !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_round_trips_whole() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let host = host_arch();
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let a = image(&src, &host, "a");
    let b = image(&src, other, "b");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{host}","os":"linux"}}}},{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{other}","os":"linux"}}}}]}}"#,
        media::OCI_INDEX,
        a.media_type,
        a.digest,
        a.size,
        b.media_type,
        b.digest,
        b.size
    );
    let ix = Descriptor::new(media::OCI_INDEX, put(&src, index.as_bytes()), index.len() as u64);
    name(&src, &[(&ix, "multi")]);
    let all = CopyOptions {
        platforms: PlatformChoice::All,
        ..Default::default()
    };
    let file = t.path().join("multi.tar");
    copy(
        &Layout::open(&src).unwrap(),
        &OciArchive::create(&file).unwrap(),
        None,
        &["multi".into()],
        &all,
        no_progress(),
    )
    .await
    .unwrap();
    let out = t.path().join("out");
    let r = copy(
        &OciArchive::open(&file).await.unwrap(),
        &Layout::create(&out).unwrap(),
        Some("multi"),
        &[],
        &all,
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, ix.digest);
    assert_eq!(r.images.len(), 2);

    // As a docker-archive: every image, the names on the host's.
    let file = t.path().join("multi-docker.tar");
    copy(
        &Layout::open(&src).unwrap(),
        &DockerArchive::create(&file).unwrap(),
        None,
        &["multi:2".into()],
        &all,
        no_progress(),
    )
    .await
    .unwrap();
    let mj: serde_json::Value = serde_json::from_slice(&members(&file)["manifest.json"]).unwrap();
    assert_eq!(mj.as_array().unwrap().len(), 2);
    let host_config = manifest_of(&src, &a.digest).config.digest;
    assert_eq!(mj[0]["Config"], format!("blobs/sha256/{}", host_config.hex()));
    assert_eq!(mj[0]["RepoTags"], serde_json::json!(["multi:2"]));
    assert!(mj[1]["RepoTags"].is_null());
    let back = DockerArchive::open(&file).await.unwrap();
    assert_eq!(back.resolve(Some("multi:2")).await.unwrap().digest, a.digest);
    assert_eq!(back.resolve(Some("@1")).await.unwrap().digest, b.digest);
    let e = back.resolve(None).await.unwrap_err();
    assert!(e.to_string().contains("multi:2"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_archive_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let m = image(&src, &host_arch(), "d");
    name(&src, &[(&m, "latest")]);
    let man = manifest_of(&src, &m.digest);
    let file = t.path().join("busybox.tar");
    copy(
        &Layout::open(&src).unwrap(),
        &DockerArchive::create(&file).unwrap(),
        None,
        &["busybox".into(), "docker.io/library/busybox:1.36".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();

    // What `strata save` writes: manifest.json, repositories, the OCI layout.
    let files = members(&file);
    let mj: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        mj,
        serde_json::json!([{
            "Config": format!("blobs/sha256/{}", man.config.digest.hex()),
            "RepoTags": ["busybox:latest", "busybox:1.36"],
            "Layers": man.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }])
    );
    let repos: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert_eq!(repos["busybox"]["1.36"], man.layers[1].digest.hex());
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
        "1.36"
    );

    // Back: the same manifest (Docker 25+ keeps it), so the same image ID.
    let back = DockerArchive::open(&file).await.unwrap();
    assert_eq!(
        back.tags(),
        vec![vec!["busybox:latest".to_string(), "busybox:1.36".into()]]
    );
    for r in [None, Some("busybox"), Some("docker.io/library/busybox:1.36")] {
        assert_eq!(back.resolve(r).await.unwrap().digest, m.digest, "{r:?}");
    }
    assert!(matches!(
        back.resolve(Some("busybox:2")).await,
        Err(TransferError::NotFound { .. })
    ));
    let out = t.path().join("out");
    let r = copy(
        &back,
        &Layout::create(&out).unwrap(),
        None,
        &["x".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, man.config.digest);
    assert_eq!(r.root.digest, m.digest);

    if !have("skopeo") {
        eprintln!("skipped: skopeo is not installed");
        return;
    }
    let v: serde_json::Value = serde_json::from_str(&run(skopeo()
        .arg("inspect")
        .arg(format!("docker-archive:{}", file.display()))))
    .unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{v}");
    let dir = t.path().join("skopeo-oci");
    run(skopeo()
        .arg("copy")
        .arg(format!("docker-archive:{}", file.display()))
        .arg(format!("oci:{}:x", dir.display())));
    let d = Layout::open(&dir).unwrap().resolve(Some("x")).await.unwrap();
    // skopeo converts the config to OCI itself (re-serialized: a new
    // digest); the layers it read are the ones we wrote.
    let m2 = manifest_of(&dir, &d.digest);
    let cfg = |dir: &Path, d: &Digest| -> strata_oci::ImageConfig {
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(d.hex())).unwrap()).unwrap()
    };
    assert_eq!(
        cfg(&dir, &m2.config.digest).rootfs.diff_ids,
        cfg(&src, &man.config.digest).rootfs.diff_ids
    );
    assert_eq!(m2.layers.len(), 2);
}

/// A tar entry, written with its name as given (even a hostile one).
enum E<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Dir(&'a str),
}

fn raw_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data, kind, link): (&str, &[u8], _, Option<&str>) = match e {
            E::File(n, d) => (n, d, tar::EntryType::Regular, None),
            E::Symlink(n, t) => (n, b"", tar::EntryType::Symlink, Some(t)),
            E::Dir(n) => (n, b"", tar::EntryType::Directory, None),
        };
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            h.as_gnu_mut().unwrap().linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_docker_archive_reads() {
    let t = tempfile::tempdir().unwrap();
    let arch = host_arch();
    let l1 = layer_tar(&[("hello", b"one")]);
    let l2 = layer_tar(&[("two", b"two")]);
    let l2gz = gzip(&l2);
    let (d1, d2) = (Digest::sha256_of(&l1), Digest::sha256_of(&l2));
    let ca = config_json(&arch, std::slice::from_ref(&d1));
    let cb = config_json(&arch, &[d1.clone(), d2.clone()]);
    let (ida, idb) = (Digest::sha256_of(ca.as_bytes()), Digest::sha256_of(cb.as_bytes()));
    let mj = format!(
        r#"[{{"Config":"{}.json","RepoTags":["a:1"],"Layers":["aaa/layer.tar"]}},{{"Config":"{}.json","RepoTags":["docker.io/library/b:latest"],"Layers":["bbb/layer.tar","ccc/layer.tar"]}}]"#,
        ida.hex(),
        idb.hex()
    );
    let (fa, fb) = (format!("{}.json", ida.hex()), format!("{}.json", idb.hex()));
    let archive = raw_tar(&[
        E::Dir("aaa/"),
        E::File("aaa/layer.tar", &l1),
        E::File("aaa/VERSION", b"1.0"),
        E::Dir("bbb/"),
        // docker save links a layer shared between images
        E::Symlink("bbb/layer.tar", "../aaa/layer.tar"),
        E::File("ccc/layer.tar", &l2gz),
        E::File(&fa, ca.as_bytes()),
        E::File(&fb, cb.as_bytes()),
        E::File("repositories", br#"{"a":{"1":"aaa"}}"#),
        E::File("manifest.json", mj.as_bytes()),
    ]);
    let file = t.path().join("legacy.tar");
    std::fs::write(&file, &archive).unwrap();
    let src = DockerArchive::open(&file).await.unwrap();
    let e = src.resolve(None).await.unwrap_err();
    assert!(
        e.to_string().contains("a:1") && e.to_string().contains("b:latest"),
        "{e}"
    );

    let out = t.path().join("out");
    let r = copy(
        &src,
        &Layout::create(&out).unwrap(),
        Some("a:1"),
        &["a".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, ida);
    let m = manifest_of(&out, &r.root.digest);
    assert_eq!(r.root.media_type, media::DOCKER_MANIFEST);
    assert_eq!(m.config.media_type, media::DOCKER_CONFIG);
    assert_eq!(m.layers[0].digest, d1);
    assert_eq!(m.layers[0].media_type, media::DOCKER_LAYER_TAR);

    // Compressed whole, and the other image: a linked layer and a gzip one.
    let gz = t.path().join("legacy.tar.gz");
    std::fs::write(&gz, gzip(&archive)).unwrap();
    let src = DockerArchive::open(&gz).await.unwrap();
    let r = copy(
        &src,
        &Layout::create(&out).unwrap(),
        Some("b"),
        &["b".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, idb);
    let m = manifest_of(&out, &r.root.digest);
    assert_eq!(m.layers[0].digest, d1);
    assert_eq!(m.layers[1].digest, Digest::sha256_of(&l2gz));
    assert_eq!(m.layers[1].media_type, media::DOCKER_LAYER_GZIP);

    // A layer whose bytes are not its config's diff ID.
    let lying = mj.replace("aaa/layer.tar\"]}", "ccc/VERSION\"]}");
    let archive = raw_tar(&[
        E::File("ccc/VERSION", b"1.0"),
        E::File("aaa/layer.tar", &l1),
        E::File("ccc/layer.tar", &l2gz),
        E::File(&fa, ca.as_bytes()),
        E::File(&fb, cb.as_bytes()),
        E::File("manifest.json", lying.as_bytes()),
    ]);
    std::fs::write(&file, &archive).unwrap();
    let e = DockerArchive::open(&file).await.err().expect("refused");
    assert!(
        e.to_string().contains("ccc/VERSION") && e.to_string().contains("diff ID"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn we_read_what_skopeo_writes() {
    if !have("skopeo") {
        eprintln!("skipped: skopeo is not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let m = image(&src, &host_arch(), "s");
    name(&src, &[(&m, "app")]);
    let config = manifest_of(&src, &m.digest).config.digest;

    let file = t.path().join("docker.tar");
    run(skopeo()
        .arg("copy")
        .arg(format!("oci:{}:app", src.display()))
        .arg(format!("docker-archive:{}:name:tag", file.display())));
    let from = DockerArchive::open(&file).await.unwrap();
    let out = t.path().join("out");
    let r = copy(
        &from,
        &Layout::create(&out).unwrap(),
        Some("name:tag"),
        &["d".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, config);
    // skopeo writes layers uncompressed: each is its diff ID.
    let man = manifest_of(&out, &r.root.digest);
    let cfg: strata_oci::ImageConfig =
        serde_json::from_slice(&std::fs::read(out.join("blobs/sha256").join(config.hex())).unwrap()).unwrap();
    let digests: Vec<Digest> = man.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(digests, cfg.rootfs.diff_ids);

    let file = t.path().join("oci.tar");
    run(skopeo()
        .arg("copy")
        .arg(format!("oci:{}:app", src.display()))
        .arg(format!("oci-archive:{}:name:tag", file.display())));
    let from = OciArchive::open(&file).await.unwrap();
    let r = copy(
        &from,
        &Layout::create(&out).unwrap(),
        Some("name:tag"),
        &["o".into()],
        &opts(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, config);
}

/// A sink archive at `target`, and the error `open` gives for the hostile archive `bytes`.
async fn refused(dir: &Path, bytes: &[u8], docker: bool) -> (TransferError, PathBuf) {
    let bad = dir.join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let target = dir.join("target.tar");
    let e = if docker {
        let _sink = DockerArchive::create(&target).unwrap();
        DockerArchive::open(&bad).await.err().expect("refused")
    } else {
        let _sink = OciArchive::create(&target).unwrap();
        OciArchive::open(&bad).await.err().expect("refused")
    };
    (e, target)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_archives_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let blob = b"some blob";
    let hex = Digest::sha256_of(blob).hex().to_string();
    let blob_name = format!("blobs/sha256/{hex}");

    let cases: Vec<(Vec<u8>, bool, &str)> = vec![
        (
            raw_tar(&[E::File("oci-layout", layout), E::File("../escape", b"x")]),
            false,
            "`..`",
        ),
        (
            raw_tar(&[E::File("oci-layout", layout), E::File("/etc/escape", b"x")]),
            false,
            "absolute",
        ),
        (
            raw_tar(&[E::File("oci-layout", layout), E::Symlink(&blob_name, "/etc/passwd")]),
            false,
            "link",
        ),
        (
            raw_tar(&[E::File("oci-layout", layout), E::Dir(&blob_name)]),
            false,
            "regular files",
        ),
        (
            raw_tar(&[E::File("oci-layout", layout), E::File(&blob_name, b"other blob")]),
            false,
            "do not match",
        ),
        (
            raw_tar(&[
                E::File("manifest.json", b"[]"),
                E::Symlink("x/layer.tar", "../../etc/passwd"),
            ]),
            true,
            "out of the archive",
        ),
        (raw_tar(&[E::File("oci-layout", layout)]), false, "no index.json"),
        (raw_tar(&[E::File("index.json", b"{}")]), true, "no manifest.json"),
    ];
    for (bytes, docker, want) in cases {
        let (e, target) = refused(t.path(), &bytes, docker).await;
        assert!(e.to_string().contains(want), "{want}: {e}");
        assert!(!target.exists());
    }
    // Only the fixture and the bad archive remain (no staging left beside them).
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("bad.tar")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_copy_leaves_the_target_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let m = image(&src, &host_arch(), "f");
    name(&src, &[(&m, "x")]);
    let layer = manifest_of(&src, &m.digest).layers[0].clone();
    let path = src.join("blobs/sha256").join(layer.digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    for docker in [false, true] {
        let target = t.path().join("target.tar");
        let _ = std::fs::remove_file(&target);
        for existing in [false, true] {
            if existing {
                std::fs::write(&target, b"the old archive").unwrap();
            }
            let src = Layout::open(&src).unwrap();
            let e = if docker {
                let dst = DockerArchive::create(&target).unwrap();
                copy(&src, &dst, None, &["x".into()], &opts(), no_progress()).await
            } else {
                let dst = OciArchive::create(&target).unwrap();
                copy(&src, &dst, None, &["x".into()], &opts(), no_progress()).await
            }
            .unwrap_err();
            assert!(matches!(e, TransferError::DigestMismatch { .. }), "{e}");
            assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
            if existing {
                assert_eq!(std::fs::read(&target).unwrap(), b"the old archive");
            } else {
                assert!(!target.exists());
            }
        }
        std::fs::remove_file(&target).unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("src")]);
}
