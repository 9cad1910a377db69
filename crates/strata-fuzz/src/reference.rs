//! `reference`: image references, digests, repository paths, tags and
//! platforms, each parsed and, when accepted, printed and parsed back to the
//! same value.

use strata_oci::{Digest, Platform, Reference};

pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = Reference::parse(s) {
        let shown = r.to_string();
        let again = Reference::parse(&shown).unwrap_or_else(|e| panic!("{s:?} printed as {shown:?}, refused: {e}"));
        assert_eq!(again, r, "{s:?} printed as {shown:?} parses differently");
        let familiar = r.familiar();
        let back =
            Reference::parse(&familiar).unwrap_or_else(|e| panic!("familiar {familiar:?} of {s:?} refused: {e}"));
        assert_eq!(
            back.repository(),
            r.repository(),
            "familiar form of {s:?} names another repository"
        );
        assert!(
            Reference::check_repository_path(r.path()).is_ok(),
            "path of {s:?} is not a valid repository path"
        );
        let tagged = r.clone().with_default_tag();
        assert!(tagged.tag().is_some() || tagged.digest().is_some());
        let _ = r.familiar_repository();
    }
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s, "digest {s:?} printed differently");
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        let _ = d.short();
    }
    let _ = Reference::check_repository_path(s);
    let _ = Reference::check_tag(s);
    if let Ok(p) = Platform::parse(s) {
        let _ = format!("{p:?}");
    }
}
