//! `ps` as Docker 20.10 lists containers: `-f/--filter` (every key the
//! daemon accepts, values OR'ed, keys AND'ed, its errors word for word),
//! `-n/--last`, `-l/--latest`, `-s/--size`, and `-q` in scripts.
//!
//! The same four containers are made in strata and, where a daemon
//! answers, in docker (`--network none`: the private dockerd has no
//! bridge): `web1` created, `web2` exited 3 with a named volume, `db`
//! running with an exposed port, `job` exited 0 having written 2 bytes,
//! with a bind mount; labels on each. Each case's names are checked
//! against what Docker lists — in strata always, and in docker too, which
//! keeps the expectations Docker's (`skipped: …` where no daemon answers).
//! Docker's names carry this process's suffix and only those are kept:
//! others may share the daemon.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Env, docker_daemon, sh_ok};

/// The containers, in creation order.
const NAMES: [&str; 4] = ["web1", "web2", "db", "job"];

/// Runs an engine's command line.
type Runner<'a> = Box<dyn Fn(&[String]) -> Output + 'a>;

/// One engine with the scenario made in it.
struct Side<'a> {
    what: &'static str,
    run: Runner<'a>,
    /// Container name (without the suffix) → full ID.
    ids: BTreeMap<String, String>,
    image_id: String,
    suffix: String,
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Side<'_> {
    fn run(&self, args: &[&str]) -> Output {
        (self.run)(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{} {args:?}: {}", self.what, text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `{s}` (the name suffix), `{img}`, `{imgid}` (12 hex), `{bind}`,
    /// `{id:NAME}` (full ID), `{id12:NAME}`, `{id8:NAME}`, `{idmid:NAME}`
    /// (8 characters from the 4th: not a prefix) filled in.
    fn fill(&self, s: &str, bind: &Path, image: &str) -> String {
        let mut out = s
            .replace("{s}", &self.suffix)
            .replace("{img}", image)
            .replace("{imgid}", &self.image_id[7..19])
            .replace("{bind}", bind.to_str().unwrap());
        for (name, id) in &self.ids {
            out = out
                .replace(&format!("{{id:{name}}}"), id)
                .replace(&format!("{{id12:{name}}}"), &id[..12])
                .replace(&format!("{{id8:{name}}}"), &id[..8])
                .replace(&format!("{{idmid:{name}}}"), &id[3..11]);
        }
        out
    }

    /// The names `ps ARGS --format {{.Names}}` lists, ours only, without
    /// the suffix.
    fn names(&self, args: &[String]) -> Result<BTreeSet<String>, String> {
        let mut full: Vec<String> = vec!["ps".into()];
        full.extend(args.iter().cloned());
        full.extend(["--format".into(), "{{.Names}}".into()]);
        let o = (self.run)(&full);
        if !o.status.success() {
            return Err(text(&o));
        }
        Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(self.suffix.as_str()))
            .map(str::to_string)
            .collect())
    }
}

/// Makes the scenario with `run` (the image is `image`).
fn make(side: &mut Side<'_>, image: &str, bind: &Path) {
    let s = side.suffix.clone();
    let label = format!("pstest={}", std::process::id());
    let [web1, web2, db, job] = NAMES.map(|x| format!("{x}{s}"));
    let bind_arg = format!("{}:/mnt", bind.display());
    let vol = format!("vol{s}:/data");
    #[rustfmt::skip]
    let steps: [Vec<&str>; 4] = [
        vec!["create", "--network", "none", "--name", &web1, "-l", &label, "-l", "app=web", "-l", "tier=front",
             image, "sh", "-c", "echo hi > /f"],
        vec!["run", "--network", "none", "--name", &web2, "-l", &label, "-l", "app=web", "-v", &vol,
             image, "sh", "-c", "exit 3"],
        vec!["run", "-d", "--network", "none", "--name", &db, "-l", &label, "-l", "app=db", "--expose", "5432",
             image, "sleep", "300"],
        vec!["run", "--network", "none", "--name", &job, "-l", &label, "-l", "app", "-v", &bind_arg,
             image, "sh", "-c", "printf ab > /f"],
    ];
    for (step, want) in steps.iter().zip([0, 3, 0, 0]) {
        let o = side.run(step);
        assert_eq!(o.status.code(), Some(want), "{} {step:?}: {}", side.what, text(&o));
    }
    for name in NAMES {
        let id = side.ok(&["inspect", "--type", "container", "-f", "{{.Id}}", &format!("{name}{s}")]);
        side.ids.insert(name.to_string(), id.trim().to_string());
    }
    side.image_id = side
        .ok(&["image", "inspect", "-f", "{{.Id}}", image])
        .trim()
        .to_string();
}

/// Filters and the names Docker lists (`-a` where given).
#[rustfmt::skip]
const CASES: &[(&[&str], &[&str])] = &[
    (&["-a"], &["web1", "web2", "db", "job"]),
    (&[], &["db"]),
    (&["-a", "-f", ""], &["web1", "web2", "db", "job"]),
    // status (implies -a), exited (only containers that ran; not -a).
    (&["-f", "status=exited"], &["web2", "job"]),
    (&["-f", "status=running"], &["db"]),
    (&["-f", "status=created"], &["web1"]),
    (&["-f", "status=exited", "-f", "status=created"], &["web1", "web2", "job"]),
    (&["-f", "status=paused"], &[]),
    (&["-a", "-f", "exited=0"], &["job"]),
    (&["-a", "-f", "exited=3"], &["web2"]),
    (&["-a", "-f", "exited=0", "-f", "exited=3"], &["web2", "job"]),
    (&["-a", "-f", "exited=1"], &[]),
    (&["-f", "exited=0"], &[]),
    // name and id: Go regular expressions searched, with the name's "/".
    (&["-a", "-f", "name=web"], &["web1", "web2"]),
    (&["-a", "-f", "name=^web"], &["web1", "web2"]),
    (&["-a", "-f", "name=^/web"], &["web1", "web2"]),
    (&["-a", "-f", "name=^/?(db|job)-"], &["db", "job"]),
    (&["-a", "-f", "name=(?i)WEB2"], &["web2"]),
    (&["-a", "-f", "name=web1{s}"], &["web1"]),
    (&["-a", "-f", "name=web", "-f", "name=db"], &["web1", "web2", "db"]),
    (&["-a", "-f", "name=["], &[]),
    (&["-a", "-f", "name="], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "NAME = web1{s} "], &["web1"]),
    (&["-a", "--filter", "name=job"], &["job"]),
    (&["-a", "-f", "id={id:web2}"], &["web2"]),
    (&["-a", "-f", "id={id8:web2}"], &["web2"]),
    (&["-a", "-f", "id={idmid:web2}"], &[]),
    (&["-a", "-f", "id={id8:web2}", "-f", "id={id8:db}"], &["web2", "db"]),
    (&["-a", "-f", "id={id8:web2}", "-f", "name=web1"], &[]),
    (&["-a", "-f", "id={id8:web2}", "-f", "name=web"], &["web2"]),
    // label: each must be there (and equal).
    (&["-a", "-f", "label=app"], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "label=app=web"], &["web1", "web2"]),
    (&["-a", "-f", "label=app=web", "-f", "label=tier=front"], &["web1"]),
    (&["-a", "-f", "label=app=web", "-f", "label=app=db"], &[]),
    (&["-a", "-f", "label=tier"], &["web1"]),
    (&["-a", "-f", "label=app="], &["job"]),
    (&["-a", "-f", "label=nope"], &[]),
    // ancestor: by name, by ID prefix; an unknown image lists nothing.
    (&["-a", "-f", "ancestor={img}"], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "ancestor={imgid}"], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "ancestor=no-such-image-anywhere"], &[]),
    // before/since: by creation, from a name or a full ID.
    (&["-a", "-f", "before=db{s}"], &["web1", "web2"]),
    (&["-a", "-f", "before=/db{s}"], &["web1", "web2"]),
    (&["-a", "-f", "before={id:db}"], &["web1", "web2"]),
    (&["-a", "-f", "since=web2{s}"], &["db", "job"]),
    (&["-a", "-f", "since=web1{s}", "-f", "before=job{s}"], &["web2", "db"]),
    (&["-f", "before=job{s}"], &["db"]),
    (&["-a", "-f", "before=web1{s}"], &[]),
    // volume: by name, destination or a bind's host path.
    (&["-a", "-f", "volume=vol{s}"], &["web2"]),
    (&["-a", "-f", "volume=/data"], &["web2"]),
    (&["-a", "-f", "volume={bind}"], &["job"]),
    (&["-a", "-f", "volume=/mnt", "-f", "volume=/data"], &["web2", "job"]),
    (&["-a", "-f", "volume=nope"], &[]),
    // network; publish/expose (no ports without a network, as Docker).
    (&["-a", "-f", "network=none"], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "network=bridge"], &[]),
    (&["-a", "-f", "expose=5432"], &[]),
    (&["-a", "-f", "publish=5000-6000/tcp"], &[]),
    // health (strata has no health checks: none), is-task, isolation.
    (&["-a", "-f", "health=none"], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "health=healthy"], &[]),
    (&["-a", "-f", "is-task=false"], &["web1", "web2", "db", "job"]),
    (&["-a", "-f", "is-task=true"], &[]),
    (&["-a", "-f", "isolation=default"], &["web1", "web2", "db", "job"]),
    // keys AND'ed.
    (&["-f", "status=exited", "-f", "label=app=web"], &["web2"]),
    (&["-a", "-f", "name=web", "-f", "status=created"], &["web1"]),
    (&["-a", "-f", "exited=3", "-f", "volume=/data", "-f", "label=app=web", "-f", "name=2"], &["web2"]),
];

/// `-n`/`-l` (any state, the newest first), restricted to our label.
#[rustfmt::skip]
const LIMITS: &[(&[&str], &[&str])] = &[
    (&["-n", "2"], &["db", "job"]),
    (&["--last", "3"], &["web2", "db", "job"]),
    (&["-n", "0"], &["db"]),
    (&["-n", "-1"], &["db"]),
    (&["-l"], &["job"]),
    (&["--latest"], &["job"]),
    (&["-l", "-n", "3"], &["web2", "db", "job"]),
    (&["-n", "1", "-f", "name=web"], &["web2"]),
    (&["-n", "2", "-f", "status=exited"], &["web2", "job"]),
    (&["-l", "-f", "exited=3"], &["web2"]),
    (&["-n", "2", "-f", "before=job{s}"], &["web2", "db"]),
];

/// Bad filters: the daemon's errors (exit 1).
#[rustfmt::skip]
const ERRORS: &[(&[&str], &str)] = &[
    (&["-f", "bogus=1"], "Error response from daemon: Invalid filter 'bogus'"),
    (&["-f", "=x"], "Error response from daemon: Invalid filter ''"),
    (&["-f", "status=bogus"], "Error response from daemon: Invalid filter 'status=bogus'"),
    (&["-f", "status="], "Error response from daemon: Invalid filter 'status='"),
    (&["-f", "exited=x"], "Error response from daemon: strconv.Atoi: parsing \"x\": invalid syntax"),
    (&["-f", "health=x"], "Error response from daemon: Unrecognised filter value for health: x"),
    (&["-f", "is-task=x"], "Error response from daemon: Invalid filter 'is-task=[x]'"),
    (&["-f", "before=nope"], "Error response from daemon: no such container nope"),
    (&["-f", "since=nope"], "Error response from daemon: no such container nope"),
    (&["-f", "before={id12:db}"], "Error response from daemon: no such container {id12:db}"),
    (&["-f", "publish=1:2"], "Error response from daemon: filter for 'publish' should not contain ':': 1:2"),
    (&["-f", "expose=abc"],
     "Error response from daemon: error while looking up for expose abc: strconv.ParseUint: parsing \"abc\": invalid syntax"),
    (&["-f", "publish=80-70"],
     "Error response from daemon: error while looking up for publish 80-70: Invalid range specified for the Port: 80-70"),
    (&["-f", "expose=/tcp"],
     "Error response from daemon: error while looking up for expose /tcp: Empty string specified for ports."),
];

/// A docker client of 20.10 (the CLI's own messages are compared with it).
fn docker_20_10() -> Option<&'static str> {
    ["docker", "/usr/bin/docker"].into_iter().find(|c| {
        Command::new(c)
            .args(["version", "--format", "{{.Client.Version}}"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"20.10"))
    })
}

/// Removes what the test made in docker, however it ends.
struct DockerLeftovers {
    client: &'static str,
    suffix: String,
    image: String,
}

impl Drop for DockerLeftovers {
    fn drop(&mut self) {
        let names: Vec<String> = NAMES.iter().map(|n| format!("{n}{}", self.suffix)).collect();
        let q = |args: &[&str]| {
            let _ = Command::new(self.client)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        let mut rm = vec!["rm", "-f", "-v"];
        rm.extend(names.iter().map(String::as_str));
        q(&rm);
        q(&["volume", "rm", "-f", &format!("vol{}", self.suffix)]);
        q(&["rmi", "-f", &self.image]);
    }
}

#[test]
fn filters_limits_and_sizes_as_docker() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let pid = std::process::id();
    let suffix = format!("-ps{pid}");
    let image = format!("strata-ps-{pid}:latest");
    env.ok(&["tag", "busybox:latest", &image]);
    let bind = env.path("bind");
    std::fs::create_dir_all(&bind).unwrap();

    let mut sides = vec![Side {
        what: "strata",
        run: Box::new(|args: &[String]| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.run(&args)
        }),
        ids: BTreeMap::new(),
        image_id: String::new(),
        suffix: suffix.clone(),
    }];
    // Docker's side: the busybox root imported with the same config.
    let mut _leftovers = None;
    if docker_daemon() {
        let client = docker_20_10().unwrap_or("docker");
        let tar = env.path("rootfs.tar");
        sh_ok(&format!(
            "tar -C {} -cf {} .",
            env.busybox_rootfs().unwrap().display(),
            tar.display()
        ));
        _leftovers = Some(DockerLeftovers {
            client,
            suffix: suffix.clone(),
            image: image.clone(),
        });
        let o = Command::new(client)
            .args([
                "import",
                "-c",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "-c",
                r#"CMD ["/bin/sh"]"#,
            ])
            .arg(&tar)
            .arg(&image)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "docker import: {}", text(&o));
        sides.push(Side {
            what: "docker",
            run: Box::new(move |args: &[String]| {
                Command::new(client)
                    .args(args)
                    .stdin(Stdio::null())
                    .output()
                    .expect("docker")
            }),
            ids: BTreeMap::new(),
            image_id: String::new(),
            suffix: suffix.clone(),
        });
    }
    for side in &mut sides {
        make(side, &image, &bind);
    }

    let mut wrong = Vec::new();
    let label = format!("label=pstest={pid}");
    let limited = LIMITS.iter().map(|(args, want)| {
        let mut a = args.to_vec();
        a.extend(["-f", label.as_str()]);
        (a, *want)
    });
    let cases = CASES.iter().map(|(a, w)| (a.to_vec(), *w)).chain(limited);
    for (args, want) in cases {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        for side in &sides {
            let filled: Vec<String> = args.iter().map(|a| side.fill(a, &bind, &image)).collect();
            match side.names(&filled) {
                Ok(got) if got == want => {}
                got => wrong.push(format!("{} ps {filled:?}: {got:?}, Docker lists {want:?}", side.what)),
            }
        }
    }
    for (args, want) in ERRORS {
        for side in &sides {
            let mut filled: Vec<String> = vec!["ps".into(), "-a".into()];
            filled.extend(args.iter().map(|a| side.fill(a, &bind, &image)));
            let o = (side.run)(&filled);
            let want = side.fill(want, &bind, &image);
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.code() != Some(1) || err.trim_end() != want || !o.stdout.is_empty() {
                wrong.push(format!(
                    "{} {filled:?}: exit {:?}, {err:?}; Docker: exit 1, {want:?}",
                    side.what,
                    o.status.code()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "ps differs from Docker:\n{}", wrong.join("\n"));

    // The CLI's own refusal of a filter without `=` (exit 125).
    let o = env.run(&["ps", "-f", "foo"]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        err,
        "invalid argument \"foo\" for \"-f, --filter\" flag: bad format of filter (expected name=value)\n\
         See 'strata ps --help'.\n"
    );
    if let Some(d) = sides.get(1).filter(|_| docker_20_10().is_some()) {
        let o = d.run(&["ps", "-f", "foo"]);
        assert_eq!(o.status.code(), Some(125));
        assert_eq!(String::from_utf8_lossy(&o.stderr).replace("docker", "strata"), err);
    }

    // -s: the writable layer's size and the virtual size (image + writable),
    // in the SIZE column and `{{.Size}}`, as docker prints them.
    let sizes = |side: &Side<'_>, args: &[&str]| -> BTreeMap<String, String> {
        let mut a = vec!["ps", "-a", "-f", label.as_str()];
        a.extend(args);
        side.ok(&a)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(n, s)| Some((n.strip_suffix(suffix.as_str())?.to_string(), s.to_string())))
            .collect()
    };
    let with_flag = sizes(&sides[0], &["-s", "--format", "{{.Names}} {{.Size}}"]);
    // `.Size` in the template asks for the sizes without -s.
    assert_eq!(sizes(&sides[0], &["--format", "{{.Names}} {{.Size}}"]), with_flag);
    assert_eq!(with_flag.len(), 4, "{with_flag:?}");
    for (name, size) in &with_flag {
        let rw = if name == "job" { "2B" } else { "0B" };
        assert!(size.starts_with(&format!("{rw} (virtual ")), "{name}: {size}");
    }
    let table = sides[0].ok(&["ps", "-a", "-s", "-f", "name=web1"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header.last().map(|h| h.trim()), Some("SIZE"), "{table}");
    assert!(table.lines().nth(1).unwrap().ends_with(&with_flag["web1"]), "{table}");
    // The other columns of the template docker's formatter has.
    let fields = "{{.Names}}|{{.Command}}|{{.State}}|{{.Networks}}|{{.LocalVolumes}}|{{.Mounts}}";
    let strata_fields = sizes(&sides[0], &["--format", &fields.replace('|', " ")]);
    if let Some(d) = sides.get(1) {
        assert_eq!(sizes(d, &["-s", "--format", "{{.Names}} {{.Size}}"]), with_flag);
        assert_eq!(sizes(d, &["--format", &fields.replace('|', " ")]), strata_fields);
    } else {
        eprintln!("skipped: the docker comparison (no daemon)");
    }

    // The script the filters are for: remove what exited, by ID.
    for side in &sides {
        let ids = side.ok(&["ps", "-aq", "-f", "status=exited", "-f", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let mut want: Vec<&str> = ["web2", "job"].iter().map(|n| &side.ids[*n][..12]).collect();
        let mut got = ids.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}", side.what);
        let mut rm = vec!["rm"];
        rm.extend(&ids);
        side.ok(&rm);
        let left = side.names(&["-a".into(), "-f".into(), label.clone()]).unwrap();
        assert_eq!(
            left,
            ["db", "web1"].iter().map(|s| s.to_string()).collect(),
            "{}",
            side.what
        );
        let mut rm = vec!["rm".to_string(), "-f".to_string(), "-v".to_string()];
        rm.extend(["db", "web1"].iter().map(|n| format!("{n}{suffix}")));
        let o = (side.run)(&rm);
        assert!(o.status.success(), "{}: {}", side.what, text(&o));
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}
