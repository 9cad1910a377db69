//! `COPY` and `ADD`: sources expanded and hashed for the cache key (the
//! context, another stage's or image's root, URLs, heredocs), then copied
//! into the step's root.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use strata_build::{CopyInstruction, Lex, Step};

use crate::cache::{self, StepInputs};
use crate::copy::{self, CopyAttrs};
use crate::dest::DestRoot;
use crate::fetch;
use crate::mounts::Cleanup;
use crate::tree::DirTree;

use super::sources::{FromSpec, MountSrc};
use super::step_root::{StepRoot, with_root};
use super::{StageRun, scratch_dir, sha, workdir_of};

impl<'a> StageRun<'a> {
    // ---- COPY / ADD ----

    pub(super) fn copy(&mut self, step: &Step, c: &CopyInstruction, add: bool, position: &str) -> Result<()> {
        let kw = if add { "ADD" } else { "COPY" };
        let mut used = BTreeSet::new();
        let mut ex = |w: &str| -> Result<String> {
            let (s, u) = self.expand(w)?;
            used.extend(u);
            Ok(s)
        };
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(ex(s)?);
        }
        let dest = ex(&c.dest)?;
        let chown = c
            .flags
            .chown
            .as_deref()
            .map(&mut ex)
            .transpose()?
            .filter(|s| !s.is_empty());
        let chmod = c
            .flags
            .chmod
            .as_deref()
            .map(&mut ex)
            .transpose()?
            .filter(|s| !s.is_empty());
        let from = c.flags.from.as_deref().map(&mut ex).transpose()?;
        let mut excludes = Vec::new();
        for e in &c.flags.exclude {
            excludes.push(ex(e)?);
        }
        let checksum = c.flags.checksum.as_deref().map(&mut ex).transpose()?;
        let chmod_bits = chmod.as_deref().map(copy::parse_chmod).transpose()?;
        let exclude_rules = if excludes.is_empty() {
            None
        } else {
            Some(
                crate::IgnoreRules::parse(&excludes.join("\n")).map_err(|e| Error::Exclude {
                    kw,
                    source: Box::new(e),
                })?,
            )
        };
        let mut urls = Vec::new();
        let mut locals = Vec::new();
        for s in &sources {
            if !add && fetch::is_url(s) {
                // Even when the context has a path of that name (as BuildKit).
                return Err(Error::CopyFromUrl);
            } else if add && is_git_source(s) {
                return Err(Error::Unsupported(format!(
                    "ADD from a git repository is not supported: {s}"
                )));
            } else if add && fetch::is_url(s) {
                urls.push(s.clone());
            } else {
                locals.push(s.clone());
            }
        }
        let checksum = match checksum {
            Some(c) if urls.len() == 1 && locals.is_empty() => Some(fetch::parse_checksum(&c)?),
            Some(_) => return Err(Error::ChecksumNeedsOneUrl),
            None => None,
        };
        if !urls.is_empty() && from.is_some() {
            return Err(Error::FromWithUrls(kw));
        }
        // Heredoc bodies: variables expand, quotes and backslashes stay as written.
        let raw_lex = Lex {
            skip_process_quotes: true,
            raw_escapes: true,
            ..self.lex()
        };
        let vars = self.vars();
        let lookup = |n: &str| vars.get(n).cloned();
        let mut inline = Vec::new();
        for s in &c.inline_sources {
            let content = if s.expand {
                raw_lex.process_word(&s.content, &lookup)?
            } else {
                s.content.clone()
            };
            inline.push((s.name.clone(), content));
        }
        let workdir = workdir_of(self.config.config.as_ref());
        let (dest_rel, dest_is_dir) = copy::dest_path(&dest, &workdir);
        let mut flags = String::new();
        if let Some(f) = &from {
            flags.push_str(&format!(" --from={f}"));
        }
        if let Some(o) = &chown {
            flags.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &chmod {
            flags.push_str(&format!(" --chmod={m}"));
        }
        if c.flags.link {
            flags.push_str(" --link");
        }
        if add && c.flags.unpack == Some(false) {
            flags.push_str(" --unpack=false");
        }
        if c.flags.parents {
            flags.push_str(" --parents");
        }
        for e in &excludes {
            flags.push_str(&format!(" --exclude={e}"));
        }
        if let Some(c) = &checksum {
            flags.push_str(&format!(" --checksum={c}"));
        }
        // URLs as shown (history, cache records): without their credentials.
        let mut names: Vec<String> = sources
            .iter()
            .map(|s| if urls.contains(s) { fetch::redact(s) } else { s.clone() })
            .collect();
        names.extend(inline.iter().map(|(n, _)| format!("<<{n}")));
        let mut text = format!("{kw}{flags} {} {dest}", names.join(" "));
        for (n, content) in &inline {
            text.push_str(&format!("\n{content}{n}"));
        }
        // The sources and their content hash.
        let mut from_desc = None;
        let (src, content, files) = match &from {
            Some(f) => {
                let diff_ids = self.other_root(kw, f)?;
                // Keyed by the content of what is copied (as BuildKit), not by
                // the source's layers: a rebuilt stage with equal files hits.
                let spec = FromSpec {
                    kind: "copy",
                    sources: &sources,
                    exclude: &excludes,
                    parents: c.flags.parents,
                    owners: chown.is_none(),
                };
                let args = self.arg_values(&used);
                let need_files = |hash: &str| -> Result<bool> {
                    let probe = StepInputs {
                        text: text.clone(),
                        args: args.clone(),
                        content: Some(hash.to_string()),
                        epoch: self.sh.epoch,
                        ..Default::default()
                    };
                    Ok(!cache::has(&self.store, &probe.key(&self.key))?)
                };
                let (digest, files) = self.source_content(
                    &diff_ids,
                    &spec,
                    f,
                    &need_files,
                    &|tree| {
                        Ok(copy::drop_excluded(
                            copy::select(tree, &sources)?,
                            exclude_rules.as_ref(),
                        ))
                    },
                    exclude_rules.as_ref(),
                )?;
                from_desc = Some(format!("copied from {}", self.describe_from(f)));
                (MountSrc::Root(diff_ids), Some(digest), files)
            }
            None if locals.is_empty() => (MountSrc::None, None, BTreeMap::new()),
            None => {
                let ctx = self.sh.context()?;
                let selected = copy::drop_excluded(copy::select(ctx.as_ref(), &locals)?, exclude_rules.as_ref());
                // The per-file list only explains misses: made when there is one.
                let (digest, _) = copy::content_digest(
                    ctx.as_ref(),
                    &selected,
                    &|p| ctx.file_hash(p),
                    exclude_rules.as_ref(),
                    false,
                    false,
                )?;
                let probe = StepInputs {
                    text: text.clone(),
                    args: self.arg_values(&used),
                    content: Some(digest.clone()),
                    epoch: self.sh.epoch,
                    ..Default::default()
                };
                let files = if urls.is_empty() && cache::has(&self.store, &probe.key(&self.key))? {
                    BTreeMap::new()
                } else {
                    copy::content_digest(
                        ctx.as_ref(),
                        &selected,
                        &|p| ctx.file_hash(p),
                        exclude_rules.as_ref(),
                        true,
                        false,
                    )?
                    .1
                };
                (MountSrc::Context(ctx, selected), Some(digest), files)
            }
        };
        // URLs: fetched now (their content keys the step), unless a checksum names it already.
        let mut url_dir = None;
        let mut url_names = Vec::new();
        let mut url_keys = Vec::new();
        if !urls.is_empty() {
            if let Some(c) = &checksum {
                url_keys.push(format!("url:{}:{c}", fetch::redact(&urls[0])));
                url_names.push(fetch::file_name(&urls[0]));
            } else {
                let v = self
                    .sh
                    .progress
                    .start(&format!("[internal] load remote sources for {kw}"));
                let dir = scratch_dir(&self.sh.root, "add-url-")?;
                for u in &urls {
                    let got = match fetch::fetch(u, dir.path(), None) {
                        Ok(g) => g,
                        Err(e) => {
                            v.error(&e.chain());
                            return Err(e);
                        }
                    };
                    let u = fetch::redact(u);
                    v.log(&format!("{u}: {}", got.digest));
                    url_keys.push(format!("url:{u}:{}:{}", got.name, got.digest));
                    url_names.push(got.name);
                }
                v.done();
                url_dir = Some(dir);
            }
        }
        let content = if url_keys.is_empty() {
            content
        } else {
            let mut parts = url_keys.clone();
            parts.extend(content);
            Some(sha(&parts.iter().map(String::as_str).collect::<Vec<_>>()))
        };
        let inputs = StepInputs {
            text,
            args: self.arg_values(&used),
            content,
            files,
            epoch: self.sh.epoch,
            from: from_desc,
        };
        // As BuildKit writes it: --parents, --chown and --chmod, never --from.
        let created_by = format!(
            "{kw}{}{}{} {} {dest} # buildkit",
            if c.flags.parents { " --parents" } else { "" },
            chown.as_ref().map(|o| format!(" --chown={o}")).unwrap_or_default(),
            chmod.as_ref().map(|m| format!(" --chmod={m}")).unwrap_or_default(),
            names.join(" ")
        );
        let title = format!(
            "{} {}",
            self.prefix(),
            cache::one_line(&fetch::redact_text(&step.original), 400)
        );
        let vertex = self.sh.progress.start(&title);
        let unpack = add && c.flags.unpack != Some(false);
        let parents = c.flags.parents;
        // A plain COPY/ADD from the context as BuildKit's op, for the BuildKit keys of an exported cache (remote_cache).
        if let (Some(rc), MountSrc::Context(ctx, _)) = (&self.sh.remote, &src)
            && urls.is_empty()
            && inline.is_empty()
            && chown.is_none()
            && excludes.is_empty()
            && !c.flags.link
            && !parents
            && (!add || c.flags.unpack.is_none())
        {
            let key = inputs.key(&self.key);
            rc.describe_copy(&key, ctx.as_ref(), &locals, &dest, &workdir, chmod.as_deref(), add);
        }
        self.cached(step, position, inputs, Some(vertex), None, move |me, _v| {
            if let Some(layer) = me.take_replay() {
                me.add_layer(&layer);
                me.history(created_by, false);
                return Ok(Some(layer.diff_id));
            }
            let opts = me.layer_options();
            let epoch = me.sh.epoch;
            let diff_ids = me.config.rootfs.diff_ids.clone();
            // A root to copy from is unpacked before the step's own root is made.
            let from_chain = match &src {
                MountSrc::Root(d) => Some(strata_container::ensure_unpacked(
                    &me.store,
                    me.snap.get_or_init(|| me.sh.snapshotter()),
                    d,
                )?),
                _ => None,
            };
            let snap = me.snap.get_or_init(|| me.sh.snapshotter());
            let (_, layer) = with_root(&mut me.store, snap, &diff_ids, &opts, false, |merged, _| {
                let droot = DestRoot::open(merged)?;
                let (uid, gid) = match &chown {
                    Some(spec) => {
                        let r = strata_runtime::resolve_user(merged, spec).map_err(|source| Error::Chown {
                            spec: spec.clone(),
                            source,
                        })?;
                        if spec.contains(':') {
                            (r.user.uid, r.user.gid)
                        } else {
                            (r.user.uid, r.user.uid)
                        }
                    }
                    None => (0, 0),
                };
                let attrs = CopyAttrs {
                    uid,
                    gid,
                    chmod: chmod_bits,
                    unpack,
                    keep_owner: chown.is_none() && matches!(src, MountSrc::Root(_)),
                };
                let layout = copy::Layout {
                    parents,
                    exclude: exclude_rules.as_ref(),
                };
                if !url_names.is_empty() {
                    let fetched;
                    let dir = match &url_dir {
                        Some(d) => d.path(),
                        None => {
                            fetched = scratch_dir(&me.sh.root, "add-url-")?;
                            fetch::fetch(&urls[0], fetched.path(), checksum.as_deref())?;
                            fetched.path()
                        }
                    };
                    let tree = DirTree::open(dir, "the downloads".into())?;
                    let selected = copy::select(&tree, &url_names)?;
                    let url_attrs = CopyAttrs {
                        unpack: false,
                        keep_owner: false,
                        ..attrs
                    };
                    copy::copy_into(&tree, &selected, &droot, &dest_rel, dest_is_dir, &url_attrs, layout)?;
                }
                match &src {
                    MountSrc::None => {}
                    MountSrc::Context(ctx, selected) => {
                        copy::copy_into(ctx.as_ref(), selected, &droot, &dest_rel, dest_is_dir, &attrs, layout)?;
                    }
                    MountSrc::Root(_) => {
                        let chain = from_chain.as_deref().unwrap_or_default();
                        let mut guard = StepRoot::mounted_over(snap, chain, true)?;
                        let tree = DirTree::open(&guard.merged(), format!("--from={}", from.as_deref().unwrap_or("")))?;
                        let selected = copy::drop_excluded(copy::select(&tree, &sources)?, layout.exclude);
                        copy::copy_into(&tree, &selected, &droot, &dest_rel, dest_is_dir, &attrs, layout)?;
                        drop(tree);
                        guard.unmount()?;
                    }
                }
                let mtime = epoch.unwrap_or_else(|| jiff::Timestamp::now().as_second());
                // Each source is its own copy (BuildKit): to a destination
                // without `/` the last file wins.
                for (name, content) in &inline {
                    copy::write_inline(&droot, name, content, &dest_rel, dest_is_dir, &attrs, mtime)?;
                }
                Ok(((), Cleanup::default()))
            })?;
            let layer = layer.expect("COPY always makes a layer");
            me.add_layer(&layer);
            me.history(created_by, false);
            Ok(Some(layer.diff_id))
        })
    }
}

/// Whether an ADD source names a git repository, as BuildKit reads it:
/// `git@host:repo`, `git://...`, or an http(s) URL whose path ends in `.git`
/// (optionally followed by `#ref[:subdir]`).
fn is_git_source(s: &str) -> bool {
    if s.starts_with("git@") || s.starts_with("git://") {
        return true;
    }
    let path = s.split('#').next().unwrap_or(s);
    path.ends_with(".git") && (s.starts_with("https://") || s.starts_with("http://") || !s.contains("://"))
}

#[cfg(test)]
mod git_source_tests {
    use super::is_git_source;

    #[test]
    fn git_sources_as_buildkit_reads_them() {
        for s in [
            "git@github.com:moby/buildkit.git",
            "git://example.com/repo",
            "https://github.com/moby/buildkit.git",
            "https://github.com/moby/buildkit.git#v0.10.1",
            "https://github.com/moby/buildkit.git#v0.10.1:docs",
            "repo.git",
        ] {
            assert!(is_git_source(s), "{s}");
        }
        for s in [
            "https://example.com/file.tar.gz",
            "https://example.com/a.git.tar",
            "src/",
            "http://h/x#y",
        ] {
            assert!(!is_git_source(s), "{s}");
        }
    }
}
