//! Layer blobs: a tar stream written through a compressor into
//! `blobs/sha256/`, hashing both the uncompressed tar (the diff id) and the
//! blob (the digest) on the way, so nothing large is held in memory.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest as _, Sha256};

/// Fixed modification time of every tar entry (2024-01-01), so a fixture's
/// digests are the same on every build.
pub(crate) const EPOCH: u64 = 1_704_067_200;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

/// What the bytes of a data layer look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Pseudo-random bytes: compression cannot shrink them.
    Random,
    /// Numbered text lines: compress about tenfold.
    Compressible,
}

/// Contents of an extra layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    /// One file `data/layer-N.bin` of `size` bytes (N is the layer index).
    Data { size: u64, fill: Fill },
    /// Regular files `(path, contents, mode)`; parent directories are added
    /// (mode 0755).
    Files(Vec<(String, Vec<u8>, u32)>),
}

impl LayerSpec {
    pub fn random(size: u64) -> Self {
        LayerSpec::Data {
            size,
            fill: Fill::Random,
        }
    }

    pub fn compressible(size: u64) -> Self {
        LayerSpec::Data {
            size,
            fill: Fill::Compressible,
        }
    }

    /// A layer with one regular file, mode 0644.
    pub fn file(path: &str, contents: impl Into<Vec<u8>>) -> Self {
        LayerSpec::Files(vec![(path.to_string(), contents.into(), 0o644)])
    }
}

/// A layer blob as stored in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// `sha256:…` of the blob as stored (compressed).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: String,
    /// Size of the stored blob in bytes.
    pub size: u64,
    pub media_type: &'static str,
}

/// Writes one layer: `fill` appends the entries to the tar builder.
pub(crate) fn write_layer(
    blobs: &Path,
    compression: Compression,
    level: u32,
    fill: impl FnOnce(&mut tar::Builder<HashWriter<Encoder>>) -> Result<()>,
) -> Result<LayerBlob> {
    let tmp = tempfile::NamedTempFile::new_in(blobs)?;
    let blob = HashWriter::new(tmp.reopen()?);
    let encoder = match compression {
        Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
            blob,
            flate2::Compression::new(level),
        )),
        Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(blob, 3)?),
        Compression::None => Encoder::Plain(blob),
    };
    let mut builder = tar::Builder::new(HashWriter::new(encoder));
    fill(&mut builder)?;
    let uncompressed = builder.into_inner()?;
    let diff_id = uncompressed.digest();
    let mut blob = uncompressed.inner.finish()?;
    blob.flush()?;
    blob.inner.sync_all()?;
    let digest = blob.digest();
    let path = blobs.join(digest.trim_start_matches("sha256:"));
    tmp.persist(&path)
        .with_context(|| format!("Cannot store layer blob {}", path.display()))?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size: blob.len,
        media_type: compression.oci_media_type(),
    })
}

/// Stores a small blob (config, manifest, index) by digest; returns
/// (digest, size).
pub(crate) fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(blobs.join(&hex), bytes)?;
    Ok((format!("sha256:{hex}"), bytes.len() as u64))
}

/// A tar header for a regular file, directory or symlink owned by root with
/// the fixed mtime.
pub(crate) fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(EPOCH);
    h
}

/// Appends `data/layer-N.bin` filled as asked.
pub(crate) fn append_data<W: Write>(
    builder: &mut tar::Builder<W>,
    index: usize,
    size: u64,
    fill: Fill,
    seed: u64,
) -> Result<()> {
    let mut dir = header(tar::EntryType::Directory, 0o755, 0);
    builder.append_data(&mut dir, "data/", io::empty())?;
    let mut file = header(tar::EntryType::Regular, 0o644, size);
    let reader = DataReader::new(
        size,
        fill,
        seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    builder.append_data(&mut file, format!("data/layer-{index}.bin"), reader)?;
    Ok(())
}

/// Appends regular files, adding their parent directories first.
pub(crate) fn append_files<W: Write>(
    builder: &mut tar::Builder<W>,
    files: &[(String, Vec<u8>, u32)],
) -> Result<()> {
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, contents, mode) in files {
        let path = path.trim_start_matches('/');
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p)
            .unwrap_or(&[])
        {
            parent.push_str(part);
            parent.push('/');
            if dirs_done.insert(parent.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                builder.append_data(&mut h, &parent, io::empty())?;
            }
        }
        let mut h = header(tar::EntryType::Regular, *mode, contents.len() as u64);
        builder.append_data(&mut h, path, contents.as_slice())?;
    }
    Ok(())
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor between the tar stream and the blob file.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<HashWriter<File>>),
    Zstd(zstd::Encoder<'static, HashWriter<File>>),
    Plain(HashWriter<File>),
}

impl Encoder {
    fn finish(self) -> io::Result<HashWriter<File>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

/// Generates `size` bytes of data without holding them in memory.
struct DataReader {
    left: u64,
    fill: Fill,
    state: u64,
    line: u64,
    pending: Vec<u8>,
    pos: usize,
}

impl DataReader {
    fn new(size: u64, fill: Fill, seed: u64) -> Self {
        DataReader {
            left: size,
            fill,
            // xorshift must not start at zero.
            state: seed | 1,
            line: 0,
            pending: Vec::new(),
            pos: 0,
        }
    }

    fn refill(&mut self) {
        self.pending.clear();
        self.pos = 0;
        match self.fill {
            Fill::Random => {
                for _ in 0..8192 {
                    // xorshift64*: fast, and gzip cannot compress it.
                    self.state ^= self.state >> 12;
                    self.state ^= self.state << 25;
                    self.state ^= self.state >> 27;
                    let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                    self.pending.extend_from_slice(&v.to_le_bytes());
                }
            }
            Fill::Compressible => {
                for _ in 0..1024 {
                    self.line += 1;
                    let text = format!("servin testkit compressible line {:012}\n", self.line);
                    self.pending.extend_from_slice(text.as_bytes());
                }
            }
        }
    }
}

impl Read for DataReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.pos == self.pending.len() {
            self.refill();
        }
        let n = buf
            .len()
            .min(self.pending.len() - self.pos)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_reader_makes_exact_sizes() {
        for fill in [Fill::Random, Fill::Compressible] {
            let mut out = Vec::new();
            DataReader::new(100_003, fill, 7)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out.len(), 100_003);
        }
    }

    #[test]
    fn layers_hash_what_they_store() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let blob = write_layer(dir.path(), compression, 6, |b| {
                append_data(b, 0, 10_000, Fill::Random, 1)
            })
            .unwrap();
            let stored = std::fs::read(dir.path().join(&blob.digest[7..])).unwrap();
            assert_eq!(stored.len() as u64, blob.size);
            assert_eq!(
                blob.digest,
                format!("sha256:{}", hex::encode(Sha256::digest(&stored)))
            );
            let tar: Vec<u8> = match compression {
                Compression::Gzip => {
                    let mut v = Vec::new();
                    flate2::read::GzDecoder::new(&stored[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::Zstd => zstd::decode_all(&stored[..]).unwrap(),
                Compression::None => stored.clone(),
            };
            assert_eq!(
                blob.diff_id,
                format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
            );
        }
    }
}
