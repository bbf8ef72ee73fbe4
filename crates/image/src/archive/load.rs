//! `docker load`: finding the images in a staged archive, then publishing
//! them.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use serde_json::Value;
use servin_api::{Digest, ImageRef};

use super::layout::{blob_path, Descriptor, DockerManifestEntry, OciDocument};
use super::publish::{prepare_layer, publish, PreparedLayer};
use super::staging::{parse_small, Staged, Staging};
use super::{invalid, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::manifest::{ImageConfigInfo, DOCKER_LIST, OCI_INDEX};
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::store::ImageStore;
use crate::StoreError;

/// Annotation buildx puts on attestation manifests, which are not images.
const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
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
