//! `push -a` sends every local tag of a repository, `pull -a` fetches every
//! tag the registry lists; a tag with `-a` is refused as Docker does.

mod common;

use common::*;

#[test]
fn push_and_pull_all_tags() {
    let reg = TestRegistry::strata();
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let repo = format!("{}/lib/many", reg.host);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo two > /two\n").unwrap();
    let two = env.ok(&["build", "-q", ctx.to_str().unwrap()]).trim().to_string();
    env.ok(&["tag", "busybox:latest", &format!("{repo}:one")]);
    env.ok(&["tag", "busybox:latest", &format!("{repo}:uno")]);
    env.ok(&["tag", &two, &format!("{repo}:two")]);
    // Another repository's tag is not pushed with it.
    env.ok(&["tag", "busybox:latest", &format!("{}/lib/other:one", reg.host)]);
    let out = env.ok(&["push", "-a", &repo]);
    for t in ["one", "uno", "two"] {
        assert!(out.contains(&format!("{t}: digest: sha256:")), "{out}");
    }
    let err = env.fails(&["push", "-a", &format!("{repo}:one")]);
    assert!(err.contains("tag can't be used with --all-tags/-a"), "{err}");

    let fresh = Env::new();
    let out = fresh.ok(&["pull", "-a", "-q", &repo]);
    assert_eq!(out.lines().count(), 3, "{out}");
    for (t, want) in [("one", &id), ("uno", &id), ("two", &two)] {
        let got = fresh.ok(&["inspect", "--format", "{{.Id}}", &format!("{repo}:{t}")]);
        assert_eq!(got.trim(), want.as_str(), "{t}");
    }
    assert!(
        fresh
            .fails(&["inspect", &format!("{}/lib/other:one", reg.host)])
            .contains("other")
    );
    let err = fresh.fails(&["pull", "-a", &format!("{repo}:one")]);
    assert!(err.contains("tag can't be used with --all-tags/-a"), "{err}");
}
