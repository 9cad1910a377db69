//! `RUN --mount` wiring: each mount's source on the host (cache
//! directories, scratch and tmpfs directories, secrets, binds from the
//! context or another root), its mount point in the step's root, and what
//! must stay alive while the process runs.

use std::path::Path;

use crate::error::{Ctx, Error, Result};
use strata_oci::Digest;
use strata_snapshot::Snapshotter;

use crate::Shared;
use crate::copy::{self, CopyAttrs};
use crate::dest::DestRoot;
use crate::mounts::{self, Cleanup, MountType, RunMount, Sharing};
use crate::tree::DirTree;

use super::scratch_dir;
use super::sources::MountSrc;
use super::step_root::StepRoot;

/// What must live while a RUN process runs: snapshots mounted for binds,
/// scratch directories, cache locks.
#[derive(Default)]
pub(super) struct Held<'a> {
    pub(super) roots: Vec<StepRoot<'a>>,
    pub(super) dirs: Vec<tempfile::TempDir>,
    pub(super) locks: Vec<mounts::DirLock>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Snapshots first (unmounted), then the directories.
        self.roots.clear();
        self.dirs.clear();
        self.locks.clear();
    }
}

pub(super) fn chown_mode(path: &Path, uid: Option<u32>, gid: Option<u32>, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(path, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
        .ctx(|| format!("chown {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// Sets up one `RUN --mount`: its source on the host, its mount point in
/// the step's root, and the bind mount or secret file of `spec` (or, for
/// `env=` secrets, the variable).
#[allow(clippy::too_many_arguments)]
pub(super) fn prepare_mount<'a>(
    sh: &Shared,
    snap: &'a Snapshotter,
    (merged, changes): (&Path, &Path),
    m: &RunMount,
    target: Option<&str>,
    src: &MountSrc,
    chain: Option<&[Digest]>,
    spec: &mut strata_runtime::RunSpec,
    env: &mut Vec<String>,
    cleanup: &mut Cleanup,
    held: &mut Held<'a>,
) -> Result<()> {
    let mut readonly = m.readonly;
    let source: std::path::PathBuf = match m.kind {
        MountType::Cache => {
            let id = m.id.clone().unwrap_or_else(|| format!("/{}", target.unwrap_or("")));
            let base = sh.root.join("build-mounts").join("cache");
            std::fs::create_dir_all(&base).ctx(|| format!("creating {}", base.display()))?;
            let name = mounts::cache_dir_name(&id);
            let lock_path = base.join(format!("{name}.lock"));
            let mut dir = base.join(&name);
            match m.sharing {
                Sharing::Shared => {}
                Sharing::Locked => held.locks.push(mounts::lock(&lock_path, true)?.expect("blocking lock")),
                Sharing::Private => match mounts::lock(&lock_path, false)? {
                    Some(l) => held.locks.push(l),
                    None => {
                        // In use by another build: this one gets its own, empty.
                        let t = scratch_dir(&sh.root, "cache-private-")?;
                        dir = t.path().to_path_buf();
                        chown_mode(&dir, m.uid, m.gid, m.mode.unwrap_or(0o755))?;
                        held.dirs.push(t);
                    }
                },
            }
            if !dir.exists() {
                let tmp = base.join(format!(".new-{name}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
                chown_mode(&tmp, m.uid, m.gid, m.mode.unwrap_or(0o755))?;
                if std::fs::rename(&tmp, &dir).is_err() {
                    // Made by a concurrent build meanwhile.
                    let _ = std::fs::remove_dir(&tmp);
                }
            }
            dir
        }
        MountType::Tmpfs => {
            let t = scratch_dir(&sh.root, "tmpfs-")?;
            let p = t.path().to_path_buf();
            chown_mode(&p, m.uid, m.gid, m.mode.unwrap_or(0o1777))?;
            held.dirs.push(t);
            readonly = false;
            p
        }
        MountType::Secret => {
            let id = m.id.clone().unwrap_or_default();
            let value = match sh.secrets.get(&id) {
                Some(spec) => mounts::read_secret(spec)?,
                None => None,
            };
            let Some(value) = value else {
                if m.required {
                    return Err(Error::SecretNotFound(id));
                }
                return Ok(());
            };
            if let Some(var) = &m.env {
                env.retain(|e| e.split('=').next() != Some(var.as_str()));
                env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
            }
            let Some(target) = target else { return Ok(()) };
            // The host copy stays private; the runtime gives the container
            // its own copy with the Dockerfile's owner and mode.
            let (dir, file) = mounts::secret_host_copy(&sh.root.join("tmp"), &value)?;
            held.dirs.push(dir);
            let dest = mounts::make_mount_point(merged, changes, target, true, cleanup)?;
            spec.secrets.push(strata_runtime::SecretFile {
                source: file,
                destination: format!("/{dest}"),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o400),
            });
            return Ok(());
        }
        MountType::Bind => match src {
            MountSrc::Context(ctx, selected) => {
                let sel = &selected[0];
                let is_dir = sel.meta.kind == crate::tree::Kind::Dir;
                if readonly && sh.ignore_is_empty() {
                    sh.context_dir.join(&sel.rel)
                } else {
                    // Ignored files stay out, writes are thrown away: a copy.
                    let t = scratch_dir(&sh.root, "bind-")?;
                    let droot = DestRoot::open(t.path())?;
                    let attrs = CopyAttrs {
                        uid: 0,
                        gid: 0,
                        chmod: None,
                        unpack: false,
                        keep_owner: false,
                    };
                    let name = if is_dir { "d" } else { sel.name.as_str() };
                    copy::copy_into(
                        ctx.as_ref(),
                        selected,
                        &droot,
                        name,
                        is_dir,
                        &attrs,
                        copy::Layout::default(),
                    )?;
                    let p = t.path().join(name);
                    held.dirs.push(t);
                    p
                }
            }
            MountSrc::Root(_) => {
                let guard = StepRoot::mounted_over(snap, chain.unwrap_or_default(), readonly)?;
                let root = guard.merged();
                held.roots.push(guard);
                let tree = DirTree::open(&root, format!("--mount from={}", m.from.as_deref().unwrap_or("")))?;
                let source = m.source.clone().unwrap_or_default();
                let rel = crate::tree::resolve(&tree, &crate::pattern::clean_rel(&source), true)?.ok_or_else(|| {
                    Error::MountSourceNotFound {
                        path: source.clone(),
                        from: m.from.clone().unwrap_or_default(),
                    }
                })?;
                root.join(rel)
            }
            MountSrc::None => return Err(Error::Internal("bind mount without a source".into())),
        },
        MountType::Ssh => return Err(Error::Unsupported("RUN --mount=type=ssh is not supported".into())),
    };
    let Some(target) = target else { return Ok(()) };
    let is_file = !std::fs::metadata(&source)
        .ctx(|| format!("mount source {}", source.display()))?
        .is_dir();
    let dest = mounts::make_mount_point(merged, changes, target, is_file, cleanup)?;
    spec.mounts.push(strata_runtime::BindMount {
        source,
        destination: format!("/{dest}"),
        readonly,
    });
    Ok(())
}
