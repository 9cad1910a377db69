//! Rootless containers beyond the main demo (#19 items 3 and 4, #18's
//! rootless path): a published HTTP server through user-mode networking,
//! `exec` and `rm` from other commands (the pause process's namespace),
//! limits and user networks refused with the reason, and the
//! fuse-overlayfs driver giving the same image as native overlay.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::rootless::{Kind, Rootless};

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// `GET /index.html` on 127.0.0.1:port, retried while the server starts.
fn http_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let addr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if r.contains("200 OK") => return r,
            _ if Instant::now() > deadline => return String::new(),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn usable(dev: &str) -> bool {
    std::fs::metadata(dev).is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006)
}

fn which(tool: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(tool).exists())
}

#[test]
fn a_published_server_answers_and_other_commands_see_the_container() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    if !which("pasta") || !usable("/dev/net/tun") {
        eprintln!("skipped: rootless networking needs pasta and a /dev/net/tun the user may open");
        return;
    }
    if rl.import_busybox().is_none() {
        return;
    }
    let www = rl.path("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello rootless\n").unwrap();
    rl.give(&www);
    let port = free_port();
    let vol = format!("{}:/www:ro", www.display());
    let publish = format!("{port}:80");
    let id = rl
        .ok(&[
            "run", "-d", "--name", "web", "-v", &vol, "-p", &publish, "busybox", "httpd", "-f", "-p", "80", "-h",
            "/www",
        ])
        .trim()
        .to_string();
    assert!(http_get(port).contains("hello rootless"), "no answer on {port}");
    // Every later command joins the same namespaces: exec sees the
    // container's mount, port and ps its publication.
    assert_eq!(rl.ok(&["exec", "web", "cat", "/www/index.html"]), "hello rootless\n");
    assert_eq!(rl.ok(&["port", "web"]), format!("80/tcp -> 0.0.0.0:{port}\n"));
    let ps = rl.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains(&format!("web 0.0.0.0:{port}->80/tcp")), "{ps}");
    assert_eq!(
        rl.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "web"]).trim(),
        "default"
    );
    // The container's network namespace is the user's, not the host's.
    let netns = rl.path("run/strata/netns").join(format!("strata-{}", &id[..12]));
    assert!(netns.exists(), "{} missing", netns.display());
    rl.ok(&["rm", "-f", "web"]);
    assert!(!netns.exists(), "{} left", netns.display());
    let helpers = std::process::Command::new("pgrep")
        .args(["-af", &format!("pasta.*strata-{}", &id[..12])])
        .output()
        .unwrap();
    assert!(
        helpers.stdout.is_empty(),
        "pasta left: {}",
        String::from_utf8_lossy(&helpers.stdout)
    );
    assert_eq!(http_get_once(port), None, "port {port} still answers");
}

fn http_get_once(port: u16) -> Option<String> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    (!r.is_empty()).then_some(r)
}

#[test]
fn limits_and_user_networks_are_refused_with_the_reason() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    if rl.import_busybox().is_none() {
        return;
    }
    for flag in [["--memory", "32m"], ["--pids-limit", "10"], ["--cpus", "0.5"]] {
        let err = rl.fails(&["run", "--rm", "--network", "none", flag[0], flag[1], "busybox", "true"]);
        assert!(
            err.contains("resource limits") && err.contains("rootless"),
            "{flag:?}: {err}"
        );
    }
    let err = rl.fails(&["network", "create", "n1"]);
    assert!(err.contains("need root"), "{err}");
    // Without limits the same run works, and nothing of the host's cgroups is used.
    assert_eq!(
        rl.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"]),
        "ok\n"
    );
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/devices/strata")
            .read_dir()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e
                .metadata()
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == rl.user.uid))
    );
}

/// `--storage-driver fuse-overlayfs` (the kernel allows native overlay
/// here, so it is chosen by hand): a build's layers, `diff` and the image
/// ID equal native overlay's.
#[test]
fn fuse_overlayfs_builds_the_same_image_as_native_overlay() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    if !which("fuse-overlayfs") || !usable("/dev/fuse") {
        eprintln!("skipped: fuse-overlayfs needs its binary and a /dev/fuse the user may open");
        return;
    }
    let Some(tar) = rl.busybox_tar() else { return };
    let tar = tar.to_str().unwrap().to_string();
    let ctx = rl.context(
        "fuse",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN mkdir -p /d/e && echo a > /d/a && echo x > /x\n\
             RUN rm -rf /d /x && mkdir /d && echo b > /d/b && mkdir /new\n\
             RUN chown -R 1000:1000 /d\n",
        )],
    );
    let ctx = ctx.to_str().unwrap().to_string();
    let mut ids = Vec::new();
    for driver in ["overlay", "fuse-overlayfs"] {
        let root = rl.path(&format!("data/{driver}"));
        let root_s = root.to_str().unwrap().to_string();
        let args = common::rootless::import_args(&tar);
        let mut import = vec!["--root", &root_s, "--storage-driver", driver];
        import.extend(args.iter().copied());
        // The same base on both stores (its config has a creation time).
        rl.ok_epoch("1700000000", &import);
        let out = rl
            .cmd()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "--root",
                &root_s,
                "--storage-driver",
                driver,
                "build",
                "-q",
                "-t",
                "f:1",
                &ctx,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{driver}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let listing = rl.ok(&[
            "--root",
            &root_s,
            "--storage-driver",
            driver,
            "run",
            "--rm",
            "--network",
            "none",
            "f:1",
            "sh",
            "-c",
            "ls -lnA /d; test -e /x || echo no-x",
        ]);
        assert!(
            listing.contains(" 1000     1000 ") && listing.contains(" b\n"),
            "{driver}: {listing}"
        );
        assert!(
            !listing.contains(".wh.") && listing.contains("no-x"),
            "{driver}: {listing}"
        );
        rl.ok(&[
            "--root",
            &root_s,
            "--storage-driver",
            driver,
            "run",
            "--name",
            "cc",
            "--network",
            "none",
            "f:1",
            "rm",
            "/d/b",
        ]);
        let diff = rl.ok(&["--root", &root_s, "--storage-driver", driver, "diff", "cc"]);
        assert!(diff.contains("C /d\nD /d/b\n"), "{driver}: {diff}");
        assert!(!diff.contains(".wh."), "{driver}: {diff}");
    }
    assert_eq!(
        ids[0], ids[1],
        "native overlay and fuse-overlayfs built different images"
    );
}

/// Build mounts as an ordinary user (#19 item 4): a cache mount keeps its
/// files from one build to the next and has the owner asked for; a secret
/// is readable by its uid inside the step and never lands in the image.
#[test]
fn cache_mounts_and_secrets_in_a_rootless_build() {
    let Some(rl) = Rootless::new(Kind::Ranges) else { return };
    if rl.import_busybox().is_none() {
        return;
    }
    let secret = rl.path("tok");
    std::fs::write(&secret, "s3cret\n").unwrap();
    rl.give(&secret);
    let dockerfile = |n: &str| {
        format!(
            "FROM busybox\n\
             RUN --mount=type=cache,target=/cache,uid=1000,gid=1000 \
             echo {n} >> /cache/runs && stat -c '%u:%g' /cache > /cache-owner && cat /cache/runs > /runs\n\
             RUN --mount=type=secret,id=tok,uid=1000 \
             stat -c '%u %a' /run/secrets/tok > /secret-meta && md5sum < /run/secrets/tok > /secret-sum\n"
        )
    };
    let secret_arg = format!("id=tok,src={}", secret.display());
    for (n, tag) in [("one", "m:1"), ("two", "m:2")] {
        let ctx = rl.context(&format!("mounts-{n}"), &[("Dockerfile", &dockerfile(n))]);
        rl.ok(&[
            "build",
            "--network",
            "none",
            "--secret",
            &secret_arg,
            "-t",
            tag,
            ctx.to_str().unwrap(),
        ]);
    }
    let show = |tag: &str| {
        rl.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            tag,
            "sh",
            "-c",
            "cat /runs /cache-owner /secret-meta /secret-sum; ls /run/secrets 2>&1 | head -1",
        ])
    };
    let first = show("m:1");
    let second = show("m:2");
    assert!(first.starts_with("one\n1000:1000\n1000 400\n"), "{first}");
    // The second build's cache mount still held the first build's file.
    assert!(second.starts_with("one\ntwo\n1000:1000\n1000 400\n"), "{second}");
    // Neither the secret's bytes nor its file are in the image.
    assert!(!second.contains("s3cret"), "{second}");
    let last = second.lines().last().unwrap_or_default();
    assert!(!last.contains("tok"), "the secret file is in the image: {second}");
    assert_eq!(
        rl.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "m:2",
            "sh",
            "-c",
            "find / -xdev -type f -exec grep -l s3cret {} + 2>/dev/null || true"
        ]),
        ""
    );
}
