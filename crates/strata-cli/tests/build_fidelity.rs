//! Builds that equal BuildKit's (issue #15, build items 6–10): ARG/ENV
//! scoping, `USER name:group`, the RUN sandbox, the config of `FROM
//! scratch` and port ranges, and the history BuildKit writes.
//!
//! Each test asserts strata's own expectations (so it fails without docker
//! when strata is wrong), then compares with docker's BuildKit where it
//! answers. Where Docker 20.10's BuildKit differs from current BuildKit's
//! source (the history text of EXPOSE and HEALTHCHECK, ARG values, a
//! repeated ARG and a child stage's inherited ARGs in `RUN |N`), strata
//! follows current BuildKit and only the parts both agree on are compared.

mod common;

use common::Env;
use common::differential::{Differential, Pair};

fn history(pair: &Pair) -> Vec<(String, bool)> {
    pair.strata_history()
}

fn entry(created_by: &str, empty: bool) -> (String, bool) {
    (created_by.to_string(), empty)
}

/// docker's history entries after the base's, when docker took part.
fn docker_history(pair: &Pair) -> Option<Vec<(String, bool)>> {
    let base = pair.strata.history(0).len() - pair.strata_history().len();
    Some(pair.docker.as_ref()?.history(base))
}

// ---- item 6: ARG/ENV scoping ----

const SCOPING: &str = r#"FROM @BASE@ AS parent
ARG P=pv
ENV E=env1
ARG E=argv
ARG X=xa
ENV X=xenv
RUN echo "E=$E P=$P X=$X" > /e1 && env | grep -E '^(E|P|X)=' | sort > /env1
FROM parent AS child
RUN echo "P=$P" > /c1 && env | grep '^P=' > /envc
"#;

#[test]
fn an_arg_after_an_env_wins_and_a_child_stage_keeps_the_parents_args() {
    let env = Env::new();
    let Some(diff) = Differential::new(&env, "scoping") else {
        return;
    };
    let dir = diff.context("scoping", SCOPING, &[]);
    // The parent alone: everything compared, history included.
    let parent = diff.build(&dir, "scoping-parent", &["--target", "parent"]);
    let (s, d) = diff.run_both(&parent, "cat /e1 /env1");
    // ARG E after ENV E wins; ENV X after ARG X wins.
    assert_eq!(s, "E=argv P=pv X=xenv\nE=argv\nP=pv\nX=xenv\n");
    if let Some(d) = d {
        assert_eq!(s, d, "the RUN's environment (strata, docker)");
    }
    assert_eq!(
        history(&parent),
        [
            entry("ARG P=pv", true),
            entry("ENV E=env1", true),
            entry("ARG E=argv", true),
            entry("ARG X=xa", true),
            entry("ENV X=xenv", true),
            entry(
                r#"RUN |3 P=pv E=argv X=xenv /bin/sh -c echo "E=$E P=$P X=$X" > /e1 && env | grep -E '^(E|P|X)=' | sort > /env1 # buildkit"#,
                false
            ),
        ]
    );
    // The image's Env has the ENVs only.
    assert_eq!(
        parent.strata.config("Env"),
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "E=env1",
            "X=xenv"
        ])
    );
    parent.assert_same();

    // The child stage: its RUN sees the parent's ARG values.
    let child = diff.build(&dir, "scoping-child", &[]);
    let (s, _) = diff.run_both(&child, "cat /c1 /envc");
    assert_eq!(s, "P=pv\nP=pv\n");
    child.assert_same_rootfs().assert_same_config();
    // Current BuildKit lists the inherited ARGs in the child's RUN (20.10 did not).
    let last = history(&child).pop().unwrap();
    assert_eq!(
        last,
        entry(
            r#"RUN |3 P=pv E=argv X=xenv /bin/sh -c echo "P=$P" > /c1 && env | grep '^P=' > /envc # buildkit"#,
            false
        )
    );
}

// ---- item 7: USER name:group ----

const USERS: &str = r#"FROM @BASE@
RUN echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd \
 && echo 'app:x:1000:' >> /etc/group && echo 'extra:x:2000:app' >> /etc/group \
 && echo 'other:x:3000:' >> /etc/group && mkdir /ids && chmod 777 /ids
USER app
RUN id > /ids/1
USER app:other
RUN id > /ids/2
USER app:3000
RUN id > /ids/3
USER 1000
RUN id > /ids/4
USER 1000:other
RUN id > /ids/5
"#;

#[test]
fn user_with_a_group_runs_without_supplementary_groups() {
    let env = Env::new();
    let Some(diff) = Differential::new(&env, "users") else {
        return;
    };
    let dir = diff.context("users", USERS, &[]);
    let pair = diff.build(&dir, "users", &[]);
    let (s, d) = diff.run_both(&pair, "cd /ids && for f in 1 2 3 4 5; do cat $f; done");
    assert_eq!(
        s,
        "uid=1000(app) gid=1000(app) groups=2000(extra)\n\
         uid=1000(app) gid=3000(other)\n\
         uid=1000(app) gid=3000(other)\n\
         uid=1000(app) gid=1000(app) groups=2000(extra)\n\
         uid=1000(app) gid=3000(other)\n"
    );
    if let Some(d) = d {
        assert_eq!(s, d, "id in RUN (strata, docker)");
    }
    pair.assert_same();
}

// ---- item 8: the RUN sandbox ----

const SANDBOX: &str = r#"FROM @BASE@ AS s
RUN mkdir /out && env | sort > /out/env && cat /etc/hosts > /out/hosts \
 && ls /dev > /out/dev && grep CapInh /proc/self/status > /out/caps && hostname > /out/hostname
FROM @BASE@
COPY --from=s /out /out
COPY --from=s /etc /copied-etc
"#;

#[test]
fn run_has_buildkits_sandbox() {
    let env = Env::new();
    let Some(diff) = Differential::new(&env, "sandbox") else {
        return;
    };
    let dir = diff.context("sandbox", SANDBOX, &[]);
    let pair = diff.build(&dir, "sandbox", &[]);
    let (s, d) = diff.run_both(
        &pair,
        "cd /out && for f in env hosts dev caps hostname; do cat $f; done",
    );
    // runc makes /dev/core only where the kernel has /proc/kcore.
    let core = std::path::Path::new("/proc/kcore").exists();
    let want = format!(
        "HOME=/root\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\n\
         127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         {}fd\nfull\nmqueue\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n\
         CapInh:\t0000000000000000\nbuildkitsandbox\n",
        if core { "core\n" } else { "" }
    );
    assert_eq!(s, want);
    if let Some(d) = d {
        assert_eq!(s, d, "the RUN sandbox (strata, docker)");
    }
    // The hosts file was mounted, never written into the step's layer.
    assert_eq!(pair.strata.rootfs.get("copied-etc/hosts"), "(none)");
    pair.assert_same();
}

// ---- item 9: config ----

#[test]
fn scratch_works_in_root_and_port_ranges_expand() {
    let env = Env::new();
    let Some(diff) = Differential::new(&env, "config") else {
        return;
    };
    let dir = diff.context(
        "config",
        "FROM scratch\nCOPY f /f\nEXPOSE 7000-7002/udp 80\n",
        &[("f", "f\n")],
    );
    let pair = diff.build(&dir, "config", &[]);
    assert_eq!(pair.strata.config("WorkingDir"), serde_json::json!("/"));
    assert_eq!(
        pair.strata.config("ExposedPorts"),
        serde_json::json!({"7000/udp": {}, "7001/udp": {}, "7002/udp": {}, "80/tcp": {}})
    );
    // FROM scratch: the image's history is the build's alone.
    assert_eq!(
        pair.strata.history(0),
        [
            entry("COPY f /f # buildkit", false),
            // Current BuildKit's text (`%v` of the ports); 20.10 printed a map.
            entry("EXPOSE [7000/udp 7001/udp 7002/udp 80/tcp]", true),
        ]
    );
    // (Not the whole root filesystems: docker's container of a scratch image
    // has the /etc its runtime made for hosts and resolv.conf.)
    pair.assert_same_config();
    if let Some(d) = &pair.docker {
        assert_eq!(d.rootfs.get("f"), pair.strata.rootfs.get("f"));
        assert_eq!(d.history(0).len(), 2);
        assert_eq!(d.history(0)[0], entry("COPY f /f # buildkit", false));
    }
    // A protocol BuildKit does not know is refused.
    let bad = diff.context("bad-port", "FROM scratch\nEXPOSE 80/icmp\n", &[]);
    let failed = diff.build_fails(&bad, "bad-port", &[]);
    assert!(failed.strata.contains("invalid proto: icmp"), "{}", failed.strata);
    if let Some(d) = failed.docker {
        assert!(d.to_lowercase().contains("invalid proto: icmp"), "{d}");
    }
}

// ---- item 10: history ----

const HISTORY: &str = r#"FROM @BASE@ AS b
RUN mkdir /out && echo x > /out/x
FROM @BASE@
ARG PORTS="3000 4000/udp"
ARG Q='a b' R=$PORTS
ARG EMPTY
ENV V=envv
COPY --from=b /out /out
COPY f /f
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo hi
WORKDIR /tmp
WORKDIR /
WORKDIR /new
RUN echo "$PORTS $R" > /new/ports
"#;

#[test]
fn history_is_written_as_buildkit_writes_it() {
    let env = Env::new();
    let Some(diff) = Differential::new(&env, "history") else {
        return;
    };
    let dir = diff.context("history", HISTORY, &[("f", "f\n")]);
    let pair = diff.build(&dir, "history", &[]);
    assert_eq!(
        history(&pair),
        [
            entry("ARG PORTS=3000 4000/udp", true),
            entry("ARG Q=a b R=3000 4000/udp", true),
            entry("ARG EMPTY", true),
            entry("ENV V=envv", true),
            entry("COPY /out /out # buildkit", false),
            entry("COPY f /f # buildkit", false),
            entry("SHELL [/bin/sh -c]", true),
            // No ONBUILD entry; a WORKDIR that exists is still a layer, `/` is not.
            entry("WORKDIR /tmp", false),
            entry("WORKDIR /", true),
            entry("WORKDIR /new", false),
            entry(
                r#"RUN |4 PORTS=3000 4000/udp Q=a b R=3000 4000/udp EMPTY= /bin/sh -c echo "$PORTS $R" > /new/ports # buildkit"#,
                false
            ),
        ]
    );
    assert_eq!(pair.strata.config("OnBuild"), serde_json::json!(["RUN echo hi"]));
    pair.assert_same();
}

/// What 20.10 writes differently: strata follows current BuildKit.
const HISTORY_CURRENT: &str = r#"FROM @BASE@
ARG A=1
ARG B
ARG A
COPY --chown=1:2 --chmod=640 f /f
HEALTHCHECK --interval=90s --timeout=1500ms CMD ["true"]
HEALTHCHECK NONE
RUN echo "$A $B" > /ab
"#;

#[test]
fn history_follows_current_buildkit_where_20_10_is_old() {
    let env = Env::new();
    let Some(diff) = Differential::new(&env, "history-current") else {
        return;
    };
    let dir = diff.context("history-current", HISTORY_CURRENT, &[("f", "f\n")]);
    let build = |tag: &str, args: &[&str]| {
        let pair = diff.build(&dir, tag, args);
        pair.assert_same_rootfs().assert_same_config();
        pair
    };
    let pair = build("history-current", &["--build-arg", "B=bee"]);
    let want = |b: &str| {
        vec![
            entry("ARG A=1", true),
            entry(&format!("ARG B={b}"), true),
            // Declared again without a value: none of its own (A keeps 1 in RUN).
            entry("ARG A", true),
            entry("COPY --chown=1:2 --chmod=640 f /f # buildkit", false),
            entry(
                "HEALTHCHECK {Test:[CMD true] Interval:1m30s Timeout:1.5s StartPeriod:0s StartInterval:0s Retries:0}",
                true,
            ),
            entry(
                "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}",
                true,
            ),
            // A repeated ARG is listed once, where it was first declared.
            entry(
                &format!(r#"RUN |2 A=1 B={b} /bin/sh -c echo "$A $B" > /ab # buildkit"#),
                false,
            ),
        ]
    };
    assert_eq!(history(&pair), want("bee"));
    // Another value: the steps before the RUN are cache hits, yet the ARG's
    // entry names the new value.
    let again = build("history-current-2", &["--build-arg", "B=bop"]);
    assert_eq!(history(&again), want("bop"));
    let back = build("history-current-3", &["--build-arg", "B=bee"]);
    assert_eq!(back.strata.inspect["Id"], pair.strata.inspect["Id"]);
    if let Some(d) = docker_history(&pair) {
        // The entries both write alike.
        assert_eq!(d.len(), 7, "{d:?}");
        assert_eq!(d[0], entry("ARG A=1", true));
    }
}
