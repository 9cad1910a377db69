//! `FROM`: the stage's base (an earlier stage, `scratch` or an image in
//! the store, pulled when asked or missing) and its ONBUILD triggers.

use crate::error::{Error, Result, chain_of};
use strata_build::Step;
use strata_oci::{ContainerConfig, ImageConfig, Platform, media};

use crate::Shared;

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
        let from_platform = match &stage.platform {
            Some(p) => Some(from_platform(sh, p).map_err(|e| invalid_from(stage.start_line, e))?),
            None => None,
        };
        let lower = name.to_lowercase();
        let stage_base = sh.df.stages[..self.index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        if let Some(j) = stage_base {
            let r = self.wait_for_stage(j)?;
            self.config = r.config.clone();
            self.key = r.key.clone();
            // The parent's ARGs stay declared, their values in the environment (as BuildKit).
            self.args = r.args.clone();
            self.explicit_platform = from_platform.is_some() || r.explicit_platform;
            self.platform = from_platform.unwrap_or_else(|| r.platform.clone());
        } else {
            if let Some(p) = from_platform {
                self.platform = p;
                self.explicit_platform = true;
            }
            let p = self.platform.clone();
            if lower == "scratch" {
                self.config = ImageConfig {
                    architecture: p.architecture.clone(),
                    os: p.os.clone(),
                    variant: p.variant.clone(),
                    // BuildKit's empty image works in `/`.
                    config: Some(ContainerConfig {
                        working_dir: Some("/".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                // (The working directory in the key: entries from before it was set are not reused.)
                self.key = match &p.variant {
                    Some(v) => sha(&["scratch", &p.architecture, &p.os, v, "WorkingDir=/"]),
                    None => sha(&["scratch", &p.architecture, &p.os, "WorkingDir=/"]),
                };
            } else {
                let resolved = self.resolve_base(&name)?;
                let material = crate::attest::Material {
                    name: name.clone(),
                    platform: p.clone(),
                    digest: resolved.index.clone().unwrap_or_else(|| resolved.manifest.clone()),
                };
                let mut materials = sh.materials.lock().unwrap_or_else(|e| e.into_inner());
                if !materials.contains(&material) {
                    materials.push(material);
                }
                drop(materials);
                let bytes = self.store.read_blob(&resolved.image.id, media::MAX_DOCUMENT_SIZE)?;
                self.config = ImageConfig::parse(&bytes)?;
                // What Docker's daemon writes about itself (`docker_version`,
                // the committing `container` and its `container_config`) is
                // the base's, not this build's: BuildKit drops it.
                // An inline cache is the base's own (BuildKit keeps no unknown keys).
                for k in [
                    "docker_version",
                    "container",
                    "container_config",
                    crate::remote_cache::INLINE_KEY,
                ] {
                    self.config.extra.remove(k);
                }
                // The stage's platform is part of every key: steps for two platforms never
                // share an entry, and a stage for the build platform hits across targets.
                self.key = sha(&["image", &resolved.image.id.to_string(), &crate::platform_string(&p)]);
            }
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
        if let Some(r) = &self.sh.remote
            && stage_base.is_none()
        {
            r.note(&self.key, "", &self.config);
        }
        self.base_name = name;
        Ok(steps)
    }

    /// Resolves a registry base in the store: pulled first with `--pull`
    /// (once per build), or when missing (or, for a platform asked for, when
    /// the store's index of it names the platform without holding it) and
    /// a puller is there. A pull fetches every platform the build needs the
    /// base for at once.
    fn resolve_base(&mut self, name: &str) -> Result<strata_image::Resolved> {
        let sh = self.sh;
        // With a platform asked for, the base is resolved (and pulled) for it.
        let platform = self.explicit_platform.then(|| self.platform.clone());
        let wanted: Vec<Platform> = match &platform {
            Some(p) => {
                let noted = sh.pulls.platforms.lock().unwrap_or_else(|e| e.into_inner());
                let mut list = noted.get(name).cloned().unwrap_or_default();
                if !list
                    .iter()
                    .any(|q| crate::platform_string(q) == crate::platform_string(p))
                {
                    list.push(p.clone());
                }
                list
            }
            None => Vec::new(),
        };
        let shown = wanted.iter().map(crate::platform_string).collect::<Vec<_>>().join(",");
        let pulled_key = format!("{name} {shown}");
        let for_platforms = match shown.as_str() {
            "" => String::new(),
            s => format!(" for {s}"),
        };
        let pull = |why: &str| -> Result<()> {
            let Some(p) = &sh.puller else {
                return Ok(());
            };
            let mut done = sh.pulls.done.lock().unwrap_or_else(|e| e.into_inner());
            if done.contains(&pulled_key) {
                return Ok(());
            }
            let v = sh
                .progress
                .start(&format!("[internal] load metadata for {name}{for_platforms} ({why})"));
            match (p.0)(name, &wanted) {
                Ok(()) => {
                    v.done();
                    done.insert(pulled_key.clone());
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
                let mut warned = sh.pulls.done.lock().unwrap_or_else(|e| e.into_inner());
                if warned.insert(String::new()) {
                    sh.progress
                        .line("[Warning] --pull: no registry client is available; using the local images");
                }
            } else {
                pull("--pull")?;
            }
        }
        let resolve = |store: &strata_store::Store| match &platform {
            Some(p) => strata_image::resolve_platform(store, name, p),
            None => strata_image::resolve(store, name),
        };
        let failed = |source: strata_image::Error| match &platform {
            Some(p) => Error::BasePlatform {
                name: name.to_string(),
                platform: crate::platform_string(p),
                source: Box::new(source),
            },
            None => Error::ResolveBase {
                name: name.to_string(),
                source: Box::new(source),
            },
        };
        match resolve(&self.store) {
            Ok(r) => Ok(r),
            Err(strata_image::Error::NoSuchImage(_)) if sh.puller.is_some() && !sh.pull => {
                pull("not in the local store")?;
                resolve(&self.store).map_err(failed)
            }
            Err(strata_image::Error::NoSuchImage(_)) => Err(Error::BaseNotFound(name.to_string())),
            Err(_)
                if sh.puller.is_some()
                    && !sh.pull
                    && platform.as_ref().is_some_and(|p| platform_absent(&self.store, name, p)) =>
            {
                pull("platform not in the local store")?;
                resolve(&self.store).map_err(failed)
            }
            Err(source) => Err(failed(source)),
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

/// `FROM --platform=WORD`: expanded with the global scope (the platform
/// ARGs), parsed, and checked to run here.
pub(crate) fn from_platform(sh: &Shared, word: &str) -> Result<Platform> {
    let lookup = |n: &str| sh.global_scope.get(n).cloned();
    let p = sh.lex().process_word(word, &lookup)?;
    let p = Platform::parse(&p)?;
    crate::check_runnable(&p, &sh.build_platform)?;
    Ok(p)
}

/// Whether `name` is a multi-platform image in the store whose index names
/// `platform` without the store holding it (a pull for it can fetch it).
pub(crate) fn platform_absent(store: &strata_store::Store, name: &str, platform: &Platform) -> bool {
    let Ok(r) = strata_image::resolve(store, name) else {
        return false;
    };
    let Some(index) = &r.index else {
        return false;
    };
    let Ok(members) = store.index_members(index) else {
        return false;
    };
    let named = members.iter().filter(|m| platform.matches(&m.platform));
    let mut any = false;
    for m in named {
        if m.image.is_some() {
            return false;
        }
        any = true;
    }
    any
}

/// `FROM` line `line`'s base name or platform failed to expand or check.
fn invalid_from(line: usize, e: Error) -> Error {
    Error::InvalidFrom {
        line,
        source: Box::new(e),
    }
}
