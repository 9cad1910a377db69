//! Operations: read-only mode, health, metrics, garbage collection, the
//! pull-through cache, and several processes sharing one S3 bucket.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use strata_oci::{Digest, media};
use strata_registry_server::config::{AccessRule, HtpasswdConfig, ProxyConfig, TokenConfig};
use strata_registry_server::gc::{self, GcOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_serves_but_refuses_writes() {
    let dir = tempfile::TempDir::new().unwrap();
    let e = start_with(fs_config(&dir), None).await;
    let (d, _) = e.push_image("ro", "latest", "ro").await;
    e.stop().await;
    let mut c = fs_config(&dir);
    c.storage.maintenance.readonly.enabled = true;
    let e = start_with(c, Some(dir)).await;
    let r = e.req(Method::GET, "/v2/ro/manifests/latest").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    for (m, p) in [
        (Method::POST, "/v2/ro/blobs/uploads/".to_string()),
        (Method::PUT, "/v2/ro/manifests/x".to_string()),
        (Method::DELETE, format!("/v2/ro/manifests/{d}")),
    ] {
        let r = e.req(m.clone(), &p).body("{}").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        assert_eq!(error_code(r).await, "UNSUPPORTED");
    }
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let e = fs_env().await;
    let r = e.req(Method::GET, "/health").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json_value().await["status"], "ok");
    let d = e.push_blob("m", &[1u8; 5000]).await;
    e.req(Method::GET, &format!("/v2/m/blobs/{d}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    e.req(Method::HEAD, &format!("/v2/m/blobs/{}", Digest::sha256_of(b"no")))
        .send()
        .await
        .unwrap();
    let text = e
        .req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "registry_http_requests_total{route=\"uploads\",method=\"POST\",status=\"201\"} 1",
        "registry_http_requests_total{route=\"blobs\",method=\"GET\",status=\"200\"} 1",
        "registry_http_requests_total{route=\"blobs\",method=\"HEAD\",status=\"404\"} 1",
        "registry_http_request_duration_seconds_count{route=\"blobs\"} 2",
        "registry_http_received_bytes_total 5000",
        "registry_http_sent_bytes_total 5",
        "registry_uploads_completed_total 1",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("registry_http_request_duration_seconds_bucket{route=\"blobs\",le=\"+Inf\"} 2"));
    e.stop().await;
}

fn blob_files(root: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.join("blobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.file_name().into_string().unwrap());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_marks_sweeps_and_spares_uploads_in_flight() {
    let e = fs_env().await;
    let (keep, keep_m) = e.push_image("gc/app", "latest", "keep").await;
    let (old, _) = e.push_image("gc/app", "old", "old").await;
    e.req(Method::DELETE, "/v2/gc/app/manifests/old").send().await.unwrap();
    let loose = e.push_blob("gc/app", b"unreferenced").await;
    // An upload in flight.
    let r = e.req(Method::POST, "/v2/gc/app/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    e.req(Method::PATCH, &loc).body(vec![9u8; 1000]).send().await.unwrap();

    let reg = strata_registry_server::registry(&e.config).unwrap();
    // Default grace: everything is too fresh to sweep.
    let r = gc::run(&reg, &GcOptions::default()).await.unwrap();
    assert_eq!((r.blobs_deleted, r.uploads_removed, r.manifests_deleted), (0, 0, 0));
    // Dry run with no grace: reports, deletes nothing.
    let opts = GcOptions {
        dry_run: true,
        delete_untagged: true,
        grace: Duration::ZERO,
        ..Default::default()
    };
    let before = blob_files(e.root());
    let r = gc::run(&reg, &opts).await.unwrap();
    assert_eq!(r.manifests_deleted, 1);
    assert_eq!(
        r.blobs_deleted, 4,
        "loose blob, old manifest, its config and layer: {r:?}"
    );
    assert_eq!(blob_files(e.root()), before);
    // For real.
    let r = gc::run(&reg, &GcOptions { dry_run: false, ..opts }).await.unwrap();
    assert_eq!(r.blobs_deleted, 4);
    assert_eq!(r.uploads_removed, 0, "the upload in flight is spared");
    assert!(r.links_removed >= 3);
    for gone in [&loose, &old] {
        assert!(!blob_files(e.root()).contains(&gone.hex().to_string()));
    }
    // What is tagged still pulls, blob by blob.
    let r = e.req(Method::GET, "/v2/gc/app/manifests/latest").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), keep_m.as_slice());
    let m: serde_json::Value = serde_json::from_slice(&keep_m).unwrap();
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let r = e
            .req(Method::GET, &format!("/v2/gc/app/blobs/{}", d.as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert!(blob_files(e.root()).contains(&keep.hex().to_string()));
    // The upload in flight still completes.
    let data = vec![9u8; 1000];
    let d = Digest::sha256_of(&data);
    let r = e.req(Method::PUT, &format!("{loc}?digest={d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A stale one is removed.
    let r = e.req(Method::POST, "/v2/gc/app/blobs/uploads/").send().await.unwrap();
    let stale = e.loc(&r);
    let r = gc::run(
        &reg,
        &GcOptions {
            upload_max_age: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.uploads_removed, 1);
    let r = e.req(Method::GET, &stale).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_index_children_and_referrers_of_tagged_manifests() {
    let e = fs_env().await;
    let (child, cm) = e.push_image("gc2", "child", "c").await;
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": child, "size": cm.len()}]});
    let ib = serde_json::to_vec(&index).unwrap();
    assert_eq!(
        e.put_manifest("gc2", "multi", media::OCI_INDEX, &ib).await.status(),
        StatusCode::CREATED
    );
    let cfg = br#"{}"#;
    let cd = e.push_blob("gc2", cfg).await;
    let sig = manifest(
        &cd,
        2,
        &[],
        Some(serde_json::json!({"mediaType": media::OCI_INDEX, "digest": Digest::sha256_of(&ib), "size": ib.len()})),
    );
    assert_eq!(
        e.put_manifest("gc2", &Digest::sha256_of(&sig).to_string(), media::OCI_MANIFEST, &sig)
            .await
            .status(),
        StatusCode::CREATED
    );
    e.req(Method::DELETE, "/v2/gc2/manifests/child").send().await.unwrap();
    let reg = strata_registry_server::registry(&e.config).unwrap();
    let opts = GcOptions {
        delete_untagged: true,
        grace: Duration::ZERO,
        ..Default::default()
    };
    let r = gc::run(&reg, &opts).await.unwrap();
    assert_eq!((r.manifests_deleted, r.blobs_deleted), (0, 0), "{r:?}");
    let r = e
        .req(Method::GET, &format!("/v2/gc2/manifests/{child}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_cache_with_an_authenticated_upstream() {
    // Upstream: token auth; the proxy signs in as a user.
    let updir = tempfile::TempDir::new().unwrap();
    let ht = updir.path().join("htpasswd");
    std::fs::write(&ht, format!("puller:{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
    let mut uc = fs_config(&updir);
    uc.auth.htpasswd = Some(HtpasswdConfig {
        realm: "up".into(),
        path: ht,
    });
    uc.auth.token = Some(TokenConfig {
        secret: Some("upstream-secret-0123456789".into()),
        ..Default::default()
    });
    uc.access = vec![AccessRule {
        users: vec!["puller".into()],
        repositories: vec!["**".into()],
        actions: vec!["*".into()],
    }];
    let seed_dir = tempfile::TempDir::new().unwrap();
    // Fill the upstream's storage through an unauthenticated server on the same root.
    let seed = start_with(fs_config(&updir), None).await;
    let (d, m) = seed.push_image("library/app", "1.0", "up").await;
    seed.stop().await;
    drop(seed_dir);
    let up = start_with(uc, Some(updir)).await;
    let e = fs_env_with(|c| {
        c.proxy = Some(ProxyConfig {
            remoteurl: up.url.clone(),
            username: Some("puller".into()),
            password: Some("pw".into()),
        });
    })
    .await;
    let r = e
        .req(Method::GET, "/v2/library/app/manifests/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
    let mv: serde_json::Value = serde_json::from_slice(&m).unwrap();
    let layer = mv["layers"][0]["digest"].as_str().unwrap().to_string();
    let r = e
        .req(Method::GET, &format!("/v2/library/app/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let layer_bytes = r.bytes().await.unwrap();
    assert_eq!(Digest::sha256_of(&layer_bytes).to_string(), layer);
    // Pushes are refused.
    let r = e
        .req(Method::POST, "/v2/library/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Upstream gone: served from the cache.
    up.stop().await;
    let r = e
        .req(Method::GET, "/v2/library/app/manifests/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = e
        .req(Method::GET, &format!("/v2/library/app/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), layer_bytes);
    let r = e
        .req(Method::GET, "/v2/library/app/manifests/2.0")
        .send()
        .await
        .unwrap();
    // Not cached and the upstream cannot be asked: unavailable, not unknown.
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_started_on_one_process_finished_on_another() {
    let Some(weed) = Weed::start().await else { return };
    let a = weed.env("shared").await;
    let b = weed.env("shared").await;
    // Chunks alternate between the two servers: the session lives in the bucket.
    let data: Vec<u8> = (0..(12 * 1024 * 1024u32)).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256_of(&data);
    let r = a.req(Method::POST, "/v2/lb/app/blobs/uploads/").send().await.unwrap();
    let path = r.headers()["location"].to_str().unwrap().to_string();
    let mut offset = 0usize;
    for (i, chunk) in data.chunks(3 * 1024 * 1024).enumerate() {
        let e = if i % 2 == 0 { &b } else { &a };
        let r = e
            .req(Method::PATCH, &path)
            .header("content-range", format!("{}-{}", offset, offset + chunk.len() - 1))
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        offset += chunk.len();
    }
    let r = a.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.headers()["range"], format!("0-{}", data.len() - 1).as_str());
    let r = b.req(Method::PUT, &format!("{path}?digest={d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    for e in [&a, &b] {
        let r = e
            .req(Method::GET, &format!("/v2/lb/app/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let got = r.bytes().await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got.as_ref() == data.as_slice());
    }
    // A large monolithic push goes through a multipart upload.
    let big: Vec<u8> = (0..(11 * 1024 * 1024u32)).map(|i| (i % 241) as u8).collect();
    let bd = a.push_blob("lb/app", &big).await;
    let r = b
        .req(Method::HEAD, &format!("/v2/lb/app/blobs/{bd}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], big.len().to_string().as_str());
    // gc on the bucket: a session abandoned on one process is removed.
    let r = a.req(Method::POST, "/v2/lb/app/blobs/uploads/").send().await.unwrap();
    let stale = r.headers()["location"].to_str().unwrap().to_string();
    a.req(Method::PATCH, &stale).body(vec![1u8; 100]).send().await.unwrap();
    let reg = strata_registry_server::registry(&a.config).unwrap();
    let r = gc::run(
        &reg,
        &GcOptions {
            upload_max_age: Duration::ZERO,
            grace: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.uploads_removed, 1);
    assert_eq!(r.blobs_deleted, 2, "no manifest references the two blobs: {r:?}");
    let r = b.req(Method::GET, &stale).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    a.stop().await;
    b.stop().await;
}
