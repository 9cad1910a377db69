//! The build engine on `FROM scratch` (no base image needed): COPY rules,
//! the cache and its explanations, the context index, layer contents.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strata_builder::{BuildOptions, BuildOutput, DockerfileSource};
use strata_oci::{ImageConfig, media};
use strata_store::Store;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        T {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }
    fn write(&self, name: &str, content: &str) {
        let p = self.ctx().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    fn build(&self, dockerfile: &str) -> anyhow::Result<(BuildOutput, String)> {
        self.build_with(dockerfile, |_| {})
    }
    fn build_with(&self, dockerfile: &str, f: impl FnOnce(&mut BuildOptions)) -> anyhow::Result<(BuildOutput, String)> {
        std::fs::create_dir_all(self.ctx()).unwrap();
        let mut opts = BuildOptions {
            context: self.ctx(),
            dockerfile: DockerfileSource::Bytes(dockerfile.as_bytes().to_vec()),
            tags: vec![],
            build_args: vec![],
            target: None,
            no_cache: false,
            labels: vec![],
            platform: None,
            source_date_epoch: None,
            ..Default::default()
        };
        f(&mut opts);
        let log = Log::default();
        let out = strata_builder::build(&self.store(), &opts, Box::new(log.clone()));
        let text = log.text();
        out.map(|o| (o, text.clone()))
            .map_err(|e| anyhow::anyhow!("{}\nlog:\n{text}", e.chain()))
    }

    /// Every entry of the image's layers: path → (mode, uid, gid, content or link target).
    fn files(&self, out: &BuildOutput) -> BTreeMap<String, (u32, u64, u64, String)> {
        let store = Store::open(&self.store()).unwrap();
        let cfg = ImageConfig::parse(&store.read_blob(&out.image_id, media::MAX_DOCUMENT_SIZE).unwrap()).unwrap();
        let mut m = BTreeMap::new();
        for d in &cfg.rootfs.diff_ids {
            let blob = store.layer_blobs(d).unwrap().remove(0);
            let mut ar = tar::Archive::new(store.open_blob(&blob.digest).unwrap());
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
                let h = e.header().clone();
                let mut content = String::new();
                if let Some(l) = e.link_name().unwrap() {
                    content = format!("-> {}", l.display());
                } else {
                    use std::io::Read;
                    e.read_to_string(&mut content).unwrap();
                }
                m.insert(path, (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap(), content));
            }
        }
        m
    }
}

/// Whether the vertex titled `title` was taken from the cache.
fn is_cached(log: &str, title: &str) -> bool {
    vertex_lines(log, title).iter().any(|l| l.ends_with("CACHED"))
}

fn set_mtime(p: &std::path::Path, t: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn vertex_lines<'a>(log: &'a str, title: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with('#') && l.contains(title))
        .unwrap_or_else(|| panic!("no vertex {title:?} in:\n{log}"));
    let n = lines[start].split(' ').next().unwrap().to_string();
    lines[start..]
        .iter()
        .copied()
        .filter(|l| l.split(' ').next() == Some(n.as_str()))
        .collect()
}

#[test]
fn copy_rules_on_scratch() {
    let t = T::new();
    t.write("a.txt", "a\n");
    t.write("b.txt", "b\n");
    t.write("c.md", "c\n");
    t.write("dir/sub/x", "x\n");
    t.write("dir/y", "y\n");
    std::fs::set_permissions(t.ctx().join("dir/y"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("sub/x", t.ctx().join("dir/link")).unwrap();
    std::os::unix::fs::symlink("a.txt", t.ctx().join("alias")).unwrap();
    let (out, _) = t
        .build(
            "FROM scratch
COPY *.txt /many/
COPY dir /contents
COPY dir/ /contents2/
COPY a.txt /file-renamed
COPY alias /followed
WORKDIR /work
COPY b.txt .
COPY --chmod=700 --chown=10:20 c.md rel/
COPY [\"c.md\", \"/json form\"]
",
        )
        .unwrap();
    let f = t.files(&out);
    assert_eq!(f["many/a.txt"].3, "a\n");
    assert_eq!(f["many/b.txt"].3, "b\n");
    assert!(!f.contains_key("many/c.md"));
    // A directory source copies its contents.
    assert_eq!(f["contents/sub/x"].3, "x\n");
    assert_eq!(f["contents/y"].0, 0o750);
    assert_eq!(f["contents/link"].3, "-> sub/x");
    assert!(!f.contains_key("contents/dir"));
    assert_eq!(f["contents2/y"].3, "y\n");
    assert_eq!(f["file-renamed"].3, "a\n");
    // A symlink named as the source is followed (inside the context).
    assert_eq!(f["followed"].3, "a\n");
    // Relative destinations are relative to WORKDIR.
    assert_eq!(f["work/b.txt"].3, "b\n");
    assert_eq!(f["work/rel/c.md"], (0o700, 10, 20, "c\n".to_string()));
    assert_eq!(f["json form"].3, "c\n");
    // Owners are root by default.
    assert_eq!((f["many/a.txt"].1, f["many/a.txt"].2), (0, 0));

    // Several sources are copied in turn (BuildKit): to a destination
    // without `/` that is no directory, the last file wins.
    let (out, _) = t.build("FROM scratch\nCOPY a.txt b.txt /notadir\n").unwrap();
    assert_eq!(t.files(&out)["notadir"].3, "b\n");
    // A wildcard that matches nothing copies nothing; its directory must exist.
    let (out, _) = t.build("FROM scratch\nCOPY a.txt nothing*.txt /x/\n").unwrap();
    assert_eq!(t.files(&out)["x/a.txt"].3, "a\n");
    let e = t.build("FROM scratch\nCOPY nodir/*.txt /x/\n").unwrap_err();
    assert!(e.to_string().contains("\"/nodir\": not found"), "{e}");
}

#[test]
fn cache_keys_and_explanations() {
    let t = T::new();
    t.write("one.txt", "1\n");
    t.write("two.txt", "2\n");
    let df = "FROM scratch\nCOPY one.txt /one\nARG V=a\nCOPY two.txt /two-$V\nLABEL v=$V\n";
    let (first, log) = t.build(df).unwrap();
    assert!(
        vertex_lines(&log, "COPY one.txt")
            .iter()
            .any(|l| l.contains("cache miss: first build of this step")),
        "{log}"
    );
    let (again, log) = t.build(df).unwrap();
    assert_eq!(first.image_id, again.image_id);
    assert!(is_cached(&log, "COPY two.txt"), "{log}");

    // The arg changes only what uses it.
    let (_, log) = t.build_with(df, |o| o.build_args = vec!["V=b".into()]).unwrap();
    assert!(is_cached(&log, "COPY one.txt"), "{log}");
    let two = vertex_lines(&log, "COPY two.txt");
    assert!(
        two.iter().any(|l| l.contains("build arg changed: V (\"a\" -> \"b\")")),
        "{two:?}"
    );

    // The same content under a different Dockerfile shares the cache.
    let (_, log) = t.build("FROM scratch\nCOPY one.txt /one\nLABEL other=1\n").unwrap();
    assert!(is_cached(&log, "COPY one.txt"), "{log}");

    // Same size, same mtime, different content: the ctime gives it away.
    let p = t.ctx().join("one.txt");
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&p, "9\n").unwrap();
    set_mtime(&p, mtime);
    let (_, log) = t.build(df).unwrap();
    let one = vertex_lines(&log, "COPY one.txt");
    assert!(one.iter().any(|l| l.contains("file changed: one.txt")), "{one:?}");
    // The index of the context is kept in the store.
    assert!(std::fs::read_dir(t.store().join("build-index")).unwrap().count() == 1);

    // --no-cache rebuilds.
    let (_, log) = t.build_with(df, |o| o.no_cache = true).unwrap();
    assert!(!is_cached(&log, "COPY one.txt"), "{log}");
}

#[test]
fn reproducible_layers_and_config() {
    let a = T::new();
    let b = T::new();
    for t in [&a, &b] {
        t.write("f/x", "x\n");
        t.write("f/y/z", "z\n");
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    b.write("f/x", "x\n");
    let df = "FROM scratch\nCOPY f /f\nCOPY <<EOF /inline\nhi\nEOF\nENV A=1\n";
    let (oa, _) = a.build_with(df, |o| o.source_date_epoch = Some(1_600_000_000)).unwrap();
    let (ob, _) = b.build_with(df, |o| o.source_date_epoch = Some(1_600_000_000)).unwrap();
    assert_eq!(oa.image_id, ob.image_id);
    // Without the epoch the times differ.
    let (oc, _) = b.build_with(df, |o| o.no_cache = true).unwrap();
    assert_ne!(oa.image_id, oc.image_id);
}

#[test]
fn errors_name_the_line() {
    let t = T::new();
    let e = t.build("FROM scratch\nCOPY missing /x\n").unwrap_err().to_string();
    assert!(
        e.contains("Dockerfile:2: failed to compute cache key: \"/missing\": not found"),
        "{e}"
    );
    let e = t
        .build("FROM scratch\nRUN --mount=type=ssh true\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("Dockerfile:2: RUN --mount=type=ssh is not supported"), "{e}");
    let e = t
        .build_with(
            "FROM scratch AS a\nCOPY --from=later /x /x\nFROM scratch AS later\n",
            |o| o.target = Some("a".into()),
        )
        .unwrap_err()
        .to_string();
    // A later stage can be copied from (as in BuildKit): it is built, and has no /x.
    assert!(
        e.contains("Dockerfile:2: failed to compute cache key: \"/x\": not found"),
        "{e}"
    );
    let e = t
        .build("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("circular dependency detected on stage"), "{e}");
    let e = t.build("FROM scratch\nENV\n").unwrap_err().to_string();
    assert!(
        e.contains("dockerfile parse error on line 2: ENV requires at least one argument"),
        "{e}"
    );
    let e = t
        .build_with("FROM scratch\n", |o| o.platform = Some("linux/s390x-not".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot build for linux/s390x-not"), "{e}");
    // Nothing is left mounted or prepared.
    let left = std::fs::read_dir(t.store().join("containers")).unwrap().count();
    assert_eq!(left, 0);
}

#[test]
fn stale_step_snapshots_are_removed() {
    let t = T::new();
    t.build("FROM scratch\n").unwrap();
    // A snapshot left by an interrupted build (its process can no longer exist), mounted.
    let snap = strata_snapshot::Snapshotter::new(&t.store(), strata_snapshot::Driver::Overlay);
    let s = snap.prepare("build-4194999-step-abc", &[]).unwrap();
    snap.mount(&s, &s.merged_dir(), false).unwrap();
    let other = snap.prepare("not-a-build", &[]).unwrap();
    t.build("FROM scratch\n").unwrap();
    assert!(!snap.exists("build-4194999-step-abc"));
    assert!(snap.exists("not-a-build"));
    snap.remove(&other.key).unwrap();
}

#[test]
fn copy_from_is_keyed_by_the_content_it_copies() {
    let t = T::new();
    t.write("a.txt", "a\n");
    t.write("other.txt", "o\n");
    let df = "FROM scratch AS one\nCOPY a.txt other.txt /\nFROM scratch\nCOPY --from=one /a.txt /b.txt\nLABEL x=1\n";
    let (first, _) = t.build(df).unwrap();
    // Stage one is made again with another time on a.txt (kept by COPY):
    // new layers, the same content.
    let p = t.ctx().join("a.txt");
    set_mtime(
        &p,
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
    );
    let (again, log) = t.build_with(df, |o| o.no_cache_filter = vec!["one".into()]).unwrap();
    assert!(!is_cached(&log, "COPY a.txt other.txt"), "{log}");
    assert!(is_cached(&log, "COPY --from=one"), "{log}");
    assert_eq!(first.image_id, again.image_id);
    // A file of the stage that is not copied: still cached.
    t.write("other.txt", "o2\n");
    let (again, log) = t.build(df).unwrap();
    assert!(is_cached(&log, "COPY --from=one"), "{log}");
    assert_eq!(first.image_id, again.image_id);
    // The copied file: a miss that names it.
    t.write("a.txt", "a2\n");
    let (changed, log) = t.build(df).unwrap();
    assert_ne!(first.image_id, changed.image_id);
    let copy = vertex_lines(&log, "COPY --from=one");
    assert!(
        copy.iter()
            .any(|l| l.contains("cache miss: file changed: /a.txt (copied from stage one)")),
        "{copy:?}"
    );
    // Memoized: one digest per (source chain, selection).
    let store = Store::open(&t.store()).unwrap();
    let n: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM build_from_hashes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
}
