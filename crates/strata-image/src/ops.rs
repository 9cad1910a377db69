//! Removal (`rmi`), pruning, history, inspect and disk usage, with Docker's rules.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use strata_oci::{Digest, ImageConfig, Reference, media, reference::familiar_repository};
use strata_store::{ImageRecord, Store, StoreLock};

use crate::error::{Error, Result};
use crate::resolve::{Resolved, resolve};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    Untagged(String),
    Deleted(Digest),
}

fn familiar_tag(repo: &str, tag: &str) -> String {
    format!("{}:{tag}", familiar_repository(repo))
}

/// What keeps an image from being deleted, besides names: containers (a
/// row) and containers being made from it (a live lease, see
/// [`strata_store::Lease`]).
struct Users {
    containers: Vec<strata_store::ContainerRef>,
    /// A process making a container from the image.
    creating: Option<u32>,
}

impl Users {
    fn of(store: &Store, leased: &BTreeMap<Digest, u32>, id: &Digest) -> Result<Users> {
        Ok(Users {
            containers: store.containers_using(id)?,
            creating: leased.get(id).copied(),
        })
    }

    fn none(&self) -> bool {
        self.containers.is_empty() && self.creating.is_none()
    }

    /// The first user, as Docker names it after "being used by".
    fn first(&self) -> Option<String> {
        match (self.containers.first(), self.creating) {
            (Some(c), _) => Some(format!("container {}", short(&c.id))),
            (None, Some(pid)) => Some(format!("a container being created (process {pid})")),
            (None, None) => None,
        }
    }
}

/// `rmi NAME|ID`: untags, and deletes the image when its last name goes.
///
/// Decided and done under the store's exclusive lock: no name moves and no
/// container starts being made from the image meanwhile.
pub fn remove_image(store: &mut Store, name: &str, force: bool) -> Result<Vec<RemoveEvent>> {
    let lock = StoreLock::exclusive(store.root())?;
    let leased = store.leased_images()?;
    // Attestation manifests (build --sbom/--provenance) go with their index.
    let attestations: BTreeSet<Digest> = store.attestation_blobs()?.into_keys().collect();
    let Resolved {
        image,
        reference,
        index,
        ..
    } = resolve(store, name)?;
    // The other platforms of a multi-platform image go with its last name.
    let platforms: Vec<Digest> = match &index {
        Some(ix) => store
            .index_members(ix)?
            .into_iter()
            .filter_map(|m| m.image)
            .filter(|id| *id != image.id)
            .collect(),
        None => Vec::new(),
    };
    let users = Users::of(store, &leased, &image.id)?;
    let mut events = remove_one(store, &lock, name, image, reference, force, &users)?;
    for id in platforms {
        let Some(img) = store.image(&id)? else { continue };
        if img.is_dangling() && Users::of(store, &leased, &id)?.none() {
            store.delete_image_locked(&id, &lock)?;
            events.push(RemoveEvent::Deleted(id));
        }
    }
    store.remove_attestation_blobs(&attestations)?;
    Ok(events)
}

fn remove_one(
    store: &mut Store,
    lock: &StoreLock,
    name: &str,
    image: ImageRecord,
    reference: Option<Reference>,
    force: bool,
    users: &Users,
) -> Result<Vec<RemoveEvent>> {
    let mut events = Vec::new();
    let by_name = reference.is_some() && !name.starts_with("sha256:") && !is_id_prefix(&image.id, name);
    if let (true, Some(r)) = (by_name, reference.as_ref()) {
        if r.digest().is_none() {
            let last = image.tags.len() <= 1;
            if last
                && !force
                && let Some(user) = users.first()
            {
                return Err(Error::Conflict(format!(
                    "unable to remove repository reference {:?} (must force) - {user} is using its referenced image {}",
                    r.familiar(),
                    image.id.short()
                )));
            }
            events.push(RemoveEvent::Untagged(r.familiar()));
            if !last || !users.none() {
                store.remove_tag(r)?;
                return Ok(events);
            }
            // The untag and the delete in one transaction: a kill between
            // them would leave a nameless image that `rmi NAME` no longer
            // finds (the crash campaign found it).
            return Ok(match store.untag_and_delete_unnamed(r, &image.id, lock)? {
                Some(removed) => {
                    for u in removed.untagged {
                        events.push(RemoveEvent::Untagged(familiar_of_full(&u)));
                    }
                    events.push(RemoveEvent::Deleted(image.id.clone()));
                    events
                }
                // Named meanwhile by a `tag`: it stays.
                None => events,
            });
        } else if !image.tags.is_empty() {
            // A digest reference to a tagged image: Docker untags nothing and
            // deletes only when no tag remains; keep it simple and refuse.
            return Err(Error::Conflict(format!(
                "unable to delete {} (must be forced) - image is referenced by tags; remove them first",
                image.id.short()
            )));
        }
    } else {
        let repos: BTreeSet<&str> = image.tags.iter().map(|t| t.repo.as_str()).collect();
        if repos.len() > 1 && !force {
            return Err(Error::Conflict(format!(
                "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                image.id.short()
            )));
        }
        if let Some(user) = users.first()
            && !force
        {
            return Err(Error::Conflict(format!(
                "unable to delete {} (must be forced) - image is being used by {user}",
                image.id.short(),
            )));
        }
        if !users.none() {
            for t in &image.tags {
                let r = Reference::parse(&format!("{}:{}", t.repo, t.tag))?;
                store.remove_tag(&r)?;
                events.push(RemoveEvent::Untagged(familiar_tag(&t.repo, &t.tag)));
            }
        }
    }
    // With -f and a container using it, the image stays (dangling), as in
    // Docker. Otherwise its names go in the transaction that deletes it.
    if users.none() {
        let removed = store.delete_image_locked(&image.id, lock)?;
        for u in removed.untagged {
            events.push(RemoveEvent::Untagged(familiar_of_full(&u)));
        }
        events.push(RemoveEvent::Deleted(image.id.clone()));
    }
    Ok(events)
}

fn familiar_of_full(full: &str) -> String {
    match Reference::parse(full) {
        Ok(r) => r.familiar(),
        Err(_) => full.to_string(),
    }
}

fn is_id_prefix(id: &Digest, s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) && id.hex().starts_with(s)
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub events: Vec<RemoveEvent>,
    pub reclaimed: u64,
}

/// `image prune`: dangling images; with `all`, every image no container uses.
///
/// Decided and done under the store's exclusive lock, so what is deleted is
/// what is unused (no tag set, no container recorded meanwhile); images a
/// container is being made from (a live lease) are kept, as in use.
pub fn prune(store: &mut Store, all: bool) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let lock = StoreLock::exclusive(store.root())?;
    let leased = store.leased_images()?;
    let attestations: BTreeSet<Digest> = store.attestation_blobs()?.into_keys().collect();
    for img in store.list_images()? {
        if img.containers > 0 || leased.contains_key(&img.id) || (!all && !img.is_dangling()) {
            continue;
        }
        let removed = store.delete_image_locked(&img.id, &lock)?;
        for u in removed.untagged {
            report.events.push(RemoveEvent::Untagged(familiar_of_full(&u)));
        }
        report.events.push(RemoveEvent::Deleted(img.id.clone()));
        report.reclaimed += removed.bytes_reclaimed;
    }
    report.reclaimed += store.remove_attestation_blobs(&attestations)?.1;
    Ok(report)
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// The image ID on the newest row; older steps are `<missing>` as in Docker.
    pub id: Option<Digest>,
    pub created: Option<String>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

fn load_config(store: &Store, image: &ImageRecord) -> Result<ImageConfig> {
    let bytes = store.read_blob(&image.id, media::MAX_DOCUMENT_SIZE)?;
    Ok(ImageConfig::parse(&bytes)?)
}

/// Newest step first, like `docker history`.
pub fn history(store: &Store, image: &ImageRecord) -> Result<Vec<HistoryRow>> {
    let config = load_config(store, image)?;
    let mut layer_sizes = Vec::new();
    for d in &config.rootfs.diff_ids {
        layer_sizes.push(store.layer_size(d)?.unwrap_or(0));
    }
    let mut rows = Vec::new();
    let mut layer = 0;
    if config.history.is_empty() {
        // Images without history: one row per layer.
        for size in &layer_sizes {
            rows.push(HistoryRow {
                id: None,
                created: config.created.clone(),
                created_by: String::new(),
                size: *size,
                comment: String::new(),
                empty_layer: false,
            });
        }
    }
    for h in &config.history {
        let size = if h.empty_layer {
            0
        } else {
            let s = layer_sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        rows.push(HistoryRow {
            id: None,
            created: h.created.clone(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size,
            comment: h.comment.clone().unwrap_or_default(),
            empty_layer: h.empty_layer,
        });
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first.id = Some(image.id.clone());
    }
    Ok(rows)
}

/// `docker image inspect`'s object for one image: Docker 20.10's
/// `types.ImageInspect`, every field in its order (see
/// [`crate::docker_inspect`]), then strata's `Manifest` (the manifest the
/// image was stored from).
pub fn inspect(store: &Store, image: &ImageRecord) -> Result<Value> {
    use crate::docker_inspect::{CONFIG_FIELDS, ROOTFS_FIELDS, docker_config, docker_struct};
    let config = load_config(store, image)?;
    let repo_tags: Vec<String> = image.tags.iter().map(|t| familiar_tag(&t.repo, &t.tag)).collect();
    let repo_digests: Vec<String> = image
        .repo_digests
        .iter()
        .map(|(repo, d)| format!("{}@{d}", familiar_repository(repo)))
        .collect();
    let extra_str = |k: &str| {
        config
            .extra
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let raw_config = config.config.as_ref().map(|c| serde_json::to_value(c).expect("json"));
    let rootfs = json!({"Type": config.rootfs.kind, "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()});
    let mut v = serde_json::Map::new();
    let mut put = |k: &str, val: Value| {
        v.insert(k.to_string(), val);
    };
    put("Id", json!(image.id.to_string()));
    put("RepoTags", json!(repo_tags));
    put("RepoDigests", json!(repo_digests));
    put("Parent", json!(""));
    put(
        "Comment",
        json!(
            config
                .history
                .last()
                .and_then(|h| h.comment.clone())
                .unwrap_or_default()
        ),
    );
    put("Created", json!(config.created.clone().unwrap_or_default()));
    put("Container", json!(extra_str("container")));
    // Not a pointer in the stored image: a zero config when there is none.
    put(
        "ContainerConfig",
        docker_struct(CONFIG_FIELDS, config.extra.get("container_config")),
    );
    put("DockerVersion", json!(extra_str("docker_version")));
    put("Author", json!(config.author.clone().unwrap_or_default()));
    put("Config", docker_config(raw_config.as_ref()));
    put("Architecture", json!(config.architecture));
    if let Some(variant) = config.variant.as_ref().filter(|s| !s.is_empty()) {
        put("Variant", json!(variant));
    }
    put("Os", json!(config.os));
    let os_version = extra_str("os.version");
    if !os_version.is_empty() {
        put("OsVersion", json!(os_version));
    }
    put("Size", json!(image.size));
    put("VirtualSize", json!(image.size));
    // Docker's graph driver mounts each image; strata's images are layers
    // in the store, unpacked when a container needs them.
    put("GraphDriver", json!({"Data": {}, "Name": "strata"}));
    put("RootFS", docker_struct(ROOTFS_FIELDS, Some(&rootfs)));
    put(
        "Metadata",
        json!({"LastTagTime": crate::time::format_rfc3339(jiff::Timestamp::from_second(image.added_at).unwrap_or(jiff::Timestamp::UNIX_EPOCH))}),
    );
    put(
        "Manifest",
        json!({"Digest": image.primary_manifest().to_string(), "MediaType": image.manifests[0].1}),
    );
    Ok(Value::Object(v))
}

#[derive(Debug)]
pub struct ImageUsage {
    pub id: Digest,
    pub names: Vec<String>,
    pub created: Option<String>,
    pub size: u64,
    pub shared: u64,
    pub unique: u64,
    pub containers: u64,
}

#[derive(Debug, Default)]
pub struct DiskUsage {
    pub images_total: u64,
    pub images_active: u64,
    /// Every distinct layer once.
    pub images_size: u64,
    /// What removing every image no container uses would free.
    pub images_reclaimable: u64,
    pub per_image: Vec<ImageUsage>,
}

pub fn disk_usage(store: &Store) -> Result<DiskUsage> {
    let images = store.list_images()?;
    let uses = store.layer_use_counts()?;
    let mut sizes: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut used_by_active: BTreeSet<Digest> = BTreeSet::new();
    for img in &images {
        for d in &img.diff_ids {
            if !sizes.contains_key(d) {
                sizes.insert(d.clone(), store.layer_size(d)?.unwrap_or(0));
            }
            if img.containers > 0 {
                used_by_active.insert(d.clone());
            }
        }
    }
    let mut du = DiskUsage {
        images_total: images.len() as u64,
        images_active: images.iter().filter(|i| i.containers > 0).count() as u64,
        images_size: sizes.values().sum(),
        ..Default::default()
    };
    du.images_reclaimable = sizes
        .iter()
        .filter(|(d, _)| !used_by_active.contains(*d))
        .map(|(_, s)| s)
        .sum();
    for img in images {
        let distinct: BTreeSet<&Digest> = img.diff_ids.iter().collect();
        let mut u = ImageUsage {
            id: img.id.clone(),
            names: img.tags.iter().map(|t| familiar_tag(&t.repo, &t.tag)).collect(),
            created: img.created.clone(),
            containers: img.containers,
            size: 0,
            shared: 0,
            unique: 0,
        };
        for d in distinct {
            let s = sizes.get(d).copied().unwrap_or(0);
            u.size += s;
            if uses.get(d).copied().unwrap_or(0) > 1 {
                u.shared += s;
            } else {
                u.unique += s;
            }
        }
        du.per_image.push(u);
    }
    Ok(du)
}
