//! Credentials from `$DOCKER_CONFIG` and a `docker-credential-test` helper
//! found on `$PATH`. The only test of its binary: it sets the process's
//! environment before any thread starts.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::*;
use strata_registry::{Client, ClientOptions, Credentials};

const HELPER: &str = r#"#!/bin/sh
# A credential helper keeping one file per server in $HELPER_DATA.
dir="$(dirname "$0")/helper-data"
mkdir -p "$dir"
echo "$1" >> "$dir/calls"
case "$1" in
  get)
    read -r server || true
    f="$dir/$(printf %s "$server" | tr '/:' '__')"
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    cat > "$dir/incoming"
    server=$(sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p' "$dir/incoming")
    mv "$dir/incoming" "$dir/$(printf %s "$server" | tr '/:' '__')" ;;
  erase)
    read -r server || true
    rm -f "$dir/$(printf %s "$server" | tr '/:' '__')" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
"#;

fn key_file(bin: &std::path::Path, server: &str) -> PathBuf {
    bin.join("helper-data").join(server.replace(['/', ':'], "_"))
}

#[test]
fn credentials_from_docker_config_env_and_a_helper_on_path() {
    let tmp = tempfile::TempDir::new().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-test");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = tmp.path().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), r#"{"credsStore": "test"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: no other thread exists yet in this test binary's only test.
    unsafe {
        std::env::set_var("DOCKER_CONFIG", &cfg);
        std::env::set_var("PATH", path);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = token_registry().await;
        std::fs::create_dir_all(bin.join("helper-data")).unwrap();
        std::fs::write(
            key_file(&bin, &r.host),
            format!(r#"{{"ServerURL":"{}","Username":"alice","Secret":"alice-pw"}}"#, r.host),
        )
        .unwrap();
        // Default options: $DOCKER_CONFIG/config.json names the helper.
        let opts = ClientOptions {
            certs_dir: PathBuf::from("/nonexistent"),
            ..Default::default()
        };
        assert!(matches!(opts.credentials, Credentials::DockerConfig));
        let c = Client::new(&r.host, opts.clone()).unwrap();
        let d = c.push_blob_bytes("alice/app", b"via helper".to_vec()).await.unwrap();
        assert!(c.blob_exists("alice/app", &d).await.unwrap());
        let calls = std::fs::read_to_string(bin.join("helper-data/calls")).unwrap();
        assert_eq!(
            calls.lines().filter(|l| *l == "get").count(),
            1,
            "asked once per client: {calls}"
        );

        // A registry the helper knows nothing of: anonymous, and refused.
        let r2 = basic_registry().await;
        let c2 = Client::new(&r2.host, opts.clone()).unwrap();
        let err = c2.list_tags("alice/app", None).await.unwrap_err();
        assert!(err.to_string().contains("authentication required"), "{err}");

        // login stores through the helper, not in config.json.
        let stored = strata_registry::login(&r2.host, "bob", "bob-pw", &opts).await.unwrap();
        assert!(stored.contains("docker-credential-test"), "{stored}");
        let saved = std::fs::read_to_string(key_file(&bin, &r2.host)).unwrap();
        assert!(
            saved.contains(r#""Username":"bob""#) && saved.contains(r#""Secret":"bob-pw""#),
            "{saved}"
        );
        assert_eq!(
            std::fs::read_to_string(cfg.join("config.json")).unwrap(),
            r#"{"credsStore": "test"}"#
        );
        let c2 = Client::new(&r2.host, opts.clone()).unwrap();
        c2.push_blob_bytes("bob/app", b"bob's".to_vec()).await.unwrap();
        assert!(strata_registry::logout(&r2.host, &opts).unwrap());
        assert!(!key_file(&bin, &r2.host).exists());

        // credHelpers for one registry wins over auths; a missing helper is named.
        std::fs::write(
            cfg.join("config.json"),
            format!(r#"{{"credHelpers": {{"{}": "absent"}}}}"#, r.host),
        )
        .unwrap();
        let c = Client::new(&r.host, opts.clone()).unwrap();
        let err = c.list_tags("alice/app", None).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-absent is configured but not found in PATH"),
            "{err}"
        );
        r.stop().await;
        r2.stop().await;
    });
}
