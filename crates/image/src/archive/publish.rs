//! Layers checked and unpacked before anything is published, then images
//! published whole; shared by load and import.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};

use servin_api::{Digest, ImageRef};

use super::invalid;
use super::layout::oci_manifest;
use super::staging::Staged;
use crate::content::BlobWriter;
use crate::manifest::{OCI_LAYER, OCI_MANIFEST};
use crate::meta::{ImageRecord, LayerRecord};
use crate::snapshot::{decompress, HashingReader, PendingSnapshot};
use crate::store::ImageStore;
use crate::StoreError;

/// A layer checked and unpacked, waiting to be published.
pub(super) struct PreparedLayer {
    pub(super) record: LayerRecord,
    blob: Option<BlobWriter>,
    snapshot: Option<PendingSnapshot>,
}

/// Unpacks a staged layer (compressed or not) into a pending snapshot and
/// copies it, uncompressed, into an uncommitted blob whose digest is the
/// diff ID; both are checked. A layer the store already holds is only checked.
pub(super) fn prepare_layer(
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
pub(super) fn publish(
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
