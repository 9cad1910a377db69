//! `WORKDIR` and the instructions that only change the image config (ENV,
//! LABEL, ARG, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, HEALTHCHECK,
//! STOPSIGNAL, SHELL, ONBUILD, MAINTAINER).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::error::{Error, Result};
use serde_json::{Value, json};
use strata_build::{CommandForm, Healthcheck, Instruction, Step};
use strata_oci::ContainerConfig;

use crate::cache::StepInputs;
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
        let history_text = format!("WORKDIR {abs}");
        self.cached(
            step,
            position,
            inputs,
            Some(vertex),
            Some(&history_text),
            move |me, _v| {
                me.cc().working_dir = Some(abs.clone());
                let mut made = me.take_replay();
                if made.is_none() && !rel.is_empty() {
                    let opts = me.layer_options();
                    let diff_ids = me.config.rootfs.diff_ids.clone();
                    let snap = me.snap.get_or_init(|| me.sh.snapshotter());
                    // A layer even when the directory is there (as BuildKit's mkdir).
                    let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, false, |merged, _| {
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
            },
        )
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
        // ENV names set here: an ARG's value of the same name stops applying.
        let mut env_set: Vec<String> = Vec::new();
        let mut in_history = true;
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
                    env_set.push(k.clone());
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
                let mut shown = Vec::new();
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
                    // The value goes into the build's environment, over an ENV of the same name.
                    if let Some(v) = &value {
                        self.args.set_env(name, v);
                    }
                    shown.push(match &value {
                        Some(v) => format!("{name}={v}"),
                        None => name.clone(),
                    });
                    self.args.declared.push((name.clone(), value));
                }
                // The values are not part of the key: only the steps that use an argument
                // depend on it, as in BuildKit. The history names them (`ARG A=value`, as
                // BuildKit writes it), set again after each cache hit.
                text = format!(
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
                created_by = format!("ARG {}", shown.join(" "));
                self.finish_metadata(
                    step,
                    position,
                    text,
                    BTreeMap::new(),
                    next,
                    Some(created_by.clone()),
                    None,
                )?;
                let i = self.config.history.len().saturating_sub(1);
                self.args.history.push((i, created_by));
                self.patch_arg_history();
                return Ok(());
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
                        // `7000-7002/udp` is three ports.
                        for port in strata_build::expose_ports(word).map_err(Error::InvalidPort)? {
                            next.exposed_ports
                                .get_or_insert_with(BTreeMap::new)
                                .insert(port.clone(), json!({}));
                            list.push(port);
                        }
                    }
                }
                // As current BuildKit (`%v` of the list; 20.10 printed the map).
                created_by = format!("EXPOSE [{}]", list.join(" "));
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
                created_by = format!("HEALTHCHECK {}", healthcheck_history(h));
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
                // `%v` of the list: `SHELL [/bin/sh -c]`.
                created_by = format!("SHELL [{}]", v.join(" "));
                text = format!("SHELL {}", serde_json::to_string(v)?);
            }
            Instruction::Onbuild(t) => {
                next.on_build.get_or_insert_with(Vec::new).push(t.clone());
                // Only in the config: BuildKit writes no history entry for it.
                in_history = false;
                created_by = String::new();
                text = format!("ONBUILD {t}");
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
        self.args.env.retain(|(k, _)| !env_set.contains(k));
        let args = self.arg_values(&used);
        let created_by = in_history.then_some(created_by);
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
        created_by: Option<String>,
        author: Option<String>,
    ) -> Result<()> {
        let inputs = StepInputs {
            text,
            args,
            epoch: self.sh.epoch,
            ..Default::default()
        };
        self.cached(step, position, inputs, None, None, move |me, _| {
            me.config.config = Some(next);
            if let Some(a) = author {
                me.config.author = Some(a);
            }
            if let Some(c) = created_by {
                me.history(c, true);
            }
            Ok(None)
        })
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Go's `time.Duration` text (`5s`, `1m30s`, `1h0m0s`, `500ms`, `0s`).
pub(crate) fn go_duration(d: Duration) -> String {
    fn fixed(n: u128, unit: u128) -> String {
        let (i, f) = (n / unit, n % unit);
        if f == 0 {
            return i.to_string();
        }
        let width = unit.to_string().len() - 1;
        let f = format!("{f:0width$}");
        format!("{i}.{}", f.trim_end_matches('0'))
    }
    let ns = d.as_nanos();
    match ns {
        0 => "0s".into(),
        1..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}µs", fixed(ns, 1_000)),
        1_000_000..1_000_000_000 => format!("{}ms", fixed(ns, 1_000_000)),
        _ => {
            let secs = ns / 1_000_000_000;
            let (h, m) = (secs / 3600, secs / 60 % 60);
            let s = fixed(ns % 60_000_000_000, 1_000_000_000);
            match (h, m) {
                (0, 0) => format!("{s}s"),
                (0, m) => format!("{m}m{s}s"),
                (h, m) => format!("{h}h{m}m{s}s"),
            }
        }
    }
}

/// `HEALTHCHECK`'s history text as current BuildKit writes it (`%+v` of
/// the config): `{Test:[CMD true] Interval:5s Timeout:0s StartPeriod:0s
/// StartInterval:0s Retries:0}`.
fn healthcheck_history(h: &Healthcheck) -> String {
    let d = |d: Option<Duration>| go_duration(d.unwrap_or_default());
    format!(
        "{{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        h.test.join(" "),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval),
        h.retries.unwrap_or(0)
    )
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

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn durations_print_as_go_prints_them() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(ms(500)), "500ms");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(go_duration(Duration::from_micros(1)), "1µs");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(7)), "7ns");
    }
}
