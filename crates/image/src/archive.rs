//! Image archives: `docker load`, `docker save` and `docker import`.
//!
//! Load reads the archive once, as a stream. Manifests usually come last in
//! the tar, so every file is first staged on disk while its digest is
//! computed: in the content store's ingest directory, on the data root's
//! filesystem (layers can be large) and emptied whenever the store opens, so
//! a crash leaves nothing behind. Then the manifests are read, every digest
//! checked, and every layer unpacked into a pending snapshot while it is
//! copied, uncompressed, into an uncommitted blob. Only when all of that
//! succeeded are blobs, snapshots and images published, image by image; a
//! failure before that leaves the store exactly as it was.
//!
//! Save writes the layout Docker 25 writes, which Docker 20.10's `load`
//! (through `manifest.json`) and OCI tools (through `index.json`) both read.
//! Layers go in uncompressed. The size of a layer stored compressed is learnt
//! by a first decompression pass that only counts bytes, rather than from a
//! temporary file: it costs CPU, not disk space, and the second pass checks
//! size and diff ID as it streams.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use servin_api::{Digest, ImageRef};
use sha2::{Digest as _, Sha256};

use crate::content::BlobWriter;
use crate::manifest::{
    ImageConfigInfo, DOCKER_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use crate::meta::{ImageRecord, LayerRecord};
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::snapshot::{decompress, HashingReader, PendingSnapshot};
use crate::store::ImageStore;
use crate::StoreError;

/// Annotation naming a manifest in an OCI layout (Docker 25 puts the tag alone there).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and Docker 25 put the full image name in.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation buildx puts on attestation manifests, which are not images.
const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Largest JSON document (manifest, index, config) read from an archive.
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// Symbolic links followed, at most, to find a file in an archive.
const MAX_LINK_HOPS: usize = 16;
/// Image indexes nested in an OCI layout, at most.
const MAX_INDEX_DEPTH: usize = 4;

/// An image `load` published, with the names it attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    pub tags: Vec<ImageRef>,
}

/// `docker load`: reads a docker-archive (`manifest.json`, layers as
/// `<id>/layer.tar` or `blobs/sha256/<hex>`) or an OCI image layout tar
/// (`index.json`, `blobs/sha256/…`), possibly gzip- or zstd-compressed as a
/// whole, and publishes every image in it. When both manifests are present
/// (Docker 25's layout) `manifest.json` is used, as Docker does.
///
/// In an OCI layout, names come from the `io.containerd.image.name`
/// annotation, else from `org.opencontainers.image.ref.name` when that is a
/// whole reference (`name:tag`): a bare tag names no repository, so such an
/// image loads untagged. An image index picks the host's platform.
pub fn load(
    store: &ImageStore,
    reader: impl Read,
    progress: &ProgressSink,
) -> Result<Vec<LoadedImage>, StoreError> {
    let mut staging = Staging::new(store)?;
    staging.ingest_archive(reader)?;
    let images = if staging.find("manifest.json").is_some() {
        docker_archive_images(&staging)?
    } else if staging.find("index.json").is_some() {
        oci_layout_images(&staging)?
    } else {
        return Err(invalid(
            "The archive has neither manifest.json nor index.json: it is not an image archive",
        ));
    };
    let images = merge_by_id(images);
    // A layer found already held must still be there when the image is published.
    let _pin = store.pin(
        images
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| l.diff_id.clone()))
            .collect::<Vec<_>>(),
    );

    let mut layers: HashMap<Digest, PreparedLayer> = HashMap::new();
    for image in &images {
        for layer in &image.layers {
            if layers.contains_key(&layer.diff_id) {
                continue;
            }
            let prepared = prepare_layer(store, &layer.file, &layer.diff_id, &layer.label)?;
            let size = prepared.record.blob_size;
            progress.bytes(layer.diff_id.short(), "Loading layer", size, Some(size));
            layers.insert(layer.diff_id.clone(), prepared);
        }
    }

    let mut loaded = Vec::new();
    for image in images {
        for tag in &image.tags {
            if let Ok(previous) = store.resolve(&tag.to_string()) {
                if previous.id != image.id {
                    progress.status(format!(
                        "The image {} already exists, renaming the old one with ID {} to empty string",
                        tag.familiar(),
                        previous.id
                    ));
                }
            }
        }
        let diff_ids: Vec<Digest> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
        let id = publish(store, &image.config, &diff_ids, &mut layers, &image.tags)?;
        if image.tags.is_empty() {
            progress.status(format!("Loaded image ID: {id}"));
        }
        for tag in &image.tags {
            progress.status(format!("Loaded image: {}", tag.familiar()));
        }
        loaded.push(LoadedImage {
            id,
            tags: image.tags,
        });
    }
    Ok(loaded)
}

/// An image found in an archive, checked but not yet stored.
struct ArchiveImage {
    id: Digest,
    config: Vec<u8>,
    layers: Vec<ArchiveLayer>,
    tags: Vec<ImageRef>,
}

struct ArchiveLayer {
    /// How the archive names the layer, for messages.
    label: String,
    file: Staged,
    diff_id: Digest,
}

/// `manifest.json` of a docker-archive, one entry per image.
#[derive(Debug, Serialize, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// An OCI descriptor as read from or written to an archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DescriptorPlatform {
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

/// An OCI image manifest or image index: which one is told by the fields present.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDocument {
    #[serde(default)]
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifests: Option<Vec<Descriptor>>,
}

fn docker_archive_images(staging: &Staging) -> Result<Vec<ArchiveImage>, StoreError> {
    let entries: Vec<DockerManifestEntry> =
        staging.parse_json("manifest.json", "image manifest list")?;
    if entries.is_empty() {
        return Err(invalid("Archive entry manifest.json lists no images"));
    }
    let mut images = Vec::new();
    for entry in entries {
        let config_file = staging.named("manifest.json", "config", &entry.config)?;
        let config = staging.read_small(config_file, &entry.config)?;
        let id = config_file.digest.clone();
        let info = ImageConfigInfo::parse(&config, &id)?;
        if entry.layers.len() != info.diff_ids.len() {
            return Err(invalid(format!(
                "Image {} in the archive is invalid: manifest.json lists {} layers but its config has {} diff IDs",
                entry.config,
                entry.layers.len(),
                info.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(info.diff_ids) {
            layers.push(ArchiveLayer {
                label: path.clone(),
                file: staging.named("manifest.json", "layer", path)?.clone(),
                diff_id,
            });
        }
        let tags = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| parse_tag(t, "manifest.json"))
            .collect::<Result<_, _>>()?;
        images.push(ArchiveImage {
            id,
            config,
            layers,
            tags,
        });
    }
    Ok(images)
}

fn parse_tag(name: &str, source: &str) -> Result<ImageRef, StoreError> {
    let r = ImageRef::parse(name).map_err(|e| {
        invalid(format!(
            "Archive entry {source} has an invalid image name {name:?}: {e}"
        ))
    })?;
    if r.tag().is_none() || r.digest().is_some() {
        return Err(invalid(format!(
            "Archive entry {source} has an invalid tag {name:?}: expected name:tag"
        )));
    }
    Ok(r)
}

fn oci_layout_images(staging: &Staging) -> Result<Vec<ArchiveImage>, StoreError> {
    if staging.find("oci-layout").is_some() {
        let layout: Value = staging.parse_json("oci-layout", "OCI layout marker")?;
        if layout
            .get("imageLayoutVersion")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err(invalid(
                "Archive entry oci-layout has no imageLayoutVersion",
            ));
        }
    }
    let index: OciDocument = staging.parse_json("index.json", "OCI image index")?;
    let mut images = Vec::new();
    for descriptor in index.manifests.unwrap_or_default() {
        if descriptor
            .annotations
            .contains_key(ANNOTATION_REFERENCE_TYPE)
        {
            continue;
        }
        let tags = oci_names(&descriptor.annotations)?;
        let (manifest_digest, manifest) =
            resolve_manifest(staging, &descriptor, "Archive entry index.json", 0)?;
        let referrer = format!("Manifest {manifest_digest} in the archive");
        let config_descriptor = manifest
            .config
            .as_ref()
            .ok_or_else(|| invalid(format!("{referrer} has no config")))?;
        let config_file = staging.blob(config_descriptor, &referrer)?;
        let id = config_file.digest.clone();
        let config = staging.read_small(config_file, &blob_path(&id))?;
        let info = ImageConfigInfo::parse(&config, &id)?;
        let descriptors = manifest.layers.unwrap_or_default();
        if descriptors.len() != info.diff_ids.len() {
            return Err(invalid(format!(
                "{referrer} lists {} layers but its config {id} has {} diff IDs",
                descriptors.len(),
                info.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (d, diff_id) in descriptors.iter().zip(info.diff_ids) {
            let file = staging.blob(d, &referrer)?.clone();
            layers.push(ArchiveLayer {
                label: blob_path(&file.digest),
                file,
                diff_id,
            });
        }
        images.push(ArchiveImage {
            id,
            config,
            layers,
            tags,
        });
    }
    if images.is_empty() {
        return Err(invalid("Archive entry index.json lists no images"));
    }
    Ok(images)
}

/// The names an OCI layout gives a manifest (see [`load`]).
fn oci_names(annotations: &BTreeMap<String, String>) -> Result<Vec<ImageRef>, StoreError> {
    let name = match (
        annotations.get(ANNOTATION_IMAGE_NAME),
        annotations.get(ANNOTATION_REF_NAME),
    ) {
        (Some(full), _) => full,
        (None, Some(r)) if r.contains([':', '/']) => r,
        _ => return Ok(Vec::new()),
    };
    let r = ImageRef::parse(name).map_err(|e| {
        invalid(format!(
            "Archive entry index.json has an invalid image name {name:?}: {e}"
        ))
    })?;
    Ok(if r.digest().is_none() {
        vec![r.with_default_tag()]
    } else {
        Vec::new()
    })
}

/// Follows a descriptor from `index.json` down to an image manifest,
/// choosing the host's platform in image indexes.
fn resolve_manifest(
    staging: &Staging,
    descriptor: &Descriptor,
    referrer: &str,
    depth: usize,
) -> Result<(Digest, OciDocument), StoreError> {
    let file = staging.blob(descriptor, referrer)?;
    let path = blob_path(&file.digest);
    if depth > MAX_INDEX_DEPTH {
        return Err(invalid(format!(
            "Archive entry {path} is nested too deep in image indexes"
        )));
    }
    let doc: OciDocument = parse_small(staging, file, &path, "image manifest")?;
    let is_index = descriptor.media_type == OCI_INDEX
        || descriptor.media_type == DOCKER_LIST
        || (doc.config.is_none() && doc.manifests.is_some());
    if !is_index {
        return Ok((file.digest.clone(), doc));
    }
    let candidates: Vec<&Descriptor> = doc
        .manifests
        .iter()
        .flatten()
        .filter(|m| !m.annotations.contains_key(ANNOTATION_REFERENCE_TYPE))
        .collect();
    let host = Platform::host();
    let chosen = candidates
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| host.matches(&p.os, &p.architecture, p.variant.as_deref()))
        })
        .or_else(|| candidates.first().filter(|_| candidates.len() == 1))
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "Image index {path} in the archive has no manifest for {host}"
            ))
        })?;
    resolve_manifest(
        staging,
        chosen,
        &format!("Image index {path} in the archive"),
        depth + 1,
    )
}

/// Several manifests (one per tag, in an OCI layout) may name one image.
fn merge_by_id(images: Vec<ArchiveImage>) -> Vec<ArchiveImage> {
    let mut merged: Vec<ArchiveImage> = Vec::new();
    for image in images {
        match merged.iter_mut().find(|m| m.id == image.id) {
            Some(m) => {
                for t in image.tags {
                    if !m.tags.contains(&t) {
                        m.tags.push(t);
                    }
                }
            }
            None => merged.push(image),
        }
    }
    merged
}

/// A layer checked and unpacked, waiting to be published.
struct PreparedLayer {
    record: LayerRecord,
    blob: Option<BlobWriter>,
    snapshot: Option<PendingSnapshot>,
}

/// Unpacks a staged layer (compressed or not) into a pending snapshot and
/// copies it, uncompressed, into an uncommitted blob whose digest is the
/// diff ID; both are checked. A layer the store already holds is only checked.
fn prepare_layer(
    store: &ImageStore,
    file: &Staged,
    diff_id: &Digest,
    label: &str,
) -> Result<PreparedLayer, StoreError> {
    let record = |blob_size, unpacked_size| LayerRecord {
        blob: diff_id.clone(),
        media_type: OCI_LAYER.to_string(),
        blob_size,
        diff_id: diff_id.clone(),
        unpacked_size,
    };
    if let Some(unpacked) = store.layer_if_present(diff_id, diff_id) {
        if file.digest != *diff_id {
            let mut hashing = HashingReader::new(open_decompressed(file, label)?);
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| read_error(label, e))?;
            if hashing.digest() != *diff_id {
                return Err(invalid(format!(
                    "Layer {label} does not match its diff ID: expected {diff_id}, got {}",
                    hashing.digest()
                )));
            }
        }
        let size = store.content().size(diff_id).unwrap_or(file.size);
        return Ok(PreparedLayer {
            record: record(size, unpacked),
            blob: None,
            snapshot: None,
        });
    }
    let mut writer = store.content().writer()?;
    let mut tee = Tee {
        inner: open_decompressed(file, label)?,
        out: &mut writer,
    };
    let (snapshot, unpacked) = store.snapshots().unpack(diff_id, &mut tee, label)?;
    io::copy(&mut tee, &mut io::sink()).map_err(|e| read_error(label, e))?;
    Ok(PreparedLayer {
        record: record(writer.written(), unpacked),
        blob: Some(writer),
        snapshot: Some(snapshot),
    })
}

fn open_decompressed(file: &Staged, label: &str) -> Result<Box<dyn Read>, StoreError> {
    let f = File::open(&file.path).map_err(|e| StoreError::io("open", &file.path, e))?;
    decompress(f).map_err(|e| read_error(label, e))
}

fn read_error(label: &str, e: io::Error) -> StoreError {
    invalid(format!("Failed to read layer {label}: {e}"))
}

/// Publishes one image whose layers are prepared: blobs and snapshots
/// first, then config and manifest, then the index entry and its tags.
fn publish(
    store: &ImageStore,
    config: &[u8],
    diff_ids: &[Digest],
    layers: &mut HashMap<Digest, PreparedLayer>,
    tags: &[ImageRef],
) -> Result<Digest, StoreError> {
    let mut records = Vec::new();
    for diff_id in diff_ids {
        let prepared = layers
            .get(diff_id)
            .ok_or_else(|| StoreError::MissingBlob(diff_id.clone()))?;
        records.push(prepared.record.clone());
    }
    let id = Digest::of(config);
    let sizes: Vec<(Digest, u64)> = records
        .iter()
        .map(|l| (l.diff_id.clone(), l.blob_size))
        .collect();
    let manifest_bytes = oci_manifest(&id, config.len() as u64, &sizes);
    let manifest = Digest::of(&manifest_bytes);
    // From the first blob published until the index names them, a concurrent
    // commit's garbage collection must not take what this image is made of.
    let _pin = store.pin(
        diff_ids
            .iter()
            .cloned()
            .chain([id.clone(), manifest.clone()]),
    );
    for diff_id in diff_ids {
        if let Some(prepared) = layers.get_mut(diff_id) {
            if let Some(blob) = prepared.blob.take() {
                blob.commit(Some(diff_id))?;
            }
            if let Some(snapshot) = prepared.snapshot.take() {
                snapshot.commit()?;
            }
        }
    }
    store.content().put(config)?;
    store.content().put(&manifest_bytes)?;
    let record = ImageRecord {
        id: id.clone(),
        manifest,
        manifest_media_type: OCI_MANIFEST.to_string(),
        layers: records,
        repo_digests: Vec::new(),
        last_tag_time: None,
    };
    store.commit_image(record, tags)?;
    Ok(id)
}

/// The OCI manifest of an image whose layers are uncompressed tars, given as
/// (diff ID, size). Deterministic, so that save and load agree on it.
fn oci_manifest(config: &Digest, config_size: u64, layers: &[(Digest, u64)]) -> Vec<u8> {
    let descriptor = |media_type: &str, digest: &Digest, size: u64| Descriptor {
        media_type: media_type.to_string(),
        digest: digest.to_string(),
        size: Some(size),
        platform: None,
        annotations: BTreeMap::new(),
    };
    let doc = OciDocument {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Some(descriptor(OCI_CONFIG, config, config_size)),
        layers: Some(
            layers
                .iter()
                .map(|(d, s)| descriptor(OCI_LAYER, d, *s))
                .collect(),
        ),
        manifests: None,
    };
    serde_json::to_vec(&doc).expect("a manifest serialises")
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidImage(msg.into())
}

/// A file of the archive, staged on disk.
#[derive(Debug, Clone)]
struct Staged {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// The files of an archive being loaded, by their path in the archive.
/// Dropped, it removes what it staged.
struct Staging {
    dir: PathBuf,
    files: BTreeMap<String, Staged>,
    /// Symbolic and hard links: path → the path they point at.
    links: BTreeMap<String, String>,
    next: u64,
}

impl Staging {
    fn new(store: &ImageStore) -> Result<Self, StoreError> {
        // `content/blobs/sha256/<hex>` → `content/ingest`, the content store's scratch space.
        let blob = store.content().path(&Digest::of(b""));
        let ingest = blob
            .ancestors()
            .nth(3)
            .map(|root| root.join("ingest"))
            .ok_or_else(|| StoreError::io("locate", &blob, io::ErrorKind::NotFound.into()))?;
        let dir = ingest.join(format!("archive-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        Ok(Self {
            dir,
            files: BTreeMap::new(),
            links: BTreeMap::new(),
            next: 0,
        })
    }

    fn ingest_archive(&mut self, reader: impl Read) -> Result<(), StoreError> {
        let unreadable = |e: io::Error| invalid(format!("Failed to read the archive: {e}"));
        let input = decompress(reader).map_err(unreadable)?;
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(unreadable)? {
            let mut entry = entry.map_err(unreadable)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = archive_path(&raw).ok_or_else(|| {
                invalid(format!(
                    "Archive entry {raw:?} is not a relative path inside the archive"
                ))
            })?;
            let kind = entry.header().entry_type();
            if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
                if path.is_empty() {
                    return Err(invalid(format!(
                        "Archive entry {raw:?} is a file without a name"
                    )));
                }
                let staged = self.stage(&mut entry, &format!("archive entry {raw}"))?;
                if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                    if let Ok(named) = format!("sha256:{hex}").parse::<Digest>() {
                        if named != staged.digest {
                            return Err(invalid(format!(
                                "Archive entry {path} does not match its digest: got {}",
                                staged.digest
                            )));
                        }
                    }
                }
                self.links.remove(&path);
                self.files.insert(path, staged);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                // A hard link names a path from the archive's root, a symbolic link one from its own directory.
                let base = if kind.is_symlink() {
                    path.rsplit_once('/').map_or("", |(dir, _)| dir)
                } else {
                    ""
                };
                let resolved = resolve_link(base, &target).ok_or_else(|| {
                    invalid(format!(
                        "Archive entry {raw:?} links to {target:?}, which is outside the archive"
                    ))
                })?;
                self.files.remove(&path);
                self.links.insert(path, resolved);
            }
            // Directories are implied by their files; devices, FIFOs and
            // such hold nothing an image archive needs.
        }
        Ok(())
    }

    /// Copies a stream (`what`, for messages) into a new staged file, hashing it.
    fn stage(&mut self, mut reader: impl Read, what: &str) -> Result<Staged, StoreError> {
        let path = self.dir.join(self.next.to_string());
        self.next += 1;
        let file = File::create(&path).map_err(|e| StoreError::io("create", &path, e))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(invalid(format!("Failed to read {what}: {e}"))),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| StoreError::io("write", &path, e))?;
            size += n as u64;
        }
        out.flush().map_err(|e| StoreError::io("write", &path, e))?;
        Ok(Staged {
            path,
            digest: Digest::from_sha256(hasher.finalize().into()),
            size,
        })
    }

    /// The file at `path` in the archive, following links.
    fn find(&self, path: &str) -> Option<&Staged> {
        let mut current = path.to_string();
        for _ in 0..MAX_LINK_HOPS {
            if let Some(f) = self.files.get(&current) {
                return Some(f);
            }
            // Substitute the longest leading part of the path that is a link.
            let parts: Vec<&str> = current.split('/').collect();
            let (i, target) = (1..=parts.len())
                .rev()
                .find_map(|i| self.links.get(&parts[..i].join("/")).map(|t| (i, t)))?;
            let rest = parts[i..].join("/");
            current = match (target.is_empty(), rest.is_empty()) {
                (_, true) => target.clone(),
                (true, false) => rest,
                (false, false) => format!("{target}/{rest}"),
            };
        }
        None
    }

    /// The file a manifest names by path.
    fn named(&self, source: &str, what: &str, path: &str) -> Result<&Staged, StoreError> {
        let clean = archive_path(path).ok_or_else(|| {
            invalid(format!(
                "Archive entry {source} names {what} {path:?}, which is not a relative path inside the archive"
            ))
        })?;
        self.find(&clean).ok_or_else(|| {
            invalid(format!(
                "Archive entry {source} names {what} {path:?}, which the archive does not contain"
            ))
        })
    }

    /// The blob a descriptor names, checked against the descriptor.
    fn blob(&self, d: &Descriptor, referrer: &str) -> Result<&Staged, StoreError> {
        let digest: Digest = d.digest.parse().map_err(|_| {
            invalid(format!(
                "{referrer} names blob {:?}, which is not a sha256 digest",
                d.digest
            ))
        })?;
        let path = blob_path(&digest);
        let Some(file) = self.find(&path) else {
            if d.media_type.contains("foreign") || d.media_type.contains("nondistributable") {
                return Err(StoreError::Unsupported(format!(
                    "{referrer} names foreign layer {digest} ({}), which the archive does not contain and this engine does not download",
                    d.media_type
                )));
            }
            return Err(invalid(format!(
                "{referrer} names blob {digest}, which the archive does not contain"
            )));
        };
        if file.digest != digest {
            return Err(invalid(format!(
                "Archive entry {path} does not match its digest: got {}",
                file.digest
            )));
        }
        if let Some(size) = d.size.filter(|s| *s != file.size) {
            return Err(invalid(format!(
                "Archive entry {path} is {} bytes but {referrer} says {size}",
                file.size
            )));
        }
        Ok(file)
    }

    fn read_small(&self, file: &Staged, name: &str) -> Result<Vec<u8>, StoreError> {
        if file.size > MAX_JSON {
            return Err(invalid(format!(
                "Archive entry {name} is too large for a JSON document ({} bytes)",
                file.size
            )));
        }
        fs::read(&file.path).map_err(|e| StoreError::io("read", &file.path, e))
    }

    fn parse_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<T, StoreError> {
        let file = self
            .find(name)
            .ok_or_else(|| invalid(format!("The archive has no {name}")))?;
        parse_small(self, file, name, what)
    }
}

fn parse_small<T: serde::de::DeserializeOwned>(
    staging: &Staging,
    file: &Staged,
    name: &str,
    what: &str,
) -> Result<T, StoreError> {
    let raw = staging.read_small(file, name)?;
    serde_json::from_slice(&raw)
        .map_err(|e| invalid(format!("Archive entry {name} is not a valid {what}: {e}")))
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A member path made canonical (`./a//b` → `a/b`); `None` when it is
/// absolute or climbs with `..`.
fn archive_path(raw: &str) -> Option<String> {
    if raw.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Where a link in directory `base` pointing at `target` leads; `None` when
/// that is outside the archive.
fn resolve_link(base: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Copies everything read into a writer (the blob being ingested).
struct Tee<'a, R, W> {
    inner: R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

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

/// Options of `docker import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The name to give the image (`:latest` when it has no tag).
    pub tag: Option<ImageRef>,
    /// Dockerfile instructions to apply to the config (`docker import -c`).
    pub changes: Vec<String>,
    /// The history comment. Docker's API defaults it to `Imported from <source>`;
    /// callers that want that pass it, `None` leaves the comment out.
    pub message: Option<String>,
    /// The image's platform; the host's when `None`.
    pub platform: Option<Platform>,
}

/// `docker import`: a tar (plain, gzip or zstd) of a root filesystem
/// becomes a one-layer image. Returns the image ID.
pub fn import(
    store: &ImageStore,
    reader: impl Read,
    opts: &ImportOptions,
) -> Result<Digest, StoreError> {
    let mut run_config = Map::new();
    apply_changes(&mut run_config, &opts.changes)?;
    let tags: Vec<ImageRef> = match &opts.tag {
        Some(t) if t.digest().is_some() => {
            return Err(StoreError::InvalidArgument(format!(
                "Cannot import as {}: an image can be tagged, not named by digest",
                t.familiar()
            )))
        }
        Some(t) => vec![t.clone().with_default_tag()],
        None => Vec::new(),
    };

    let mut staging = Staging::new(store)?;
    let input = decompress(reader)
        .map_err(|e| invalid(format!("Failed to read the imported archive: {e}")))?;
    let staged = staging.stage(input, "the imported archive")?;
    let diff_id = staged.digest.clone();
    let _pin = store.pin([diff_id.clone()]);
    let mut layers = HashMap::from([(
        diff_id.clone(),
        prepare_layer(store, &staged, &diff_id, &diff_id.to_string())?,
    )]);

    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut history = json!({ "created": created });
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": run_config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    if let Some(m) = &opts.message {
        config["comment"] = json!(m);
        history["comment"] = json!(m);
    }
    config["history"] = json!([history]);
    let bytes = serde_json::to_vec(&config).expect("a config serialises");
    publish(store, &bytes, &[diff_id], &mut layers, &tags)
}

/// Applies Dockerfile instructions, as `docker import -c` and
/// `docker commit -c` take them (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
/// ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), to an image's runtime config
/// (the `config` object of an image config). `$VAR` references expand from
/// the config's environment, as in a Dockerfile.
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), StoreError> {
    let mut cmd_set = false;
    for change in changes {
        let line = change.trim();
        let (instruction, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i.to_ascii_uppercase(), r.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        let bad =
            |why: String| StoreError::InvalidArgument(format!("Invalid change {line:?}: {why}"));
        if instruction.is_empty() {
            return Err(StoreError::InvalidArgument(
                "Invalid change: it is empty".into(),
            ));
        }
        let known = [
            "CMD",
            "ENTRYPOINT",
            "ENV",
            "EXPOSE",
            "LABEL",
            "ONBUILD",
            "STOPSIGNAL",
            "USER",
            "VOLUME",
            "WORKDIR",
        ];
        if !known.contains(&instruction.as_str()) {
            return Err(StoreError::InvalidArgument(format!(
                "{instruction} is not a valid change command"
            )));
        }
        if rest.is_empty() {
            return Err(bad(format!("{instruction} requires at least one argument")));
        }
        let env = env_of(config);
        let word = |s: &str| expand(s, &env, false).map(|w| w.concat()).map_err(&bad);
        match instruction.as_str() {
            "CMD" => {
                config.insert("Cmd".into(), json!(command_form(rest)));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), json!(command_form(rest)));
                // As in a Dockerfile: a new entrypoint drops an inherited command.
                if !cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            "ENV" => {
                for (k, v) in key_values(rest, &env).map_err(&bad)? {
                    set_env(config, &k, &v);
                }
            }
            "LABEL" => {
                let labels = object_field(config, "Labels");
                for (k, v) in key_values(rest, &env).map_err(&bad)? {
                    labels.insert(k, json!(v));
                }
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for w in expand(rest, &env, true).map_err(&bad)? {
                    ports.extend(
                        exposed_ports(&w).ok_or_else(|| bad(format!("invalid port {w:?}")))?,
                    );
                }
                let exposed = object_field(config, "ExposedPorts");
                for p in ports {
                    exposed.insert(p, json!({}));
                }
            }
            "USER" => {
                config.insert("User".into(), json!(word(rest)?));
            }
            "WORKDIR" => {
                let dir = word(rest)?;
                let current = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{current}/{dir}")
                };
                config.insert("WorkingDir".into(), json!(clean_path(&joined)));
            }
            "VOLUME" => {
                let paths = match json_array(rest) {
                    Some(items) => items
                        .iter()
                        .map(|s| word(s))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => expand(rest, &env, true).map_err(&bad)?,
                };
                if paths.iter().any(|p| p.trim().is_empty()) {
                    return Err(bad("VOLUME specified can not be an empty string".into()));
                }
                let volumes = object_field(config, "Volumes");
                for p in paths {
                    volumes.insert(p, json!({}));
                }
            }
            "STOPSIGNAL" => {
                let signal = word(rest)?;
                if !valid_signal(&signal) {
                    return Err(bad(format!("invalid signal {signal:?}")));
                }
                config.insert("StopSignal".into(), json!(signal));
            }
            "ONBUILD" => {
                let trigger = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(bad(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )));
                }
                match config.get_mut("OnBuild").and_then(Value::as_array_mut) {
                    Some(list) => list.push(json!(rest)),
                    None => {
                        config.insert("OnBuild".into(), json!([rest]));
                    }
                }
            }
            _ => unreachable!("instruction checked against the known list"),
        }
    }
    Ok(())
}

/// A JSON array of strings, when `s` is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    s.starts_with('[')
        .then(|| serde_json::from_str(s).ok())
        .flatten()
}

/// Exec form (a JSON array) or shell form, as CMD and ENTRYPOINT take them.
fn command_form(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

fn env_of(config: &Map<String, Value>) -> BTreeMap<String, String> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set_env(config: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = json!(format!("{key}={value}"));
    let list = config.entry("Env").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let items = list.as_array_mut().expect("made an array above");
    match items.iter_mut().find(|v| {
        v.as_str()
            .and_then(|s| s.split_once('='))
            .is_some_and(|(k, _)| k == key)
    }) {
        Some(existing) => *existing = entry,
        None => items.push(entry),
    }
}

fn object_field<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = config.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

/// `KEY=VALUE …` pairs (ENV, LABEL), or the older `KEY VALUE` form.
fn key_values(rest: &str, env: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    let words = expand(rest, env, true)?;
    if !words.first().is_some_and(|w| w.contains('=')) {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if value.trim().is_empty() {
            return Err(format!("{key} must have two arguments"));
        }
        let key = expand(key, env, false)?.concat();
        return Ok(vec![(key, expand(value.trim(), env, false)?.concat())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err("names can not be blank".to_string()),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("{w:?} is not of the form KEY=VALUE")),
        })
        .collect()
}

/// Splits a Dockerfile argument into words (or keeps it one word when
/// `split` is false), removing quotes and backslash escapes and expanding
/// `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}`.
fn expand(s: &str, env: &BTreeMap<String, String>, split: bool) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if split && c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
                continue;
            }
            '\\' => word.push(chars.next().unwrap_or('\\')),
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => word.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.peek() {
                        Some(&n) if matches!(n, '"' | '\\' | '$') => {
                            word.push(n);
                            chars.next();
                        }
                        _ => word.push('\\'),
                    },
                    Some('$') => word.push_str(&variable(&mut chars, env)?),
                    Some(c) => word.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '$' => word.push_str(&variable(&mut chars, env)?),
            c => word.push(c),
        }
        started = true;
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// The value of the variable reference after a `$`.
fn variable(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.peek() {
        Some('{') => {
            chars.next();
            let mut inner = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(c) => inner.push(c),
                    None => return Err("missing '}' in a variable reference".into()),
                }
            }
            let (name, modifier) = match inner.find(|c: char| !is_name(c)) {
                Some(i) => (&inner[..i], Some(&inner[i..])),
                None => (inner.as_str(), None),
            };
            let value = env.get(name).filter(|v| !v.is_empty());
            match modifier {
                None => Ok(env.get(name).cloned().unwrap_or_default()),
                Some(m) if m.starts_with(":-") => {
                    Ok(value.cloned().unwrap_or_else(|| m[2..].to_string()))
                }
                Some(m) if m.starts_with(":+") => {
                    Ok(value.map(|_| m[2..].to_string()).unwrap_or_default())
                }
                Some(m) => Err(format!("unsupported modifier {m:?} in ${{{inner}}}")),
            }
        }
        Some(&c) if is_name(c) => {
            let mut name = String::new();
            while let Some(&c) = chars.peek().filter(|c| is_name(**c)) {
                name.push(c);
                chars.next();
            }
            Ok(env.get(&name).cloned().unwrap_or_default())
        }
        _ => Ok("$".into()),
    }
}

/// EXPOSE's `port[/proto]` and `start-end[/proto]`, as `port/proto` keys.
fn exposed_ports(spec: &str) -> Option<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let (start, end) = ports.split_once('-').unwrap_or((ports, ports));
    let (start, end): (u16, u16) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then(|| (start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Linux signal names and numbers, as STOPSIGNAL takes them.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ", "RTMIN", "RTMAX",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    let offset = |prefix: &str, sep: char| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(sep))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
    };
    offset("RTMIN", '+') || offset("RTMAX", '-')
}

/// `/a/./b/../c//` → `/a/c`.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(list: &[&str]) -> Result<Value, StoreError> {
        let mut config = Map::new();
        apply_changes(
            &mut config,
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(Value::Object(config))
    }

    #[test]
    fn applies_dockerfile_changes() {
        let c = changes(&[
            r#"CMD ["sh"]"#,
            "ENV A=b",
            r#"env C="d e" F=$A"#,
            "ENV G h i",
            "EXPOSE 80 53/udp 8000-8001",
            r#"LABEL x=y "long key"=z"#,
            "USER nobody",
            "WORKDIR /srv",
            "WORKDIR app",
            r#"VOLUME ["/data", "/$A"]"#,
            "STOPSIGNAL SIGTERM",
            "ONBUILD RUN echo hi",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["Env"], json!(["A=b", "C=d e", "F=b", "G=h i"]));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["Labels"], json!({"x": "y", "long key": "z"}));
        assert_eq!(c["User"], json!("nobody"));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/b": {}}));
        assert_eq!(c["StopSignal"], json!("SIGTERM"));
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));

        let c = changes(&["ENTRYPOINT top -b", "CMD echo $HOME"]).unwrap();
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "top -b"]));
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
    }

    #[test]
    fn refuses_bad_changes() {
        for (change, wanted) in [
            ("FROM busybox", "FROM is not a valid change command"),
            ("RUN true", "RUN is not a valid change command"),
            ("ENV", "ENV requires at least one argument"),
            ("EXPOSE 80/http", "invalid port"),
            ("STOPSIGNAL SIGNOPE", "invalid signal"),
            ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
            ("ENV =x", "names can not be blank"),
            ("ENV A='b", "unterminated single quote"),
        ] {
            let err = changes(&[change]).unwrap_err().to_string();
            assert!(err.contains(wanted), "{change}: {err}");
        }
    }

    #[test]
    fn member_paths_stay_inside_the_archive() {
        assert_eq!(archive_path("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(archive_path("../x"), None);
        assert_eq!(archive_path("a/../../x"), None);
        assert_eq!(archive_path("/etc/passwd"), None);
        assert_eq!(
            resolve_link("a/b", "../c/layer.tar").as_deref(),
            Some("a/c/layer.tar")
        );
        assert_eq!(resolve_link("a", "../../x"), None);
        assert_eq!(resolve_link("a", "/etc/passwd"), None);
    }
}
