//! strata-snapshot: turns a chain of unpacked layers plus a writable layer into
//! a mounted root, in the manner of a containerd snapshotter.
//!
//! Owns `<store>/layers/<chain-id-hex>/` (one unpacked layer in overlay form:
//! whiteouts are 0/0 character devices, opaque directories carry
//! `trusted.overlay.opaque=y`) and `<store>/containers/<key>/` (a container's
//! writable layer; a container's also its init layer, `init.rs`). Drivers: overlayfs (new mount API, `lowerdir+` per
//! layer, so up to the kernel's 500 layers) and a copying driver ("vfs") for
//! filesystems where overlay cannot run.
//!
//! Must never: parse tar streams (the caller fills a layer through
//! [`Snapshotter::ensure_layer`], normally with strata-layer), name a partial
//! layer or snapshot, follow a symlink out of a tree it copies, or touch a
//! mount it did not make.

mod changes;
mod copy;
mod error;
mod init;
mod mount;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_oci::Digest;

use crate::error::Ctx;

pub use changes::{Baseline, Change, ChangeKind, CommitOptions};
pub use copy::apply_layer_dir;
pub use error::{Error, Result};
pub use mount::MountApi;

/// How container roots are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// overlayfs: the chain's layer directories are the lower dirs, the
    /// snapshot's `upper`/`work` dirs take the writes.
    Overlay,
    /// Docker's "vfs": the chain is flattened into a full copy at prepare
    /// time (whiteouts and opaque directories applied); the copy is the root.
    #[serde(rename = "vfs")]
    Copy,
    /// The same layout as `Overlay`, mounted by the `fuse-overlayfs`
    /// program: for rootless stores where the kernel refuses overlayfs in a
    /// user namespace (as Podman). Views get an upper dir too (it has no
    /// read-only mode) and are mounted read-only.
    #[serde(rename = "fuse-overlayfs")]
    FuseOverlay,
}

impl Driver {
    /// The name used by `--storage-driver` and `docker info`.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::Copy => "vfs",
            Driver::FuseOverlay => "fuse-overlayfs",
        }
    }

    /// Layers as lower dirs under an upper dir (overlay and fuse-overlayfs).
    pub fn is_layered(self) -> bool {
        matches!(self, Driver::Overlay | Driver::FuseOverlay)
    }

    /// Parses a `--storage-driver` value (`overlay`, `overlay2`, `vfs`, `copy`).
    pub fn parse(s: &str) -> Result<Driver> {
        match s {
            "overlay" | "overlay2" | "overlayfs" => Ok(Driver::Overlay),
            "vfs" | "copy" => Ok(Driver::Copy),
            "fuse-overlayfs" => Ok(Driver::FuseOverlay),
            other => Err(Error::UnknownDriver(other.to_string())),
        }
    }
}

/// Whether a snapshot has a writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable root (a container, a build step).
    Active,
    /// Read-only root (inspection, `cp` out of an image).
    View,
}

/// A prepared root: recorded in `containers/<key>/snapshot.json`, so that it
/// can be mounted again later (by another process) from its key alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub key: String,
    pub kind: Kind,
    pub driver: Driver,
    /// Chain IDs of the layers below, bottom first (as `strata_oci::chain_ids` gives them).
    pub chain: Vec<Digest>,
    /// `<store>/containers/<key>`.
    pub dir: PathBuf,
    /// A container's: `<dir>/init` is the lowest layer of its own, above
    /// the chain (Docker's init layer: the runtime's mount points).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

impl Snapshot {
    /// The directory the snapshot is conventionally mounted on: `<dir>/merged`.
    pub fn merged_dir(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

/// Finds out whether overlayfs works for a store, by mounting a tiny overlay
/// in `<store>/tmp` (lower, upper and work dirs in the store's filesystem),
/// writing through it and checking the write landed in the upper dir.
///
/// Returns the driver to use and, when overlay is unavailable, the message
/// saying why (for the CLI to print once, like Docker's fallback to vfs).
///
/// The answer is kept in `<store>/storage-driver` with what it depends on
/// (kernel release, the store's device and filesystem type, root or
/// rootless): a probe mounts and writes, ~30 ms that every container
/// command paid before.
pub fn detect_driver(store_root: &Path) -> (Driver, Option<String>) {
    // A store on a read-only filesystem makes no container (the driver is
    // for new ones): nothing to probe, nothing to warn of.
    let Ok(vfs) = rustix::fs::statvfs(store_root) else {
        return probe_driver(store_root);
    };
    if vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return (Driver::Copy, None);
    }
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let fs_type = rustix::fs::statfs(store_root).map(|s| s.f_type).unwrap_or(0);
    let dev = rustix::fs::stat(store_root).map(|s| s.st_dev).unwrap_or(0);
    let fingerprint = format!(
        "{} {dev:x} {fs_type:x} {:?}",
        kernel.trim(),
        strata_rootless::privilege()
    );
    let cache = store_root.join("storage-driver");
    if let Ok(text) = fs::read_to_string(&cache) {
        let mut lines = text.splitn(3, '\n');
        if let (Some(f), Some(d)) = (lines.next(), lines.next())
            && f == fingerprint
            && let Ok(driver) = Driver::parse(d)
        {
            let note = lines.next().map(str::trim).filter(|n| !n.is_empty()).map(String::from);
            return (driver, note);
        }
    }
    let (driver, note) = probe_driver(store_root);
    // Named as a blob in the making: a killed writer's file is swept by pid.
    let tmp = store_root.join(format!("tmp/blob-{}-storage-driver", std::process::id()));
    let text = format!("{fingerprint}\n{}\n{}", driver.name(), note.as_deref().unwrap_or(""));
    if fs::write(&tmp, text).is_ok() && fs::rename(&tmp, &cache).is_err() {
        let _ = fs::remove_file(&tmp);
    }
    (driver, note)
}

fn probe_driver(store_root: &Path) -> (Driver, Option<String>) {
    let native = match probe_overlay(store_root, Driver::Overlay) {
        Ok(()) => return (Driver::Overlay, None),
        Err(e) => error_chain(&e),
    };
    // Rootless, where the kernel refuses: the FUSE implementation.
    if strata_rootless::is_rootless() && probe_overlay(store_root, Driver::FuseOverlay).is_ok() {
        return (
            Driver::FuseOverlay,
            Some(format!(
                "overlayfs is not usable for the store at {}: {native}; using fuse-overlayfs",
                store_root.display()
            )),
        );
    }
    (
        Driver::Copy,
        Some(format!(
            "overlayfs is not usable for the store at {}: {native}; using the vfs (copy) storage driver, which copies every layer into each container",
            store_root.display(),
        )),
    )
}

fn probe_overlay(store_root: &Path, driver: Driver) -> Result<()> {
    let tmp = store_root.join("tmp");
    fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    let probe = tmp.join(format!(".overlay-probe-{}-{}", std::process::id(), unique_suffix()));
    fs::create_dir(&probe).ctx(|| format!("creating {}", probe.display()))?;
    let result = (|| -> Result<()> {
        for d in ["l1", "l2", "upper", "work", "merged"] {
            fs::create_dir(probe.join(d)).ctx(|| format!("creating {}", probe.join(d).display()))?;
        }
        fs::write(probe.join("l1/a"), b"a").ctx(|| "writing the probe's lower file")?;
        let layers = [probe.join("l2"), probe.join("l1")];
        let merged = probe.join("merged");
        let spec = mount::OverlaySpec {
            lowers_top_first: layers.to_vec(),
            upper: Some((probe.join("upper"), probe.join("work"))),
            link_dir: probe.join("links"),
            readonly: false,
        };
        match driver {
            Driver::FuseOverlay => mount::mount_fuse_overlay(&spec, &merged)?,
            _ => mount::mount_overlay(&spec, &merged, MountApi::Auto)?,
        }
        let check = (|| -> Result<()> {
            if fs::read(merged.join("a")).ctx(|| "reading a lower file through the overlay")? != b"a" {
                return Err(Error::Mount(
                    "the overlay does not show the lower layer's content".into(),
                ));
            }
            fs::write(merged.join("b"), b"b").ctx(|| "writing through the overlay")?;
            if !probe.join("upper/b").exists() {
                return Err(Error::Mount(
                    "a write through the overlay did not land in the upper dir".into(),
                ));
            }
            Ok(())
        })();
        let unmounted = mount::unmount(&merged);
        check?;
        unmounted?;
        Ok(())
    })();
    let _ = fs::remove_dir_all(&probe);
    result
}

pub(crate) fn unique_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", n & 0xffff_ffff_ffff)
}

/// The snapshotter of one store.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
    driver: Driver,
    mount_api: MountApi,
}

impl Snapshotter {
    /// A snapshotter for the store at `store_root` (created on first use).
    /// Use [`detect_driver`] to choose `driver` when the user did not.
    pub fn new(store_root: &Path, driver: Driver) -> Self {
        Snapshotter {
            root: store_root.to_path_buf(),
            driver,
            mount_api: MountApi::Auto,
        }
    }

    /// Chooses how overlays are mounted: [`MountApi::Auto`] (the new mount
    /// API with `lowerdir+`, falling back by itself) or [`MountApi::Legacy`]
    /// (`mount(2)` with short relative lower paths; for old kernels and tests).
    pub fn with_mount_api(mut self, api: MountApi) -> Self {
        self.mount_api = api;
        self
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    pub fn store_root(&self) -> &Path {
        &self.root
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `<store>/layers/<chain-id-hex>`, whether or not it exists yet.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }

    /// Whether the layer with this chain ID is unpacked.
    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    /// Makes sure `layers/<chain-id-hex>` exists and returns it.
    ///
    /// When it does not, `fill` is called with an empty staging directory
    /// (`layers/.staging-<hex>-<pid>`, same filesystem) to unpack the layer
    /// into, in overlay form; on success the staging directory is renamed into
    /// place. A per-layer `flock` (`layers/.locks/<hex>`) makes sure two
    /// processes never both fill the same layer: the second one waits and
    /// then finds it present. A failed `fill` removes its staging directory;
    /// staging directories left by a crashed process are removed by the next
    /// one that takes the lock. Nothing partial is ever named
    /// `layers/<hex>`.
    ///
    /// The data is not fsynced before the rename (as containerd); a crash may
    /// lose recently unpacked file contents, which `strata` can detect by
    /// re-verifying and re-unpacking.
    pub fn ensure_layer<E>(&self, chain_id: &Digest, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<PathBuf>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let dest = self.layer_dir(chain_id);
        if dest.is_dir() {
            return Ok(dest);
        }
        let layers = self.layers_dir();
        let hex = chain_id.hex();
        let lock = self.lock_layer(chain_id)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let stale_prefix = format!(".staging-{hex}-");
        for entry in fs::read_dir(&layers).ctx(|| format!("reading {}", layers.display()))? {
            let entry = entry.ctx(|| format!("reading {}", layers.display()))?;
            if entry.file_name().to_string_lossy().starts_with(&stale_prefix) {
                remove_tree(&entry.path())?;
            }
        }
        let staging = layers.join(format!("{stale_prefix}{}", std::process::id()));
        fs::create_dir(&staging).ctx(|| format!("creating the staging dir {}", staging.display()))?;
        if let Err(e) = fill(&staging) {
            let _ = remove_tree(&staging);
            return Err(Error::Fill {
                chain_id: chain_id.clone(),
                source: e.into(),
            });
        }
        fs::rename(&staging, &dest).ctx(|| format!("renaming {} to {}", staging.display(), dest.display()))?;
        drop(lock);
        Ok(dest)
    }

    /// The per-layer lock (`layers/.locks/<hex>`), taken exclusive.
    fn lock_layer(&self, chain_id: &Digest) -> Result<fs::File> {
        let locks = self.layers_dir().join(".locks");
        fs::create_dir_all(&locks).ctx(|| format!("creating {}", locks.display()))?;
        let lock_path = locks.join(chain_id.hex());
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx(|| format!("opening the layer lock {}", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .ctx(|| format!("locking {}", lock_path.display()))?;
        Ok(lock)
    }

    /// Names the upper dir of an unmounted overlay snapshot as the unpacked
    /// layer `chain_id` (which the caller has just written from that upper
    /// dir), as containerd's overlay snapshotter commits: the files are not
    /// unpacked again from the layer's blob, and not deleted with the
    /// snapshot. The upper dir is the layer in overlay form already
    /// (whiteouts are 0/0 devices, opaque dirs carry the xattr; the mount
    /// runs with `redirect_dir` and `metacopy` off, so nothing else is
    /// special). Returns whether it was moved: not for the copy driver, a
    /// view, a layer already unpacked, or a rename the filesystem refuses.
    pub fn adopt_upper(&self, snap: &Snapshot, chain_id: &Digest) -> Result<bool> {
        // Not fuse-overlayfs's: its markers are its own xattrs.
        if snap.driver != Driver::Overlay || snap.kind != Kind::Active {
            return Ok(false);
        }
        let merged = snap.dir.join("merged");
        if mount::is_mount_point(&merged)? {
            return Err(Error::StillMounted {
                key: snap.key.clone(),
                path: merged,
            });
        }
        let dest = self.layer_dir(chain_id);
        if dest.is_dir() {
            return Ok(false);
        }
        let _lock = self.lock_layer(chain_id)?;
        if dest.is_dir() {
            return Ok(false);
        }
        match fs::rename(snap.dir.join("upper"), &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => Ok(false),
            Err(e) => Err(Error::io(
                format!("naming the upper dir of {:?} as layer {chain_id}", snap.key),
                e,
            )),
        }
    }

    /// Removes an unpacked layer (for garbage collection; the caller makes
    /// sure no image or snapshot uses it). The directory is renamed away
    /// first, so a half-removed layer is never named.
    pub fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        let dest = self.layer_dir(chain_id);
        if !dest.exists() {
            return Ok(());
        }
        let doomed = self.layers_dir().join(format!(
            ".removing-{}-{}-{}",
            chain_id.hex(),
            std::process::id(),
            unique_suffix()
        ));
        fs::rename(&dest, &doomed).ctx(|| format!("renaming {} away for removal", dest.display()))?;
        remove_tree(&doomed)
    }

    /// The lower directories of a chain, bottom first (the order of `chain`).
    /// An overlay mount lists them the other way round.
    pub fn lower_dirs(&self, chain: &[Digest]) -> Vec<PathBuf> {
        chain.iter().map(|c| self.layer_dir(c)).collect()
    }

    /// What lies below a snapshot's writable layer, bottom first: its
    /// chain's layers, then its init layer when it has one.
    pub fn snapshot_lowers(&self, snap: &Snapshot) -> Vec<PathBuf> {
        let mut lowers = self.lower_dirs(&snap.chain);
        if snap.init {
            lowers.push(snap.dir.join(init::INIT_DIR));
        }
        lowers
    }

    /// The writable part of a snapshot. Overlay: `<dir>/upper`, the changes
    /// alone, in overlay form (a deletion is a 0/0 char device). Copy driver:
    /// `<dir>/rootfs`, the whole root (changes must be found by comparing it
    /// with the flattened chain).
    pub fn upper_dir(&self, snap: &Snapshot) -> PathBuf {
        match snap.driver {
            Driver::Overlay | Driver::FuseOverlay => snap.dir.join("upper"),
            Driver::Copy => snap.dir.join("rootfs"),
        }
    }

    /// `<store>/containers/<key>`.
    pub fn snapshot_dir(&self, key: &str) -> PathBuf {
        self.containers_dir().join(key)
    }

    /// A writable root on top of `chain` (chain IDs, bottom first; every
    /// layer must be unpacked already). Overlay: creates `upper`, `work` and
    /// `merged`. Copy driver: flattens the chain into `rootfs` now.
    pub fn prepare(&self, key: &str, chain: &[Digest]) -> Result<Snapshot> {
        self.create(key, chain, Kind::Active, false)
    }

    /// [`Snapshotter::prepare`] for a container: with an init layer
    /// (Docker's: `/proc`, `/sys`, `/dev/pts`, `/etc/hosts`, … made once,
    /// below the writable layer, so `diff` and `commit` never show them).
    pub fn prepare_container(&self, key: &str, chain: &[Digest]) -> Result<Snapshot> {
        self.create(key, chain, Kind::Active, true)
    }

    /// A read-only root of `chain` (mounted read-only whatever `mount` is asked).
    pub fn view(&self, key: &str, chain: &[Digest]) -> Result<Snapshot> {
        self.create(key, chain, Kind::View, false)
    }

    fn create(&self, key: &str, chain: &[Digest], kind: Kind, init: bool) -> Result<Snapshot> {
        check_key(key)?;
        for c in chain {
            if !self.has_layer(c) {
                return Err(Error::LayerNotUnpacked {
                    key: key.to_string(),
                    chain_id: c.clone(),
                    path: self.layer_dir(c),
                });
            }
        }
        let containers = self.containers_dir();
        fs::create_dir_all(&containers).ctx(|| format!("creating {}", containers.display()))?;
        let dir = containers.join(key);
        if dir.exists() {
            return Err(Error::Exists {
                key: key.to_string(),
                path: dir,
            });
        }
        let staging = containers.join(format!(".staging-{key}-{}-{}", std::process::id(), unique_suffix()));
        fs::create_dir(&staging).ctx(|| format!("creating {}", staging.display()))?;
        let snap = Snapshot {
            key: key.to_string(),
            kind,
            driver: self.driver,
            chain: chain.to_vec(),
            dir: dir.clone(),
            init,
        };
        let built = (|| -> Result<()> {
            let mkdir = |p: PathBuf| fs::create_dir(&p).ctx(|| format!("creating {}", p.display()));
            mkdir(staging.join("merged"))?;
            if init {
                let mut lowers = self.lower_dirs(chain);
                lowers.reverse();
                init::make_init_layer(&staging.join(init::INIT_DIR), &lowers)?;
            }
            match self.driver {
                Driver::Overlay | Driver::FuseOverlay => {
                    if kind == Kind::Active || self.driver == Driver::FuseOverlay {
                        mkdir(staging.join("upper"))?;
                        mkdir(staging.join("work"))?;
                    }
                    if chain.is_empty() {
                        mkdir(staging.join("empty"))?;
                    }
                }
                Driver::Copy => {
                    let rootfs = staging.join("rootfs");
                    mkdir(rootfs.clone())?;
                    for (layer, c) in self.lower_dirs(chain).iter().zip(chain) {
                        apply_layer_dir(layer, &rootfs).ctx(|| format!("copying layer {c} into the root"))?;
                    }
                    if init {
                        apply_layer_dir(&staging.join(init::INIT_DIR), &rootfs).ctx(|| "copying the init layer")?;
                    }
                }
            }
            let json = serde_json::to_vec_pretty(&snap).expect("a snapshot record serializes");
            fs::write(staging.join("snapshot.json"), json).ctx(|| "writing snapshot.json")?;
            Ok(())
        })();
        if let Err(e) = built {
            let _ = remove_tree(&staging);
            return Err(e).ctx(|| format!("preparing snapshot {key:?}"));
        }
        if let Err(e) = fs::rename(&staging, &dir) {
            let _ = remove_tree(&staging);
            return Err(Error::io(format!("naming snapshot {key:?} ({})", dir.display()), e));
        }
        Ok(snap)
    }

    /// Whether a snapshot with this key exists.
    pub fn exists(&self, key: &str) -> bool {
        check_key(key).is_ok() && self.snapshot_dir(key).join("snapshot.json").is_file()
    }

    /// The snapshot recorded under `key`.
    pub fn get(&self, key: &str) -> Result<Snapshot> {
        check_key(key)?;
        let path = self.snapshot_dir(key).join("snapshot.json");
        let bytes = fs::read(&path).map_err(|e| Error::NotFound {
            key: key.to_string(),
            path: path.clone(),
            source: Some(e),
        })?;
        let mut snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| Error::BadRecord {
            key: key.to_string(),
            path: path.clone(),
            source: e,
        })?;
        snap.dir = self.snapshot_dir(key);
        Ok(snap)
    }

    /// Every snapshot in the store, by key.
    pub fn list(&self) -> Result<Vec<Snapshot>> {
        let dir = self.containers_dir();
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
        };
        for entry in entries {
            let name = entry
                .ctx(|| format!("reading {}", dir.display()))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !name.starts_with('.') && self.exists(&name) {
                out.push(self.get(&name)?);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Mounts the snapshot's root on `target` (an existing directory).
    ///
    /// Overlay: an overlay mount of the chain (topmost layer first) with the
    /// snapshot's upper and work dirs, through `fsopen`/`fsconfig`
    /// (`lowerdir+`, one call per layer, so the 4 KiB option limit does not
    /// apply)/`fsmount`/`move_mount`; when the kernel refuses `lowerdir+`,
    /// through `mount(2)` with short relative lower paths (numbered symlinks
    /// in `<dir>/links`, from a forked child that chdirs there). A view of a
    /// single layer is a read-only bind mount of it. Copy driver: a bind mount
    /// of `rootfs`. `readonly` (always, for a view) makes the mount read-only.
    pub fn mount(&self, snap: &Snapshot, target: &Path, readonly: bool) -> Result<()> {
        let readonly = readonly || snap.kind == Kind::View;
        let what = || format!("mounting snapshot {:?} on {}", snap.key, target.display());
        match snap.driver {
            Driver::Copy => mount::bind(&snap.dir.join("rootfs"), target, readonly).ctx(what),
            Driver::Overlay => {
                let mut lowers = self.snapshot_lowers(snap);
                if lowers.is_empty() {
                    lowers.push(snap.dir.join("empty"));
                }
                lowers.reverse();
                if snap.kind == Kind::View && lowers.len() == 1 {
                    return mount::bind(&lowers[0], target, true).ctx(what);
                }
                let spec = mount::OverlaySpec {
                    lowers_top_first: lowers,
                    upper: match snap.kind {
                        Kind::Active => Some((snap.dir.join("upper"), snap.dir.join("work"))),
                        Kind::View => None,
                    },
                    link_dir: snap.dir.join("links"),
                    readonly,
                };
                mount::mount_overlay(&spec, target, self.mount_api).ctx(what)
            }
            Driver::FuseOverlay => {
                let mut lowers = self.snapshot_lowers(snap);
                if lowers.is_empty() {
                    lowers.push(snap.dir.join("empty"));
                }
                lowers.reverse();
                let spec = mount::OverlaySpec {
                    lowers_top_first: lowers,
                    upper: Some((snap.dir.join("upper"), snap.dir.join("work"))),
                    link_dir: snap.dir.join("links"),
                    readonly,
                };
                mount::mount_fuse_overlay(&spec, target).ctx(what)
            }
        }
    }

    /// Unmounts what [`Snapshotter::mount`] mounted on `target` (lazily when busy).
    pub fn unmount(&self, target: &Path) -> Result<()> {
        mount::unmount(target)
    }

    /// Whether something is mounted on `target` (false when it does not exist).
    pub fn is_mounted(&self, target: &Path) -> Result<bool> {
        mount::is_mount_point(target)
    }

    /// Removes a snapshot: unmounts `<dir>/merged` if mounted there, then
    /// renames the directory away and deletes it. Refuses while something is
    /// still mounted on `merged`. Removing a missing key is an error.
    pub fn remove(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let dir = self.snapshot_dir(key);
        if !dir.exists() {
            return Err(Error::NotFound {
                key: key.to_string(),
                path: dir,
                source: None,
            });
        }
        let merged = dir.join("merged");
        if mount::is_mount_point(&merged)? {
            mount::unmount(&merged)?;
            if mount::is_mount_point(&merged)? {
                return Err(Error::StillMounted {
                    key: key.to_string(),
                    path: merged,
                });
            }
        }
        let doomed = self
            .containers_dir()
            .join(format!(".removing-{key}-{}-{}", std::process::id(), unique_suffix()));
        fs::rename(&dir, &doomed).ctx(|| format!("renaming {} away for removal", dir.display()))?;
        remove_tree(&doomed)
    }
}

/// A key is one path component: `[A-Za-z0-9_.-]`, not starting with `.`, at most 128 bytes.
fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok {
        return Err(Error::InvalidKey(key.to_string()));
    }
    Ok(())
}

/// Removes a tree that strata made; never crosses into a mount point.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    copy::remove_tree_at(path).ctx(|| format!("removing {}", path.display()))
}

/// An error and its sources, `: `-joined (as anyhow's `{:#}`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}
