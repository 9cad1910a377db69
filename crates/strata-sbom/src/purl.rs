//! Package URLs (<https://github.com/package-url/purl-spec>).

use crate::model::{Distro, Package, PackageType};

/// Percent-encodes all but the unreserved characters and `:` (which the
/// spec leaves bare).
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS` with qualifiers sorted by key.
fn purl(ty: &str, namespace: &[&str], name: &str, version: &str, mut qualifiers: Vec<(&str, String)>) -> String {
    let mut s = format!("pkg:{ty}/");
    for seg in namespace.iter().filter(|s| !s.is_empty()) {
        s.push_str(&enc(seg));
        s.push('/');
    }
    s.push_str(&enc(name));
    if !version.is_empty() {
        s.push('@');
        s.push_str(&enc(version));
    }
    qualifiers.retain(|(_, v)| !v.is_empty());
    qualifiers.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in qualifiers.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&enc(v));
    }
    s
}

/// The purl of a catalogued package; OS packages take the distro for their
/// namespace and `distro` qualifier.
pub(crate) fn for_package(p: &Package, distro: Option<&Distro>) -> String {
    let arch = p.arch.clone().unwrap_or_default();
    let distro_q = distro.map(Distro::qualifier).unwrap_or_default();
    let upstream = || match &p.source {
        Some(s) if s.name != p.name && s.version != p.version => format!("{}@{}", s.name, s.version),
        Some(s) if s.name != p.name => s.name.clone(),
        _ => String::new(),
    };
    let ns = |default: &str| distro.map(|d| d.id.clone()).unwrap_or_else(|| default.to_owned());
    match p.kind {
        PackageType::Deb => purl(
            "deb",
            &[&ns("debian")],
            &p.name,
            &p.version,
            vec![("arch", arch), ("distro", distro_q), ("upstream", upstream())],
        ),
        PackageType::Apk => purl(
            "apk",
            &[&ns("alpine")],
            &p.name,
            &p.version,
            vec![("arch", arch), ("distro", distro_q), ("upstream", upstream())],
        ),
        PackageType::Rpm => {
            let epoch = p.metadata.get("epoch").cloned().unwrap_or_default();
            let version = match p.version.split_once(':') {
                Some((e, v)) if e == epoch => v,
                _ => &p.version,
            };
            let upstream = p
                .source
                .as_ref()
                .map(|s| format!("{}-{}.src.rpm", s.name, s.version))
                .unwrap_or_default();
            purl(
                "rpm",
                &[&ns("redhat")],
                &p.name,
                version,
                vec![
                    ("arch", arch),
                    ("distro", distro_q),
                    ("epoch", epoch),
                    ("upstream", upstream),
                ],
            )
        }
        PackageType::Python => purl("pypi", &[], &pep503(&p.name), &p.version, vec![]),
        PackageType::Npm => match p.name.split_once('/') {
            Some((scope, name)) if scope.starts_with('@') => purl("npm", &[scope], name, &p.version, vec![]),
            _ => purl("npm", &[], &p.name, &p.version, vec![]),
        },
        PackageType::Cargo => purl("cargo", &[], &p.name, &p.version, vec![]),
        PackageType::GoModule => {
            let (ns, name) = p.name.rsplit_once('/').unwrap_or(("", &p.name));
            let segs: Vec<&str> = ns.split('/').collect();
            purl("golang", &segs, name, &p.version, vec![])
        }
        PackageType::JavaArchive => {
            let group = p.metadata.get("groupId").map(String::as_str).unwrap_or(&p.name);
            purl("maven", &[group], &p.name, &p.version, vec![])
        }
        PackageType::Gem => purl("gem", &[], &p.name, &p.version, vec![]),
    }
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become `-`.
fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourcePackage;

    fn pkg(kind: PackageType, name: &str, version: &str) -> Package {
        Package::new(kind, name, version, "x")
    }

    #[test]
    fn purls() {
        let debian = Distro {
            id: "debian".into(),
            version_id: Some("12".into()),
            ..Default::default()
        };
        let mut bash = pkg(PackageType::Deb, "bash", "5.2.15-2");
        bash.arch = Some("amd64".into());
        bash.source = Some(SourcePackage {
            name: "bash".into(),
            version: "5.2.15-2".into(),
        });
        assert_eq!(
            for_package(&bash, Some(&debian)),
            "pkg:deb/debian/bash@5.2.15-2?arch=amd64&distro=debian-12"
        );
        let mut libc = pkg(PackageType::Deb, "libc6", "2.36-9+deb12u4");
        libc.arch = Some("amd64".into());
        libc.source = Some(SourcePackage {
            name: "glibc".into(),
            version: "2.36-9+deb12u4".into(),
        });
        assert_eq!(
            for_package(&libc, Some(&debian)),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(
            for_package(&pkg(PackageType::Python, "Flask_SQLAlchemy", "3.0"), None),
            "pkg:pypi/flask-sqlalchemy@3.0"
        );
        assert_eq!(
            for_package(&pkg(PackageType::Npm, "@scope/name", "1.0.0"), None),
            "pkg:npm/%40scope/name@1.0.0"
        );
        assert_eq!(
            for_package(
                &pkg(PackageType::GoModule, "github.com/BurntSushi/toml", "v1.3.2"),
                None
            ),
            "pkg:golang/github.com/BurntSushi/toml@v1.3.2"
        );
        let jar = pkg(PackageType::JavaArchive, "slf4j-api", "2.0.9").meta("groupId", "org.slf4j");
        assert_eq!(for_package(&jar, None), "pkg:maven/org.slf4j/slf4j-api@2.0.9");
        let mut rpm = pkg(PackageType::Rpm, "bash", "1:5.2.15-3.fc38").meta("epoch", "1");
        rpm.arch = Some("x86_64".into());
        rpm.source = Some(SourcePackage {
            name: "bash".into(),
            version: "5.2.15-3.fc38".into(),
        });
        let fedora = Distro {
            id: "fedora".into(),
            version_id: Some("38".into()),
            ..Default::default()
        };
        assert_eq!(
            for_package(&rpm, Some(&fedora)),
            "pkg:rpm/fedora/bash@5.2.15-3.fc38?arch=x86_64&distro=fedora-38&epoch=1&upstream=bash-5.2.15-3.fc38.src.rpm"
        );
    }
}
