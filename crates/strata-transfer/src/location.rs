//! Where an image is, as `strata copy` (and skopeo) spells it.

use std::path::PathBuf;

use strata_oci::Reference;

use crate::{Result, TransferError};

/// A location: `docker://REF`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
/// `docker-archive:FILE[:REF]` or `strata:REF` (the local store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationSpec {
    Registry(Reference),
    Layout { dir: PathBuf, reference: Option<String> },
    OciArchive { file: PathBuf, reference: Option<String> },
    DockerArchive { file: PathBuf, reference: Option<String> },
    Store { reference: Option<String> },
}

impl LocationSpec {
    /// Parses a location. As skopeo (containers/image), the path ends at the
    /// first `:` after the transport, so `oci:dir:busybox:1` names
    /// `busybox:1` in `dir`.
    pub fn parse(s: &str) -> Result<LocationSpec> {
        let bad = |why: &str| TransferError::Invalid(format!("invalid location {s:?}: {why}"));
        let (transport, rest) = s.split_once(':').ok_or_else(|| {
            bad("expected TRANSPORT:DETAILS (docker://, oci:, oci-archive:, docker-archive:, strata:)")
        })?;
        let path_and_ref = |rest: &str| -> Result<(PathBuf, Option<String>)> {
            let (path, reference) = match rest.split_once(':') {
                Some((p, r)) => (p, Some(r.to_string()).filter(|r| !r.is_empty())),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(bad("the path is empty"));
            }
            Ok((PathBuf::from(path), reference))
        };
        match transport {
            "docker" => {
                let r = rest
                    .strip_prefix("//")
                    .ok_or_else(|| bad("a registry location is docker://REFERENCE"))?;
                let reference = Reference::parse(r).map_err(|e| bad(&e.to_string()))?;
                Ok(LocationSpec::Registry(reference.with_default_tag()))
            }
            "oci" => {
                let (dir, reference) = path_and_ref(rest)?;
                Ok(LocationSpec::Layout { dir, reference })
            }
            "oci-archive" => {
                let (file, reference) = path_and_ref(rest)?;
                Ok(LocationSpec::OciArchive { file, reference })
            }
            "docker-archive" => {
                let (file, reference) = path_and_ref(rest)?;
                if let Some(r) = &reference {
                    Reference::parse(r).map_err(|e| bad(&e.to_string()))?;
                }
                Ok(LocationSpec::DockerArchive { file, reference })
            }
            "strata" | "containers-storage" => {
                let reference = Some(rest.to_string()).filter(|r| !r.is_empty());
                Ok(LocationSpec::Store { reference })
            }
            other => Err(bad(&format!(
                "unknown transport {other:?} (docker://, oci:, oci-archive:, docker-archive:, strata:)"
            ))),
        }
    }

    /// The image's name, when the location gives one (what a sink without a
    /// name of its own calls the image).
    pub fn name(&self) -> Option<String> {
        match self {
            LocationSpec::Registry(r) => Some(r.to_string()),
            LocationSpec::Layout { reference, .. }
            | LocationSpec::OciArchive { reference, .. }
            | LocationSpec::DockerArchive { reference, .. }
            | LocationSpec::Store { reference } => reference.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_as_skopeo_spells_them() {
        assert!(
            matches!(LocationSpec::parse("docker://busybox").unwrap(), LocationSpec::Registry(r) if r.to_string() == "docker.io/library/busybox:latest")
        );
        assert_eq!(
            LocationSpec::parse("oci:/tmp/x:busybox:1").unwrap(),
            LocationSpec::Layout {
                dir: "/tmp/x".into(),
                reference: Some("busybox:1".into())
            }
        );
        assert_eq!(
            LocationSpec::parse("oci-archive:a.tar").unwrap(),
            LocationSpec::OciArchive {
                file: "a.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            LocationSpec::parse("docker-archive:a.tar:app:2").unwrap(),
            LocationSpec::DockerArchive {
                file: "a.tar".into(),
                reference: Some("app:2".into())
            }
        );
        assert_eq!(
            LocationSpec::parse("strata:busybox").unwrap(),
            LocationSpec::Store {
                reference: Some("busybox".into())
            }
        );
        for bad in [
            "busybox",
            "docker:busybox",
            "oci:",
            "ftp://x",
            "docker://x/UPPER",
            "docker-archive:f:Bad Ref",
        ] {
            assert!(LocationSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
