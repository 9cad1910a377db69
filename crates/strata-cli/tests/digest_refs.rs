//! `name@sha256:…` and `name:tag@sha256:…` in the commands that take an
//! image: the digest wins over the tag, and it must be a manifest of that
//! repository.

mod common;

use common::*;

#[test]
fn digest_references_work_in_run_tag_inspect_and_belong_to_their_repository() {
    let reg = TestRegistry::strata();
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let name = format!("{}/lib/busybox:1", reg.host);
    env.ok(&["tag", "busybox:latest", &name]);
    env.ok(&["push", "-q", &name]);
    let fresh = Env::new();
    fresh.ok(&["pull", "-q", &name]);
    let digest = fresh
        .ok(&["inspect", "--format", "{{index .RepoDigests 0}}", &name])
        .trim()
        .rsplit_once('@')
        .unwrap()
        .1
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let repo = format!("{}/lib/busybox", reg.host);
    for r in [format!("{repo}@{digest}"), format!("{repo}:nosuchtag@{digest}")] {
        assert_eq!(fresh.ok(&["run", "--rm", &r, "echo", "hi"]).trim(), "hi", "{r}");
        assert_eq!(fresh.ok(&["inspect", "--format", "{{.Id}}", &r]).trim(), id, "{r}");
        fresh.ok(&["tag", &r, "local/copy:1"]);
        assert_eq!(fresh.ok(&["inspect", "--format", "{{.Id}}", "local/copy:1"]).trim(), id);
    }
    // The same digest under another repository names nothing here.
    let other = format!("{}/other/busybox@{digest}", reg.host);
    for args in [
        vec!["inspect", other.as_str()],
        vec!["tag", other.as_str(), "local/x:1"],
        vec!["run", "--rm", other.as_str(), "true"],
    ] {
        let err = fresh.fails(&args);
        // `inspect` looks for containers too: "No such object", as docker's.
        let want = if args[0] == "inspect" {
            "no such object"
        } else {
            "no such image"
        };
        assert!(
            err.contains("other/busybox") && err.to_lowercase().contains(want),
            "{args:?}: {err}"
        );
    }
}
