//! `docker import`: a root filesystem tar as a one-layer image.

use std::collections::HashMap;
use std::io::Read;

use serde_json::{json, Map};
use servin_api::{Digest, ImageRef};

use super::changes::apply_changes;
use super::invalid;
use super::publish::{prepare_layer, publish};
use super::staging::Staging;
use crate::platform::Platform;
use crate::snapshot::decompress;
use crate::store::ImageStore;
use crate::StoreError;

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
