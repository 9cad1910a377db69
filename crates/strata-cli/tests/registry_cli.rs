//! `strata registry` runs the registry server from the one binary.

mod common;

use common::*;

#[test]
fn strata_registry_serve_answers_the_v2_ping() {
    let reg = TestRegistry::strata();
    let answer = get_v2(&reg.host).expect("the registry answers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{answer}"
    );
}
