//! Manifests, indexes and image configs as this store needs them. Parsing
//! is oci-client's (it reads both OCI and Docker schema 2); this module
//! validates what it read into typed digests.

use oci_client::manifest::{OciDescriptor, OciManifest};
use servin_api::Digest;

use crate::platform::Platform;
use crate::StoreError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Media types we ask registries for.
pub const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A descriptor with a checked digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl Descriptor {
    fn from_oci(d: &OciDescriptor) -> Result<Self, StoreError> {
        Ok(Self {
            media_type: d.media_type.clone(),
            digest: d.digest.parse().map_err(|e| {
                StoreError::InvalidImage(format!("Manifest has a bad descriptor: {e}"))
            })?,
            size: u64::try_from(d.size).map_err(|_| {
                StoreError::InvalidImage(format!("Descriptor {} has a negative size", d.digest))
            })?,
        })
    }

    pub fn to_oci(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.to_string(),
            size: self.size as i64,
            ..Default::default()
        }
    }
}

/// A single-platform image manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The platform an index entry is for: os, architecture, variant.
pub type EntryPlatform = (String, String, Option<String>);

/// A manifest list / image index.
#[derive(Debug, Clone)]
pub struct Index {
    pub entries: Vec<(Digest, Option<EntryPlatform>)>,
}

impl Index {
    /// The manifest serving `want`, as Docker picks it.
    pub fn select(&self, want: &Platform) -> Option<Digest> {
        self.entries
            .iter()
            .find(|(_, p)| {
                p.as_ref()
                    .is_some_and(|(os, arch, v)| want.matches(os, arch, v.as_deref()))
            })
            .map(|(d, _)| d.clone())
    }
}

pub enum ParsedManifest {
    Image(Manifest),
    Index(Index),
}

pub fn parse(raw: &[u8]) -> Result<ParsedManifest, StoreError> {
    let m: OciManifest = serde_json::from_slice(raw).map_err(|e| {
        StoreError::InvalidImage(format!(
            "Registry sent a manifest that cannot be parsed: {e}"
        ))
    })?;
    match m {
        OciManifest::Image(img) => {
            let layers = img
                .layers
                .iter()
                .map(Descriptor::from_oci)
                .collect::<Result<Vec<_>, _>>()?;
            for l in &layers {
                if l.media_type.contains("foreign") {
                    return Err(StoreError::Unsupported(format!(
                        "Layer {} is a foreign layer ({}), which this engine does not download",
                        l.digest, l.media_type
                    )));
                }
            }
            Ok(ParsedManifest::Image(Manifest {
                media_type: img
                    .media_type
                    .clone()
                    .unwrap_or_else(|| OCI_MANIFEST.into()),
                config: Descriptor::from_oci(&img.config)?,
                layers,
            }))
        }
        OciManifest::ImageIndex(idx) => {
            let mut entries = Vec::new();
            for e in &idx.manifests {
                let d: Digest = e.digest.parse().map_err(|err| {
                    StoreError::InvalidImage(format!("Manifest list has a bad entry: {err}"))
                })?;
                let p = e.platform.as_ref().map(|p| {
                    (
                        p.os.to_string(),
                        p.architecture.to_string(),
                        p.variant.clone(),
                    )
                });
                entries.push((d, p));
            }
            Ok(ParsedManifest::Index(Index { entries }))
        }
    }
}

/// What the store needs from an image config.
#[derive(Debug, Clone)]
pub struct ImageConfigInfo {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfigInfo {
    pub fn parse(raw: &[u8], id: &Digest) -> Result<Self, StoreError> {
        let bad =
            |why: String| StoreError::InvalidImage(format!("Image config {id} is invalid: {why}"));
        let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let diff_ids = v
            .pointer("/rootfs/diff_ids")
            .and_then(|x| x.as_array())
            .ok_or_else(|| bad("no rootfs.diff_ids".into()))?
            .iter()
            .map(|d| {
                d.as_str()
                    .ok_or_else(|| bad("a diff ID is not a string".into()))?
                    .parse::<Digest>()
                    .map_err(|e| bad(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            os: s("os").unwrap_or_else(|| "linux".into()),
            architecture: s("architecture").unwrap_or_else(|| "amd64".into()),
            variant: s("variant"),
            diff_ids,
        })
    }
}
