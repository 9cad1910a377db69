//! Container networking (#18): the default bridge network, `-p`/`-P`,
//! `port`, PORTS in `ps`, user networks with names and aliases, `none`,
//! pasta and slirp4netns, and cleanup (no veth, netns or nft rule left by
//! `rm`; leftovers of a killed monitor swept by the next command). Needs
//! root and busybox (skips otherwise). All traffic stays on this machine:
//! the host's loopback, strata's bridges and the tests' own namespaces.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Env, sh};

fn setup() -> Option<Env> {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: not root");
        return None;
    }
    for tool in ["ip", "nft"] {
        if !sh(&format!("command -v {tool}")).status.success() {
            println!("skipped: {tool} is not installed");
            return None;
        }
    }
    let env = Env::new();
    env.import_busybox()?;
    std::fs::create_dir_all(env.path("www")).unwrap();
    std::fs::write(env.path("www/index.html"), "hello from strata\n").unwrap();
    Some(env)
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// `GET /` on 127.0.0.1:port, retried while the server starts; the body.
fn http_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s =
                TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if r.contains("200 OK") => return r,
            other if Instant::now() > deadline => panic!("no answer on 127.0.0.1:{port}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `run -d` of busybox httpd serving the test's www directory on port 80.
fn httpd(env: &Env, name: &str, extra: &[&str]) -> String {
    let www = format!("{}:/www:ro", env.path("www").display());
    let mut args = vec!["run", "-d", "--name", name, "-v", &www];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    env.ok(&args).trim().to_string()
}

fn inspect(env: &Env, name: &str, format: &str) -> String {
    env.ok(&["container", "inspect", "-f", format, name]).trim().to_string()
}

fn full_inspect(env: &Env, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["container", "inspect", name])).unwrap();
    v[0].clone()
}

fn host_links() -> String {
    String::from_utf8_lossy(&sh("ip -o link show").stdout).into_owned()
}

fn nft_table() -> String {
    String::from_utf8_lossy(&sh("nft list table inet strata 2>/dev/null").stdout).into_owned()
}

/// What a container left on the host: its veths (`sv<id…>`), its
/// namespace, rules naming its address.
/// What a removed container left: its veth (given a moment: the kernel
/// destroys a dropped namespace's veths on its own workqueue), namespace,
/// rules.
fn leftovers(id: &str, ip: &str) -> Vec<String> {
    let veth = format!("sv{}", &id[..10]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_links().contains(&veth) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    present(id, ip)
}

/// What of a container's network exists now.
fn present(id: &str, ip: &str) -> Vec<String> {
    let mut v = Vec::new();
    let veth = format!("sv{}", &id[..10]);
    if host_links().contains(&veth) {
        v.push(format!("veth {veth}"));
    }
    let ns = format!("/run/netns/strata-{}", &id[..12]);
    if Path::new(&ns).exists() {
        v.push(ns);
    }
    if !ip.is_empty() && nft_table().contains(&format!("{ip}:")) {
        v.push(format!("nft rule to {ip}"));
    }
    v
}

/// Code, stdout, stderr.
fn code(env: &Env, args: &[&str]) -> (i32, String, String) {
    let o = env.run(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn two_published_httpds_answer_on_the_host_and_rm_leaves_nothing() {
    let Some(env) = setup() else { return };
    let (p1, p2) = (free_port(), free_port());
    let a = httpd(&env, "web1", &["-p", &format!("{p1}:80")]);
    let b = httpd(&env, "web2", &["-p", &format!("{p2}:80")]);
    assert!(http_get(p1).contains("hello from strata"));
    assert!(http_get(p2).contains("hello from strata"));

    // Docker's PORTS column and `port`.
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains(&format!("web1 0.0.0.0:{p1}->80/tcp")), "{ps}");
    assert!(ps.contains(&format!("web2 0.0.0.0:{p2}->80/tcp")), "{ps}");
    assert!(env.ok(&["ps"]).lines().next().unwrap().contains("PORTS"));
    assert_eq!(env.ok(&["port", "web1"]), format!("80/tcp -> 0.0.0.0:{p1}\n"));
    assert_eq!(env.ok(&["port", "web2", "80"]), format!("0.0.0.0:{p2}\n"));
    assert!(
        env.fails(&["port", "web2", "81"])
            .contains("No public port '81/tcp' published for web2")
    );

    // inspect as Docker's.
    let v = full_inspect(&env, "web1");
    assert_eq!(v["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], p1.to_string());
    assert_eq!(v["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"], "");
    assert_eq!(v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostIp"], "0.0.0.0");
    assert_eq!(v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], p1.to_string());
    // As Docker: no --network is the "default" mode, on the bridge network.
    assert_eq!(v["HostConfig"]["NetworkMode"], "default");
    let ip_a = v["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    assert!(ip_a.starts_with("10."), "{ip_a}");
    assert_eq!(v["NetworkSettings"]["Networks"]["bridge"]["IPAddress"], ip_a.as_str());
    let ip_b = inspect(&env, "web2", "{{.NetworkSettings.IPAddress}}");
    assert_ne!(ip_a, ip_b);
    assert!(nft_table().contains(&format!("dnat ip to {ip_a}:80")));
    assert!(
        present(&a, &ip_a).len() >= 2,
        "the container's veth and namespace exist while it runs"
    );

    // stop takes the network down (the monitor's exit hook); rm leaves nothing.
    env.ok(&["stop", "-t", "1", "web1"]);
    assert_eq!(leftovers(&a, &ip_a), Vec::<String>::new());
    assert_eq!(env.ok(&["port", "web1"]), "");
    env.ok(&["rm", "web1"]);
    env.ok(&["rm", "-f", "web2"]);
    assert_eq!(leftovers(&b, &ip_b), Vec::<String>::new());
    // The port is free again for another container.
    let c = httpd(&env, "web3", &["-p", &format!("{p1}:80")]);
    assert!(http_get(p1).contains("hello"));
    env.ok(&["rm", "-f", "web3"]);
    assert_eq!(leftovers(&c, ""), Vec::<String>::new());
}

#[test]
fn a_port_in_use_is_refused_before_the_container_starts() {
    let Some(env) = setup() else { return };
    // Held by a process of the host.
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let (rc, _, err) = code(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "held",
            "-p",
            &format!("{port}:80"),
            "busybox",
            "sleep",
            "30",
        ],
    );
    assert_eq!(rc, 125, "{err}");
    assert!(
        err.contains(&format!("0.0.0.0:{port}/tcp")) && err.contains("already in use"),
        "{err}"
    );
    assert!(inspect(&env, "held", "{{.State.Status}}") == "created");
    let id = inspect(&env, "held", "{{.Id}}");
    assert_eq!(leftovers(&id, ""), Vec::<String>::new());
    // Nor is its root left mounted (the bench found it was).
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "the refused container's root is still mounted");
    drop(held);

    // Published by another container.
    let port = free_port();
    let a = httpd(&env, "pub1", &["-p", &format!("127.0.0.1:{port}:80")]);
    let (rc, _, err) = code(&env, &["run", "--rm", "-p", &format!("{port}:80"), "busybox", "true"]);
    assert_eq!(rc, 125, "{err}");
    assert!(
        err.contains(&format!("Bind for 0.0.0.0:{port} failed: port is already allocated")),
        "{err}"
    );
    assert!(http_get(port).contains("hello"));
    // Bad specs are refused at create.
    let err = env.fails(&["create", "-p", "99999:80", "busybox"]);
    assert!(err.contains("invalid publish spec"), "{err}");
    env.ok(&["rm", "-f", "pub1", "held"]);
    assert_eq!(leftovers(&a, ""), Vec::<String>::new());
}

#[test]
fn publish_all_picks_ephemeral_ports_shown_by_port_and_ps() {
    let Some(env) = setup() else { return };
    let id = httpd(&env, "pall", &["-P", "--expose", "80", "--expose", "7000/udp"]);
    let out = env.ok(&["port", "pall"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut r = range.split_whitespace().map(|x| x.parse::<u16>().unwrap());
    let (lo, hi) = (r.next().unwrap(), r.next().unwrap());
    let mut tcp = 0;
    for l in &lines {
        let (ctr, host) = l.split_once(" -> 0.0.0.0:").expect(l);
        let hp: u16 = host.parse().unwrap();
        assert!((lo..=hi).contains(&hp), "{l}");
        assert!(ctr == "80/tcp" || ctr == "7000/udp", "{l}");
        if ctr == "80/tcp" {
            tcp = hp;
        }
    }
    assert!(http_get(tcp).contains("hello"));
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert!(ps.contains(&format!("0.0.0.0:{tcp}->80/tcp")), "{ps}");
    assert!(ps.contains("->7000/udp"), "{ps}");
    let v = full_inspect(&env, "pall");
    assert_eq!(v["HostConfig"]["PublishAllPorts"], true);
    assert!(v["Config"]["ExposedPorts"]["7000/udp"].is_object());
    env.ok(&["rm", "-f", "pall"]);
    assert_eq!(leftovers(&id, ""), Vec::<String>::new());
}

/// `-p A-B:C-D` pairs the ports up as Docker's nat.ParsePortSpec; ps
/// collapses same-number runs as Docker's DisplayablePorts.
#[test]
fn port_ranges_publish_each_port_and_ps_groups_them_as_docker() {
    let Some(env) = setup() else { return };
    // Five free ports in a row, below the kernel's ephemeral range (32768
    // and up here) so that no test's outgoing connection takes one meanwhile.
    let mut seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    let base = loop {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let p = 20000 + (seed >> 33) as u16 % 10000;
        if (0..5).all(|i| std::net::TcpListener::bind(("0.0.0.0", p + i)).is_ok()) {
            break p;
        }
    };
    let pub_range = format!("{}-{}:79-81", base, base + 2);
    let same = format!("{}-{}:{}-{}", base + 3, base + 4, base + 3, base + 4);
    let id = httpd(&env, "rng", &["-p", &pub_range, "-p", &same]);
    // httpd listens on 80: the middle port of the range.
    assert!(http_get(base + 1).contains("hello"));
    // The container reaches its own published port through the gateway
    // (hairpin on its bridge port).
    let script = format!(
        "gw=$(ip route | awk '/default/ {{print $3}}'); printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc $gw {}",
        base + 1
    );
    let own = env.ok(&["exec", "rng", "sh", "-c", &script]);
    assert!(own.contains("hello"), "{own}");
    let port = env.ok(&["port", "rng", "80"]);
    assert_eq!(port, format!("0.0.0.0:{}\n", base + 1));
    let ps = env.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    let ps = ps.lines().find(|l| l.starts_with("rng ")).unwrap_or_default();
    let want = format!(
        "rng 0.0.0.0:{a}-{b}->{a}-{b}/tcp, 0.0.0.0:{}->79/tcp, 0.0.0.0:{}->80/tcp, 0.0.0.0:{}->81/tcp",
        base,
        base + 1,
        base + 2,
        a = base + 3,
        b = base + 4
    );
    assert_eq!(ps, want);
    assert_eq!(inspect(&env, "rng", "{{.HostConfig.NetworkMode}}"), "default");
    let (c, _, err) = code(&env, &["run", "--rm", "-p", "9000-9002:80-81", "busybox", "true"]);
    assert_ne!(c, 0);
    assert!(err.contains("not as long"), "{err}");
    env.ok(&["rm", "-f", "rng"]);
    assert_eq!(leftovers(&id, ""), Vec::<String>::new());
}

#[test]
fn containers_of_a_user_network_reach_each_other_by_name_and_alias() {
    let Some(env) = setup() else { return };
    let net = format!("tnet{}", std::process::id());
    let net_id = env.ok(&["network", "create", &net]).trim().to_string();
    assert_eq!(net_id.len(), 64);
    let ls = env.ok(&["network", "ls"]);
    for n in ["bridge", "host", "none", net.as_str()] {
        assert!(
            ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)),
            "{n} in\n{ls}"
        );
    }
    assert!(ls.starts_with("NETWORK ID"));
    let db = httpd(&env, "db", &["--network", &net, "--network-alias", "database"]);
    let script = "ping -c1 -W2 db >/dev/null && ping -c1 -W2 database >/dev/null && echo both \
                  && printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc database 80 | tail -1";
    let out = env.ok(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", script]);
    assert_eq!(out, "both\nhello from strata\n");

    // network inspect lists the container with its address; aliases in the container's inspect.
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", &net])).unwrap();
    let n = &v[0];
    assert_eq!(n["Name"], net.as_str());
    assert_eq!(n["Driver"], "bridge");
    let subnet = n["IPAM"]["Config"][0]["Subnet"].as_str().unwrap().to_string();
    let entry = &n["Containers"][&db];
    assert_eq!(entry["Name"], "db");
    let db_ip = entry["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let aliases = full_inspect(&env, "db")["NetworkSettings"]["Networks"][&net]["Aliases"].clone();
    assert!(aliases.as_array().unwrap().iter().any(|a| a == "database"), "{aliases}");
    // Each user network has its own bridge and subnet.
    let bridge_subnet = full_inspect(&env, "db")["NetworkSettings"]["Networks"][&net]["Gateway"].clone();
    assert!(!subnet.is_empty() && bridge_subnet.as_str().is_some_and(|g| !g.is_empty()));

    // connect: a container on the default bridge joins and finds db by name; disconnect takes it off.
    env.ok(&["run", "-d", "--name", "visitor", "busybox", "sleep", "60"]);
    let miss = code(&env, &["exec", "visitor", "ping", "-c1", "-W1", &db_ip]);
    assert_ne!(miss.0, 0, "the default bridge does not reach a user network");
    env.ok(&["network", "connect", "--alias", "guest", &net, "visitor"]);
    env.ok(&["exec", "visitor", "ping", "-c1", "-W2", "db"]);
    env.ok(&["exec", "db", "ping", "-c1", "-W2", "guest"]);
    let err = env.fails(&["network", "connect", &net, "visitor"]);
    assert!(err.contains("already connected"), "{err}");
    env.ok(&["network", "disconnect", &net, "visitor"]);
    assert_ne!(code(&env, &["exec", "visitor", "ping", "-c1", "-W1", &db_ip]).0, 0);

    // rm of the network is refused while a container is attached.
    let err = env.fails(&["network", "rm", &net]);
    assert!(err.contains("active endpoints"), "{err}");
    assert!(env.fails(&["network", "rm", "bridge"]).contains("pre-defined"));
    env.ok(&["rm", "-f", "db", "visitor"]);
    assert_eq!(leftovers(&db, &db_ip), Vec::<String>::new());
    assert_eq!(env.ok(&["network", "rm", &net]), format!("{net}\n"));
    assert!(!env.ok(&["network", "ls"]).contains(&net));
    // prune removes unused user networks only.
    let other = format!("tprune{}", std::process::id());
    env.ok(&["network", "create", &other]);
    let out = env.ok(&["network", "prune", "-f"]);
    assert!(out.contains(&other), "{out}");
    assert!(env.ok(&["network", "ls"]).contains("bridge"));
}

#[test]
fn a_default_network_container_reaches_another_by_ip_and_none_has_only_lo() {
    let Some(env) = setup() else { return };
    let id = httpd(&env, "srv", &[]);
    let ip = inspect(&env, "srv", "{{.NetworkSettings.IPAddress}}");
    let script = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc {ip} 80 | tail -1");
    let out = env.ok(&["run", "--rm", "busybox", "sh", "-c", &script]);
    assert_eq!(out, "hello from strata\n");
    // Its files: hostname, hosts with its own address, a resolv.conf without loopback servers.
    let out = env.ok(&["exec", "srv", "sh", "-c", "cat /etc/hostname; grep -c \"^$(hostname -i 2>/dev/null || echo x)\" /etc/hosts; grep nameserver /etc/resolv.conf"]);
    assert!(out.starts_with(&format!("{}\n", &id[..12])), "{out}");
    assert!(out.contains("nameserver"), "{out}");
    assert!(!out.contains("nameserver 127."), "{out}");
    let hosts = env.ok(&["exec", "srv", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\t{}", &id[..12])), "{hosts}");

    // --network none: only lo; host: the host's interfaces.
    let links = env.ok(&["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:"), "{links}");
    let o = env.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "80",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Published ports are discarded when using host network mode"));
    let host = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(host.lines().count() > 1, "{host}");
    env.ok(&["rm", "-f", "srv"]);
    assert_eq!(leftovers(&id, &ip), Vec::<String>::new());
    // diff does not show the files strata mounted (as Docker's init layer), running or not.
    env.ok(&["run", "--name", "quiet", "busybox", "true"]);
    assert_eq!(env.ok(&["diff", "quiet"]), "");
    env.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "30"]);
    assert_eq!(env.ok(&["diff", "busy"]), "");
    env.ok(&["rm", "-f", "quiet", "busy"]);
}

#[test]
fn leftovers_of_a_killed_monitor_are_swept_by_the_next_command() {
    let Some(env) = setup() else { return };
    let port = free_port();
    let id = httpd(&env, "victim", &["-p", &format!("{port}:80")]);
    let ip = inspect(&env, "victim", "{{.NetworkSettings.IPAddress}}");
    assert!(http_get(port).contains("hello"));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root().join("containers").join(&id).join("state.json")).unwrap())
            .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
    // SIGKILL: no exit hook runs; the container dies with its monitor.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while inspect(&env, "victim", "{{.State.Running}}") == "true" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&["ps", "-a"]);
    assert_eq!(leftovers(&id, &ip), Vec::<String>::new());
    // Its port is free again.
    let again = httpd(&env, "again", &["-p", &format!("{port}:80")]);
    assert!(http_get(port).contains("hello"));
    env.ok(&["rm", "-f", "victim", "again"]);
    assert_eq!(leftovers(&again, ""), Vec::<String>::new());
}

/// The network state is the host's: a command on another store sweeps what
/// a dead monitor left when its own store is never used again (a test that
/// panicked, a deleted project) — found with leftover veths on strata0.
#[test]
fn leftovers_of_a_killed_monitor_are_swept_by_another_store() {
    let Some(env) = setup() else { return };
    let Some(other) = setup() else { return };
    let port = free_port();
    let id = httpd(&env, "victim2", &["-p", &format!("{port}:80")]);
    let ip = inspect(&env, "victim2", "{{.NetworkSettings.IPAddress}}");
    assert!(http_get(port).contains("hello"));
    // A running container of another store is left alone (the `run -d`
    // that brought its network up has exited: its monitor is what counts).
    other.ok(&["ps", "-a"]);
    assert!(
        http_get(port).contains("hello"),
        "another store's sweep took a running container's network"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root().join("containers").join(&id).join("state.json")).unwrap())
            .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{monitor}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Only the other store is used.
    other.ok(&["ps", "-a"]);
    assert_eq!(leftovers(&id, &ip), Vec::<String>::new());
    env.ok(&["rm", "-f", "victim2"]);
}

/// A container between two runs of its restart policy (its keeper waiting
/// out the back-off) keeps its network when another store sweeps: the next
/// run starts in it (a CI run failed its third start with 125 when a
/// concurrent test's `ps` took the namespace in that window).
#[test]
fn a_restarting_container_keeps_its_network_through_another_stores_sweep() {
    let Some(env) = setup() else { return };
    let Some(other) = setup() else { return };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    // Past the third restart the back-off is 800 ms, then 1.6 s: wide
    // enough to find it exited, waiting for its next run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        let got = inspect(&env, "again", "{{.RestartCount}} {{.State.Status}}");
        let (n, status) = got.split_once(' ').unwrap();
        let n: u32 = n.parse().unwrap();
        if n >= 3 && status == "exited" {
            break n;
        }
        assert!(Instant::now() < deadline, "never found between two runs: {got}");
        std::thread::sleep(Duration::from_millis(20));
    };
    other.ok(&["ps", "-a"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while inspect(&env, "again", "{{.RestartCount}}").parse::<u32>().unwrap() <= count {
        assert!(Instant::now() < deadline, "not restarted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The run after the sweep started (it exited 1, as every run does).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = inspect(&env, "again", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}");
        if got.starts_with("exited") || Instant::now() > deadline {
            assert_eq!(got, "exited 1", "the restart after the sweep");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    env.ok(&["rm", "-f", "again"]);
}

/// A one-shot HTTP-ish server on the host: answers every connection with `hello-host`.
fn host_server() -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = s.write_all(b"hello-host\n");
        }
    });
    port
}

fn user_mode(mode: &str, tool: &str) {
    let Some(env) = setup() else { return };
    if !sh(&format!("command -v {tool}")).status.success() {
        println!("skipped: {tool} is not installed");
        return;
    }
    // The host, through the container's gateway.
    let port = host_server();
    let script = format!("gw=$(ip route | awk '/default/ {{print $3}}'); timeout 3 nc $gw {port} </dev/null; echo .");
    let out = env.ok(&["run", "--rm", "--network", mode, "busybox", "sh", "-c", &script]);
    assert!(out.contains("hello-host"), "{out}");
    // A published port, bound by the helper on the host.
    let hp = free_port();
    let id = httpd(&env, "um", &["--network", mode, "-p", &format!("{hp}:80")]);
    assert!(http_get(hp).contains("hello from strata"));
    assert_eq!(env.ok(&["port", "um"]), format!("80/tcp -> 0.0.0.0:{hp}\n"));
    assert_eq!(inspect(&env, "um", "{{.HostConfig.NetworkMode}}"), mode);
    let helpers = || {
        String::from_utf8_lossy(&sh(&format!("pgrep -af '^/usr/bin/{tool}.*strata-{}'", &id[..12])).stdout).into_owned()
    };
    assert!(!helpers().is_empty());
    env.ok(&["rm", "-f", "um"]);
    assert_eq!(leftovers(&id, ""), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    while !helpers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(helpers(), "", "the {tool} of a removed container is gone");
    let socket = format!("/run/strata-{}.slirp4netns.sock", &id[..12]);
    assert!(!Path::new(&socket).exists(), "{socket} is left");
}

#[test]
fn pasta_reaches_the_host_and_publishes() {
    user_mode("pasta", "pasta");
}

#[test]
fn slirp4netns_reaches_the_host_and_publishes() {
    user_mode("slirp4netns", "slirp4netns");
}

#[test]
fn parallel_starts_get_distinct_addresses_and_ports() {
    let Some(env) = setup() else { return };
    let env = std::sync::Arc::new(env);
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let env = env.clone();
            std::thread::spawn(move || {
                let name = format!("par{i}");
                env.ok(&["run", "-d", "--name", &name, "-p", "80", "busybox", "sleep", "60"]);
                (
                    inspect(&env, &name, "{{.NetworkSettings.IPAddress}}"),
                    env.ok(&["port", &name]).trim().to_string(),
                )
            })
        })
        .collect();
    let got: Vec<(String, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ips: Vec<&String> = got.iter().map(|(ip, _)| ip).collect();
    let mut ports: Vec<&String> = got.iter().map(|(_, p)| p).collect();
    ips.sort();
    ips.dedup();
    ports.sort();
    ports.dedup();
    assert_eq!(ips.len(), 6, "{got:?}");
    assert_eq!(ports.len(), 6, "{got:?}");
    let names: Vec<String> = (0..6).map(|i| format!("par{i}")).collect();
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    env.ok(&args);
    for (ip, _) in &got {
        assert!(!nft_table().contains(&format!("{ip}:")), "{ip}");
    }
}
