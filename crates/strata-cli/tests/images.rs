//! The image commands end to end: import, images, tag, rmi, inspect,
//! history, save/load round trips, prune, system df.

mod common;

use common::Env;

#[test]
fn import_list_inspect_history() {
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let out = env.ok(&["images"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.starts_with("busybox "), "{row}");
    assert!(row.contains(&id[7..19]), "{row}");
    assert!(row.contains("MB"), "{row}");
    // --format and -q
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
            .trim(),
        format!("busybox:latest {}", &id[7..19])
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), &id[7..19]);
    assert_eq!(env.ok(&["images", "-q", "--no-trunc"]).trim(), id);
    let json: serde_json::Value = serde_json::from_str(env.ok(&["images", "--format", "{{json .}}"]).trim()).unwrap();
    assert_eq!(json["Repository"], "busybox");
    let table = env.ok(&["images", "--format", "table {{.Repository}}\t{{.Size}}"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    // inspect
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "busybox"])).unwrap();
    let img = &v[0];
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(img["RepoTags"][0], "busybox:latest");
    assert_eq!(img["Config"]["Cmd"][0], "/bin/sh");
    assert!(img["Config"]["Env"][0].as_str().unwrap().starts_with("PATH="));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(img["Size"].as_u64().unwrap() > 1_000_000);
    assert!(img["Metadata"]["LastTagTime"].is_string());
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.Os}}/{{.Architecture}}", &id[7..15]])
            .trim(),
        format!("linux/{}", img["Architecture"].as_str().unwrap())
    );
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox:latest"])
            .trim(),
        r#"["/bin/sh"]"#
    );
    // history
    let h = env.ok(&["history", "busybox"]);
    assert!(h.starts_with("IMAGE"), "{h}");
    assert!(h.contains("CREATED BY") && h.contains("COMMENT"), "{h}");
    assert!(h.contains(&id[7..19]), "{h}");
    assert_eq!(env.ok(&["history", "-q", "busybox"]).trim(), &id[7..19]);
    let raw = env.ok(&["history", "-H=false", "--no-trunc", "busybox"]);
    assert!(raw.contains(&id) && raw.contains('T') && !raw.contains("MB"), "{raw}");
    // unknown image (and no container of that name either: docker's words)
    let err = env.fails(&["inspect", "nosuch"]);
    assert!(err.contains("No such object: nosuch"), "{err}");
    let err = env.fails(&["image", "inspect", "nosuch"]);
    assert!(err.contains("No such image"), "{err}");
    let err = env.fails(&["inspect", "Busybox"]);
    assert!(err.contains("lowercase"), "{err}");
}

#[test]
fn tag_retag_rmi_dangling_and_prune() {
    let env = Env::new();
    let Some(first) = env.import_busybox() else { return };
    env.ok(&["tag", "busybox", "localhost:5000/team/bb:v1"]);
    env.ok(&["tag", &first[7..19], "other:1"]);
    let out = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        out.contains("localhost:5000/team/bb:v1") && out.contains("other:1") && out.contains("busybox:latest"),
        "{out}"
    );
    // Filters.
    assert_eq!(
        env.ok(&["images", "--filter", "reference=other*", "--format", "{{.Repository}}"])
            .trim(),
        "other"
    );
    assert_eq!(env.ok(&["images", "--filter", "dangling=true", "-q"]).trim(), "");
    // An ID in several repositories needs -f.
    let err = env.fails(&["rmi", &first[7..19]]);
    assert!(
        err.contains("must be forced") && err.contains("multiple repositories"),
        "{err}"
    );
    // Untagging one name keeps the image.
    let out = env.ok(&["rmi", "other:1"]);
    assert_eq!(out.trim(), "Untagged: other:1");
    env.ok(&["rmi", "localhost:5000/team/bb:v1"]);
    // Re-import under the same name: the old image becomes dangling.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let rootfs = env.busybox_rootfs().unwrap();
    let second = env
        .ok(&["import", "-m", "again", rootfs.to_str().unwrap(), "busybox"])
        .trim()
        .to_string();
    assert_ne!(first, second);
    let dangling = env.ok(&[
        "images",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Repository}} {{.Tag}} {{.ID}}",
    ]);
    assert_eq!(dangling.trim(), format!("<none> <none> {}", &first[7..19]));
    let plain = env.ok(&["images"]);
    assert!(plain.contains("<none>"), "{plain}");
    // system df counts the shared layer once: both images have the same layer.
    let df = env.ok(&["system", "df"]);
    assert!(df.contains("Images") && df.contains("Build Cache"), "{df}");
    let images_line = df.lines().find(|l| l.starts_with("Images")).unwrap();
    let size_one = env
        .ok(&["images", "--format", "{{.Size}}", "busybox"])
        .trim()
        .to_string();
    assert!(
        images_line.contains(&format!("{size_one} ")),
        "shared layer counted once: {images_line} vs {size_one}"
    );
    let dfv = env.ok(&["system", "df", "-v"]);
    assert!(dfv.contains("SHARED SIZE") && dfv.contains("UNIQUE SIZE"), "{dfv}");
    // prune removes only the dangling one.
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {first}")), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(env.ok(&["images", "-q", "--no-trunc"]).trim(), second);
    // The shared layer blob survived for the second image.
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(v[0]["Comment"], "again");
    // prune -a removes the rest.
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.contains("untagged: busybox:latest") && out.contains(&second),
        "{out}"
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    let blobs = std::fs::read_dir(env.root().join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0, "every blob reclaimed");
    // rmi of the last tag deletes.
    let id = env.import_busybox().unwrap();
    let out = env.ok(&["rmi", "busybox"]);
    assert_eq!(out.trim(), format!("Untagged: busybox:latest\nDeleted: {id}"));
    let err = env.fails(&["rmi", "busybox"]);
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn save_and_load_round_trip_both_formats() {
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    env.ok(&["tag", "busybox", "example.com/a/b:2"]);
    for (format, file) in [("docker-archive", "d.tar"), ("oci-archive", "o.tar")] {
        let path = env.path(file);
        env.ok(&[
            "save",
            "--format",
            format,
            "-o",
            path.to_str().unwrap(),
            "busybox",
            "example.com/a/b:2",
        ]);
        let other = Env::new();
        let out = other.ok(&["load", "-i", path.to_str().unwrap()]);
        assert!(out.contains("Loaded image: busybox:latest"), "{format}: {out}");
        assert!(out.contains("Loaded image: example.com/a/b:2"), "{format}: {out}");
        assert_eq!(
            other.ok(&["images", "-q", "--no-trunc", "busybox"]).trim(),
            id,
            "{format}: same image ID"
        );
        let a: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "busybox"])).unwrap();
        let b: serde_json::Value = serde_json::from_str(&other.ok(&["inspect", "busybox"])).unwrap();
        assert_eq!(a[0]["Config"], b[0]["Config"]);
        assert_eq!(a[0]["RootFS"], b[0]["RootFS"]);
        // Loading twice changes nothing.
        let before = other.snapshot();
        other.ok(&["load", "-i", path.to_str().unwrap()]);
        assert_eq!(before, other.snapshot());
    }
    // save to stdout, load from stdin, gzip-compressed archive accepted.
    let gz = env.path("s.tar.gz");
    common::sh_ok(&format!(
        "{} --root {} save busybox | gzip -1 > {}",
        env!("CARGO_BIN_EXE_strata"),
        env.root().display(),
        gz.display()
    ));
    let other = Env::new();
    let out = common::sh_ok(&format!(
        "{} --root {} load < {}",
        env!("CARGO_BIN_EXE_strata"),
        other.root().display(),
        gz.display()
    ));
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
}

#[test]
fn import_tarballs_and_changes() {
    let env = Env::new();
    let Some(rootfs) = env.busybox_rootfs() else { return };
    let tar = env.path("rootfs.tar");
    common::sh_ok(&format!(
        "tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C {} -cf {} .",
        rootfs.display(),
        tar.display()
    ));
    common::sh_ok(&format!("gzip -k {}", tar.display()));
    let plain = env.ok(&["import", tar.to_str().unwrap(), "t:plain"]);
    let gz = env.ok(&["import", &format!("{}.gz", tar.display()), "t:gz"]);
    let a: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "t:plain"])).unwrap();
    let b: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "t:gz"])).unwrap();
    assert_eq!(a[0]["RootFS"], b[0]["RootFS"], "same diff ID from plain and gzip input");
    assert_ne!(plain, gz, "different created times give different IDs");
    // stdin and changes
    let out = common::sh_ok(&format!(
        "{} --root {} import -c 'WORKDIR /app' -c 'EXPOSE 8080' -c 'ENTRYPOINT [\"/bin/echo\"]' -c 'LABEL a=b' -c 'USER nobody' -m hello - t:stdin < {}",
        env!("CARGO_BIN_EXE_strata"),
        env.root().display(),
        tar.display()
    ));
    assert!(out.trim().starts_with("sha256:"));
    let c: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "t:stdin"])).unwrap();
    let cfg = &c[0]["Config"];
    assert_eq!(cfg["WorkingDir"], "/app");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(cfg["Entrypoint"][0], "/bin/echo");
    assert_eq!(cfg["Labels"]["a"], "b");
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(c[0]["Comment"], "hello");
    let err = env.fails(&["import", "-c", "RUN true", tar.to_str().unwrap()]);
    assert!(err.contains("RUN is not allowed"), "{err}");
    // Reproducible with SOURCE_DATE_EPOCH: two stores, same image ID.
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let e = Env::new();
            let o = e
                .cmd()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["import", rootfs.to_str().unwrap(), "r"])
                .output()
                .unwrap();
            assert!(o.status.success());
            String::from_utf8(o.stdout).unwrap()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn help_reads_like_docker() {
    let env = Env::new();
    let out = env.ok(&["--help"]);
    assert!(
        out.contains("Usage:  strata [OPTIONS] COMMAND") || out.contains("Usage:  strata"),
        "{out}"
    );
    for c in [
        "import", "images", "tag", "rmi", "inspect", "history", "save", "load", "image", "system",
    ] {
        assert!(out.contains(c), "{c} missing from help");
    }
    let out = env.ok(&["images", "--help"]);
    assert!(
        out.contains("Usage:  strata images [OPTIONS] [REPOSITORY[:TAG]]"),
        "{out}"
    );
    assert!(out.contains("--digests") && out.contains("--filter"), "{out}");
}
