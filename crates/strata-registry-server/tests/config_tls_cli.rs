//! Configuration files, TLS from certificate files, token keys from PEM
//! files (with the algorithm-confusion attack), and the command line.

mod common;

use std::process::Command;

use base64::Engine;
use common::*;
use reqwest::{Method, StatusCode};
use strata_registry_server::Config;

fn openssl(args: &[&str], dir: &std::path::Path) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn distribution_style_config_file() {
    let yaml = r#"
version: 0.1
log:
  accesslog:
    disabled: true
  level: info
storage:
  s3:
    bucket: images
    region: eu-west-1
    regionendpoint: http://127.0.0.1:9000
    accesskey: k
    secretkey: s
    rootdirectory: /reg
  delete:
    enabled: false
  maintenance:
    readonly:
      enabled: true
    uploadpurging:
      enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/registry/htpasswd
access:
  - users: [alice]
    repositories: ["alice/**"]
    actions: [pull, push]
proxy:
  remote: https://registry.example
validation:
  manifests:
    indexchildren: false
"#;
    let c = Config::from_yaml(yaml).unwrap();
    let s3 = c.storage.s3.as_ref().unwrap();
    assert_eq!(
        (s3.bucket.as_str(), s3.rootdirectory.as_deref()),
        ("images", Some("/reg"))
    );
    assert!(!c.storage.delete.enabled && c.storage.maintenance.readonly.enabled);
    assert_eq!(c.http.addr, ":5000");
    assert_eq!(c.proxy.as_ref().unwrap().remoteurl, "https://registry.example");
    assert!(c.validation.manifests.referencedblobs && !c.validation.manifests.indexchildren);
    assert_eq!(c.access[0].repositories, ["alice/**"]);
    // Mistakes are explained.
    let e = Config::from_yaml("storage: {filesystem: {rootdirectory: /a}, s3: {bucket: b}}").unwrap_err();
    assert!(e.to_string().contains("either filesystem or s3"), "{e}");
    let e = Config::from_yaml("access: [{users: [a], repositories: [x], actions: [write]}]").unwrap_err();
    assert!(e.to_string().contains("unknown action"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_from_certificate_files() {
    let dir = tempfile::TempDir::new().unwrap();
    let ok = openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
        dir.path(),
    );
    if !ok {
        println!("SKIPPED: the openssl command is not available to make a test certificate");
        return;
    }
    let mut c = fs_config(&dir);
    c.http.tls = Some(strata_registry_server::config::TlsConfig {
        certificate: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    });
    let server = strata_registry_server::start(c).await.unwrap();
    let cert = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("cert.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder().tls_certs_only([cert]).build().unwrap();
    let url = server.url(true);
    assert!(url.starts_with("https://"));
    let r = client.get(format!("{url}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let data = b"over tls".to_vec();
    let d = strata_oci::Digest::sha256_of(&data);
    let r = client
        .post(format!("{url}/v2/tls/blobs/uploads/?digest={d}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client.get(format!("{url}/v2/tls/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    // Plain HTTP to the TLS port gets nowhere.
    assert!(!matches!(
        common::client().get(format!("http://{}/v2/", server.addr())).send().await,
        Ok(r) if r.status() == StatusCode::OK
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_token_keys_and_algorithm_confusion() {
    let dir = tempfile::TempDir::new().unwrap();
    let ok = openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "key.pem",
        ],
        dir.path(),
    ) && openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], dir.path());
    if !ok {
        println!("SKIPPED: the openssl command is not available to make a test key");
        return;
    }
    let e = fs_env_with(|c| {
        c.auth.token = Some(strata_registry_server::config::TokenConfig {
            key: Some(dir.path().join("key.pem")),
            publickey: Some(dir.path().join("pub.pem")),
            ..Default::default()
        });
        c.access = vec![strata_registry_server::config::AccessRule {
            users: vec!["anonymous".into()],
            repositories: vec!["open/*".into()],
            actions: vec!["pull".into(), "push".into()],
        }];
    })
    .await;
    let v = e
        .req(
            Method::GET,
            "/token?service=strata-registry&scope=repository:open/x:pull,push",
        )
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    let token = v["token"].as_str().unwrap().to_string();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    let r = e
        .req(Method::GET, "/v2/open/x/tags/list")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "authorized, nothing there yet");
    // HS256 signed with the public key as the secret (the classic confusion) is refused.
    let public = std::fs::read(dir.path().join("pub.pem")).unwrap();
    let claims = token.split('.').nth(1).unwrap();
    let hdr = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing = format!("{hdr}.{claims}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public);
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signing.as_bytes()));
    let forged = format!("{signing}.{sig}");
    let r = e
        .req(Method::GET, "/v2/open/x/tags/list")
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_command_line() {
    let e = fs_env().await;
    e.push_image("cli/app", "latest", "cli").await;
    e.push_blob("cli/app", b"loose").await;
    let root = e.root().to_path_buf();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata-registry"))
            .args(args)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["gc", "--dry-run", "--grace", "0s"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("would delete 0 manifests, 1 blobs (5 bytes)"), "{out}");
    let (code, out, _) = run(&["gc", "--grace", "0s"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("deleted 0 manifests, 1 blobs (5 bytes)"), "{out}");
    let (code, _, err) = run(&["gc", "--grace", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid duration"), "{err}");
    let (code, _, err) = run(&["serve", "--config", "/nonexistent/config.yml"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("reading config file /nonexistent/config.yml"), "{err}");
    e.stop().await;
}
