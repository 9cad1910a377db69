//! `export` of a container whose image has whiteouts with nothing below
//! them (a deleted name in a directory only that layer has, an opaque
//! directory): the kernel lists such a whiteout in the overlay but hides it
//! from lookups; the export leaves it out, as docker's does.

mod common;

use std::process::Command;

use common::Env;
use common::differential::{Listing, docker_client, docker_ok, unique};

#[test]
fn export_skips_whiteouts_with_nothing_below() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("newdir")).unwrap();
    std::fs::create_dir_all(src.join("opq")).unwrap();
    for f in ["newdir/.wh.ghost", "newdir/keep", "opq/.wh..wh..opq", "opq/f"] {
        std::fs::write(src.join(f), "").unwrap();
    }
    let tar = env.path("wh.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let tag = unique("whiteouts");
    env.ok(&["import", tar.to_str().unwrap(), &tag]);
    let id = env.ok(&["create", &tag, "true"]).trim().to_string();
    let out = env.path("strata.tar");
    env.ok(&["export", "-o", out.to_str().unwrap(), &id]);
    let s = Listing::of_tar(&out);
    let names: Vec<&str> = s.entries.keys().map(String::as_str).collect();
    // etc: the init layer's (its hosts files are left out of listings).
    assert_eq!(names, ["etc", "newdir", "newdir/keep", "opq", "opq/f"], "{s:?}");
    let Some(docker) = docker_client() else { return };
    docker_ok(&docker, &["import", tar.to_str().unwrap(), &tag]);
    let cid = docker_ok(&docker, &["create", &tag, "true"]).trim().to_string();
    let d_out = env.path("docker.tar");
    docker_ok(&docker, &["export", "-o", d_out.to_str().unwrap(), &cid]);
    docker_ok(&docker, &["rm", &cid]);
    docker_ok(&docker, &["rmi", &tag]);
    let d = Listing::of_tar(&d_out);
    let d_names: Vec<&str> = d.entries.keys().map(String::as_str).collect();
    assert_eq!(names, d_names, "strata, docker");
}
