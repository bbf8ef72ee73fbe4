//! The image store: content, snapshots and the index, with name resolution,
//! tagging, deletion and garbage collection.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use servin_api::{Digest, ImageRef};

use crate::content::ContentStore;
use crate::meta::{ImageRecord, Index, IndexFile};
use crate::snapshot::Snapshotter;
use crate::StoreError;

/// What deleting an image did, in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteItem {
    Untagged(String),
    Deleted(Digest),
}

#[derive(Debug)]
pub struct ImageStore {
    content: ContentStore,
    snapshots: Snapshotter,
    index_file: IndexFile,
    index: Mutex<Index>,
    /// Digests that operations in flight have written but not yet
    /// published (with a count per holder); garbage collection spares them.
    pins: Mutex<std::collections::HashMap<Digest, usize>>,
}

/// Keeps digests safe from garbage collection while it lives.
pub struct Pin<'a> {
    store: &'a ImageStore,
    digests: Vec<Digest>,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut pins = self.store.pins.lock().unwrap_or_else(|p| p.into_inner());
        for d in &self.digests {
            if let Some(n) = pins.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(d);
                }
            }
        }
    }
}

impl ImageStore {
    /// Opens the store under `data_root` (`content/`, `snapshots/`,
    /// `images/`), then removes anything a crash left unreferenced.
    pub fn open(data_root: &Path) -> Result<Self, StoreError> {
        let content = ContentStore::open(&data_root.join("content"))?;
        let snapshots = Snapshotter::open(&data_root.join("snapshots"))?;
        let index_file = IndexFile::new(&data_root.join("images"))?;
        let index = index_file.load()?;
        let store = Self {
            content,
            snapshots,
            index_file,
            index: Mutex::new(index),
            pins: Mutex::new(Default::default()),
        };
        {
            let index = store.lock();
            store.collect_garbage(&index)?;
        }
        Ok(store)
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the whole index.
    pub fn snapshot_index(&self) -> Index {
        self.lock().clone()
    }

    /// Every image with its tags (fully qualified), oldest index order.
    pub fn list(&self) -> Vec<(ImageRecord, Vec<String>)> {
        let index = self.lock();
        index
            .images
            .values()
            .map(|r| (r.clone(), index.tags_of(&r.id)))
            .collect()
    }

    /// Resolves what a user typed (ID, short ID, `name[:tag]`,
    /// `name@digest`) to an image, as Docker does.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let index = self.lock();
        resolve_in(&index, name).cloned()
    }

    /// The tags (fully qualified) of an image.
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        self.lock().tags_of(id)
    }

    /// The image's config blob, parsed.
    pub fn config(&self, id: &Digest) -> Result<serde_json::Value, StoreError> {
        let bytes = self.content.read(id)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::InvalidImage(format!("Image config {id} is not valid JSON: {e}"))
        })
    }

    /// Publishes an image whose blobs and snapshots are all in place, and
    /// points `tags` at it. Returns whether the image is new.
    pub fn commit_image(&self, record: ImageRecord, tags: &[ImageRef]) -> Result<bool, StoreError> {
        for layer in &record.layers {
            if !self.snapshots.has(&layer.diff_id) {
                return Err(StoreError::InvalidImage(format!(
                    "Layer {} of image {} is not unpacked",
                    layer.diff_id, record.id
                )));
            }
        }
        let mut index = self.lock();
        let mut next = index.clone();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let is_new = !next.images.contains_key(&record.id);
        let entry = next
            .images
            .entry(record.id.clone())
            .or_insert_with(|| record.clone());
        for rd in &record.repo_digests {
            if !entry.repo_digests.contains(rd) {
                entry.repo_digests.push(rd.clone());
            }
        }
        if !tags.is_empty() {
            entry.last_tag_time = Some(now);
        }
        for t in tags {
            next.tags.insert(t.to_string(), record.id.clone());
        }
        self.index_file.save(&next)?;
        *index = next;
        self.collect_garbage(&index)?;
        Ok(is_new)
    }

    /// Points `target` at the image `source` resolves to.
    pub fn tag(&self, source: &str, target: &ImageRef) -> Result<(), StoreError> {
        let mut index = self.lock();
        let id = resolve_in(&index, source)?.id.clone();
        let mut next = index.clone();
        next.tags.insert(target.to_string(), id.clone());
        if let Some(r) = next.images.get_mut(&id) {
            r.last_tag_time =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
        }
        self.index_file.save(&next)?;
        *index = next;
        self.collect_garbage(&index).map(drop)
    }

    /// Removes a name or an image, with Docker's `rmi` rules. `in_use`
    /// says whether a container uses an image (such images are kept).
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<Vec<DeleteItem>, StoreError> {
        let mut index = self.lock();
        let record = resolve_in(&index, name)?.clone();
        let mut next = index.clone();
        let mut items = Vec::new();
        let tags = next.tags_of(&record.id);
        let by_name = ImageRef::parse(name).ok().map(|r| r.with_default_tag());
        let named_tag = by_name
            .as_ref()
            .map(|r| r.to_string())
            .filter(|t| tags.contains(t));

        if let Some(tag) = &named_tag {
            let user = in_use(&record.id);
            if user.is_some() && !force && tags.len() == 1 {
                let container = user.unwrap_or_default();
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    &container[..container.len().min(12)],
                    record.id.short()
                )));
            }
            if tags.len() > 1 || user.is_some() {
                next.tags.remove(tag);
                items.push(DeleteItem::Untagged(familiar(tag)));
                self.index_file.save(&next)?;
                *index = next;
                return Ok(items);
            }
        } else if !force {
            let repos: BTreeSet<String> = tags
                .iter()
                .filter_map(|t| ImageRef::parse(t).ok().map(|r| r.repository()))
                .collect();
            if repos.len() > 1 {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    record.id.short()
                )));
            }
        }
        if let Some(container) = in_use(&record.id) {
            return Err(StoreError::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is being used by container {}",
                record.id.short(),
                &container[..container.len().min(12)]
            )));
        }
        for t in &tags {
            next.tags.remove(t);
            items.push(DeleteItem::Untagged(familiar(t)));
        }
        for rd in &record.repo_digests {
            items.push(DeleteItem::Untagged(familiar(rd)));
        }
        next.images.remove(&record.id);
        items.push(DeleteItem::Deleted(record.id.clone()));
        self.index_file.save(&next)?;
        *index = next;
        for layer in self.collect_garbage(&index)?.into_iter() {
            items.push(DeleteItem::Deleted(layer));
        }
        Ok(items)
    }

    /// Deletes images nobody names (or, with `all`, every image no container
    /// uses). Returns what was deleted and the bytes reclaimed.
    pub fn prune(
        &self,
        all: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<(Vec<DeleteItem>, u64), StoreError> {
        let mut index = self.lock();
        let mut next = index.clone();
        let mut items = Vec::new();
        let mut reclaimed = 0;
        let candidates: Vec<ImageRecord> = next
            .images
            .values()
            .filter(|r| in_use(&r.id).is_none())
            .filter(|r| all || (next.tags_of(&r.id).is_empty() && r.repo_digests.is_empty()))
            .cloned()
            .collect();
        for record in candidates {
            for t in next.tags_of(&record.id) {
                next.tags.remove(&t);
                items.push(DeleteItem::Untagged(familiar(&t)));
            }
            for rd in &record.repo_digests {
                items.push(DeleteItem::Untagged(familiar(rd)));
            }
            next.images.remove(&record.id);
            items.push(DeleteItem::Deleted(record.id.clone()));
        }
        if items.is_empty() {
            return Ok((items, 0));
        }
        self.index_file.save(&next)?;
        let before = self.disk_usage(&index);
        *index = next;
        for layer in self.collect_garbage(&index)? {
            items.push(DeleteItem::Deleted(layer));
        }
        reclaimed += before.saturating_sub(self.disk_usage(&index));
        Ok((items, reclaimed))
    }

    fn disk_usage(&self, index: &Index) -> u64 {
        let layers: BTreeSet<&Digest> = index
            .images
            .values()
            .flat_map(|r| r.layers.iter().map(|l| &l.diff_id))
            .collect();
        index
            .images
            .values()
            .flat_map(|r| r.layers.iter())
            .filter(|l| layers.contains(&l.diff_id))
            .map(|l| (&l.diff_id, l.unpacked_size))
            .collect::<std::collections::BTreeMap<_, _>>()
            .values()
            .sum()
    }

    /// Removes blobs and snapshots no image references. Returns the diff
    /// IDs of the snapshots removed. Must be called with the index locked,
    /// so that no image is being committed meanwhile.
    fn collect_garbage(&self, index: &Index) -> Result<Vec<Digest>, StoreError> {
        let mut blobs = BTreeSet::new();
        let mut diff_ids = BTreeSet::new();
        for r in index.images.values() {
            blobs.insert(r.id.clone());
            blobs.insert(r.manifest.clone());
            for l in &r.layers {
                blobs.insert(l.blob.clone());
                diff_ids.insert(l.diff_id.clone());
            }
        }
        let mut removed = Vec::new();
        for d in self.snapshots.list()? {
            if !diff_ids.contains(&d) && !self.is_pinned(&d) {
                self.snapshots.remove(&d)?;
                removed.push(d);
            }
        }
        for d in self.content.list()? {
            if !blobs.contains(&d) && !self.is_pinned(&d) {
                self.content.delete(&d)?;
            }
        }
        Ok(removed)
    }

    fn is_pinned(&self, digest: &Digest) -> bool {
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(digest)
    }

    /// Protects `digests` (blobs or diff IDs) from garbage collection until
    /// the returned guard is dropped.
    pub fn pin(&self, digests: impl IntoIterator<Item = Digest>) -> Pin<'_> {
        let digests: Vec<Digest> = digests.into_iter().collect();
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for d in &digests {
            *pins.entry(d.clone()).or_default() += 1;
        }
        Pin {
            store: self,
            digests,
        }
    }

    /// Removes whatever a failed operation left unreferenced and unpinned.
    pub fn discard_unreferenced(&self) -> Result<(), StoreError> {
        let index = self.lock();
        self.collect_garbage(&index).map(drop)
    }

    /// The unpacked size of a layer whose blob and snapshot are both held.
    pub fn layer_if_present(&self, blob: &Digest, diff_id: &Digest) -> Option<u64> {
        if !self.content.has(blob) || !self.snapshots.has(diff_id) {
            return None;
        }
        let index = self.lock();
        let known = index
            .images
            .values()
            .flat_map(|r| r.layers.iter())
            .find(|l| l.diff_id == *diff_id)
            .map(|l| l.unpacked_size);
        drop(index);
        Some(known.unwrap_or_else(|| dir_size(&self.snapshots.path(diff_id))))
    }
}

/// Bytes of regular-file content under `dir`, not following symlinks.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

fn familiar(full: &str) -> String {
    ImageRef::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// Docker's lookup order: a reference that names a tag or a repo digest,
/// then a full or abbreviated image ID.
fn resolve_in<'a>(index: &'a Index, name: &str) -> Result<&'a ImageRecord, StoreError> {
    if let Ok(r) = ImageRef::parse(name) {
        if let Some(d) = r.digest() {
            let wanted = format!("{}@{}", r.repository(), d);
            if let Some(rec) = index
                .images
                .values()
                .find(|rec| rec.repo_digests.contains(&wanted))
            {
                return Ok(rec);
            }
        } else {
            let full = r.with_default_tag().to_string();
            if let Some(id) = index.tags.get(&full) {
                if let Some(rec) = index.images.get(id) {
                    return Ok(rec);
                }
            }
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hex = hex.to_ascii_lowercase();
        let mut matches = index
            .images
            .values()
            .filter(|r| r.id.hex().starts_with(&hex));
        if let Some(first) = matches.next() {
            if matches.next().is_some() {
                return Err(StoreError::InvalidArgument(format!(
                    "ambiguous image ID {name}: more than one image matches"
                )));
            }
            return Ok(first);
        }
    }
    let shown = match ImageRef::parse(name) {
        Ok(r) if r.digest().is_none() => r.with_default_tag().familiar(),
        _ => name.to_string(),
    };
    Err(StoreError::ImageNotFound(shown))
}
