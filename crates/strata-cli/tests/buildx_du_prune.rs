//! `buildx du` lists the build cache, `buildx prune` empties it (and frees
//! the layers only it kept) without touching what images use; a relative
//! `--root` works for builds too.

mod common;

use common::*;

#[test]
fn buildx_du_lists_and_prune_empties_the_build_cache() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    env.ok(&["build", "-q", "-t", "app:1", ctx]);
    let du = env.ok(&["buildx", "du"]);
    let rows: Vec<&str> = du.lines().skip(1).filter(|l| !l.contains(':')).collect();
    assert_eq!(rows.len(), 2, "{du}");
    assert!(du.contains("Total:"), "{du}");
    // A second build is all cache hits.
    let o = env.run(&["build", "--progress", "plain", "-t", "app:2", ctx]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).matches("CACHED").count(),
        2,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pruned = env.ok(&["buildx", "prune", "-f"]);
    assert!(pruned.contains("Deleted build cache objects: 2"), "{pruned}");
    let du = env.ok(&["buildx", "du"]);
    assert_eq!(du.lines().skip(1).filter(|l| !l.contains(':')).count(), 0, "{du}");
    // The image still runs, the store is whole, and a build misses now.
    assert_eq!(env.ok(&["run", "--rm", "app:1", "cat", "/b"]), "b\n");
    let check = env.ok(&["system", "check"]);
    assert!(check.contains("no problems"), "{check}");
    let o = env.run(&["build", "--progress", "plain", "-t", "app:3", ctx]);
    assert!(o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("CACHED"),
        "still cached after prune"
    );
}
