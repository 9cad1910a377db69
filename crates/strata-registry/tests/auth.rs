//! Authentication against strata-registry-server: htpasswd Basic, its token
//! service (scopes per repository, mounts needing two scopes), login and
//! logout through config.json.

mod common;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use common::*;
use strata_oci::Digest;
use strata_registry::{ClientOptions, Credentials, Mount, RegistryError};

async fn push_and_pull(c: &strata_registry::Client, repo: &str, seed: u64) -> Digest {
    let blob = data(3000, seed);
    let d = c.push_blob_bytes(repo, blob.clone()).await.unwrap();
    let mut out = Vec::new();
    c.get_blob(repo, &d, Some(blob.len() as u64), &mut out).await.unwrap();
    assert_eq!(out, blob);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth() {
    let r = basic_registry().await;
    // Anonymous: refused, with what to do.
    let anon = r.anonymous();
    anon.ping().await.unwrap();
    let err = anon.list_tags("alice/app", None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains("authentication required") && msg.contains(&format!("strata login {}", r.host)),
        "{msg}"
    );
    assert!(msg.contains("alice/app") && msg.contains(&r.host), "{msg}");
    assert!(anon.check_credentials().await.is_err());
    let err = anon.push_blob_bytes("alice/app", b"x".to_vec()).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");

    // alice reads and writes her repositories.
    let alice = r.as_user("alice", "alice-pw");
    alice.check_credentials().await.unwrap();
    let d = push_and_pull(&alice, "alice/app", 1).await;

    // bob may pull alice's, not push there: the registry's DENIED.
    let bob = r.as_user("bob", "bob-pw");
    assert_eq!(bob.head_blob("alice/app", &d).await.unwrap(), Some(3000));
    let err = bob.push_blob_bytes("alice/app", b"b".to_vec()).await.unwrap_err();
    assert!(err.to_string().contains("DENIED"), "{err}");
    assert!(err.is_unauthorized());

    // A wrong password says so.
    let wrong = r.as_user("alice", "nope");
    let err = wrong.check_credentials().await.unwrap_err();
    assert!(
        err.to_string().contains("refused the credentials of user \"alice\""),
        "{err}"
    );
    let err = wrong.head_blob("alice/app", &d).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_with_scopes_per_repository() {
    let r = token_registry().await;
    let anon = r.anonymous();
    // Anonymous pull of a private repository is refused.
    let err = anon.list_tags("alice/app", None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains("authentication required") && msg.contains("repository:alice/app:pull"),
        "{msg}"
    );
    // ... but an anonymous token opens public/*: allowed, and empty.
    let err = anon.list_tags("public/x", None).await.unwrap_err();
    assert!(err.to_string().contains("NAME_UNKNOWN"), "{err}");

    let alice = r.as_user("alice", "alice-pw");
    alice.check_credentials().await.unwrap();
    let d = push_and_pull(&alice, "alice/app", 2).await;
    // Another repository: another token, from the same client.
    push_and_pull(&alice, "alice/other", 3).await;
    // A repository alice has no rights on: a token without them, and a clear refusal.
    let err = alice.push_blob_bytes("bob/app", b"x".to_vec()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::Unauthorized { .. }) && msg.contains("access denied to user \"alice\""),
        "{msg}"
    );
    // The earlier tokens still work after that refusal.
    assert!(alice.blob_exists("alice/app", &d).await.unwrap());

    // bob pulls alice's but cannot push there.
    let bob = r.as_user("bob", "bob-pw");
    assert!(bob.blob_exists("alice/app", &d).await.unwrap());
    assert!(bob.push_blob_bytes("alice/app", b"y".to_vec()).await.is_err());
    // A mount needs push on the target and pull on the source: one token for both.
    assert!(matches!(
        bob.mount_blob("bob/app", &d, "alice/app").await.unwrap(),
        Mount::Mounted
    ));
    assert!(bob.blob_exists("bob/app", &d).await.unwrap());
    // Where bob cannot pull the source, the registry opens an upload instead.
    let bd = bob.push_blob_bytes("bob/private", b"secret".to_vec()).await.unwrap();
    assert!(matches!(
        alice.mount_blob("alice/app", &bd, "bob/private").await.unwrap(),
        Mount::Upload(_)
    ));
    assert!(!alice.blob_exists("alice/app", &bd).await.unwrap());

    // Wrong password: the token service refuses it.
    let wrong = r.as_user("alice", "nope");
    let err = wrong.list_tags("alice/app", None).await.unwrap_err();
    assert!(
        err.to_string().contains("refused the credentials of user \"alice\""),
        "{err}"
    );
    r.stop().await;
}

fn read_config(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_writes_config_and_logout_removes_it() {
    for token in [false, true] {
        let r = if token {
            token_registry().await
        } else {
            basic_registry().await
        };
        let tmp = tempfile::TempDir::new().unwrap();
        let cfg_dir = tmp.path().join("docker");
        let opts = ClientOptions {
            docker_config_dir: Some(cfg_dir.clone()),
            ..options(Credentials::DockerConfig)
        };
        // A wrong password is refused and nothing is written.
        let err = strata_registry::login(&r.host, "alice", "nope", &opts)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("alice"), "{err}");
        assert!(!cfg_dir.join("config.json").exists());

        let r#where = strata_registry::login(&r.host, "alice", "alice-pw", &opts)
            .await
            .unwrap();
        assert!(r#where.ends_with("config.json"), "{where}");
        let meta = std::fs::metadata(cfg_dir.join("config.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let v = read_config(&cfg_dir);
        let auth = v["auths"][&r.host]["auth"].as_str().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(auth).unwrap(),
            b"alice:alice-pw"
        );
        // A client reading that config gets in.
        let c = strata_registry::Client::new(&r.host, opts.clone()).unwrap();
        push_and_pull(&c, "alice/app", 4).await;

        // Other keys of config.json survive a second login.
        let mut v = read_config(&cfg_dir);
        v["psFormat"] = "table {{.ID}}".into();
        std::fs::write(cfg_dir.join("config.json"), v.to_string()).unwrap();
        strata_registry::login(&format!("http://{}/v2/", r.host), "bob", "bob-pw", &opts)
            .await
            .unwrap();
        let v = read_config(&cfg_dir);
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["auths"].as_object().unwrap().len(), 1, "{v}");

        assert!(strata_registry::logout(&r.host, &opts).unwrap());
        assert!(!strata_registry::logout(&r.host, &opts).unwrap());
        assert!(read_config(&cfg_dir)["auths"].as_object().unwrap().is_empty());
        let c = strata_registry::Client::new(&r.host, opts.clone()).unwrap();
        assert!(c.list_tags("alice/app", None).await.unwrap_err().is_unauthorized());
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_config_dir() {
    let r = token_registry().await;
    let tmp = tempfile::TempDir::new().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("bob:bob-pw");
    // Keyed the way older clients wrote it.
    std::fs::write(
        tmp.path().join("config.json"),
        format!(r#"{{"auths": {{"http://{}/v2/": {{"auth": "{b64}"}}}}}}"#, r.host),
    )
    .unwrap();
    let opts = ClientOptions {
        docker_config_dir: Some(tmp.path().to_path_buf()),
        ..options(Credentials::DockerConfig)
    };
    let c = strata_registry::Client::new(&r.host, opts).unwrap();
    push_and_pull(&c, "bob/app", 5).await;
    // A broken config.json is an error that names it.
    std::fs::write(tmp.path().join("config.json"), "{").unwrap();
    let opts = ClientOptions {
        docker_config_dir: Some(tmp.path().to_path_buf()),
        ..options(Credentials::DockerConfig)
    };
    let c = strata_registry::Client::new(&r.host, opts).unwrap();
    let err = c.list_tags("bob/app", None).await.unwrap_err();
    assert!(err.to_string().contains("config.json is not valid JSON"), "{err}");
    r.stop().await;
}
