//! `WORKDIR` and the instructions that only change the image config (ENV,
//! LABEL, ARG, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, HEALTHCHECK,
//! STOPSIGNAL, SHELL, ONBUILD, MAINTAINER).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::error::{Error, Result};
use serde_json::{Value, json};
use strata_build::{CommandForm, Healthcheck, Instruction, Step};
use strata_oci::ContainerConfig;

use crate::cache::{self, StepInputs};
use crate::dest::DestRoot;
use crate::mounts::Cleanup;
use crate::pattern::clean_rel;

use super::step_root::with_root;
use super::{StageRun, shell_of, workdir_of};

impl<'a> StageRun<'a> {
    // ---- WORKDIR ----

    pub(super) fn workdir(&mut self, step: &Step, raw: &str, position: &str) -> Result<()> {
        let (w, used) = self.expand(raw)?;
        let base = workdir_of(self.config.config.as_ref());
        let joined = if w.starts_with('/') {
            w.clone()
        } else {
            format!("{base}/{w}")
        };
        let rel = clean_rel(&joined);
        let abs = format!("/{rel}");
        let inputs = StepInputs {
            text: format!("WORKDIR {abs}"),
            args: self.arg_values(&used),
            epoch: self.sh.epoch,
            ..Default::default()
        };
        let user = self
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .filter(|u| !u.is_empty());
        let title = format!("{} WORKDIR {abs}", self.prefix());
        let vertex = self.sh.progress.start(&title);
        self.cached(step, position, inputs, Some(vertex), move |me, _v| {
            me.cc().working_dir = Some(abs.clone());
            let mut made = None;
            if !rel.is_empty() {
                let opts = me.layer_options();
                let diff_ids = me.config.rootfs.diff_ids.clone();
                let snap = me.snap.get_or_init(|| me.sh.snapshotter());
                let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, true, |merged, _| {
                    let (uid, gid) = match &user {
                        Some(u) => strata_runtime::resolve_user(merged, u)
                            .map(|r| (r.user.uid, r.user.gid))
                            .unwrap_or((0, 0)),
                        None => (0, 0),
                    };
                    let droot = DestRoot::open(merged)?;
                    droot.ensure_dir(
                        &rel,
                        &crate::dest::Attrs {
                            uid,
                            gid,
                            mode: 0o755,
                            mtime: (0, 0),
                        },
                    )?;
                    Ok(((), Cleanup::default()))
                })?;
                made = layer;
            }
            if let Some(l) = &made {
                me.add_layer(l);
            }
            me.history(format!("WORKDIR {abs}"), made.is_none());
            Ok(made.map(|l| l.diff_id))
        })
    }

    // ---- metadata-only instructions ----

    pub(super) fn metadata(&mut self, step: &Step, position: &str) -> Result<()> {
        let mut used = BTreeSet::new();
        let mut next = self.config.config.clone().unwrap_or_default();
        let mut ex = |w: &str| -> Result<String> {
            let (s, u) = self.expand(w)?;
            used.extend(u);
            Ok(s)
        };
        let mut set_cmd = false;
        let mut new_author = None;
        let created_by: String;
        let text: String;
        match &step.instruction {
            Instruction::Env(pairs) => {
                let mut vals = Vec::new();
                for (k, v) in pairs {
                    vals.push((k.clone(), ex(v)?));
                }
                for (k, v) in &vals {
                    next.set_env(k, v);
                }
                created_by = format!(
                    "ENV {}",
                    vals.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                text = created_by.clone();
            }
            Instruction::Label(pairs) => {
                let mut vals = Vec::new();
                for (k, v) in pairs {
                    vals.push((ex(k)?, ex(v)?));
                }
                for (k, v) in &vals {
                    next.labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), v.clone());
                }
                created_by = format!(
                    "LABEL {}",
                    vals.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                text = created_by.clone();
            }
            Instruction::Arg(decls) => {
                for (name, default) in decls {
                    let value = if let Some(v) = self.sh.build_args.get(name) {
                        self.sh
                            .used_args
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name.clone());
                        Some(v.clone())
                    } else if let Some(d) = default {
                        let (v, _) = self.expand(d)?;
                        Some(v)
                    } else if self.sh.df.global_args.iter().any(|(n, _)| n == name)
                        || self.sh.predefined.contains_key(name)
                    {
                        self.sh.global_scope.get(name).cloned()
                    } else {
                        None
                    };
                    self.args.insert(name.clone(), value);
                }
                // The values are not part of the key (nor of the history): only the steps
                // that use an argument depend on it, as in BuildKit.
                created_by = format!(
                    "ARG {}",
                    decls
                        .iter()
                        .map(|(n, d)| match d {
                            Some(d) => format!("{n}={d}"),
                            None => n.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                text = created_by.clone();
                return self.finish_metadata(step, position, text, BTreeMap::new(), next, created_by, None);
            }
            Instruction::User(u) => {
                let u = ex(u)?;
                next.user = Some(u.clone());
                created_by = format!("USER {u}");
                text = created_by.clone();
            }
            Instruction::Expose(ports) => {
                let mut list = Vec::new();
                for p in ports {
                    for word in ex(p)?.split_whitespace() {
                        let port = if word.contains('/') {
                            word.to_ascii_lowercase()
                        } else {
                            format!("{word}/tcp")
                        };
                        next.exposed_ports
                            .get_or_insert_with(BTreeMap::new)
                            .insert(port.clone(), json!({}));
                        list.push(port);
                    }
                }
                created_by = format!(
                    "EXPOSE map[{}]",
                    list.iter().map(|p| format!("{p}:{{}}")).collect::<Vec<_>>().join(" ")
                );
                text = format!("EXPOSE {}", list.join(" "));
            }
            Instruction::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    let v = ex(v)?;
                    if v.trim().is_empty() {
                        return Err(Error::EmptyVolume);
                    }
                    next.volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v.clone(), json!({}));
                    list.push(v);
                }
                created_by = format!("VOLUME [{}]", list.join(" "));
                text = created_by.clone();
            }
            Instruction::Entrypoint(form) | Instruction::Cmd(form) => {
                let is_cmd = matches!(step.instruction, Instruction::Cmd(_));
                let shell = shell_of(&next);
                let value = match form {
                    CommandForm::Exec(v) => v.clone(),
                    CommandForm::Shell(s) => {
                        let mut a = shell;
                        a.push(s.clone());
                        a
                    }
                };
                let kw = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                if is_cmd {
                    next.cmd = Some(value.clone());
                    set_cmd = true;
                } else {
                    next.entrypoint = Some(value.clone());
                    if !self.cmd_set {
                        next.cmd = None;
                    }
                }
                created_by = format!("{kw} {}", strata_build::go_quote_list(&value));
                text = format!("{kw} {}", serde_json::to_string(&value)?);
            }
            Instruction::Healthcheck(h) => {
                next.healthcheck = Some(healthcheck_json(h));
                created_by = format!(
                    "HEALTHCHECK {}",
                    cache::one_line(step.original.split_once(' ').map_or("", |x| x.1), 1000)
                );
                text = format!("HEALTHCHECK {}", serde_json::to_string(&next.healthcheck)?);
            }
            Instruction::Stopsignal(s) => {
                let s = ex(s)?;
                next.stop_signal = Some(s.clone());
                created_by = format!("STOPSIGNAL {s}");
                text = created_by.clone();
            }
            Instruction::Shell(v) => {
                next.shell = Some(v.clone());
                created_by = format!("SHELL {}", strata_build::go_quote_list(v));
                text = format!("SHELL {}", serde_json::to_string(v)?);
            }
            Instruction::Onbuild(t) => {
                next.on_build.get_or_insert_with(Vec::new).push(t.clone());
                created_by = format!("ONBUILD {t}");
                text = created_by.clone();
            }
            Instruction::Maintainer(m) => {
                let m = ex(m)?;
                new_author = Some(m.clone());
                created_by = format!("MAINTAINER {m}");
                text = created_by.clone();
            }
            other => return Err(Error::NotAllowedHere(other.keyword().to_string())),
        }
        if set_cmd {
            self.cmd_set = true;
        }
        let args = self.arg_values(&used);
        self.finish_metadata(step, position, text, args, next, created_by, new_author)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_metadata(
        &mut self,
        step: &Step,
        position: &str,
        text: String,
        args: BTreeMap<String, String>,
        next: ContainerConfig,
        created_by: String,
        author: Option<String>,
    ) -> Result<()> {
        let inputs = StepInputs {
            text,
            args,
            epoch: self.sh.epoch,
            ..Default::default()
        };
        self.cached(step, position, inputs, None, move |me, _| {
            me.config.config = Some(next);
            if let Some(a) = author {
                me.config.author = Some(a);
            }
            me.history(created_by, true);
            Ok(None)
        })
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn healthcheck_json(h: &Healthcheck) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), json!(h.test));
    if let Some(d) = h.interval {
        m.insert("Interval".into(), json!(ns(d)));
    }
    if let Some(d) = h.timeout {
        m.insert("Timeout".into(), json!(ns(d)));
    }
    if let Some(d) = h.start_period {
        m.insert("StartPeriod".into(), json!(ns(d)));
    }
    if let Some(d) = h.start_interval {
        m.insert("StartInterval".into(), json!(ns(d)));
    }
    if let Some(r) = h.retries {
        m.insert("Retries".into(), json!(r));
    }
    Value::Object(m)
}
