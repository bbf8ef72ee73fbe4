//! An archive being loaded, its files staged on disk and found by their
//! path in the archive.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use servin_api::Digest;
use sha2::{Digest as _, Sha256};

use super::invalid;
use super::layout::{blob_path, Descriptor};
use crate::snapshot::decompress;
use crate::store::ImageStore;
use crate::StoreError;

/// Largest JSON document (manifest, index, config) read from an archive.
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// Symbolic links followed, at most, to find a file in an archive.
const MAX_LINK_HOPS: usize = 16;

/// A file of the archive, staged on disk.
#[derive(Debug, Clone)]
pub(super) struct Staged {
    pub(super) path: PathBuf,
    pub(super) digest: Digest,
    pub(super) size: u64,
}

/// The files of an archive being loaded, by their path in the archive.
/// Dropped, it removes what it staged.
pub(super) struct Staging {
    dir: PathBuf,
    files: BTreeMap<String, Staged>,
    /// Symbolic and hard links: path → the path they point at.
    links: BTreeMap<String, String>,
    next: u64,
}

impl Staging {
    pub(super) fn new(store: &ImageStore) -> Result<Self, StoreError> {
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

    pub(super) fn ingest_archive(&mut self, reader: impl Read) -> Result<(), StoreError> {
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
    pub(super) fn stage(
        &mut self,
        mut reader: impl Read,
        what: &str,
    ) -> Result<Staged, StoreError> {
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
    pub(super) fn find(&self, path: &str) -> Option<&Staged> {
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
    pub(super) fn named(
        &self,
        source: &str,
        what: &str,
        path: &str,
    ) -> Result<&Staged, StoreError> {
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
    pub(super) fn blob(&self, d: &Descriptor, referrer: &str) -> Result<&Staged, StoreError> {
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

    pub(super) fn read_small(&self, file: &Staged, name: &str) -> Result<Vec<u8>, StoreError> {
        if file.size > MAX_JSON {
            return Err(invalid(format!(
                "Archive entry {name} is too large for a JSON document ({} bytes)",
                file.size
            )));
        }
        fs::read(&file.path).map_err(|e| StoreError::io("read", &file.path, e))
    }

    pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
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

pub(super) fn parse_small<T: serde::de::DeserializeOwned>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
