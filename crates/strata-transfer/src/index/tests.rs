use super::*;

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn image(name: &str, mt: &str, platform: &str, location: usize) -> Resolved {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": media::OCI_CONFIG, "digest": d(name), "size": 1},
        "layers": [],
    });
    let bytes = serde_json::to_vec(&m).unwrap();
    let mut desc = Descriptor::new(mt, Digest::sha256_of(&bytes), bytes.len() as u64);
    desc.platform = Some(Platform::parse(platform).unwrap());
    Resolved {
        desc,
        bytes,
        location,
        name: format!("reg/app:{name}"),
    }
}

fn index_of(c: &Combined) -> Index {
    serde_json::from_slice(&c.bytes).unwrap()
}

#[test]
fn sources_parse_as_buildx_reads_them() {
    let dg = d("x");
    assert_eq!(parse_source(&dg.to_string()).unwrap(), SourceArg::Digest(dg.clone()));
    assert!(
        parse_source("sha256:abc")
            .unwrap_err()
            .to_string()
            .contains("valid sources are")
    );
    match parse_source("localhost:5000/app").unwrap() {
        SourceArg::Reference(r) => assert_eq!(r.to_string(), "localhost:5000/app:latest"),
        other => panic!("{other:?}"),
    }
    let json = format!(
        r#"{{"mediaType":"{}","digest":"{dg}","size":7,"platform":{{"os":"windows","architecture":"amd64","os.version":"10.0.1"}},"annotations":{{"a":"b"}}}}"#,
        media::OCI_MANIFEST
    );
    let SourceArg::Descriptor(a) = parse_source(&json).unwrap() else {
        panic!()
    };
    assert_eq!(a.digest, dg);
    assert_eq!(a.size, Some(7));
    assert_eq!(a.platform.unwrap().os_version.as_deref(), Some("10.0.1"));
    assert_eq!(a.annotations.unwrap()["a"], "b");
    let e = parse_source(r#"{"schemaVersion":2,"manifests":[]}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("got a manifest or index"), "{e}");
    let e = parse_source(r#"{"size":3}"#).unwrap_err().to_string();
    assert!(e.contains("digest is required"), "{e}");
    assert!(parse_source("Not A Ref").is_err());
}

#[test]
fn annotations_parse_with_types_and_platforms() {
    let a = parse_annotations(&[
        "index:org.opencontainers.image.authors=me".into(),
        "manifest-descriptor[linux/arm64]:k=v=w".into(),
        "index,manifest-descriptor:both=1".into(),
        "plain=yes".into(),
        String::new(),
    ])
    .unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a[0].target, AnnotationTarget::Index);
    assert_eq!(a[0].key, "org.opencontainers.image.authors");
    assert_eq!(
        a[1].target,
        AnnotationTarget::ManifestDescriptor(Some(Platform::parse("linux/arm64").unwrap()))
    );
    assert_eq!(a[1].value, "v=w");
    assert_eq!(a[2].target, AnnotationTarget::Index);
    assert_eq!(a[3].target, AnnotationTarget::ManifestDescriptor(None));
    assert_eq!(a[4].target, AnnotationTarget::Index);
    for (bad, why) in [
        ("novalue", "expected key=value"),
        ("manifest:k=v", "not supported yet"),
        ("index-descriptor:k=v", "invalid while creating"),
        ("bogus:k=v", "unknown annotation type"),
        ("Index:k=v", "invalid annotation type"),
        ("manifest-descriptor[linux]:k=v", "invalid platform"),
        ("manifest-descriptor[]:k=v", "invalid annotation type"),
    ] {
        let e = parse_annotations(&[bad.into()]).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn platforms_normalize_like_containerd() {
    let n = |s: &str| normalize_platform(&Platform::parse(s).unwrap()).to_string();
    assert_eq!(n("linux/arm64/v8"), "linux/arm64");
    assert_eq!(n("linux/aarch64"), "linux/arm64");
    assert_eq!(n("linux/arm"), "linux/arm/v7");
    assert_eq!(n("linux/arm/6"), "linux/arm/v6");
    assert_eq!(n("linux/x86_64"), "linux/amd64");
    let p = |s: &str| Platform::parse(s).unwrap();
    assert!(platform_matches(&p("linux/arm64"), &p("linux/arm64/v8")));
    assert!(!platform_matches(&p("linux/arm"), &p("linux/arm/v6")));
    assert!(!platform_matches(&p("linux/amd64"), &p("linux/arm64")));
}

#[test]
fn images_combine_into_an_index_of_their_kind() {
    let amd = image("amd", media::OCI_MANIFEST, "linux/amd64", 0);
    let arm = image("arm", media::OCI_MANIFEST, "linux/arm64", 0);
    let c = combine(&[amd.clone(), arm.clone()], &[], true).unwrap();
    assert_eq!(c.desc.media_type, media::OCI_INDEX);
    assert_eq!(c.desc.digest, Digest::sha256_of(&c.bytes));
    let ix = index_of(&c);
    assert_eq!(ix.manifests.len(), 2);
    assert_eq!(ix.manifests[1].platform.as_ref().unwrap().to_string(), "linux/arm64");
    assert!(ix.annotations.is_none());
    // Pretty JSON, as buildx writes it (and as --dry-run shows it).
    assert!(String::from_utf8_lossy(&c.bytes).starts_with("{\n  \"schemaVersion\": 2,"));

    // Docker manifests alone make a Docker list; asked for annotations, an OCI index.
    let damd = image("damd", media::DOCKER_MANIFEST, "linux/amd64", 0);
    let darm = image("darm", media::DOCKER_MANIFEST, "linux/arm64", 0);
    let c = combine(&[damd.clone(), darm.clone()], &[], true).unwrap();
    assert_eq!(c.desc.media_type, media::DOCKER_MANIFEST_LIST);
    let ann = parse_annotations(&["index:a=b".into(), "manifest-descriptor[linux/arm64]:c=d".into()]).unwrap();
    let c = combine(&[damd.clone(), darm], &ann, true).unwrap();
    assert_eq!(c.desc.media_type, media::OCI_INDEX);
    let ix = index_of(&c);
    assert_eq!(ix.annotations.unwrap()["a"], "b");
    assert!(ix.manifests[0].annotations.is_none());
    assert_eq!(ix.manifests[1].annotations.as_ref().unwrap()["c"], "d");
    // Mixed kinds: an OCI index.
    let c = combine(&[damd.clone(), arm.clone()], &[], true).unwrap();
    assert_eq!(c.desc.media_type, media::OCI_INDEX);

    // One image alone: an index of one, or itself without prefer-index.
    let c = combine(std::slice::from_ref(&amd), &[], true).unwrap();
    assert_eq!(index_of(&c).manifests.len(), 1);
    let c = combine(std::slice::from_ref(&amd), &[], false).unwrap();
    assert!(!c.is_index);
    assert_eq!(c.bytes, amd.bytes);

    // An index and an image: the index's entries first, a repeat deduped.
    let list = Resolved {
        desc: Descriptor::new(media::OCI_INDEX, d("ix"), 1),
        bytes: combine(&[amd.clone(), arm.clone()], &[], true).unwrap().bytes,
        location: 1,
        name: "reg/app:multi".into(),
    };
    let riscv = image("riscv", media::OCI_MANIFEST, "linux/riscv64", 0);
    let c = combine(&[list.clone(), riscv, arm.clone()], &[], true).unwrap();
    let plats: Vec<String> = index_of(&c)
        .manifests
        .iter()
        .map(|m| m.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64", "linux/riscv64"]);
    assert_eq!(c.entries[0].location, 1);
    assert_eq!(c.entries[1].location, 0, "the later source of a repeat is read");
    // An index alone is copied byte for byte.
    let c = combine(std::slice::from_ref(&list), &[], true).unwrap();
    assert_eq!(c.bytes, list.bytes);
    assert_eq!(c.desc.digest, list.desc.digest);
    assert_eq!(c.entries.len(), 2);
}

#[test]
fn platform_filter_keeps_attestations_and_names_what_is_offered() {
    let amd = image("amd", media::OCI_MANIFEST, "linux/amd64", 0);
    let arm = image("arm", media::OCI_MANIFEST, "linux/arm64", 0);
    let mut att = image("att", media::OCI_MANIFEST, "unknown/unknown", 0);
    att.desc.annotations = Some(BTreeMap::from([
        (REFERENCE_TYPE.to_string(), ATTESTATION_MANIFEST.to_string()),
        (REFERENCE_DIGEST.to_string(), arm.desc.digest.to_string()),
    ]));
    let c = combine(&[amd.clone(), arm.clone(), att], &[], true).unwrap();
    let f = filter_platforms(c, &[Platform::parse("linux/arm64/v8").unwrap()]).unwrap();
    let ix = index_of(&f);
    assert_eq!(ix.manifests.len(), 2);
    assert_eq!(ix.manifests[0].digest, arm.desc.digest);
    assert_eq!(f.entries.len(), 2);
    assert_eq!(f.desc.digest, Digest::sha256_of(&f.bytes));

    let c = combine(&[amd.clone(), arm.clone()], &[], true).unwrap();
    let e = filter_platforms(c, &[Platform::parse("linux/s390x").unwrap()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("none of the manifests match the provided platforms (linux/s390x)"),
        "{e}"
    );
    assert!(e.contains("linux/amd64, linux/arm64"), "{e}");
    // Everything kept: the same bytes.
    let c = combine(&[amd.clone(), arm], &[], true).unwrap();
    let bytes = c.bytes.clone();
    let both = [
        Platform::parse("linux/amd64").unwrap(),
        Platform::parse("linux/arm64").unwrap(),
    ];
    assert_eq!(filter_platforms(c, &both).unwrap().bytes, bytes);
    // A single image kept as itself must match.
    let c = combine(std::slice::from_ref(&amd), &[], false).unwrap();
    assert!(filter_platforms(c, &[Platform::parse("linux/arm64").unwrap()]).is_err());
}

#[test]
fn docker_lists_read_like_the_docker_clis() {
    let mut a = Descriptor::new(media::DOCKER_MANIFEST, d("a"), 528);
    a.platform = Some(Platform::parse("linux/arm/v7").unwrap());
    let (mt, bytes) = docker_manifest_list(&[a.clone()]).unwrap();
    assert_eq!(mt, media::DOCKER_MANIFEST_LIST);
    let text = String::from_utf8(bytes).unwrap();
    let want = format!(
        "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{}\",\n   \"manifests\": [\n      {{\n         \"mediaType\": \"{}\",\n         \"size\": 528,\n         \"digest\": \"{}\",\n         \"platform\": {{\n            \"architecture\": \"arm\",\n            \"os\": \"linux\",\n            \"variant\": \"v7\"\n         }}\n      }}\n   ]\n}}",
        media::DOCKER_MANIFEST_LIST,
        media::DOCKER_MANIFEST,
        a.digest
    );
    assert_eq!(text, want);
    Document::parse(text.as_bytes(), Some(media::DOCKER_MANIFEST_LIST)).unwrap();
    // An OCI manifest first: an OCI index (docker's FromDescriptors).
    let mut b = Descriptor::new(media::OCI_MANIFEST, d("b"), 405);
    b.platform = Some(Platform::parse("linux/amd64").unwrap());
    let (mt, bytes) = docker_manifest_list(&[b.clone(), a.clone()]).unwrap();
    assert_eq!(mt, media::OCI_INDEX);
    assert!(String::from_utf8_lossy(&bytes).contains(media::OCI_INDEX));
    assert_eq!(docker_manifest_list(&[a, b]).unwrap().0, media::DOCKER_MANIFEST_LIST);
}
