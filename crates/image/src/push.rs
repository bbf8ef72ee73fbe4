//! Pushing images we hold: layers and config streamed from the content
//! store (skipping those the registry has), then the manifest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::RegistryOperation;
use servin_api::{Digest, ImageRef};

use crate::meta::ImageRecord;
use crate::progress::ProgressSink;
use crate::registry::{map_error, oci_ref, Credentials, RegistryConfig};
use crate::store::ImageStore;
use crate::StoreError;

#[derive(Debug, Clone)]
pub struct PushOutcome {
    pub digest: Digest,
    pub size: u64,
}

/// Pushes `record` to `target` (a tagged reference).
pub async fn push(
    store: &Arc<ImageStore>,
    registries: &RegistryConfig,
    target: &ImageRef,
    record: &ImageRecord,
    credentials: &Credentials,
    progress: &ProgressSink,
) -> Result<PushOutcome, StoreError> {
    let shown = target.familiar();
    let client = registries.client(target.domain());
    let oref = oci_ref(target);
    progress.status(format!(
        "The push refers to repository [{}]",
        target.repository()
    ));
    client
        .auth(&oref, &credentials.to_oci(), RegistryOperation::Push)
        .await
        .map_err(|e| map_error(&shown, e))?;

    for layer in record.layers.iter().rev() {
        progress.item(layer.diff_id.short(), "Preparing");
    }
    for layer in record.layers.iter().rev() {
        let short = layer.diff_id.short();
        let digest = layer.blob.to_string();
        let exists = client
            .blob_exists(&oref, &digest)
            .await
            .map_err(|e| map_error(&shown, e))?;
        if exists {
            progress.item(short, "Layer already exists");
            continue;
        }
        let path = store.content().path(&layer.blob);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StoreError::io("open", &path, e))?;
        let total = layer.blob_size;
        let sink = progress.clone();
        let id = short.to_string();
        let mut sent = 0u64;
        let mut last = Instant::now();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map(move |chunk| {
            let chunk = chunk.map_err(OciDistributionError::IoError)?;
            sent += chunk.len() as u64;
            if last.elapsed() > Duration::from_millis(100) || sent == total {
                last = Instant::now();
                sink.bytes(&id, "Pushing", sent, Some(total));
            }
            Ok(chunk)
        });
        client
            .push_blob_stream(&oref, stream, &digest, Some(total))
            .await
            .map_err(|e| map_error(&format!("{shown}: layer {digest}"), e))?;
        progress.item(short, "Pushed");
    }

    let config = store.content().read(&record.id)?;
    if !client
        .blob_exists(&oref, &record.id.to_string())
        .await
        .map_err(|e| map_error(&shown, e))?
    {
        client
            .push_blob(&oref, config, &record.id.to_string())
            .await
            .map_err(|e| map_error(&format!("{shown}: config"), e))?;
    }
    let manifest = store.content().read(&record.manifest)?;
    let size = manifest.len() as u64;
    let content_type = record.manifest_media_type.parse().map_err(|_| {
        StoreError::InvalidImage(format!(
            "Manifest media type {:?} is invalid",
            record.manifest_media_type
        ))
    })?;
    client
        .push_manifest_raw(&oref, manifest, content_type)
        .await
        .map_err(|e| map_error(&format!("{shown}: manifest"), e))?;

    let mut updated = record.clone();
    updated.repo_digests = vec![format!("{}@{}", target.repository(), record.manifest)];
    store.commit_image(updated, &[])?;
    Ok(PushOutcome {
        digest: record.manifest.clone(),
        size,
    })
}
