//! Multi-platform images in the store (issue #13, item 1): an index of
//! three platforms on a registry, pulled for two of them (the third shown
//! absent) or all, listed as one name (`images`, `images --tree`),
//! inspected per platform, tagged, saved (both archive formats keep the
//! index: docker load, skopeo and umoci read them), pushed (the index digest
//! unchanged on a re-push when every platform is held) and removed whole.

mod common;

use common::*;

/// Imports the busybox rootfs as a one-layer image for `platform`, made
/// different per platform (a marker file), named `name`.
fn import_for(env: &Env, platform: &str, name: &str) {
    let rootfs = env.busybox_rootfs().expect("checked by the caller");
    let dir = env.path(&format!("rootfs-{}", platform.replace('/', "-")));
    if !dir.exists() {
        sh_ok(&format!(
            "cp -a {} {} && echo {} > {}/platform",
            shell_quote(rootfs.to_str().unwrap()),
            shell_quote(dir.to_str().unwrap()),
            shell_quote(platform),
            shell_quote(dir.to_str().unwrap())
        ));
    }
    env.ok(&["import", "--platform", platform, dir.to_str().unwrap(), name]);
}

/// A registry holding `REG/multi/app:1`, an OCI index of linux/amd64,
/// linux/arm64 and linux/arm/v7 (an OCI layout written here, copied with
/// `strata copy --all`). Returns the registry and the index digest.
fn registry_with_index(env: &Env) -> (TestRegistry, String) {
    let platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"];
    let layout = env.path("layout");
    let reg = TestRegistry::strata();
    for (i, p) in platforms.iter().enumerate() {
        // Pushed first, so the layers are gzip-compressed as a registry's are.
        let part = format!("{}/parts/app:{i}", reg.host);
        import_for(env, p, &part);
        env.ok(&["push", "-q", &part]);
        env.ok(&[
            "copy",
            "-q",
            &format!("docker://{part}"),
            &format!("oci:{}:p{i}", layout.display()),
        ]);
    }
    let refs: Vec<String> = (0..platforms.len()).map(|i| format!("p{i}")).collect();
    let parts: Vec<(&str, &str)> = refs.iter().map(String::as_str).zip(platforms).collect();
    let index = write_layout_index(&layout, &parts, "multi");
    env.ok(&[
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{}/multi/app:1", reg.host),
    ]);
    (reg, index)
}

fn arch_of(env: &Env, args: &[&str]) -> String {
    let mut a = vec![
        "inspect",
        "-f",
        "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}",
    ];
    a.extend_from_slice(args);
    env.ok(&a).trim().to_string()
}

#[test]
fn a_multi_platform_image_is_one_name_with_its_platforms() {
    let env = Env::new();
    if env.busybox_rootfs().is_none() {
        return;
    }
    let (reg, index) = registry_with_index(&env);
    let name = format!("{}/multi/app:1", reg.host);
    let store = Env::new();

    // Two of three platforms: one name, the index's digest.
    store.ok(&["pull", "-q", "--platform", "linux/amd64,linux/arm64", &name]);
    let rows = store.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ]);
    assert_eq!(rows.trim(), format!("{}/multi/app:1 {index}", reg.host), "{rows}");
    let tree = store.ok(&["images", "--tree"]);
    assert!(
        tree.contains("├─ linux/amd64") && tree.contains("├─ linux/arm64"),
        "{tree}"
    );
    assert!(tree.contains("└─ linux/arm/v7") && tree.contains("absent"), "{tree}");
    assert_eq!(arch_of(&store, &["--platform", "linux/arm64", &name]), "linux/arm64");
    assert_eq!(arch_of(&store, &["--platform", "linux/amd64", &name]), "linux/amd64");
    let described = store.ok(&["inspect", "-f", "{{.Descriptor.digest}}", &name]);
    assert_eq!(described.trim(), index);
    let err = store.fails(&["inspect", "--platform", "linux/arm/v7", &name]);
    assert!(
        err.contains("linux/arm/v7") && err.contains("not in the store"),
        "{err}"
    );
    let err = store.fails(&["inspect", "--platform", "linux/s390x", &name]);
    assert!(err.contains("no image for platform linux/s390x"), "{err}");

    // A tag names the index too; rmi of one name keeps the other.
    store.ok(&["tag", &name, "local:multi"]);
    assert_eq!(
        arch_of(&store, &["--platform", "linux/arm64", "local:multi"]),
        "linux/arm64"
    );
    store.ok(&["rmi", "local:multi"]);
    assert_eq!(arch_of(&store, &["--platform", "linux/arm64", &name]), "linux/arm64");

    // Pushed elsewhere: the platforms it holds, under an index of them.
    let other = TestRegistry::strata();
    let pushed = format!("{}/re/app:1", other.host);
    store.ok(&["tag", &name, &pushed]);
    store.ok(&["push", "-q", &pushed]);
    let raw: serde_json::Value = serde_json::from_str(&sh_ok(&format!(
        "skopeo inspect --tls-verify=false --raw docker://{pushed}"
    )))
    .unwrap();
    let platforms: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"], "{raw}");

    // rmi of the last names removes every platform.
    store.ok(&["rmi", &pushed]);
    store.ok(&["rmi", &name]);
    assert_eq!(
        store.ok(&["images", "-q", "-a"]).trim(),
        "",
        "platform images were left behind"
    );

    // Every platform: a re-push keeps the index digest; save keeps it whole.
    let all = Env::new();
    all.ok(&["pull", "-q", "--all-platforms", &name]);
    let tree = all.ok(&["images", "--tree"]);
    assert!(!tree.contains("absent"), "{tree}");
    let again = format!("{}/again/app:1", other.host);
    all.ok(&["tag", &name, &again]);
    let out = all.ok(&["push", &again]);
    assert!(out.contains(&format!("digest: {index}")), "{out}");
    for (format, file) in [("oci-archive", "multi-oci.tar"), ("docker-archive", "multi-docker.tar")] {
        let path = all.path(file);
        all.ok(&["save", "--format", format, "-o", path.to_str().unwrap(), &name]);
        let back = Env::new();
        back.ok(&["load", "-q", "-i", path.to_str().unwrap()]);
        assert_eq!(
            arch_of(&back, &["--platform", "linux/arm/v7", &name]),
            "linux/arm/v7",
            "{format}"
        );
        assert_eq!(
            arch_of(&back, &["--platform", "linux/arm64", &name]),
            "linux/arm64",
            "{format}"
        );
        if !have("skopeo") {
            eprintln!("skipped: skopeo is not installed");
            continue;
        }
        if format == "oci-archive" {
            // skopeo copies the whole index, and strata loads its copy whole.
            let copied = all.path("skopeo-copy.tar");
            sh_ok(&format!(
                "skopeo copy -q --all oci-archive:{} oci-archive:{}:{}",
                shell_quote(path.to_str().unwrap()),
                shell_quote(copied.to_str().unwrap()),
                shell_quote(&name)
            ));
            let again = Env::new();
            again.ok(&["load", "-q", "-i", copied.to_str().unwrap()]);
            let tree = again.ok(&["images", "--tree"]);
            assert_eq!(tree.matches("─ linux/").count(), 3, "{tree}");
            assert!(!tree.contains("absent"), "{tree}");
            // The archive's image is the index, every platform in it.
            let listed = sh_ok(&format!(
                "skopeo inspect --raw oci-archive:{} | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"manifests\"]))'",
                shell_quote(path.to_str().unwrap())
            ));
            assert_eq!(listed.trim(), "3", "{format}");
        } else {
            // skopeo reads a docker-archive image by image (manifest.json).
            for i in 0..3 {
                let arch = sh_ok(&format!(
                    "skopeo inspect --config docker-archive:{}:@{i} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"architecture\"])'",
                    shell_quote(path.to_str().unwrap())
                ));
                assert!(["amd64", "arm64", "arm"].contains(&arch.trim()), "{arch}");
            }
            if docker_daemon() {
                let out = sh_ok(&format!("docker load -i {}", shell_quote(path.to_str().unwrap())));
                assert!(out.contains(&name), "{out}");
                sh_ok(&format!("docker rmi -f {} >/dev/null", shell_quote(&name)));
            }
        }
    }
}
