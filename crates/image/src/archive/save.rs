//! `docker save`: the named images as one archive, in Docker 25's layout.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use servin_api::{Digest, ImageRef};

use super::layout::{
    blob_path, oci_manifest, Descriptor, DescriptorPlatform, DockerManifestEntry, OciDocument,
};
use super::{invalid, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::manifest::{ImageConfigInfo, OCI_INDEX, OCI_MANIFEST};
use crate::meta::ImageRecord;
use crate::snapshot::{decompress, HashingReader};
use crate::store::ImageStore;
use crate::StoreError;

/// `docker save`: writes one tar holding the named images (as the user
/// typed them: `name:tag`, `name` for all its tags, IDs, `name@digest`) in
/// the layout Docker 25 writes: `oci-layout`, `index.json` (an entry per
/// tag, or one unnamed entry per untagged image), `blobs/sha256/` with
/// configs, OCI manifests and uncompressed layers, plus Docker's
/// `manifest.json` and `repositories`. Layers are streamed, never held in
/// memory; compressed ones are decompressed twice (see the module docs).
pub fn save(store: &ImageStore, names: &[String], writer: impl Write) -> Result<(), StoreError> {
    if names.is_empty() {
        return Err(StoreError::InvalidArgument(
            "No images to save: name at least one".into(),
        ));
    }
    // Everything that can fail on the store's side is checked before the first byte goes out.
    let plans = select_images(store, names)?
        .into_iter()
        .map(|(record, tags)| plan_image(store, record, tags))
        .collect::<Result<Vec<_>, _>>()?;

    let mut out = ArchiveWriter {
        tar: tar::Builder::new(writer),
        written: HashSet::new(),
    };
    out.directory("blobs/")?;
    out.directory("blobs/sha256/")?;
    out.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for plan in &plans {
        for layer in &plan.layers {
            out.layer(store, layer)?;
        }
        out.blob(&plan.id, &plan.config)?;
        out.blob(&plan.manifest_digest, &plan.manifest)?;
    }

    let mut index_entries = Vec::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for plan in &plans {
        let descriptor = |annotations| Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: plan.manifest_digest.to_string(),
            size: Some(plan.manifest.len() as u64),
            platform: Some(plan.platform.clone()),
            annotations,
        };
        if plan.tags.is_empty() {
            index_entries.push(descriptor(BTreeMap::new()));
        }
        for tag in &plan.tags {
            let tag_name = tag.tag().unwrap_or_default().to_string();
            index_entries.push(descriptor(BTreeMap::from([
                (ANNOTATION_IMAGE_NAME.to_string(), tag.to_string()),
                (ANNOTATION_REF_NAME.to_string(), tag_name.clone()),
            ])));
            repositories
                .entry(tag.familiar_repository())
                .or_default()
                .insert(tag_name, plan.id.hex().to_string());
        }
        manifest_json.push(DockerManifestEntry {
            config: blob_path(&plan.id),
            repo_tags: (!plan.tags.is_empty())
                .then(|| plan.tags.iter().map(ImageRef::familiar).collect()),
            layers: plan.layers.iter().map(|l| blob_path(&l.diff_id)).collect(),
        });
    }
    let index = OciDocument {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: Some(index_entries),
        ..Default::default()
    };
    out.file(
        "index.json",
        &serde_json::to_vec(&index).expect("an index serialises"),
    )?;
    out.file(
        "manifest.json",
        &serde_json::to_vec(&manifest_json).expect("a manifest serialises"),
    )?;
    if !repositories.is_empty() {
        out.file(
            "repositories",
            &serde_json::to_vec(&repositories).expect("a map serialises"),
        )?;
    }
    let mut writer = out.tar.into_inner().map_err(write_error)?;
    writer.flush().map_err(write_error)
}

/// What one saved image consists of, sizes included.
struct ImagePlan {
    id: Digest,
    config: Vec<u8>,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    platform: DescriptorPlatform,
    layers: Vec<LayerPlan>,
    tags: Vec<ImageRef>,
}

struct LayerPlan {
    blob: Digest,
    diff_id: Digest,
    /// Bytes of the uncompressed tar.
    size: u64,
}

/// Docker's rules for what `save` names: a tag is that tag; a repository
/// without tag is all its tags (or, if it has none, an ID prefix); an ID or
/// `name@digest` is the image untagged.
fn select_images(
    store: &ImageStore,
    names: &[String],
) -> Result<Vec<(ImageRecord, Vec<ImageRef>)>, StoreError> {
    let mut selected: Vec<(ImageRecord, Vec<ImageRef>)> = Vec::new();
    let mut add = |record: ImageRecord, tag: Option<ImageRef>| {
        let i = match selected.iter().position(|(r, _)| r.id == record.id) {
            Some(i) => i,
            None => {
                selected.push((record, Vec::new()));
                selected.len() - 1
            }
        };
        if let Some(t) = tag {
            if !selected[i].1.contains(&t) {
                selected[i].1.push(t);
            }
        }
    };
    for name in names {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let full_id = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        match ImageRef::parse(name) {
            Ok(r) if !full_id && r.tag().is_none() && r.digest().is_none() => {
                let index = store.snapshot_index();
                let repository = r.repository();
                let mut found = false;
                for (tag, id) in &index.tags {
                    let Ok(t) = ImageRef::parse(tag) else {
                        continue;
                    };
                    if t.repository() == repository {
                        if let Some(record) = index.images.get(id) {
                            add(record.clone(), Some(t));
                            found = true;
                        }
                    }
                }
                if !found {
                    add(store.resolve(name)?, None);
                }
            }
            Ok(r) if !full_id && r.tag().is_some() && r.digest().is_none() => {
                add(store.resolve(name)?, Some(r));
            }
            _ => add(store.resolve(name)?, None),
        }
    }
    Ok(selected)
}

fn plan_image(
    store: &ImageStore,
    record: ImageRecord,
    tags: Vec<ImageRef>,
) -> Result<ImagePlan, StoreError> {
    let config = store.content().read(&record.id)?;
    let info = ImageConfigInfo::parse(&config, &record.id)?;
    let mut layers = Vec::new();
    for l in &record.layers {
        let size = if l.blob == l.diff_id {
            store
                .content()
                .size(&l.blob)
                .ok_or_else(|| StoreError::MissingBlob(l.blob.clone()))?
        } else {
            uncompressed_size(store, &l.blob)?
        };
        layers.push(LayerPlan {
            blob: l.blob.clone(),
            diff_id: l.diff_id.clone(),
            size,
        });
    }
    let sizes: Vec<(Digest, u64)> = layers.iter().map(|l| (l.diff_id.clone(), l.size)).collect();
    let manifest = oci_manifest(&record.id, config.len() as u64, &sizes);
    Ok(ImagePlan {
        id: record.id,
        manifest_digest: Digest::of(&manifest),
        config,
        manifest,
        platform: DescriptorPlatform {
            architecture: info.architecture,
            os: info.os,
            variant: info.variant,
        },
        layers,
        tags,
    })
}

/// The first pass over a compressed layer: how long it is uncompressed.
fn uncompressed_size(store: &ImageStore, blob: &Digest) -> Result<u64, StoreError> {
    let path = store.content().path(blob);
    let file = store.content().open_blob(blob)?;
    let mut source = decompress(file).map_err(|e| StoreError::io("decompress", &path, e))?;
    io::copy(&mut source, &mut io::sink()).map_err(|e| StoreError::io("decompress", &path, e))
}

fn write_error(e: io::Error) -> StoreError {
    StoreError::io("write", Path::new("the image archive"), e)
}

/// The tar being saved; each blob goes in once.
struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    written: HashSet<Digest>,
}

impl<W: Write> ArchiveWriter<W> {
    fn header(path: &str, size: u64, kind: tar::EntryType) -> Result<tar::Header, StoreError> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(write_error)?;
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        // A fixed time makes the archive of the same images the same bytes.
        h.set_mtime(0);
        h.set_cksum();
        Ok(h)
    }

    fn directory(&mut self, path: &str) -> Result<(), StoreError> {
        let h = Self::header(path, 0, tar::EntryType::Directory)?;
        self.tar.append(&h, io::empty()).map_err(write_error)
    }

    fn file(&mut self, path: &str, data: &[u8]) -> Result<(), StoreError> {
        let h = Self::header(path, data.len() as u64, tar::EntryType::Regular)?;
        self.tar.append(&h, data).map_err(write_error)
    }

    fn blob(&mut self, digest: &Digest, data: &[u8]) -> Result<(), StoreError> {
        if self.written.insert(digest.clone()) {
            self.file(&blob_path(digest), data)?;
        }
        Ok(())
    }

    /// Streams a layer in uncompressed, checking its size and diff ID.
    fn layer(&mut self, store: &ImageStore, layer: &LayerPlan) -> Result<(), StoreError> {
        if !self.written.insert(layer.diff_id.clone()) {
            return Ok(());
        }
        let path = store.content().path(&layer.blob);
        let file = store.content().open_blob(&layer.blob)?;
        let source: Box<dyn Read> = if layer.blob == layer.diff_id {
            Box::new(file)
        } else {
            decompress(file).map_err(|e| StoreError::io("decompress", &path, e))?
        };
        let mut reader = CheckedReader {
            inner: HashingReader::new(source),
            layer,
            path,
            read: 0,
            failure: None,
        };
        let h = Self::header(
            &blob_path(&layer.diff_id),
            layer.size,
            tar::EntryType::Regular,
        )?;
        self.tar
            .append(&h, &mut reader)
            .map_err(|e| reader.failure.take().unwrap_or_else(|| write_error(e)))
    }
}

/// Reads a stored layer for the archive and fails, rather than write a
/// corrupt tar, when its size or digest is not what the header promised.
struct CheckedReader<'a> {
    inner: HashingReader<Box<dyn Read>>,
    layer: &'a LayerPlan,
    path: PathBuf,
    read: u64,
    failure: Option<StoreError>,
}

impl Read for CheckedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let shown = io::Error::new(e.kind(), e.to_string());
                self.failure = Some(StoreError::io("read", &self.path, e));
                return Err(shown);
            }
        };
        self.read += n as u64;
        let wrong = if self.read > self.layer.size || (n == 0 && self.read < self.layer.size) {
            Some(format!(
                "it is {} bytes, not {}",
                self.read, self.layer.size
            ))
        } else if n == 0 && self.inner.digest() != self.layer.diff_id {
            Some(format!("its digest is {}", self.inner.digest()))
        } else {
            None
        };
        if let Some(why) = wrong {
            let msg = format!(
                "Layer {} in the content store is corrupt: {why}",
                self.layer.diff_id
            );
            self.failure = Some(invalid(msg.clone()));
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        Ok(n)
    }
}
