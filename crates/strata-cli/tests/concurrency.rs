//! Several strata processes on one store at once: nothing lost.

mod common;

use std::process::Stdio;

use common::Env;

#[test]
fn eight_processes_import_and_tag_concurrently() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let mut children = Vec::new();
    for i in 0..8 {
        let dir = env.path(&format!("ctx{i}"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/file"), format!("process {i}")).unwrap();
        let script = format!(
            "set -e; S='{bin} --root {root}'; for j in 1 2 3; do $S import {dir} img{i}:v$j >/dev/null; $S tag busybox bb{i}:t$j; done",
            bin = env!("CARGO_BIN_EXE_strata"),
            root = env.root().display(),
            dir = dir.display()
        );
        children.push(
            std::process::Command::new("bash")
                .arg("-c")
                .arg(script)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let names = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for i in 0..8 {
        for j in 1..=3 {
            assert!(names.contains(&format!("img{i}:v{j}")), "img{i}:v{j} lost:\n{names}");
            assert!(names.contains(&format!("bb{i}:t{j}")), "bb{i}:t{j} lost:\n{names}");
        }
    }
    // Every image is readable, and the store's temporary area is empty.
    for i in 0..8 {
        env.ok(&["inspect", &format!("img{i}:v3")]);
    }
    assert_eq!(std::fs::read_dir(env.root().join("tmp")).unwrap().count(), 0);
}
