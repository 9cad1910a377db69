//! BuildKit's cache keys (as docker 20.10's BuildKit, v0.8, computes them),
//! so that the records of a cache strata writes are found by BuildKit too.
//!
//! BuildKit keys a vertex of the LLB graph by its op's *cache map*: a
//! digest of the op (JSON, some fields cleared) — and the exported record's
//! digest is `sha256("<cache map digest>@<output index>")` (`rootKey`). The
//! chain is not in the digest: it is in the record's `inputs`, links to
//! the records of the vertices the op reads (with a selector, empty for
//! the ops here). BuildKit matches a vertex by walking those links from
//! the keys of its inputs, so the records strata writes for a Dockerfile
//! are BuildKit's when every op is the op BuildKit's Dockerfile frontend
//! makes:
//!
//! - `FROM image`: a `docker-image://` source, keyed (second cache map)
//!   by the chain ID of the image's layers: `buildkit.source.v0:<chainID>`.
//! - `RUN`: an exec op, `{"Type":"buildkit.exec.v0","Exec":<ExecOp>,"OS":
//!   …,"Arch":…}` with the args, the environment (the image's, then build
//!   arguments with values), the working directory (`/` by default), the
//!   user, the network mode; its one root mount is left out.
//! - `COPY`/`ADD` from the context: a file op whose actions are the JSON of
//!   each copy (source path reduced to its base name) as base64 strings;
//!   its second input, the context, is linked by its *content* key: the
//!   digest of the checksums of the copied paths (a regular file's is
//!   `sha256` of its tarsum v1 header, then its bytes), at output -1.
//!
//! The digests are checked against what docker 20.10.24 wrote for the
//! same Dockerfile (the tests below).

use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;

/// A BuildKit op, as much of it as its cache key needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BkOp {
    /// A `docker-image://` source: the chain ID of the image's layers.
    Image { chain_id: String },
    /// An exec op (`RUN` without mounts).
    Exec(ExecOp),
    /// A file op copying regular files from the build context.
    Copy(CopyOp),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExecOp {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    /// pb.NetMode: 0 sandbox (the default), 1 host, 2 none.
    pub network: i32,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

/// One copy action: `src` as in the LLB (absolute in the context), `dest`
/// as normalized by the frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyAction {
    pub src: String,
    pub dest: String,
    /// `--chmod` (-1: none).
    pub mode: i32,
    /// `ADD`: unpack local archives.
    pub unpack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyOp {
    pub actions: Vec<CopyAction>,
    /// The content checksum of each selected path (sorted by path, deduplicated).
    pub checksums: Vec<String>,
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", strata_oci::digest::to_hex(&Sha256::digest(bytes)))
}

/// The digest BuildKit exports for output `output` of a vertex whose cache map digest is `cm`.
pub(crate) fn root_key(cm: &str, output: i64) -> String {
    sha256(format!("{cm}@{output}").as_bytes())
}

/// A string as Go's encoding/json writes it (HTML characters escaped).
fn go_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn go_str_list(out: &mut String, v: &[String]) {
    out.push('[');
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_str(out, s);
    }
    out.push(']');
}

/// The cache map digest of a `docker-image://` source keyed by its config (chain ID).
pub(crate) fn image_cache_map(chain_id: &str) -> String {
    sha256(format!("buildkit.source.v0:{chain_id}").as_bytes())
}

/// The JSON BuildKit digests for an exec op's cache map.
pub(crate) fn exec_json(e: &ExecOp) -> String {
    let mut j = String::from(r#"{"Type":"buildkit.exec.v0","Exec":{"meta":{"#);
    let mut first = true;
    let mut field = |j: &mut String, name: &str| {
        if !first {
            j.push(',');
        }
        first = false;
        go_str(j, name);
        j.push(':');
    };
    if !e.args.is_empty() {
        field(&mut j, "args");
        go_str_list(&mut j, &e.args);
    }
    if !e.env.is_empty() {
        field(&mut j, "env");
        go_str_list(&mut j, &e.env);
    }
    if !e.cwd.is_empty() {
        field(&mut j, "cwd");
        go_str(&mut j, &e.cwd);
    }
    if !e.user.is_empty() {
        field(&mut j, "user");
        go_str(&mut j, &e.user);
    }
    j.push('}');
    if e.network != 0 {
        let _ = write!(j, r#","network":{}"#, e.network);
    }
    j.push_str(r#"},"OS":"#);
    go_str(&mut j, &e.os);
    j.push_str(r#","Arch":"#);
    go_str(&mut j, &e.arch);
    if let Some(v) = e.variant.as_deref().filter(|v| !v.is_empty()) {
        j.push_str(r#","Variant":"#);
        go_str(&mut j, v);
    }
    j.push('}');
    j
}

/// The JSON of one copy action in a file op's cache map (source reduced to its base name).
fn copy_action_json(a: &CopyAction) -> String {
    let base = match a.src.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/",
        Some(b) => b,
    };
    let mut j = String::from("{");
    if !base.is_empty() {
        j.push_str(r#""src":"#);
        go_str(&mut j, base);
        j.push(',');
    }
    j.push_str(r#""dest":"#);
    go_str(&mut j, &a.dest);
    if a.mode != 0 {
        let _ = write!(j, r#","mode":{}"#, a.mode);
    }
    j.push_str(r#","followSymlink":true,"dirCopyContents":true"#);
    if a.unpack {
        j.push_str(r#","attemptUnpackDockerCompatibility":true"#);
    }
    j.push_str(r#","createDestPath":true,"allowWildcard":true,"allowEmptyWildcard":true,"timestamp":-1}"#);
    j
}

/// The JSON BuildKit digests for a file op of copies (input 0 the stage,
/// input 1 the context; each action on the one before: the indexes
/// BuildKit leaves out).
pub(crate) fn copy_json(c: &CopyOp) -> String {
    use base64::Engine as _;
    let mut j = String::from(r#"{"Type":"buildkit.file.v0","Actions":["#);
    for (i, a) in c.actions.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        j.push('"');
        j.push_str(&base64::engine::general_purpose::STANDARD.encode(copy_action_json(a)));
        j.push('"');
    }
    j.push_str("]}");
    j
}

/// The content key of the context as a file op's input: the exported
/// digest of its slow cache key.
pub(crate) fn content_key(checksums: &[String]) -> String {
    root_key(&sha256(checksums.join("\0").as_bytes()), -1)
}

/// The digest BuildKit exports for the op's (only) output.
pub(crate) fn record_digest(op: &BkOp) -> String {
    match op {
        BkOp::Image { chain_id } => root_key(&image_cache_map(chain_id), 0),
        BkOp::Exec(e) => root_key(&sha256(exec_json(e).as_bytes()), 0),
        BkOp::Copy(c) => root_key(&sha256(copy_json(c).as_bytes()), 0),
    }
}

/// The checksum BuildKit gives a regular file of the context: `sha256` of
/// its tarsum v1 header (no name, no times, owners 0, permission bits as
/// decimal), then its bytes.
pub(crate) fn file_checksum(mode: u32, size: u64, content: &mut dyn std::io::Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for (k, v) in [
        ("name", String::new()),
        ("mode", (mode & 0o7777).to_string()),
        ("uid", "0".into()),
        ("gid", "0".into()),
        ("size", size.to_string()),
        ("typeflag", "0".into()),
        ("linkname", String::new()),
        ("uname", String::new()),
        ("gname", String::new()),
        ("devmajor", "0".into()),
        ("devminor", "0".into()),
    ] {
        h.update(k.as_bytes());
        h.update(v.as_bytes());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = content.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", strata_oci::digest::to_hex(&h.finalize())))
}

/// A COPY/ADD destination as BuildKit's frontend and LLB write it: made
/// absolute from the working directory, cleaned, its trailing slash kept
/// (and added for `.`).
pub(crate) fn copy_dest(dest: &str, cwd: &str) -> String {
    let slash = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", if cwd.is_empty() { "/" } else { cwd })
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if slash && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The environment BuildKit's frontend gives a RUN: the image's (each
/// name once), then each build argument with a value moved to the end.
pub(crate) fn exec_env(config_env: &[String], args: &[(String, String)]) -> Vec<String> {
    let name = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let mut env: Vec<String> = Vec::new();
    for e in config_env {
        let n = name(e);
        env.retain(|x| name(x) != n);
        env.push(e.clone());
    }
    for (k, v) in args {
        env.retain(|x| name(x) != *k);
        env.push(format!("{k}={v}"));
    }
    env
}

/// The file op BuildKit makes of `COPY`/`ADD` `sources` (as written) to
/// `dest` from the context `tree`, when every source is a regular file
/// reached without a link or a wildcard; None otherwise (no key then).
pub(crate) fn context_copy(
    tree: &dyn crate::tree::SourceTree,
    sources: &[String],
    dest: &str,
    cwd: &str,
    chmod: Option<&str>,
    add: bool,
) -> Option<CopyOp> {
    if sources.is_empty() {
        return None;
    }
    let mode = match chmod {
        Some(m) => i32::from_str_radix(m, 8).unwrap_or(-1),
        None => -1,
    };
    let dest = copy_dest(dest, cwd);
    let mut actions = Vec::new();
    let mut paths = std::collections::BTreeMap::new();
    for s in sources {
        if s.contains(['*', '?', '[', '\\']) || s.contains("/./") {
            return None;
        }
        let rel = crate::pattern::clean_rel(s);
        if rel.is_empty() || crate::tree::resolve(tree, &rel, false).ok()?.as_deref() != Some(rel.as_str()) {
            return None;
        }
        let meta = tree.lstat(&rel).ok()??;
        if meta.kind != crate::tree::Kind::File {
            return None;
        }
        if !paths.contains_key(&rel) {
            let mut f = tree.open_file(&rel).ok()?;
            let sum = file_checksum(meta.mode, meta.size, &mut f).ok()?;
            paths.insert(rel.clone(), sum);
        }
        actions.push(CopyAction {
            src: format!("/{rel}"),
            dest: dest.clone(),
            mode,
            unpack: add,
        });
    }
    // Selectors sorted by path (`/a` before `/b`): the same order as the relative paths.
    Some(CopyOp {
        actions,
        checksums: paths.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from docker 20.10.24 (BuildKit v0.8.4-0.20221020190723),
    // `DOCKER_BUILDKIT=1 docker build --network none --build-arg
    // BUILDKIT_INLINE_CACHE=1` of
    //
    //   FROM 127.0.0.1:5077/busybox:latest   (strata's busybox import: one layer)
    //   RUN echo one > /one
    //   RUN echo two > /two
    //   COPY f /w/f                          (f: "hello\n", mode 0644)
    //   RUN echo three > /three
    //
    // on linux/amd64: the records of its inline cache.
    const BASE_DIFF_ID: &str = "sha256:56bc62a64ef5321794907a35c93771c199029f735930559f113d76693fb75c86";
    const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    fn run(cmd: &str) -> BkOp {
        BkOp::Exec(ExecOp {
            args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            env: vec![PATH.into()],
            cwd: "/".into(),
            user: String::new(),
            network: 2,
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        })
    }

    #[test]
    fn keys_equal_docker_buildkits() {
        assert_eq!(
            record_digest(&BkOp::Image {
                chain_id: BASE_DIFF_ID.into()
            }),
            "sha256:10c6bf43c5b9f0c7ec8d2c2110e341e6cd448f1590b4c89edc37c1a36da67d44"
        );
        assert_eq!(
            record_digest(&run("echo one > /one")),
            "sha256:1e5ee4ee6f6110a47ed876ddf717ad12328eaafb9d2b8dc009bc9c8c3bdfd8d3"
        );
        assert_eq!(
            record_digest(&run("echo two > /two")),
            "sha256:727047108a3e45fd9749089958b56cea16645a373d9c49cbb1c3e0afaf6b2367"
        );
        assert_eq!(
            record_digest(&run("echo three > /three")),
            "sha256:6b30a7163ec265114b4417de95e76456ee30e2ce2c61e0814f919b88d48053d1"
        );
        let sum = file_checksum(0o644, 6, &mut &b"hello\n"[..]).unwrap();
        assert_eq!(
            content_key(std::slice::from_ref(&sum)),
            "sha256:c24a47b576469b52903dd7e5045a62fee5855b447dee1771d67b829458d2c08e"
        );
        let copy = BkOp::Copy(CopyOp {
            actions: vec![CopyAction {
                src: "/f".into(),
                dest: copy_dest("/w/f", "/"),
                mode: -1,
                unpack: false,
            }],
            checksums: vec![sum],
        });
        assert_eq!(
            record_digest(&copy),
            "sha256:505ecd54ecbbeb628f307ac50896460aa3ac08fd47307cbf3b7afe0f8b78fbc2"
        );
    }

    #[test]
    fn json_is_gos() {
        let mut s = String::new();
        go_str(&mut s, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
        let e = ExecOp {
            args: vec!["x".into()],
            os: "linux".into(),
            arch: "arm64".into(),
            variant: Some("v8".into()),
            user: "1000".into(),
            ..Default::default()
        };
        assert_eq!(
            exec_json(&e),
            r#"{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["x"],"user":"1000"}},"OS":"linux","Arch":"arm64","Variant":"v8"}"#
        );
    }

    #[test]
    fn destinations_and_environment_as_the_frontend() {
        assert_eq!(copy_dest("/w/f", "/"), "/w/f");
        assert_eq!(copy_dest("f", "/w"), "/w/f");
        assert_eq!(copy_dest(".", "/w"), "/w/");
        assert_eq!(copy_dest("sub/", "/w"), "/w/sub/");
        assert_eq!(copy_dest("../x", "/w/y"), "/w/x");
        assert_eq!(copy_dest("/", "/w"), "/");
        let env = exec_env(
            &["PATH=/bin".into(), "A=1".into()],
            &[("PATH".into(), "/x".into()), ("V".into(), "3".into())],
        );
        assert_eq!(env, vec!["A=1", "PATH=/x", "V=3"]);
    }
}
