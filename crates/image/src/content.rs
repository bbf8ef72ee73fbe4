//! Content-addressed blob store: `content/blobs/sha256/<hex>`.
//!
//! Blobs are written to `content/ingest/` while their digest is computed,
//! fsynced, checked against the expected digest and only then renamed into
//! place, so a blob that is visible is always complete and correct.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use servin_api::Digest;
use sha2::{Digest as _, Sha256};

use crate::StoreError;

#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root` and removes
    /// leftovers of ingests that a crash interrupted.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let store = Self {
            root: root.to_path_buf(),
        };
        fs::create_dir_all(store.blobs_dir())
            .map_err(|e| StoreError::io("create", &store.root, e))?;
        let ingest = store.ingest_dir();
        if ingest.exists() {
            fs::remove_dir_all(&ingest).map_err(|e| StoreError::io("clean", &ingest, e))?;
        }
        fs::create_dir_all(&ingest).map_err(|e| StoreError::io("create", &ingest, e))?;
        Ok(store)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File, StoreError> {
        let p = self.path(digest);
        fs::File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob(digest.clone())
            } else {
                StoreError::io("open", &p, e)
            }
        })
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.path(digest);
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob(digest.clone())
            } else {
                StoreError::io("read", &p, e)
            }
        })
    }

    /// Stores a small blob held in memory and returns its digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest, StoreError> {
        let mut w = self.writer()?;
        w.write_all(data)
            .map_err(|e| StoreError::io("write", &w.path, e))?;
        w.commit(None)
    }

    /// Starts an ingest: bytes written to the writer are hashed as they go.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let path = self
            .ingest_dir()
            .join(format!("{:016x}", rand::random::<u64>()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("create", &path, e))?;
        Ok(BlobWriter {
            store: self.clone(),
            path,
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    pub fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &p, e)),
        }
    }

    /// Digests of every blob present.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.blobs_dir();
        let entries = fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                format!("sha256:{}", e.file_name().to_string_lossy())
                    .parse()
                    .ok()
            })
            .collect())
    }
}

/// A blob being ingested. Dropping it without [`BlobWriter::commit`]
/// removes the partial file.
pub struct BlobWriter {
    store: ContentStore,
    path: PathBuf,
    file: Option<fs::File>,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter {
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().into())
    }

    /// Verifies the digest (when one is expected), syncs and publishes the blob.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest, StoreError> {
        let digest = self.digest();
        if let Some(want) = expected {
            if *want != digest {
                return Err(StoreError::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                });
            }
        }
        let file = self.file.take().expect("commit once");
        file.sync_all()
            .map_err(|e| StoreError::io("sync", &self.path, e))?;
        drop(file);
        let dest = self.store.path(&digest);
        fs::rename(&self.path, &dest).map_err(|e| StoreError::io("publish", &dest, e))?;
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("not committed").write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_verifies_before_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.put(b"hello").unwrap();
        assert_eq!(store.read(&d).unwrap(), b"hello");

        let mut w = store.writer().unwrap();
        w.write_all(b"tampered").unwrap();
        let err = w.commit(Some(&Digest::of(b"original"))).unwrap_err();
        assert!(err.to_string().contains("Digest mismatch"), "{err}");
        assert!(!store.has(&Digest::of(b"tampered")));
        assert_eq!(fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
        assert_eq!(store.list().unwrap(), vec![d]);
    }
}
