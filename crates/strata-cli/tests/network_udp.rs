//! `-p HOST:CONTAINER/udp` end to end: a datagram sent to 127.0.0.1:HOST
//! reaches a UDP echo server in the container and the answer comes back.
//! busybox-static has no UDP server, so the test compiles a small static
//! one with the host's gcc into the image (a fixture the test builds, not
//! image content run on the host). Needs root, ip, nft, gcc (skips otherwise).

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Env, have, sh};

const ECHO_C: &str = r#"
#include <netinet/in.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(5353);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    for (;;) {
        char buf[512];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n > 0) sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}
"#;

fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// Sends `msg` to 127.0.0.1:port until an answer comes (the server starts).
fn echo(port: u16, msg: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 512];
    loop {
        s.send_to(msg, ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return buf[..n].to_vec();
        }
        assert!(Instant::now() < deadline, "no UDP answer on 127.0.0.1:{port}");
    }
}

#[test]
fn a_published_udp_port_answers_on_the_host() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: not root");
        return;
    }
    if !(have("ip") && have("nft") && have("gcc")) {
        return;
    }
    let env = Env::new();
    if env.import_busybox().is_none() {
        return;
    }
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("echo.c"), ECHO_C).unwrap();
    let o = sh(&format!("gcc -static -O2 -o {0}/udpecho {0}/echo.c", ctx.display()));
    if !o.status.success() {
        println!(
            "skipped: gcc -static failed (libc6-dev): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return;
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY udpecho /udpecho\n").unwrap();
    env.ok(&["build", "-q", "-t", "udpecho", ctx.to_str().unwrap()]);
    let port = free_udp_port();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &format!("{port}:5353/udp"),
        "udpecho",
        "/udpecho",
    ]);
    assert_eq!(echo(port, b"strata over udp"), b"strata over udp");
    assert_eq!(env.ok(&["port", "echo"]).trim(), format!("5353/udp -> 0.0.0.0:{port}"));
    env.ok(&["rm", "-f", "echo"]);
    // The rule went with the container.
    let rules = String::from_utf8_lossy(&sh("nft list ruleset 2>/dev/null").stdout).into_owned();
    assert!(!rules.contains(&format!("udp dport {port}")), "{rules}");
}
