//! `FROM`: the stage's base (an earlier stage, `scratch` or an image in
//! the store, pulled when asked or missing) and its ONBUILD triggers.

use crate::error::{Error, Result, chain_of};
use strata_build::Step;
use strata_oci::{ContainerConfig, ImageConfig, media};

use super::{StageRun, sha};

impl<'a> StageRun<'a> {
    // ---- FROM ----

    /// Sets the base config and key; returns the ONBUILD triggers to run first.
    pub(super) fn base(&mut self) -> Result<Vec<Step>> {
        let sh = self.sh;
        let stage = &sh.df.stages[self.index];
        let lookup = |n: &str| sh.global_scope.get(n).cloned();
        let name = sh
            .lex()
            .process_word(&stage.base, &lookup)
            .map_err(|e| invalid_from(stage.start_line, e.into()))?;
        if name.is_empty() {
            return Err(Error::BlankBaseName {
                line: stage.start_line,
                base: stage.base.clone(),
            });
        }
        if let Some(p) = &stage.platform {
            let p = sh
                .lex()
                .process_word(p, &lookup)
                .map_err(|e| invalid_from(stage.start_line, e.into()))?;
            crate::check_platform(&p, &sh.platform).map_err(|e| invalid_from(stage.start_line, e))?;
        }
        let lower = name.to_lowercase();
        let stage_base = sh.df.stages[..self.index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        if let Some(j) = stage_base {
            let r = self.wait_for_stage(j)?;
            self.config = r.config.clone();
            self.key = r.key.clone();
        } else if lower == "scratch" {
            self.config = ImageConfig {
                architecture: sh.platform.architecture.clone(),
                os: sh.platform.os.clone(),
                variant: sh.platform.variant.clone(),
                config: Some(ContainerConfig::default()),
                ..Default::default()
            };
            self.key = sha(&["scratch", &sh.platform.architecture, &sh.platform.os]);
        } else {
            let resolved = self.resolve_base(&name)?;
            let bytes = self.store.read_blob(&resolved.image.id, media::MAX_DOCUMENT_SIZE)?;
            self.config = ImageConfig::parse(&bytes)?;
            self.key = sha(&["image", &resolved.image.id.to_string()]);
        }
        // Every stage has a PATH.
        let cc = self.cc();
        let has_path = cc.env.iter().flatten().any(|e| e.starts_with("PATH="));
        if !has_path {
            cc.set_env("PATH", strata_runtime::DEFAULT_PATH);
        }
        // ONBUILD triggers of the base run first, then are gone.
        let triggers = cc.on_build.take().unwrap_or_default();
        let mut steps = Vec::new();
        for t in &triggers {
            let df = strata_build::parse_dockerfile(format!("FROM scratch\n{t}\n").as_bytes()).map_err(|e| {
                Error::OnbuildTrigger {
                    trigger: t.clone(),
                    image: name.clone(),
                    message: e.message,
                }
            })?;
            for mut s in df.stages.into_iter().flat_map(|s| s.instructions) {
                s.start_line = stage.start_line;
                s.end_line = stage.start_line;
                s.original = format!("ONBUILD {}", s.original);
                steps.push(s);
            }
        }
        self.base_name = name;
        Ok(steps)
    }

    /// Resolves a registry base in the store: pulled first with `--pull`
    /// (once per build), or when missing and a puller is there.
    fn resolve_base(&mut self, name: &str) -> Result<strata_image::Resolved> {
        let sh = self.sh;
        let pull = |why: &str| -> Result<()> {
            let Some(p) = &sh.puller else {
                return Ok(());
            };
            let mut pulled = sh.pulled.lock().unwrap_or_else(|e| e.into_inner());
            if pulled.contains(name) {
                return Ok(());
            }
            let v = sh
                .progress
                .start(&format!("[internal] load metadata for {name} ({why})"));
            match (p.0)(name) {
                Ok(()) => {
                    v.done();
                    pulled.insert(name.to_string());
                    Ok(())
                }
                Err(e) => {
                    v.error(&chain_of(e.as_ref()));
                    Err(Error::PullFailed {
                        name: name.to_string(),
                        source: e,
                    })
                }
            }
        };
        if sh.pull {
            if sh.puller.is_none() {
                let mut warned = sh.pulled.lock().unwrap_or_else(|e| e.into_inner());
                if warned.insert(String::new()) {
                    sh.progress
                        .line("[Warning] --pull: no registry client is available; using the local images");
                }
            } else {
                pull("--pull")?;
            }
        }
        match strata_image::resolve(&self.store, name) {
            Ok(r) => Ok(r),
            Err(strata_image::Error::NoSuchImage(_)) if sh.puller.is_some() && !sh.pull => {
                pull("not in the local store")?;
                strata_image::resolve(&self.store, name).map_err(|source| Error::ResolveBase {
                    name: name.to_string(),
                    source: Box::new(source),
                })
            }
            Err(strata_image::Error::NoSuchImage(_)) => Err(Error::BaseNotFound(name.to_string())),
            Err(source) => Err(Error::ResolveBase {
                name: name.to_string(),
                source: Box::new(source),
            }),
        }
    }

    pub(super) fn show_from(&mut self) -> Result<()> {
        let p = self.prefix();
        let name = self.base_name.clone();
        let is_stage = self.sh.df.stages[..self.index]
            .iter()
            .any(|s| s.name.as_deref() == Some(name.to_lowercase().as_str()));
        let shown = match strata_oci::Reference::parse(&name) {
            Ok(r) if !is_stage && !name.eq_ignore_ascii_case("scratch") => r.with_default_tag().to_string(),
            _ => name,
        };
        self.sh.progress.start(&format!("{p} FROM {shown}")).done();
        Ok(())
    }
}

/// `FROM` line `line`'s base name or platform failed to expand or check.
fn invalid_from(line: usize, e: Error) -> Error {
    Error::InvalidFrom {
        line,
        source: Box::new(e),
    }
}
