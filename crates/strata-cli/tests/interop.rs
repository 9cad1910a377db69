//! Archives strata writes are read by skopeo, umoci, oci-image-tool, podman
//! and docker; archives they write are loaded by strata.

mod common;

use common::{Env, docker_daemon, have, sh, sh_ok};

fn saved(env: &Env, format: &str) -> std::path::PathBuf {
    let p = env.path(&format!("{format}.tar"));
    env.ok(&["save", "--format", format, "-o", p.to_str().unwrap(), "busybox"]);
    p
}

#[test]
fn skopeo_reads_both_archives_and_strata_loads_what_skopeo_writes() {
    if !have("skopeo") {
        return;
    }
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let docker = saved(&env, "docker-archive");
    let oci = saved(&env, "oci-archive");
    let v: serde_json::Value =
        serde_json::from_str(&sh_ok(&format!("skopeo inspect docker-archive:{}", docker.display()))).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["Os"], "linux");
    let cfg: serde_json::Value = serde_json::from_str(&sh_ok(&format!(
        "skopeo inspect --config docker-archive:{}",
        docker.display()
    )))
    .unwrap();
    assert_eq!(cfg["config"]["Cmd"][0], "/bin/sh");
    let v: serde_json::Value =
        serde_json::from_str(&sh_ok(&format!("skopeo inspect oci-archive:{}", oci.display()))).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
    // What skopeo writes, strata loads, with the same image ID.
    for (dest, name) in [
        (
            format!("docker-archive:{}:skopeo/bb:1", env.path("sk-docker.tar").display()),
            "sk-docker.tar",
        ),
        (
            format!("oci-archive:{}:skopeo.example/bb:1", env.path("sk-oci.tar").display()),
            "sk-oci.tar",
        ),
    ] {
        sh_ok(&format!("skopeo copy -q oci-archive:{} {dest}", oci.display()));
        let other = Env::new();
        let out = other.ok(&["load", "-i", env.path(name).to_str().unwrap()]);
        assert!(out.contains("Loaded image"), "{out}");
        assert_eq!(other.ok(&["images", "-q", "--no-trunc"]).trim(), id, "{name}");
    }
}

#[test]
fn oci_archive_validates_and_unpacks_with_umoci() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let oci = saved(&env, "oci-archive");
    let layout = env.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    sh_ok(&format!("tar -C {} -xf {}", layout.display(), oci.display()));
    if have("oci-image-tool") {
        let out = sh(&format!("oci-image-tool validate --type image {}", layout.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "oci-image-tool: {text}");
    }
    if have("umoci") {
        let bundle = env.path("bundle");
        sh_ok(&format!(
            "umoci unpack --image {}:latest {}",
            layout.display(),
            bundle.display()
        ));
        assert!(bundle.join("rootfs/bin/busybox").is_file());
        assert!(
            std::fs::symlink_metadata(bundle.join("rootfs/bin/sh"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let cfg = std::fs::read_to_string(bundle.join("config.json")).unwrap();
        assert!(cfg.contains("/bin/sh"), "{cfg}");
    }
    // The docker-archive is an OCI layout as well (Docker 25+ style).
    let docker = saved(&env, "docker-archive");
    let layout2 = env.path("layout2");
    std::fs::create_dir_all(&layout2).unwrap();
    sh_ok(&format!("tar -C {} -xf {}", layout2.display(), docker.display()));
    assert!(layout2.join("manifest.json").is_file() && layout2.join("repositories").is_file());
    if have("oci-image-tool") {
        sh_ok(&format!("oci-image-tool validate --type image {}", layout2.display()));
    }
}

#[test]
fn podman_loads_strata_archives_and_strata_loads_podman_saves() {
    if !have("podman") {
        return;
    }
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let proot = env.path("podman-root");
    let prun = env.path("podman-run");
    let podman = format!(
        "podman --root {} --runroot {} --storage-driver vfs --cgroup-manager cgroupfs --events-backend file",
        proot.display(),
        prun.display()
    );
    for format in ["docker-archive", "oci-archive"] {
        let archive = saved(&env, format);
        let out = sh_ok(&format!("{podman} load -i {} 2>&1", archive.display()));
        assert!(out.contains("Loaded image"), "{format}: {out}");
        let pid = sh_ok(&format!(
            "{podman} image inspect --format '{{{{.Id}}}}' docker.io/library/busybox:latest"
        ));
        assert_eq!(format!("sha256:{}", pid.trim()), id, "{format}");
        let cmd = sh_ok(&format!(
            "{podman} image inspect --format '{{{{.Config.Cmd}}}}' busybox"
        ));
        assert!(cmd.contains("/bin/sh"), "{cmd}");
        sh_ok(&format!("{podman} rmi -a -f >/dev/null 2>&1 || true"));
    }
    // podman save → strata load.
    let archive = saved(&env, "docker-archive");
    sh_ok(&format!("{podman} load -i {} >/dev/null", archive.display()));
    for fmt in ["docker-archive", "oci-archive"] {
        let out = env.path(&format!("podman-{fmt}.tar"));
        sh_ok(&format!(
            "{podman} save --format {fmt} -o {} docker.io/library/busybox:latest",
            out.display()
        ));
        let other = Env::new();
        let loaded = other.ok(&["load", "-i", out.to_str().unwrap()]);
        assert!(loaded.contains("Loaded image"), "{fmt}: {loaded}");
        let v: serde_json::Value = serde_json::from_str(&other.ok(&["inspect", &id])).unwrap();
        assert_eq!(v[0]["Config"]["Cmd"][0], "/bin/sh", "{fmt}");
    }
    sh(&format!(
        "{podman} rmi -a -f; rm -rf {} {}",
        proot.display(),
        prun.display()
    ));
}

#[test]
fn docker_loads_strata_archives_and_strata_loads_docker_saves() {
    if !docker_daemon() {
        return;
    }
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let tag = format!("strata-interop/bb:{}", std::process::id());
    env.ok(&["tag", "busybox", &tag]);
    let archive = env.path("d.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), &tag]);
    let out = sh_ok(&format!("docker load -i {}", archive.display()));
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
    let did = sh_ok(&format!("docker image inspect --format '{{{{.Id}}}}' {tag}"));
    assert_eq!(did.trim(), id);
    let cmd = sh_ok(&format!(
        "docker image inspect --format '{{{{json .Config.Cmd}}}}' {tag}"
    ));
    assert_eq!(cmd.trim(), r#"["/bin/sh"]"#);
    // docker save → strata load.
    let back = env.path("back.tar");
    sh_ok(&format!("docker save -o {} {tag}", back.display()));
    let other = Env::new();
    let loaded = other.ok(&["load", "-i", back.to_str().unwrap()]);
    assert!(loaded.contains(&tag), "{loaded}");
    assert_eq!(other.ok(&["images", "-q", "--no-trunc"]).trim(), id);
    sh(&format!("docker rmi {tag}"));
}
