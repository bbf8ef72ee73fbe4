//! Layer snapshots: each layer unpacked once, by its diff ID, into
//! `snapshots/<hex>`, ready to be stacked by overlayfs. This module never
//! mounts anything: it returns [`Mount`] descriptions for the runtime.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use servin_api::Digest;
use sha2::{Digest as _, Sha256};

use crate::unpack::{self, Compression, WhiteoutMode};
use crate::StoreError;

#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
}

/// A mount the runtime should perform to build a container's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub fstype: String,
    pub source: String,
    pub options: Vec<String>,
}

/// A snapshot being unpacked; dropped without commit, it is removed.
pub struct PendingSnapshot {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Snapshotter {
    /// Opens the snapshot directory and removes unpacks a crash interrupted.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(root).map_err(|e| StoreError::io("create", root, e))?;
        for entry in fs::read_dir(root).map_err(|e| StoreError::io("list", root, e))? {
            let entry = entry.map_err(|e| StoreError::io("list", root, e))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(|e| StoreError::io("clean", &p, e))?;
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(diff_id.hex())
    }

    pub fn has(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let entries =
            fs::read_dir(&self.root).map_err(|e| StoreError::io("list", &self.root, e))?;
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                format!("sha256:{}", e.file_name().to_string_lossy())
                    .parse()
                    .ok()
            })
            .collect())
    }

    pub fn remove(&self, diff_id: &Digest) -> Result<(), StoreError> {
        let p = self.path(diff_id);
        // Move aside first so a crash mid-delete never leaves a half snapshot under its real name.
        let tmp = self.root.join(format!(".tmp-rm-{}", diff_id.hex()));
        match fs::rename(&p, &tmp) {
            Ok(()) => fs::remove_dir_all(&tmp).map_err(|e| StoreError::io("remove", &tmp, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &p, e)),
        }
    }

    /// Unpacks a layer stream (plain, gzip or zstd) into a new snapshot,
    /// checking that the uncompressed tar has digest `diff_id`. The
    /// snapshot becomes visible only when the returned handle is committed.
    /// Also returns the bytes of file content written.
    pub fn unpack(
        &self,
        diff_id: &Digest,
        reader: impl Read,
        layer: &str,
    ) -> Result<(PendingSnapshot, u64), StoreError> {
        let pending = self.prepare(diff_id)?;
        let source =
            decompress(reader).map_err(|e| StoreError::io("decompress", Path::new(layer), e))?;
        let mut hashing = HashingReader::new(source);
        let stats = unpack::unpack_layer(&mut hashing, &pending.tmp, WhiteoutMode::Overlay, layer)?;
        // Drain trailing padding so the digest covers the whole tar.
        std::io::copy(&mut hashing, &mut std::io::sink())
            .map_err(|e| StoreError::io("read", Path::new(layer), e))?;
        let actual = hashing.digest();
        if actual != *diff_id {
            return Err(StoreError::InvalidImage(format!(
                "Layer {layer} does not match its diff ID: expected {diff_id}, got {actual}"
            )));
        }
        Ok((pending, stats.size))
    }

    fn prepare(&self, diff_id: &Digest) -> Result<PendingSnapshot, StoreError> {
        let tmp = self.root.join(format!(
            ".tmp-{}-{:08x}",
            diff_id.short(),
            rand::random::<u32>()
        ));
        fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        Ok(PendingSnapshot {
            tmp,
            target: self.path(diff_id),
            committed: false,
        })
    }

    /// How to mount the given layers (lowest first) read-only, with an
    /// optional writable upper and work dir, as one overlay.
    pub fn mounts(&self, layers: &[Digest], upper: Option<(&Path, &Path)>) -> Vec<Mount> {
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|d| self.path(d).display().to_string())
            .collect();
        let mut options = vec![format!("lowerdir={}", lower.join(":"))];
        if let Some((upperdir, workdir)) = upper {
            options.push(format!("upperdir={}", upperdir.display()));
            options.push(format!("workdir={}", workdir.display()));
        }
        vec![Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options,
        }]
    }
}

impl PendingSnapshot {
    /// Publishes the snapshot under its diff ID.
    pub fn commit(mut self) -> Result<(), StoreError> {
        match fs::rename(&self.tmp, &self.target) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            // Another pull unpacked the same layer first: theirs is as good as ours.
            Err(e)
                if self.target.is_dir()
                    && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::io("publish", &self.target, e)),
        }
    }
}

impl Drop for PendingSnapshot {
    fn drop(&mut self) {
        if !self.committed && self.tmp.exists() {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Wraps a layer stream in the decompressor its magic bytes call for.
pub fn decompress<'a>(reader: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let magic = buffered.fill_buf()?;
    Ok(match Compression::detect(magic) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(buffered)?),
        Compression::None => Box::new(buffered),
    })
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
