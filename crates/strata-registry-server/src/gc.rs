//! Garbage collection: mark every blob a manifest references, sweep the rest.
//!
//! Never swept: a blob younger than the grace period (a push in progress has
//! uploaded its layers but not yet its manifest), and an upload session that
//! received bytes more recently than `upload_max_age` (it is in flight).
//! With `delete_untagged`, manifests reachable from no tag (directly, through
//! an index, or as a referrer of a reachable manifest) are removed first.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use strata_oci::{Digest, Document};

use crate::error::Result;
use crate::registry::Registry;
use crate::storage::layout;

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub delete_untagged: bool,
    pub upload_max_age: Duration,
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            upload_max_age: Duration::from_secs(24 * 3600),
            grace: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub repositories: usize,
    pub manifests_deleted: usize,
    pub blobs_marked: usize,
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
    pub uploads_removed: usize,
    pub links_removed: usize,
    pub temp_removed: usize,
}

fn older_than(t: SystemTime, age: Duration) -> bool {
    t.elapsed().map(|e| e >= age).unwrap_or(false)
}

/// What a manifest points to: (blobs, child manifests, subject).
fn references(bytes: &[u8]) -> (Vec<Digest>, Vec<Digest>, Option<Digest>) {
    match Document::parse(bytes, None) {
        Ok(Document::Manifest(m)) => {
            let mut blobs = vec![m.config.digest];
            blobs.extend(m.layers.into_iter().map(|l| l.digest));
            (blobs, vec![], m.subject.map(|s| s.digest))
        }
        Ok(Document::Index(i)) => (
            vec![],
            i.manifests.into_iter().map(|m| m.digest).collect(),
            i.subject.map(|s| s.digest),
        ),
        Err(_) => (vec![], vec![], None),
    }
}

pub async fn run(reg: &Registry, opts: &GcOptions) -> Result<GcReport> {
    let d = &reg.driver;
    let mut report = GcReport::default();
    let mut marked: HashSet<Digest> = HashSet::new();
    let repos = reg.catalog().await?;
    report.repositories = repos.len();
    for repo in &repos {
        let revisions = reg.revisions(repo).await?;
        let mut parsed = Vec::new();
        for r in revisions {
            let bytes = d.get(&layout::blob(&r)).await?.unwrap_or_default();
            let refs = references(&bytes);
            parsed.push((r, refs));
        }
        let mut keep: HashSet<Digest> = parsed.iter().map(|(r, _)| r.clone()).collect();
        if opts.delete_untagged {
            let mut reachable: HashSet<Digest> = HashSet::new();
            for t in d.list_dir(&layout::tags(repo)).await? {
                if let Ok(Some(dg)) = reg.tag_digest(repo, &t).await {
                    reachable.insert(dg);
                }
            }
            loop {
                let before = reachable.len();
                for (r, (_, children, subject)) in &parsed {
                    if reachable.contains(r) {
                        reachable.extend(children.iter().cloned());
                    } else if subject.as_ref().is_some_and(|s| reachable.contains(s)) {
                        reachable.insert(r.clone());
                    }
                }
                if reachable.len() == before {
                    break;
                }
            }
            for (r, _) in &parsed {
                if !reachable.contains(r) {
                    report.manifests_deleted += 1;
                    if !opts.dry_run {
                        reg.remove_manifest(repo, r).await?;
                    }
                }
            }
            keep = reachable;
        }
        for (r, (blobs, children, _)) in parsed {
            if keep.contains(&r) {
                marked.insert(r);
                marked.extend(blobs);
                marked.extend(children);
            }
        }
    }
    report.blobs_marked = marked.len();

    for u in d.uploads().await? {
        if older_than(u.last_activity, opts.upload_max_age) {
            report.uploads_removed += 1;
            if !opts.dry_run {
                d.upload_remove(&u.id).await?;
            }
        }
    }

    if !opts.dry_run {
        report.temp_removed = d.purge_temp(opts.upload_max_age).await?;
    }

    let mut swept: HashSet<Digest> = HashSet::new();
    for (key, meta) in d.walk(layout::BLOBS).await? {
        let parts: Vec<&str> = key.split('/').collect();
        let Some(dg) = (parts.len() == 4)
            .then(|| layout::digest_from(parts[1], parts[3]))
            .flatten()
        else {
            continue;
        };
        if marked.contains(&dg) || !older_than(meta.modified, opts.grace) {
            continue;
        }
        report.blobs_deleted += 1;
        report.bytes_freed += meta.size;
        if !opts.dry_run {
            d.delete(&key).await?;
        }
        swept.insert(dg);
    }

    // Links to blobs that are gone.
    for repo in &repos {
        let base = format!("{}/_layers", layout::repo(repo));
        for (key, _) in d.walk(&base).await? {
            let rest = key.strip_prefix(&format!("{base}/")).unwrap_or("");
            let Some((alg, hex)) = rest.split_once('/') else {
                continue;
            };
            let Some(dg) = layout::digest_from(alg, hex) else {
                continue;
            };
            let gone = swept.contains(&dg) || (!opts.dry_run && d.stat(&layout::blob(&dg)).await?.is_none());
            if gone {
                report.links_removed += 1;
                if !opts.dry_run {
                    d.delete(&key).await?;
                }
            }
        }
    }
    Ok(report)
}
