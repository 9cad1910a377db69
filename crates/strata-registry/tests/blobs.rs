//! Blobs against strata-registry-server: ping, monolithic and chunked
//! uploads read back, wrong digests, resumed downloads, concurrency.

mod common;

use common::*;
use strata_oci::{Algorithm, Descriptor, Digest, media};
use strata_registry::{ClientOptions, Credentials, PartialBlob, RegistryError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_base_url() {
    let r = open_registry().await;
    let c = r.anonymous();
    c.ping().await.unwrap();
    assert_eq!(c.base_url().await.unwrap().as_str(), format!("http://{}/", r.host));
    c.check_credentials().await.unwrap();
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_monolithic_then_pull_back() {
    let r = open_registry().await;
    let c = r.anonymous();
    let blob = data(300_000, 1);
    let d = Digest::sha256_of(&blob);
    assert_eq!(c.head_blob("lib/app", &d).await.unwrap(), None);
    c.push_blob("lib/app", &d, blob.len() as u64, &blob[..]).await.unwrap();
    assert_eq!(c.head_blob("lib/app", &d).await.unwrap(), Some(blob.len() as u64));
    assert!(c.blob_exists("lib/app", &d).await.unwrap());

    let mut out = Vec::new();
    let n = c
        .get_blob("lib/app", &d, Some(blob.len() as u64), &mut out)
        .await
        .unwrap();
    assert_eq!(n, blob.len() as u64);
    assert_eq!(out, blob);

    // Without a known size, and into an async writer.
    let mut out2 = Vec::new();
    c.get_blob_async("lib/app", &d, None, &mut out2).await.unwrap();
    assert_eq!(out2, blob);

    // Chunk by chunk: Ok(None) only after verification.
    let mut rd = c.open_blob("lib/app", &d, None).await.unwrap();
    assert_eq!(rd.size(), Some(blob.len() as u64));
    let mut out3 = Vec::new();
    while let Some(ch) = rd.chunk().await.unwrap() {
        out3.extend_from_slice(&ch);
    }
    assert_eq!(out3, blob);

    // Bytes, and the empty blob.
    let d2 = c.push_blob_bytes("lib/app", b"small config".to_vec()).await.unwrap();
    assert_eq!(d2, Digest::sha256_of(b"small config"));
    let empty = Digest::sha256_of(b"");
    c.push_blob("lib/app", &empty, 0, &b""[..]).await.unwrap();
    let mut e = Vec::new();
    assert_eq!(c.get_blob("lib/app", &empty, Some(0), &mut e).await.unwrap(), 0);

    // Asking with the wrong size is an error naming the blob.
    let err = c
        .get_blob("lib/app", &d, Some(blob.len() as u64 + 1), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
    // Unknown blob: the spec's code, the registry and the repository.
    let unknown = Digest::sha256_of(b"nothing");
    let err = c
        .get_blob("lib/app", &unknown, None, &mut Vec::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(err.is_not_found(), "{msg}");
    assert!(
        msg.contains("BLOB_UNKNOWN") && msg.contains("lib/app") && msg.contains(&r.host),
        "{msg}"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_chunked_then_pull_back() {
    let r = open_registry().await;
    let opts = ClientOptions {
        monolithic_max: 64 * 1024,
        chunk_size: Some(100_000),
        ..options(Credentials::Anonymous)
    };
    let c = strata_registry::Client::new(&r.host, opts).unwrap();
    // Four chunks, the last one short.
    let blob = data(350_123, 2);
    let d = Digest::sha256_of(&blob);
    c.push_blob("chunked/app", &d, blob.len() as u64, &blob[..])
        .await
        .unwrap();
    let mut out = Vec::new();
    c.get_blob("chunked/app", &d, Some(blob.len() as u64), &mut out)
        .await
        .unwrap();
    assert_eq!(out, blob);

    // One PATCH for everything (Docker's way) when no chunk size is set.
    let opts = ClientOptions {
        monolithic_max: 1024,
        chunk_size: None,
        ..options(Credentials::Anonymous)
    };
    let c = strata_registry::Client::new(&r.host, opts).unwrap();
    let blob = data(200_000, 3);
    let d = Digest::sha256_of(&blob);
    c.push_blob("chunked/app", &d, blob.len() as u64, &blob[..])
        .await
        .unwrap();
    let mut out = Vec::new();
    c.get_blob("chunked/app", &d, None, &mut out).await.unwrap();
    assert_eq!(out, blob);

    // Default options: a blob over 32 MiB goes in one streamed PATCH.
    let c = r.anonymous();
    let big = data(40 * 1024 * 1024 + 17, 40);
    let d = Digest::sha256_of(&big);
    c.push_blob("chunked/big", &d, big.len() as u64, &big[..])
        .await
        .unwrap();
    let mut out = Vec::with_capacity(big.len());
    c.get_blob("chunked/big", &d, Some(big.len() as u64), &mut out)
        .await
        .unwrap();
    assert!(out == big);
    drop((big, out));

    // From a file, as a layer would be pushed.
    let dir = tempfile::TempDir::new().unwrap();
    let p = dir.path().join("layer");
    let blob = data(150_000, 4);
    std::fs::write(&p, &blob).unwrap();
    let d = Digest::sha256_of(&blob);
    let f = tokio::fs::File::open(&p).await.unwrap();
    c.push_blob("chunked/file", &d, blob.len() as u64, f).await.unwrap();
    assert_eq!(c.head_blob("chunked/file", &d).await.unwrap(), Some(blob.len() as u64));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digest_upload_is_rejected() {
    let r = open_registry().await;
    for (mono, chunk) in [(u64::MAX, None), (10, Some(4000))] {
        let opts = ClientOptions {
            monolithic_max: mono,
            chunk_size: chunk,
            ..options(Credentials::Anonymous)
        };
        let c = strata_registry::Client::new(&r.host, opts).unwrap();
        let blob = data(10_000, 5);
        let claimed = Digest::sha256_of(b"something else");
        let err = c
            .push_blob("wrong/app", &claimed, blob.len() as u64, &blob[..])
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&claimed.to_string()) && msg.contains(&Digest::sha256_of(&blob).to_string()),
            "{msg}"
        );
        assert_eq!(c.head_blob("wrong/app", &claimed).await.unwrap(), None);
        assert_eq!(c.head_blob("wrong/app", &Digest::sha256_of(&blob)).await.unwrap(), None);

        // Content shorter than announced never completes an upload.
        let err = c
            .push_blob(
                "wrong/app",
                &Digest::sha256_of(&blob),
                blob.len() as u64 + 10,
                &blob[..],
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ended 10 bytes before"), "{err}");
        assert_eq!(c.head_blob("wrong/app", &Digest::sha256_of(&blob)).await.unwrap(), None);
    }
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_a_download_from_an_offset() {
    let r = open_registry().await;
    let c = r.anonymous();
    let blob = data(500_000, 6);
    let d = Digest::sha256_of(&blob);
    c.push_blob("resume/app", &d, blob.len() as u64, &blob[..])
        .await
        .unwrap();

    // The first 123,457 bytes are already on disk.
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("partial");
    std::fs::write(&path, &blob[..123_457]).unwrap();
    let mut partial = PartialBlob::from_reader(Algorithm::Sha256, std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(partial.written(), 123_457);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let n = c
        .get_blob_resumable("resume/app", &d, Some(blob.len() as u64), &mut partial, &mut f)
        .await
        .unwrap();
    assert_eq!(n, blob.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), blob);

    // Everything there already: verified without a transfer.
    let mut partial = PartialBlob::from_reader(Algorithm::Sha256, &blob[..]).unwrap();
    let mut sink = Vec::new();
    c.get_blob_resumable("resume/app", &d, Some(blob.len() as u64), &mut partial, &mut sink)
        .await
        .unwrap();
    assert!(sink.is_empty());

    // A corrupt prefix is caught by the digest at the end.
    let mut bad = blob[..1000].to_vec();
    bad[10] ^= 1;
    let mut partial = PartialBlob::from_reader(Algorithm::Sha256, &bad[..]).unwrap();
    let err = c
        .get_blob_resumable("resume/app", &d, Some(blob.len() as u64), &mut partial, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }) && err.to_string().contains("received content has digest"),
        "{err}"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_many_blobs_at_once() {
    let r = open_registry().await;
    let opts = ClientOptions {
        max_concurrent_transfers: 3,
        ..options(Credentials::Anonymous)
    };
    let c = strata_registry::Client::new(&r.host, opts).unwrap();
    let mut items = Vec::new();
    let mut blobs = Vec::new();
    for i in 0..10 {
        let b = data(20_000 + i * 1000, 100 + i as u64);
        let d = c.push_blob_bytes("many/app", b.clone()).await.unwrap();
        items.push((Descriptor::new(media::OCI_LAYER_GZIP, d, b.len() as u64), Vec::new()));
        blobs.push(b);
    }
    // One of them is asked for with a wrong size.
    items[4].0.size += 1;
    let results = c.fetch_blobs("many/app", items).await;
    for (i, res) in results.into_iter().enumerate() {
        if i == 4 {
            assert!(res.is_err());
        } else {
            assert_eq!(res.unwrap(), blobs[i]);
        }
    }
    r.stop().await;
}
