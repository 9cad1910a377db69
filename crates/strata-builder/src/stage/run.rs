//! `RUN`: the process (command, environment, user, network), its
//! `--mount`s wired in, and its output pumped to the progress display.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Ctx, Error, Result};
use strata_build::{CommandForm, RunInstruction, Step};

use crate::cache::{self, StepInputs};
use crate::copy;
use crate::mounts::{self, Cleanup, MountType};
use crate::pattern::clean_rel;
use crate::progress::Vertex;
use crate::tree::SourceTree as _;

use super::run_mounts::{Held, chown_mode, prepare_mount};
use super::sources::{FromSpec, MountSrc};
use super::step_root::with_root;
use super::{StageRun, scratch_dir, sha, shell_of, workdir_of};

/// Where a `RUN <<EOF` script with a `#!` line is put (BuildKit's place).
const PIPES_DIR: &str = "/dev/pipes";

impl<'a> StageRun<'a> {
    // ---- RUN ----

    pub(super) fn run(&mut self, step: &Step, r: &RunInstruction, position: &str) -> Result<()> {
        if r.flags.security.as_deref().is_some_and(|s| s != "sandbox") {
            return Err(Error::Unsupported(format!(
                "RUN --security={} is not supported",
                r.flags.security.as_deref().unwrap_or("")
            )));
        }
        if !r.flags.devices.is_empty() {
            return Err(Error::Unsupported("RUN --device is not supported".into()));
        }
        let network = match r.flags.network.as_deref().or(self.sh.network.as_deref()) {
            None | Some("default") | Some("host") => strata_runtime::Network::Host,
            Some("none") => strata_runtime::Network::None,
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "RUN --network={other} is not supported (use default, host or none)"
                )));
            }
        };
        let cc = self.config.config.clone().unwrap_or_default();
        let shell = shell_of(&cc);
        // `RUN <<EOF` whose body starts with `#!`: run by its interpreter, as
        // BuildKit does (an executable file in a read-only /dev/pipes).
        let mut script_file: Option<(String, String)> = None;
        let args: Vec<String> = match &r.command {
            CommandForm::Exec(v) => v.clone(),
            CommandForm::Shell(cmd) => {
                let single = r.heredocs.len() == 1
                    && strata_build::parser::parse_heredoc(cmd.trim())
                        .ok()
                        .flatten()
                        .is_some_and(|h| h.name == r.heredocs[0].name);
                let script = if r.heredocs.is_empty() {
                    cmd.clone()
                } else if single && r.heredocs[0].content.starts_with("#!") {
                    let name = r.heredocs[0].name.clone();
                    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                        return Err(Error::InvalidHeredocName(name));
                    }
                    script_file = Some((name.clone(), r.heredocs[0].processed_content()));
                    String::new()
                } else if single {
                    // `RUN <<EOF`: the heredoc is the script.
                    r.heredocs[0].processed_content()
                } else {
                    let mut s = cmd.clone();
                    for h in &r.heredocs {
                        s.push('\n');
                        s.push_str(&h.content);
                        s.push_str(&h.name);
                    }
                    s
                };
                match &script_file {
                    Some((name, _)) => vec![format!("{PIPES_DIR}/{name}")],
                    None => {
                        let mut a = shell.clone();
                        a.push(script);
                        a
                    }
                }
            }
        };
        if args.is_empty() {
            return Err(Error::EmptyRun);
        }
        // Build arguments in scope are environment variables of the process
        // (over an ENV of the same name declared before them): all in the key.
        let run_args: BTreeMap<String, String> = self.args.env.iter().cloned().collect();
        // Proxy arguments reach the process without an ARG, but (unless
        // declared) stay out of the cache key and the history, as in
        // BuildKit: a proxy URL may carry credentials.
        let mut proxy_env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.sh.build_args {
            if crate::is_proxy_arg(k) && !run_args.contains_key(k) {
                proxy_env.insert(k.clone(), v.clone());
                self.sh
                    .used_args
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(k.clone());
            }
        }
        let mut text = step.original.clone();
        for h in &r.heredocs {
            text.push('\n');
            text.push_str(&h.content);
            text.push_str(&h.name);
        }
        let cwd = workdir_of(Some(&cc));
        // --mount: parsed, and the content of bind sources keyed.
        let mut mounts = Vec::new();
        let mut mount_content = Vec::new();
        let mut from_descs = Vec::new();
        let mut context_binds = false;
        for m in &r.flags.mounts {
            let (spec, _) = self.expand(m)?;
            let m = mounts::parse(&spec)?;
            let target = match &m.target {
                Some(t) => Some(mounts::target_rel(t, &cwd)?),
                None => None,
            };
            let src = match (m.kind, &m.from) {
                (MountType::Bind, Some(f)) => {
                    let diff_ids = self.other_root("RUN --mount", f)?;
                    // Keyed by the content of the mounted source, owners included.
                    let source = m.source.clone().unwrap_or_default();
                    let fspec = FromSpec {
                        kind: "mount",
                        sources: std::slice::from_ref(&source),
                        exclude: &[],
                        parents: false,
                        owners: true,
                    };
                    let (digest, _) = self.source_content(
                        &diff_ids,
                        &fspec,
                        f,
                        &|_| Ok(false),
                        &|tree| {
                            let not_found = || Error::MountSourceNotFound {
                                path: source.clone(),
                                from: f.to_string(),
                            };
                            let rel = crate::tree::resolve(tree, &clean_rel(&source), true)?.ok_or_else(not_found)?;
                            let meta = tree.lstat(&rel)?.ok_or_else(not_found)?;
                            Ok(vec![copy::Selected {
                                name: String::new(),
                                rel,
                                meta,
                                parent: String::new(),
                            }])
                        },
                        None,
                    )?;
                    mount_content.push(format!("bind:{spec}:root-content:{digest}"));
                    from_descs.push(self.describe_from(f));
                    MountSrc::Root(diff_ids)
                }
                (MountType::Bind, None) => {
                    let ctx = self.sh.context()?;
                    let source = m.source.clone().unwrap_or_default();
                    let selected =
                        copy::select(ctx.as_ref(), std::slice::from_ref(&source)).map_err(|e| Error::MountSource {
                            path: source.clone(),
                            source: Box::new(e),
                        })?;
                    let (digest, _) =
                        copy::content_digest(ctx.as_ref(), &selected, &|p| ctx.file_hash(p), None, false, false)?;
                    mount_content.push(format!("bind:{spec}:context:{digest}"));
                    context_binds = true;
                    MountSrc::Context(ctx, selected)
                }
                _ => MountSrc::None,
            };
            mounts.push((m, target, src));
        }
        let inputs = StepInputs {
            text,
            args: run_args.clone(),
            content: if mount_content.is_empty() {
                None
            } else {
                Some(sha(&mount_content.iter().map(String::as_str).collect::<Vec<_>>()))
            },
            epoch: self.sh.epoch,
            from: if from_descs.is_empty() || context_binds {
                None
            } else {
                Some(format!("mounted from {}", from_descs.join(", ")))
            },
            ..Default::default()
        };
        let created_by = format!("RUN {}{} # buildkit", self.run_args_prefix(), args.join(" "));
        let mut env = self.run_env();
        for (k, v) in &proxy_env {
            if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                env.push(format!("{k}={v}"));
            }
        }
        let user_spec = cc.user.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| "0".into());
        let title = format!("{} {}", self.prefix(), cache::one_line(&step.original, 400));
        let vertex = self.sh.progress.start(&title);
        let history_text = created_by.clone();
        // The RUN as BuildKit's op, for the BuildKit keys of an exported cache (remote_cache).
        if let Some(rc) = &self.sh.remote
            && r.flags.mounts.is_empty()
            && r.heredocs.is_empty()
        {
            let network = r.flags.network.as_deref().or(self.sh.network.as_deref());
            rc.describe_run(
                &inputs.key(&self.key),
                &args,
                Some(&cc),
                &self.args.env,
                network,
                &self.platform,
            );
        }
        self.cached(
            step,
            position,
            inputs,
            Some(vertex),
            Some(&history_text),
            move |me, v| {
                if let Some(layer) = me.take_replay() {
                    me.add_layer(&layer);
                    me.history(created_by, false);
                    return Ok(Some(layer.diff_id));
                }
                let opts = me.layer_options();
                let diff_ids = me.config.rootfs.diff_ids.clone();
                // Roots to bind from are unpacked before the step's own root is made.
                let mut from_chains = Vec::new();
                for (_, _, src) in &mounts {
                    from_chains.push(match src {
                        MountSrc::Root(d) => Some(strata_container::ensure_unpacked(
                            &me.store,
                            me.snap.get_or_init(|| me.sh.snapshotter()),
                            d,
                        )?),
                        _ => None,
                    });
                }
                let sh = me.sh;
                let snap = me.snap.get_or_init(|| sh.snapshotter());
                let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, false, |merged, changes| {
                    let resolved =
                        strata_runtime::resolve_user(merged, &user_spec).map_err(|source| Error::UnknownUser {
                            user: user_spec.clone(),
                            source,
                        })?;
                    let mut spec = strata_runtime::RunSpec::new(merged, args.clone());
                    let mut env = env.clone();
                    let mut cleanup = Cleanup::default();
                    let mut held = Held::default();
                    hosts_file(sh, merged, changes, &mut spec, &mut cleanup, &mut held)?;
                    for ((m, target, src), chain) in mounts.iter().zip(&from_chains) {
                        prepare_mount(
                            sh,
                            snap,
                            (merged, changes),
                            m,
                            target.as_deref(),
                            src,
                            chain.as_deref(),
                            &mut spec,
                            &mut env,
                            &mut cleanup,
                            &mut held,
                        )?;
                    }
                    if let Some((name, body)) = &script_file {
                        // Mounted over the container's /dev (a tmpfs): never in the layer.
                        let t = scratch_dir(&sh.root, "heredoc-")?;
                        chown_mode(t.path(), None, None, 0o755)?;
                        let f = t.path().join(name);
                        std::fs::write(&f, body).ctx(|| format!("writing {}", f.display()))?;
                        chown_mode(&f, None, None, 0o755)?;
                        spec.mounts.push(strata_runtime::BindMount {
                            source: t.path().to_path_buf(),
                            destination: PIPES_DIR.into(),
                            readonly: true,
                        });
                        held.dirs.push(t);
                    }
                    if !env.iter().any(|e| e.starts_with("HOME=")) {
                        env.push(format!("HOME={}", resolved.home));
                    }
                    spec.env = env;
                    spec.cwd = cwd.clone();
                    spec.user = resolved.user;
                    spec.hostname = SANDBOX_HOSTNAME.into();
                    // BuildKit's RUN has no HOSTNAME variable.
                    spec.hostname_env = false;
                    spec.network = network;
                    let r = run_process(&spec, v);
                    drop(held);
                    r.map_err(|e| match e {
                        RunOutcome::Exit(code) => Error::RunExit {
                            command: args.join(" "),
                            code,
                        },
                        RunOutcome::Failed(source) => Error::RunFailed {
                            command: args.join(" "),
                            source,
                        },
                    })?;
                    Ok(((), cleanup))
                })?;
                let layer = layer.expect("RUN always makes a layer");
                me.add_layer(&layer);
                me.history(created_by, false);
                Ok(Some(layer.diff_id))
            },
        )
    }
}

/// The hostname of a RUN, as BuildKit's.
const SANDBOX_HOSTNAME: &str = "buildkitsandbox";

/// Mounts BuildKit's `/etc/hosts` (read-only, never in the layer): the
/// sandbox's name on 127.0.0.1 and the `::1` line. A root whose
/// `/etc/hosts` cannot be a mount point (a dangling absolute symlink…)
/// runs without it.
fn hosts_file(
    sh: &crate::Shared,
    merged: &std::path::Path,
    changes: &std::path::Path,
    spec: &mut strata_runtime::RunSpec,
    cleanup: &mut Cleanup,
    held: &mut Held<'_>,
) -> Result<()> {
    let Ok(dest) = mounts::make_mount_point(merged, changes, "etc/hosts", true, cleanup) else {
        return Ok(());
    };
    let t = scratch_dir(&sh.root, "hosts-")?;
    chown_mode(t.path(), None, None, 0o755)?;
    let f = t.path().join("hosts");
    let text = format!("127.0.0.1\tlocalhost {SANDBOX_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    std::fs::write(&f, text).ctx(|| format!("writing {}", f.display()))?;
    chown_mode(&f, None, None, 0o644)?;
    spec.mounts.push(strata_runtime::BindMount {
        source: f,
        destination: format!("/{dest}"),
        readonly: true,
    });
    held.dirs.push(t);
    Ok(())
}

enum RunOutcome {
    Exit(i32),
    Failed(strata_runtime::RunError),
}

/// Runs the process with its output going to the vertex, line by line.
fn run_process(spec: &strata_runtime::RunSpec, v: Option<&Vertex<'_>>) -> std::result::Result<(), RunOutcome> {
    let pipe = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RunOutcome::Failed(strata_runtime::RunError::runtime(format!("pipe: {e}"))))?;
    let (rd, wr) = pipe;
    let wr2 = wr
        .try_clone()
        .map_err(|e| RunOutcome::Failed(strata_runtime::RunError::runtime(format!("dup: {e}"))))?;
    let done = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        let reader = s.spawn(|| pump(rd, v, &done));
        let r = strata_runtime::run_with_stdio(
            spec,
            strata_runtime::Stdio {
                stdin: None,
                stdout: Some(wr),
                stderr: Some(wr2),
            },
        );
        done.store(true, Ordering::SeqCst);
        let _ = reader.join();
        r
    });
    match r {
        Ok(0) => Ok(()),
        Ok(code) => Err(RunOutcome::Exit(code)),
        Err(e) => Err(RunOutcome::Failed(e)),
    }
}

const LOG_LIMIT: usize = 2 << 20;

fn pump(fd: OwnedFd, v: Option<&Vertex<'_>>, done: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut clipped = false;
    let mut emit = |line: &[u8], total: &mut usize| {
        *total += line.len() + 1;
        if *total > LOG_LIMIT {
            if !clipped {
                clipped = true;
                if let Some(v) = v {
                    v.output("[output clipped, log limit 2MiB reached]");
                }
            }
            return;
        }
        if let Some(v) = v {
            let s = String::from_utf8_lossy(line);
            v.output(s.trim_end_matches('\r'));
        }
    };
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        match rustix::io::read(fd.as_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    emit(&line[..line.len() - 1], &mut total);
                }
            }
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut total);
    }
}
