use super::*;

#[test]
fn insecure_registry_lists() {
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(is_listed_insecure(
        &l(&["reg.example:5000"]),
        "reg.example:5000",
        "reg.example:5000"
    ));
    assert!(is_listed_insecure(
        &l(&["reg.example"]),
        "reg.example:5000",
        "reg.example:5000"
    ));
    assert!(!is_listed_insecure(
        &l(&["reg.example:5001"]),
        "reg.example:5000",
        "reg.example:5000"
    ));
    assert!(is_listed_insecure(
        &l(&["10.0.0.0/8"]),
        "10.1.2.3:5000",
        "10.1.2.3:5000"
    ));
    assert!(!is_listed_insecure(
        &l(&["10.0.0.0/8"]),
        "11.1.2.3:5000",
        "11.1.2.3:5000"
    ));
    assert!(is_listed_insecure(&l(&["192.0.2.0/24"]), "192.0.2.2", "192.0.2.2"));
    assert!(is_listed_insecure(
        &l(&["fd00::/8"]),
        "[fd00::2]:5000",
        "[fd00::2]:5000"
    ));
    assert!(!is_listed_insecure(
        &l(&["fd00::/8"]),
        "[fe80::2]:5000",
        "[fe80::2]:5000"
    ));
    assert!(is_listed_insecure(&l(&["0.0.0.0/0"]), "1.2.3.4", "1.2.3.4"));
    // Names are not matched as networks, and garbage matches nothing.
    assert!(!is_listed_insecure(&l(&["10.0.0.0/8"]), "ten.example", "ten.example"));
    assert!(!is_listed_insecure(
        &l(&["10.0.0.0/99", "", " "]),
        "10.1.2.3",
        "10.1.2.3"
    ));
    // Docker Hub is spoken to at registry-1.docker.io: either name counts.
    assert!(is_listed_insecure(&l(&["docker.io"]), "docker.io", DOCKER_HUB_API_HOST));
}

#[test]
fn daemon_json_insecure_registries() {
    let got = insecure_registries_of_daemon_json(br#"{"insecure-registries":["a:5000","10.0.0.0/8"],"debug":true}"#);
    assert_eq!(got.unwrap(), vec!["a:5000".to_string(), "10.0.0.0/8".to_string()]);
    assert_eq!(insecure_registries_of_daemon_json(b"{}").unwrap(), Vec::<String>::new());
    assert!(insecure_registries_of_daemon_json(br#"{"insecure-registries":"a"}"#).is_err());
    assert!(insecure_registries_of_daemon_json(br#"{"insecure-registries":[1]}"#).is_err());
    assert!(
        insecure_registries_of_daemon_json(b"{not json")
            .unwrap_err()
            .contains("not valid JSON")
    );
}

#[test]
fn loopback_rule() {
    for h in [
        "localhost",
        "localhost:5000",
        "127.0.0.1",
        "127.0.0.1:5000",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:5000",
    ] {
        assert!(is_loopback(h), "{h}");
    }
    for h in [
        "example.com",
        "10.0.0.1:5000",
        "[::2]:5000",
        "localhost.example:5000",
        "128.0.0.1",
    ] {
        assert!(!is_loopback(h), "{h}");
    }
    assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    assert_eq!(api_host("quay.io"), "quay.io");
}
