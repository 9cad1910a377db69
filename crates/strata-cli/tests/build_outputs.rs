//! Where a build's result goes, as buildx takes it: `-o type=local|tar|oci|docker`,
//! `-o DIR`, `--push` (and `type=registry`), `--load`; bad outputs refused
//! before the build.

mod common;

use common::*;

fn context(env: &Env) -> std::path::PathBuf {
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN echo built > /built && rm -f /bin/ls\nCOPY hello /hello\n",
    )
    .unwrap();
    std::fs::write(dir.join("hello"), "hello\n").unwrap();
    dir
}

#[test]
fn a_build_goes_where_the_outputs_say() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let ctx = context(&env);
    let ctx = ctx.to_str().unwrap();

    // A directory: the root filesystem, layers applied (the deleted file gone).
    let local = env.path("local");
    env.ok(&[
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", local.display()),
        ctx,
    ]);
    assert_eq!(std::fs::read_to_string(local.join("built")).unwrap(), "built\n");
    assert_eq!(std::fs::read_to_string(local.join("hello")).unwrap(), "hello\n");
    assert!(local.join("bin/busybox").exists() && !local.join("bin/ls").exists());
    // `-o DIR` is the same.
    let short = env.path("short");
    env.ok(&["build", "-q", "-o", short.to_str().unwrap(), ctx]);
    assert!(short.join("built").exists());

    // A tar of the same tree.
    let tar = env.path("rootfs.tar");
    env.ok(&["build", "-q", "-o", &format!("type=tar,dest={}", tar.display()), ctx]);
    let listing = sh_ok(&format!("tar tf {}", shell_quote(tar.to_str().unwrap())));
    assert!(
        listing.lines().any(|l| l.trim_start_matches("./") == "built"),
        "{listing}"
    );
    assert!(
        !listing.lines().any(|l| l.trim_start_matches("./") == "bin/ls"),
        "{listing}"
    );

    // Archives of the image, named by -t.
    let oci = env.path("image-oci.tar");
    env.ok(&[
        "build",
        "-q",
        "-t",
        "out:oci",
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        ctx,
    ]);
    let docker = env.path("image-docker.tar");
    env.ok(&[
        "build",
        "-q",
        "-t",
        "out:docker",
        "-o",
        &format!("type=docker,dest={}", docker.display()),
        ctx,
    ]);
    let back = Env::new();
    back.ok(&["load", "-q", "-i", oci.to_str().unwrap()]);
    back.ok(&["load", "-q", "-i", docker.to_str().unwrap()]);
    let out = back.ok(&["run", "--rm", "out:docker", "cat", "/built"]);
    assert_eq!(out, "built\n");
    if have("skopeo") {
        let cfg = sh_ok(&format!(
            "skopeo inspect --config oci-archive:{} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"rootfs\"][\"type\"])'",
            shell_quote(oci.to_str().unwrap())
        ));
        assert_eq!(cfg.trim(), "layers");
    }

    // --push: every -t name, on its registry.
    let reg = TestRegistry::strata();
    let name = format!("{}/built/app:1", reg.host);
    env.ok(&["build", "-q", "--push", "-t", &name, ctx]);
    let fresh = Env::new();
    fresh.ok(&["pull", "-q", &name]);
    assert_eq!(fresh.ok(&["run", "--rm", &name, "cat", "/hello"]), "hello\n");
    let err = env.fails(&["build", "-q", "--push", ctx]);
    assert!(err.contains("needs a name"), "{err}");

    // Bad outputs are refused before anything is built.
    let err = env.fails(&["build", "-q", "-o", "type=local", ctx]);
    assert!(err.contains("dest=DIR"), "{err}");
    let err = env.fails(&["build", "-q", "-o", "type=nope,dest=x", ctx]);
    assert!(err.contains("unknown type"), "{err}");
}
