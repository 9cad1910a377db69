//! strata against Debian's docker-registry (distribution 2.8) behind a token
//! server: the registry sends a Bearer challenge, strata asks the token
//! endpoint with its login (or anonymously) for the repository's scope, and
//! pushes and pulls with the token. The token server here is a small test
//! endpoint signing ES256 tokens with a key whose certificate the registry
//! trusts (`rootcertbundle`), as distribution's token auth expects.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use base64::Engine;
use common::{Env, TestRegistry, sh_ok};

/// Answers `GET /token?service=..&scope=repository:NAME:ACTIONS` with a
/// token granting the scope to `alice:s3cret` (Basic auth), and nothing to
/// anyone else (an empty `access` list, as real token servers do).
fn token_server(key_pem: Vec<u8>, cert_der: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split(' ').nth(1).unwrap_or_default().to_string();
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                let expected = format!(
                    "basic {}",
                    base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
                );
                if h.to_lowercase().starts_with("authorization:")
                    && h[14..].trim().to_lowercase() == expected.to_lowercase()
                {
                    authorized = true;
                }
                if h.to_lowercase().starts_with("authorization:") && !authorized {
                    // Wrong credentials: refuse as token servers do.
                    let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    break;
                }
            }
            let query = target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
            let mut access = Vec::new();
            for kv in query.split('&') {
                if let Some(scope) = kv.strip_prefix("scope=") {
                    let scope = scope.replace("%3A", ":").replace("%2C", ",").replace("%2F", "/");
                    let parts: Vec<&str> = scope.split(':').collect();
                    if parts.len() == 3 && authorized {
                        access.push(serde_json::json!({
                            "type": parts[0], "name": parts[1],
                            "actions": parts[2].split(',').collect::<Vec<_>>(),
                        }));
                    }
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let claims = serde_json::json!({
                "iss": "test-issuer", "sub": if authorized { "alice" } else { "" }, "aud": "test-registry",
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
                "access": access,
            });
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.x5c = Some(vec![base64::engine::general_purpose::STANDARD.encode(&cert_der)]);
            let key = jsonwebtoken::EncodingKey::from_ec_pem(&key_pem).unwrap();
            let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn docker_registry_behind_a_token_server() {
    if !common::have_distribution() {
        return;
    }
    if !common::have("openssl") {
        return;
    }
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let d = env.path("token");
    std::fs::create_dir_all(&d).unwrap();
    sh_ok(&format!(
        "cd {} && openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null && \
         openssl pkcs8 -topk8 -nocrypt -in key.pem -out key8.pem && \
         openssl req -new -x509 -key key.pem -out cert.pem -days 2 -subj /CN=token 2>/dev/null && \
         openssl x509 -in cert.pem -outform DER -out cert.der",
        d.display()
    ));
    let tport = token_server(
        std::fs::read(d.join("key8.pem")).unwrap(),
        std::fs::read(d.join("cert.der")).unwrap(),
    );
    let extra = format!(
        "auth:\n  token:\n    realm: \"http://127.0.0.1:{tport}/token\"\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: \"{}\"\n",
        d.join("cert.pem").display()
    );
    let reg = TestRegistry::distribution(false, &extra).expect("docker-registry is installed");
    let host = &reg.host;
    let name = format!("{host}/alice/busybox:1");
    env.ok(&["tag", "busybox:latest", &name]);
    // Anonymous: the token server grants nothing, the registry refuses.
    let o = env.run_with(&["push", &name], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("denied") || err.contains("authentication"),
        "{err}"
    );
    // A wrong password is refused by the token server at login.
    let o = env.run_with(&["login", "-u", "alice", "--password-stdin", host], Some("nope\n"));
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // Logged in: push, then a fresh store pulls and runs it.
    let out = env.ok_with(&["login", "-u", "alice", "--password-stdin", host], Some("s3cret\n"));
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = env.ok_with(&["push", &name], None);
    assert!(out.contains("digest: sha256:"), "{out}");
    let other = Env::new();
    std::fs::create_dir_all(other.path("docker-config")).unwrap();
    std::fs::copy(
        env.path("docker-config/config.json"),
        other.path("docker-config/config.json"),
    )
    .unwrap();
    other.ok_with(&["pull", &name], None);
    assert_eq!(
        other.ok_with(&["run", "--rm", &name, "echo", "through tokens"], None),
        "through tokens\n"
    );
}
