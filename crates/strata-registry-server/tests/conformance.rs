//! The distribution-spec conformance checklist, walked against the server on
//! the filesystem driver (one test per check) and on S3 (SeaweedFS; all
//! checks in one test sharing one SeaweedFS, each under its own prefix).

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use strata_oci::{Digest, media};

async fn ping(e: &Env) {
    let r = e.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");
}

async fn push_monolithic_put(e: &Env) {
    let data = b"monolithic blob".to_vec();
    let d = Digest::sha256_of(&data);
    let r = e.req(Method::POST, "/v2/mono/blobs/uploads/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("docker-upload-uuid"));
    let loc = e.loc(&r);
    let r = e
        .req(Method::PUT, &format!("{loc}?digest={d}"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    assert_eq!(r.headers()["location"], format!("/v2/mono/blobs/{d}").as_str());
    let r = e
        .req(Method::HEAD, &format!("/v2/mono/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], data.len().to_string().as_str());
    assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    let r = e.req(Method::GET, &format!("/v2/mono/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    // Not visible in another repository.
    let r = e
        .req(Method::HEAD, &format!("/v2/other/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn push_post_only(e: &Env) {
    let data = vec![7u8; 100_000];
    let d = e.push_blob("postonly", &data).await;
    let r = e
        .req(Method::GET, &format!("/v2/postonly/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), data.len());
    // A wrong digest is refused and nothing is stored.
    let wrong = Digest::sha256_of(b"something else");
    let r = e
        .req(Method::POST, &format!("/v2/postonly/blobs/uploads/?digest={wrong}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = e
        .req(Method::HEAD, &format!("/v2/postonly/blobs/{wrong}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn push_chunked(e: &Env) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);
    let r = e.req(Method::POST, "/v2/chunked/blobs/uploads/").send().await.unwrap();
    let mut loc = e.loc(&r);
    let mut offset = 0;
    for chunk in data.chunks(100_000) {
        let r = e
            .req(Method::PATCH, &loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{}-{}", offset, offset + chunk.len() - 1))
            .header("content-length", chunk.len().to_string())
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        offset += chunk.len();
        assert_eq!(r.headers()["range"], format!("0-{}", offset - 1).as_str());
        loc = e.loc(&r);
    }
    // Status.
    let r = e.req(Method::GET, &loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], format!("0-{}", data.len() - 1).as_str());
    // Out-of-order chunk: 416 with the current range.
    let r = e
        .req(Method::PATCH, &loc)
        .header("content-range", "10-19")
        .header("content-length", "10")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["range"], format!("0-{}", data.len() - 1).as_str());
    let r = e.req(Method::PUT, &format!("{loc}?digest={d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let r = e
        .req(Method::GET, &format!("/v2/chunked/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    // The session is gone.
    let r = e.req(Method::GET, &loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

async fn push_streamed(e: &Env) {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = Digest::sha256_of(&data);
    let r = e.req(Method::POST, "/v2/streamed/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    let stream = futures_util::stream::iter(
        data.chunks(10_000)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let r = e
        .req(Method::PATCH, &loc)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = e.loc(&r);
    // Last chunk with the PUT.
    let r = e
        .req(Method::PUT, &format!("{loc}?digest={d}"))
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = e
        .req(Method::HEAD, &format!("/v2/streamed/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], data.len().to_string().as_str());
    // PATCH then PUT with the final chunk in its body; a wrong digest kills the session.
    let r = e.req(Method::POST, "/v2/streamed/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    let r = e
        .req(Method::PATCH, &loc)
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    let loc = e.loc(&r);
    let bad = Digest::sha256_of(b"nope");
    let r = e
        .req(Method::PUT, &format!("{loc}?digest={bad}"))
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = e
        .req(Method::HEAD, &format!("/v2/streamed/blobs/{bad}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn upload_cancel(e: &Env) {
    let r = e.req(Method::POST, "/v2/cancel/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    e.req(Method::PATCH, &loc).body(vec![1u8; 10]).send().await.unwrap();
    let r = e.req(Method::DELETE, &loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = e.req(Method::GET, &loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    // An upload id of another repository is unknown here.
    let r = e.req(Method::POST, "/v2/cancel/blobs/uploads/").send().await.unwrap();
    let id = r.headers()["docker-upload-uuid"].to_str().unwrap().to_string();
    let r = e
        .req(Method::GET, &format!("/v2/elsewhere/blobs/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = e
        .req(Method::GET, "/v2/cancel/blobs/uploads/not-an-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn range_reads(e: &Env) {
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let d = e.push_blob("ranges", &data).await;
    let path = format!("/v2/ranges/blobs/{d}");
    let r = e
        .req(Method::GET, &path)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[10..20]);
    let r = e
        .req(Method::GET, &path)
        .header("range", "bytes=990-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[990..]);
    let r = e
        .req(Method::GET, &path)
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[995..]);
    let r = e
        .req(Method::GET, &path)
        .header("range", "bytes=1000-2000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */1000");
}

async fn mounts(e: &Env) {
    let d = e.push_blob("mount/src", b"mount me").await;
    let r = e
        .req(
            Method::POST,
            &format!("/v2/mount/dst/blobs/uploads/?mount={d}&from=mount/src"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], format!("/v2/mount/dst/blobs/{d}").as_str());
    let r = e
        .req(Method::HEAD, &format!("/v2/mount/dst/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // From a repository without the blob: an upload session instead.
    let r = e
        .req(
            Method::POST,
            &format!("/v2/mount/dst2/blobs/uploads/?mount={d}&from=mount/none"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers()["location"].to_str().unwrap().contains("/blobs/uploads/"));
    // Anonymous mount (no from): by digest alone when allowed (no auth here).
    let r = e
        .req(Method::POST, &format!("/v2/mount/dst3/blobs/uploads/?mount={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let unknown = Digest::sha256_of(b"never pushed");
    let r = e
        .req(Method::POST, &format!("/v2/mount/dst3/blobs/uploads/?mount={unknown}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

async fn manifests(e: &Env) {
    let (d, m) = e.push_image("man/app", "v1", "a").await;
    for reference in ["v1".to_string(), d.to_string()] {
        let r = e
            .req(Method::GET, &format!("/v2/man/app/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], media::OCI_MANIFEST);
        assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
        assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
        let r = e
            .req(Method::HEAD, &format!("/v2/man/app/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-length"], m.len().to_string().as_str());
    }
    // By digest.
    let r = e.put_manifest("man/app", &d.to_string(), media::OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Digest that does not match.
    let wrong = Digest::sha256_of(b"x");
    let r = e
        .put_manifest("man/app", &wrong.to_string(), media::OCI_MANIFEST, &m)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    // Content-Type disagreeing with mediaType.
    let r = e.put_manifest("man/app", "v2", media::DOCKER_MANIFEST, &m).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Unknown blobs.
    let missing = Digest::sha256_of(b"missing");
    let bad = manifest(&missing, 7, &[], None);
    let r = e.put_manifest("man/app", "v3", media::OCI_MANIFEST, &bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    // Ambiguous, not JSON, too large.
    let cd = e.push_blob("man/app", b"{}").await;
    let amb = json!({"schemaVersion":2,"config":{"mediaType":media::OCI_CONFIG,"digest":cd,"size":2},"layers":[],"manifests":[]});
    let r = e
        .put_manifest("man/app", "amb", media::OCI_MANIFEST, amb.to_string().as_bytes())
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let r = e
        .put_manifest("man/app", "junk", media::OCI_MANIFEST, b"not json")
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = e.put_manifest("man/app", "big", media::OCI_MANIFEST, &big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Unknown manifests.
    let r = e.req(Method::GET, "/v2/man/app/manifests/nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = e
        .req(Method::GET, &format!("/v2/man/app/manifests/{wrong}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    // A manifest is not visible from another repository.
    let r = e
        .req(Method::GET, &format!("/v2/man/other/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn invalid_names_and_digests(e: &Env) {
    for (path, code) in [
        ("/v2/UPPER/tags/list", "NAME_INVALID"),
        ("/v2/_x/tags/list", "NAME_INVALID"),
        ("/v2/a/blobs/sha256:xyz", "DIGEST_INVALID"),
        ("/v2/a/blobs/sha256:..%2f..%2fetc", "DIGEST_INVALID"),
        ("/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"),
        ("/v2/a/manifests/bad:tag:x", "DIGEST_INVALID"),
    ] {
        let r = e.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(r).await, code, "{path}");
    }
    let r = e
        .req(Method::POST, "/v2/a/blobs/uploads/?digest=sha256:../../x")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = e
        .req(Method::GET, "/v2/a/blobs/uploads/..%2f..%2f_uploads")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = e.req(Method::GET, "/v2/nothing/here").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// A manifest fetched by a name that cannot be a tag is not there (404
/// MANIFEST_UNKNOWN, as the OCI conformance suite expects); pushing one is a
/// bad request.
async fn invalid_tag_is_unknown(e: &Env) {
    let (_, m) = e.push_image("badtag", "good", "badtag").await;
    for repo in ["badtag", "nosuchrepo"] {
        for tag in ["-tag", ".INVALID_MANIFEST_NAME", &"x".repeat(129)] {
            let path = format!("/v2/{repo}/manifests/{tag}");
            let r = e.req(Method::HEAD, &path).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "HEAD {path}");
            let r = e.req(Method::GET, &path).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "GET {path}");
            assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN", "GET {path}");
        }
    }
    let r = e.put_manifest("badtag", "-tag", media::OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "TAG_INVALID");
}

/// A closing PUT whose Content-Range does not continue the upload is 416
/// (the upload stays, and a right one completes it).
async fn closing_put_range(e: &Env) {
    let data: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);
    let r = e.req(Method::POST, "/v2/closing/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    let r = e
        .req(Method::PATCH, &loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-99")
        .header("content-length", "100")
        .body(data[..100].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = e.loc(&r);
    // Past the end, overlapping, and a range that is not the body's length.
    for (range, len) in [("200-399", 200), ("50-249", 200), ("100-199", 200)] {
        let r = e
            .req(Method::PUT, &format!("{loc}?digest={d}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .header("content-length", len.to_string())
            .body(data[100..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "closing PUT with {range}"
        );
        if range != "100-199" {
            assert_eq!(r.headers()["range"], "0-99", "closing PUT with {range}");
        }
    }
    let r = e
        .req(Method::PUT, &format!("{loc}?digest={d}"))
        .header("content-type", "application/octet-stream")
        .header("content-range", "100-299")
        .header("content-length", "200")
        .body(data[100..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let r = e
        .req(Method::GET, &format!("/v2/closing/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
}

/// Deleting a repository's last tag leaves an empty tag list (on S3 the
/// directory marker the store keeps is no tag).
async fn tags_after_last_delete(e: &Env) {
    let tags = |v: Value| v["tags"].clone();
    let (d, m) = e.push_image("lasttag", "only", "lasttag").await;
    let r = e
        .req(Method::DELETE, "/v2/lasttag/manifests/only")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = e.req(Method::GET, "/v2/lasttag/tags/list").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(tags(r.json_value().await), json!([]));
    // Tagged again, then deleted by digest (with its tags).
    let r = e.put_manifest("lasttag", "again", media::OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = e.req(Method::GET, "/v2/lasttag/tags/list").send().await.unwrap();
    assert_eq!(tags(r.json_value().await), json!(["again"]));
    let r = e
        .req(Method::DELETE, &format!("/v2/lasttag/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = e.req(Method::GET, "/v2/lasttag/tags/list").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(tags(r.json_value().await), json!([]));
}

async fn tags_and_pagination(e: &Env) {
    let r = e.req(Method::GET, "/v2/tagged/tags/list").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    let (d, m) = e.push_image("tagged", "e", "t").await;
    for t in ["d", "c", "b", "a"] {
        let r = e.put_manifest("tagged", t, media::OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    }
    let v = e
        .req(Method::GET, "/v2/tagged/tags/list")
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v, json!({"name":"tagged","tags":["a","b","c","d","e"]}));
    let r = e.req(Method::GET, "/v2/tagged/tags/list?n=2").send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</v2/tagged/tags/list?n=2&last=b>; rel=\"next\"");
    assert_eq!(r.json_value().await["tags"], json!(["a", "b"]));
    let r = e
        .req(Method::GET, "/v2/tagged/tags/list?n=2&last=b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json_value().await["tags"], json!(["c", "d"]));
    let r = e
        .req(Method::GET, "/v2/tagged/tags/list?n=2&last=d")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("link"));
    assert_eq!(r.json_value().await["tags"], json!(["e"]));
    let r = e.req(Method::GET, "/v2/tagged/tags/list?n=0").send().await.unwrap();
    assert_eq!(r.json_value().await["tags"], json!([]));
    let r = e.req(Method::GET, "/v2/tagged/tags/list?n=-1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Page size is bounded: a huge n is clamped, not an error.
    let r = e
        .req(Method::GET, "/v2/tagged/tags/list?n=99999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn catalog(e: &Env) {
    for repo in ["cat/b", "cat/a", "cat/a/nested", "zeta"] {
        e.push_image(repo, "latest", repo).await;
    }
    let v = e
        .req(Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v["repositories"], json!(["cat/a", "cat/a/nested", "cat/b", "zeta"]));
    let r = e.req(Method::GET, "/v2/_catalog?n=3").send().await.unwrap();
    assert_eq!(r.headers()["link"], "</v2/_catalog?n=3&last=cat%2Fb>; rel=\"next\"");
    assert_eq!(
        r.json_value().await["repositories"],
        json!(["cat/a", "cat/a/nested", "cat/b"])
    );
    let v = e
        .req(Method::GET, "/v2/_catalog?n=3&last=cat/b")
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v["repositories"], json!(["zeta"]));
}

async fn deletes(e: &Env) {
    let (d, m) = e.push_image("del", "one", "del").await;
    e.put_manifest("del", "two", media::OCI_MANIFEST, &m).await;
    // Delete a tag: the manifest stays.
    let r = e.req(Method::DELETE, "/v2/del/manifests/one").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = e.req(Method::GET, "/v2/del/manifests/one").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = e
        .req(Method::GET, &format!("/v2/del/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Delete by digest: gone, with its tags.
    let r = e
        .req(Method::DELETE, &format!("/v2/del/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for reference in [d.to_string(), "two".into()] {
        let r = e
            .req(Method::GET, &format!("/v2/del/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = e
        .req(Method::DELETE, &format!("/v2/del/manifests/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Blob delete.
    let b = e.push_blob("del", b"delete me").await;
    let r = e
        .req(Method::DELETE, &format!("/v2/del/blobs/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = e.req(Method::HEAD, &format!("/v2/del/blobs/{b}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = e
        .req(Method::DELETE, &format!("/v2/del/blobs/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

async fn referrers(e: &Env) {
    let (subject, m) = e.push_image("ref", "latest", "subject").await;
    let subject_desc = json!({"mediaType": media::OCI_MANIFEST, "digest": subject, "size": m.len()});
    let empty = e.push_blob("ref", b"{}").await;
    let layer = e.push_blob("ref", b"signature").await;
    let mut digests = vec![];
    for (at, ann) in [
        ("application/vnd.example.sig", "one"),
        ("application/vnd.example.sbom", "two"),
    ] {
        let a = json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": media::OCI_EMPTY, "digest": empty, "size": 2, "data": "e30="},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 9}],
            "subject": subject_desc, "annotations": {"n": ann}
        });
        let body = serde_json::to_vec(&a).unwrap();
        let r = e
            .put_manifest("ref", &Digest::sha256_of(&body).to_string(), media::OCI_MANIFEST, &body)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["oci-subject"], subject.to_string().as_str());
        digests.push(Digest::sha256_of(&body));
    }
    let r = e
        .req(Method::GET, &format!("/v2/ref/referrers/{subject}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], media::OCI_INDEX);
    let v = r.json_value().await;
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    let sig = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.example.sig")
        .unwrap();
    assert_eq!(sig["annotations"]["n"], "one");
    assert_eq!(sig["mediaType"], media::OCI_MANIFEST);
    let r = e
        .req(
            Method::GET,
            &format!("/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sbom"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v = r.json_value().await;
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], digests[1].to_string());
    // Referrer pushed before its subject exists; then unknown subject lists nothing.
    let ghost = Digest::sha256_of(b"ghost");
    let a = json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": "application/vnd.example.x",
        "config": {"mediaType": media::OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [], "subject": {"mediaType": media::OCI_MANIFEST, "digest": ghost, "size": 5}
    });
    let r = e
        .put_manifest("ref", "dangling", media::OCI_MANIFEST, a.to_string().as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = e
        .req(Method::GET, &format!("/v2/ref/referrers/{ghost}"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    let none = Digest::sha256_of(b"nobody");
    let v = e
        .req(Method::GET, &format!("/v2/ref/referrers/{none}"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v["manifests"], json!([]));
    // Deleting a referrer removes it from the list.
    e.req(Method::DELETE, &format!("/v2/ref/manifests/{}", digests[0]))
        .send()
        .await
        .unwrap();
    let v = e
        .req(Method::GET, &format!("/v2/ref/referrers/{subject}"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    let r = e.req(Method::GET, "/v2/ref/referrers/sha256:bad").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

async fn empty_blob(e: &Env) {
    let d = e.push_blob("empty", b"").await;
    let r = e
        .req(Method::GET, &format!("/v2/empty/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    // Session with no PATCH at all.
    let r = e.req(Method::POST, "/v2/empty/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    let r = e.req(Method::PUT, &format!("{loc}?digest={d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn sha512_blobs(e: &Env) {
    let data = b"sha512 content".repeat(1000);
    let d = sha512(&data);
    let r = e
        .req(Method::POST, &format!("/v2/s512/blobs/uploads/?digest={d}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = e.req(Method::GET, &format!("/v2/s512/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    // Chunked with sha512.
    let data2 = b"another sha512 blob".repeat(500);
    let d2 = sha512(&data2);
    let r = e.req(Method::POST, "/v2/s512/blobs/uploads/").send().await.unwrap();
    let loc = e.loc(&r);
    let r = e
        .req(Method::PATCH, &loc)
        .body(data2[..4000].to_vec())
        .send()
        .await
        .unwrap();
    let loc = e.loc(&r);
    let r = e
        .req(Method::PUT, &format!("{loc}?digest={d2}"))
        .body(data2[4000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    // A manifest addressed by sha512, referencing sha512 blobs.
    let m = manifest(&d, data.len(), &[(d2.clone(), data2.len())], None);
    let md = sha512(&m);
    let r = e.put_manifest("s512", &md.to_string(), media::OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["docker-content-digest"], md.to_string().as_str());
    let r = e
        .req(Method::GET, &format!("/v2/s512/manifests/{md}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), m.as_slice());
}

async fn indexes_and_artifacts(e: &Env) {
    let (a, am) = e.push_image("idx", "amd64", "amd").await;
    let (b, bm) = e.push_image("idx", "arm64", "arm").await;
    let index = json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": a, "size": am.len(), "platform": {"architecture":"amd64","os":"linux"}},
            {"mediaType": media::OCI_MANIFEST, "digest": b, "size": bm.len(), "platform": {"architecture":"arm64","os":"linux"}}
        ],
        "annotations": {"custom": "kept"},
        "x-custom-field": {"anything": [1, 2, 3]}
    });
    let ib = serde_json::to_vec(&index).unwrap();
    let r = e.put_manifest("idx", "multi", media::OCI_INDEX, &ib).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let r = e.req(Method::GET, "/v2/idx/manifests/multi").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], media::OCI_INDEX);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        ib.as_slice(),
        "custom fields survive byte for byte"
    );
    // Nested index.
    let nested = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [{"mediaType": media::OCI_INDEX, "digest": Digest::sha256_of(&ib), "size": ib.len()}]});
    let r = e
        .put_manifest("idx", "nested", media::OCI_INDEX, nested.to_string().as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // An index whose child is missing is refused.
    let missing = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": Digest::sha256_of(b"gone"), "size": 4}]});
    let r = e
        .put_manifest("idx", "broken", media::OCI_INDEX, missing.to_string().as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Docker schema 2 manifest and manifest list.
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = e.push_blob("idx", cfg).await;
    let dm = json!({"schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "digest": cd, "size": cfg.len()}, "layers": []});
    let dmb = serde_json::to_vec(&dm).unwrap();
    let r = e.put_manifest("idx", "docker", media::DOCKER_MANIFEST, &dmb).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let r = e.req(Method::HEAD, "/v2/idx/manifests/docker").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], media::DOCKER_MANIFEST);
    let dl = json!({"schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": media::DOCKER_MANIFEST, "digest": Digest::sha256_of(&dmb), "size": dmb.len(),
                       "platform": {"architecture":"amd64","os":"linux"}}]});
    let r = e
        .put_manifest("idx", "dlist", media::DOCKER_MANIFEST_LIST, dl.to_string().as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Artifact with a data field and no layers.
    let art = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": "application/vnd.example",
        "config": {"mediaType": media::OCI_EMPTY, "digest": Digest::sha256_of(b"{}"), "size": 2, "data": "e30="},
        "layers": []});
    let r = e
        .put_manifest("idx", "artifact", media::OCI_MANIFEST, art.to_string().as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    // A data field that lies is refused.
    let lie = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_EMPTY, "digest": Digest::sha256_of(b"{}"), "size": 2, "data": "eHg="},
        "layers": []});
    let r = e
        .put_manifest("idx", "lie", media::OCI_MANIFEST, lie.to_string().as_bytes())
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Schema 1 is refused.
    let r = e
        .put_manifest(
            "idx",
            "old",
            media::DOCKER_SCHEMA1_SIGNED,
            br#"{"schemaVersion":1,"name":"x","tag":"y"}"#,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let _: Value = Value::Null;
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod filesystem {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let e = super::fs_env().await;
                    super::$name(&e).await;
                    e.stop().await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn s3_seaweedfs_conformance() {
            let Some(weed) = Weed::start().await else { return };
            $(
                println!("s3: {}", stringify!($name));
                let e = weed.env(stringify!($name)).await;
                $name(&e).await;
                e.stop().await;
            )*
        }
    };
}

conformance!(
    ping,
    push_monolithic_put,
    push_post_only,
    push_chunked,
    push_streamed,
    upload_cancel,
    range_reads,
    mounts,
    manifests,
    invalid_names_and_digests,
    tags_and_pagination,
    invalid_tag_is_unknown,
    closing_put_range,
    tags_after_last_delete,
    catalog,
    deletes,
    referrers,
    empty_blob,
    sha512_blobs,
    indexes_and_artifacts,
);
