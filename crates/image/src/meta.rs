//! Image metadata: what images exist and which names point at them,
//! persisted as one JSON document replaced atomically on every change.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use servin_api::Digest;

use crate::StoreError;

/// One layer of an image as stored: the blob we hold and the
/// uncompressed tar's digest (the snapshot key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LayerRecord {
    pub blob: Digest,
    pub media_type: String,
    pub blob_size: u64,
    pub diff_id: Digest,
    /// Bytes of file content the layer unpacks to.
    pub unpacked_size: u64,
}

/// An image: its config digest is its ID, as in Docker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    pub manifest_media_type: String,
    pub layers: Vec<LayerRecord>,
    /// `repo@digest` names this image was pulled or pushed by.
    pub repo_digests: Vec<String>,
    /// When a name was last attached (Docker's `Metadata.LastTagTime`).
    pub last_tag_time: Option<String>,
}

impl ImageRecord {
    /// Total unpacked size, as Docker reports `Size`.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_size).sum()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Image ID → record.
    pub images: BTreeMap<Digest, ImageRecord>,
    /// Fully qualified `domain/path:tag` → image ID.
    pub tags: BTreeMap<String, Digest>,
}

impl Index {
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Where the index lives and how it is written.
#[derive(Debug)]
pub struct IndexFile {
    path: PathBuf,
}

impl IndexFile {
    pub fn new(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        Ok(Self {
            path: dir.join("index.json"),
        })
    }

    pub fn load(&self) -> Result<Index, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::InvalidImage(format!(
                    "Image index {} is corrupt: {e}",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(StoreError::io("read", &self.path, e)),
        }
    }

    pub fn save(&self, index: &Index) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(index).expect("index serialises");
        write_atomic(&self.path, &bytes)
    }
}

/// Writes `bytes` to `path` through a synced temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{:08x}", rand::random::<u32>()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StoreError::io("write", path, e)
    })
}
