//! A fault-injecting HTTP proxy for the fault campaign: in front of a
//! registry on 127.0.0.1, each request (one per connection: the proxy asks
//! both sides for `Connection: close`) is passed, dropped before its
//! answer, cut off after part of its answer, stalled, or answered with a
//! status (500, 503, 429 with `Retry-After`) in the registry API's error
//! body. What happens to a request is its plan's choice.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::campaign::Rng;

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// The connection closed before any answer.
    Drop,
    /// Passed, but the connection closed after this many bytes of the answer.
    Cut(usize),
    /// Passed after a pause.
    Stall(Duration),
    /// This status, with `Retry-After: secs` when given, and the message.
    Status(u16, Option<u64>, &'static str),
}

/// Chooses the fault for a request (`METHOD PATH`).
pub type Plan = Box<dyn Fn(&str, &mut Rng) -> Fault + Send + Sync>;

pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    stop: Arc<AtomicBool>,
    /// Every request seen, with what was done to it.
    pub log: Arc<Mutex<Vec<(String, Fault)>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread.
        let _ = TcpStream::connect(&self.host);
    }
}

impl FaultProxy {
    pub fn start(upstream: &str, rng: Rng, plan: Plan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new((upstream.to_string(), Mutex::new(rng), plan));
        {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (shared, log) = (shared.clone(), log.clone());
                    std::thread::spawn(move || {
                        let (upstream, rng, plan) = &*shared;
                        let _ = serve(conn, upstream, rng, plan, &log);
                    });
                }
            });
        }
        FaultProxy { host, stop, log }
    }

    /// How many requests met a fault other than `Pass`.
    pub fn faults(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, f)| *f != Fault::Pass)
            .count()
    }

    pub fn summary(&self) -> String {
        let log = self.log.lock().unwrap();
        let count = |p: fn(&Fault) -> bool| log.iter().filter(|(_, f)| p(f)).count();
        format!(
            "{} requests: {} passed, {} dropped, {} cut off, {} stalled, {} 5xx, {} 429",
            log.len(),
            count(|f| *f == Fault::Pass),
            count(|f| *f == Fault::Drop),
            count(|f| matches!(f, Fault::Cut(_))),
            count(|f| matches!(f, Fault::Stall(_))),
            count(|f| matches!(f, Fault::Status(s, ..) if *s >= 500)),
            count(|f| matches!(f, Fault::Status(429, ..))),
        )
    }
}

/// The request head (up to the blank line) and what came after it.
fn read_head(c: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((String::from_utf8_lossy(&buf).into_owned(), rest)));
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with `Connection: close` in place of any connection header.
fn closing(head: &str) -> String {
    let mut out = String::new();
    for l in head.trim_end_matches("\r\n").split("\r\n") {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    rng: &Mutex<Rng>,
    plan: &Plan,
    log: &Mutex<Vec<(String, Fault)>>,
) -> std::io::Result<()> {
    let Some((head, rest)) = read_head(&mut client)? else {
        return Ok(());
    };
    let line = head.lines().next().unwrap_or_default();
    let request: String = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let fault = plan(&request, &mut rng.lock().unwrap());
    log.lock().unwrap().push((request, fault));
    let cut = match fault {
        Fault::Drop => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Fault::Status(status, retry_after, message) => {
            let body = format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"{message}"}}]}}"#);
            let reason = match status {
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                _ => "Service Unavailable",
            };
            let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes())?;
            let _ = client.shutdown(Shutdown::Write);
            // What the client still sends (a body) is read, so that closing
            // does not reset the connection under the answer.
            client.set_read_timeout(Some(Duration::from_secs(2)))?;
            let _ = std::io::copy(&mut client, &mut std::io::sink());
            return Ok(());
        }
        Fault::Stall(d) => {
            std::thread::sleep(d);
            None
        }
        Fault::Cut(n) => Some(n),
        Fault::Pass => None,
    };
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(closing(&head).as_bytes())?;
    up.write_all(&rest)?;
    // The request's body, as it comes.
    let (mut from_client, mut to_up) = (client.try_clone()?, up.try_clone()?);
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_up);
    });
    // The answer, whole or cut off.
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let n = match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match cut {
            Some(limit) => n.min(limit.saturating_sub(sent)),
            None => n,
        };
        if n == 0 || client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    let _ = forward.join();
    Ok(())
}
