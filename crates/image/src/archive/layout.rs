//! The documents that describe an archive's images: Docker's
//! `manifest.json`, and OCI descriptors, manifests and indexes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use servin_api::Digest;

use crate::manifest::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};

/// `manifest.json` of a docker-archive, one entry per image.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DockerManifestEntry {
    #[serde(rename = "Config")]
    pub(super) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(super) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub(super) layers: Vec<String>,
}

/// An OCI descriptor as read from or written to an archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    #[serde(default)]
    pub(super) media_type: String,
    pub(super) digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DescriptorPlatform {
    pub(super) architecture: String,
    pub(super) os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) variant: Option<String>,
}

/// An OCI image manifest or image index: which one is told by the fields present.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OciDocument {
    #[serde(default)]
    pub(super) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) config: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) layers: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) manifests: Option<Vec<Descriptor>>,
}

/// The OCI manifest of an image whose layers are uncompressed tars, given as
/// (diff ID, size). Deterministic, so that save and load agree on it.
pub(super) fn oci_manifest(config: &Digest, config_size: u64, layers: &[(Digest, u64)]) -> Vec<u8> {
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

pub(super) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}
