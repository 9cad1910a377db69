//! Load generator for bench/registry.sh (built as the `registry-load` example
//! of strata-registry-server). Speaks the distribution API the way push
//! clients do (HEAD blob, POST, PATCH, PUT ?digest, PUT manifest), to any
//! registry on this machine.
//!
//!   registry-load setup URL BLOB_MIB    push bench/small:latest and a BLOB_MIB blob
//!                                       to bench/big; print the blob's digest
//!   registry-load push URL WORKERS IMAGES_PER_WORKER LAYER_BYTES
//!                                       WORKERS concurrent pushers, each pushing
//!                                       IMAGES_PER_WORKER unique small images;
//!                                       print "images seconds images/s"

use std::time::Instant;

use bytes::Bytes;
use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use strata_oci::Digest;

type Result<T> = std::result::Result<T, String>;

fn location(base: &str, r: &reqwest::Response) -> Result<String> {
    let l = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Location header")?;
    Ok(if l.starts_with('/') {
        format!("{base}{l}")
    } else {
        l.to_string()
    })
}

async fn expect(r: reqwest::Response, want: StatusCode, what: &str) -> Result<reqwest::Response> {
    if r.status() == want {
        Ok(r)
    } else {
        let s = r.status();
        Err(format!("{what}: {s}: {}", r.text().await.unwrap_or_default()))
    }
}

/// Pushes one blob as clients do: HEAD, then POST + PATCH + PUT ?digest.
async fn push_blob(c: &Client, base: &str, repo: &str, data: Bytes) -> Result<Digest> {
    let d = Digest::sha256_of(&data);
    let r = c
        .head(format!("{base}/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() == StatusCode::OK {
        return Ok(d);
    }
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let r = expect(r, StatusCode::ACCEPTED, "POST upload").await?;
    let loc = location(base, &r)?;
    let len = data.len();
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .body(data)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let r = expect(r, StatusCode::ACCEPTED, "PATCH upload").await?;
    let loc = location(base, &r)?;
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={d}"))
        .header("content-length", "0")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    expect(r, StatusCode::CREATED, "PUT upload").await?;
    Ok(d)
}

/// Pushes a one-layer image (config + layer + Docker schema 2 manifest).
async fn push_image(c: &Client, base: &str, repo: &str, tag: &str, seed: &str, layer_bytes: usize) -> Result<()> {
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Labels": { "seed": seed } },
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))
        .expect("json"),
    );
    let mut layer = Vec::with_capacity(layer_bytes);
    while layer.len() < layer_bytes {
        layer.extend_from_slice(seed.as_bytes());
        layer.push(b'\n');
    }
    layer.truncate(layer_bytes);
    let layer = Bytes::from(layer);
    let (cl, ll) = (config.len(), layer.len());
    let cd = push_blob(c, base, repo, config).await?;
    let ld = push_blob(c, base, repo, layer).await?;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd.to_string(), "size": cl },
        "layers": [{ "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld.to_string(), "size": ll }],
    }))
    .expect("json");
    let r = c
        .request(Method::PUT, format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.docker.distribution.manifest.v2+json")
        .body(m)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    expect(r, StatusCode::CREATED, "PUT manifest").await?;
    Ok(())
}

/// Deterministic incompressible-looking bytes (xorshift).
fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

async fn main_async(args: Vec<String>) -> Result<()> {
    let c = Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["setup", base, mib] => {
            let mib: usize = mib.parse().map_err(|_| "BLOB_MIB is a number")?;
            push_image(&c, base, "bench/small", "latest", "bench small image", 4096).await?;
            let d = push_blob(&c, base, "bench/big", Bytes::from(pseudo_random(mib << 20))).await?;
            println!("{d}");
            Ok(())
        }
        ["push", base, workers, per, layer_bytes] => {
            let workers: usize = workers.parse().map_err(|_| "WORKERS is a number")?;
            let per: usize = per.parse().map_err(|_| "IMAGES_PER_WORKER is a number")?;
            let layer_bytes: usize = layer_bytes.parse().map_err(|_| "LAYER_BYTES is a number")?;
            let run = strata_registry_server::util::random_id();
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..workers {
                let (c, base, run) = (c.clone(), base.to_string(), run.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..per {
                        let seed = format!("{run}-{w}-{i}");
                        push_image(
                            &c,
                            &base,
                            &format!("bench/push{w}"),
                            &format!("t{i}"),
                            &seed,
                            layer_bytes,
                        )
                        .await?;
                    }
                    Ok::<_, String>(())
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())??;
            }
            let secs = start.elapsed().as_secs_f64();
            let n = workers * per;
            println!("{n} {secs:.3} {:.1}", n as f64 / secs);
            Ok(())
        }
        _ => Err("usage: registry-load setup URL BLOB_MIB | push URL WORKERS IMAGES_PER_WORKER LAYER_BYTES".into()),
    }
}

fn main() {
    strata_registry_server::util::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(main_async(args)) {
        eprintln!("registry-load: {e}");
        std::process::exit(1);
    }
}
