//! Named and anonymous volumes: `<store>/volumes/<name>/_data`, with a
//! small `meta.json` beside it. They outlive containers.

use std::path::{Path, PathBuf};

use crate::error::{Ctx, Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Labels")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "Scope")]
    pub scope: String,
}

pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn new(store_root: &Path) -> Volumes {
        Volumes {
            dir: store_root.join("volumes"),
        }
    }

    fn check(name: &str) -> Result<()> {
        if !crate::names::is_valid_name(name) {
            return Err(Error::InvalidVolumeName(name.to_string()));
        }
        Ok(())
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<Option<Volume>> {
        Self::check(name)?;
        let meta = self.dir.join(name).join("meta.json");
        match std::fs::read(&meta) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|source| {
                Error::BadVolumeRecord {
                    path: meta.clone(),
                    source,
                }
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the volume unless it exists; returns it.
    pub fn ensure(&self, name: &str) -> Result<Volume> {
        self.create(name, Default::default())
    }

    pub fn create(&self, name: &str, labels: std::collections::BTreeMap<String, String>) -> Result<Volume> {
        if let Some(v) = self.get(name)? {
            return Ok(v);
        }
        let d = self.dir.join(name);
        let tmp = self.dir.join(format!(".new-{name}-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("_data")).ctx(|| format!("creating {}", tmp.display()))?;
        let v = Volume {
            name: name.to_string(),
            driver: "local".into(),
            mountpoint: d.join("_data").display().to_string(),
            created_at: strata_image::now_rfc3339(),
            labels,
            scope: "local".into(),
        };
        std::fs::write(tmp.join("meta.json"), serde_json::to_vec_pretty(&v)?)?;
        match std::fs::rename(&tmp, &d) {
            Ok(()) => Ok(v),
            // Created meanwhile by another process: theirs wins.
            Err(_) if d.join("meta.json").exists() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(self.get(name)?.expect("exists"))
            }
            Err(e) => Err(e).ctx(|| format!("creating volume {name}")),
        }
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in rd {
            let n = e?.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                continue;
            }
            if let Ok(Some(v)) = self.get(&n) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        if self.get(name)?.is_none() {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let d = self.dir.join(name);
        let gone = self.dir.join(format!(".rm-{name}-{}", std::process::id()));
        std::fs::rename(&d, &gone)?;
        // Iterative, with few open fds: a volume may hold a tree of any depth.
        strata_store::remove_work_entry(&gone)?;
        Ok(())
    }
}
