//! Layer unpacking: turns one image layer, a tar stream (plain, gzip or
//! zstd), into a directory tree, realising its whiteouts either for overlayfs
//! or by applying them to an already-populated tree.
//!
//! A layer is untrusted input and this module is a security boundary. Every
//! entry is created relative to directory descriptors opened with
//! `O_NOFOLLOW`, one parent component at a time, and whatever sits at a path
//! is removed before anything new is created there: no entry can reach
//! outside the destination, by `..`, by an absolute path, or through a
//! symlink that an earlier entry (or a lower layer) planted.

mod fsops;
mod metadata;
mod path;
mod unpacker;
mod whiteout;

use std::fs::OpenOptions;
use std::io::{self, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use servin_api::ErrorKind;

use self::unpacker::Unpacker;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Recognises a compressed stream by its first bytes; anything else is
    /// taken for a plain tar.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if magic.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression an OCI or Docker layer media type declares, or `None`
    /// when the media type is not a layer's.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        const LAYER_TYPES: [&str; 2] = [
            "application/vnd.oci.image.layer.",
            "application/vnd.docker.image.rootfs.",
        ];
        if !LAYER_TYPES.iter().any(|prefix| mt.starts_with(prefix)) {
            return None;
        }
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") || mt.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

/// How whiteouts in the layer are realised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Each layer goes into its own empty dir, to be stacked by overlayfs:
    /// `.wh.NAME` becomes a 0:0 character device NAME, `.wh..wh..opq` sets
    /// xattr `trusted.overlay.opaque=y` on its directory (as containerd's
    /// overlay snapshotter does).
    Overlay,
    /// The layer is applied on top of an already-populated tree (flattening,
    /// e.g. for export): `.wh.NAME` deletes NAME (recursively), `.wh..wh..opq`
    /// empties the directory of entries from lower layers (entries this same
    /// layer adds stay).
    Apply,
}

/// What unpacking a layer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular-file content written.
    pub size: u64,
    /// Archive entries applied (whiteouts included).
    pub entries: u64,
}

/// Why a layer could not be unpacked. Each message names the layer and the
/// offending path as the archive spells it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A `..` climbs above the root.
    #[error("Layer {layer} has an entry that escapes the root: {path}")]
    Escape { layer: String, path: String },
    /// An entry names an absolute path.
    #[error("Layer {layer} has an entry with an absolute path: {path}")]
    AbsolutePath { layer: String, path: String },
    /// A relative symlink target climbs above the root.
    #[error("Layer {layer} has a symlink that points outside the root: {path} -> {target}")]
    SymlinkEscape {
        layer: String,
        path: String,
        target: String,
    },
    /// A hardlink target is absolute or climbs above the root.
    #[error("Layer {layer} has a hardlink whose target escapes the root: {path} => {target}")]
    HardlinkEscape {
        layer: String,
        path: String,
        target: String,
    },
    /// A hardlink target is missing, a directory, or reached through a symlink.
    #[error("Layer {layer} has a hardlink whose target {reason}: {path} => {target}")]
    HardlinkTarget {
        layer: String,
        path: String,
        target: String,
        reason: &'static str,
    },
    /// A parent of the entry is a symlink (one the layer planted, or a lower layer's).
    #[error("Layer {layer} has an entry under a symlink: {path} ({parent} is a symlink)")]
    ThroughSymlink {
        layer: String,
        path: String,
        parent: String,
    },
    /// A parent of the entry is neither a directory nor a symlink.
    #[error(
        "Layer {layer} has an entry under something that is not a directory: {path} ({parent})"
    )]
    NotADirectory {
        layer: String,
        path: String,
        parent: String,
    },
    /// The entry is malformed: empty name, bad header field, unsupported type, empty whiteout.
    #[error("Layer {layer} has an invalid entry {path}: {reason}")]
    InvalidEntry {
        layer: String,
        path: String,
        reason: String,
    },
    /// The stream is not a readable tar (or its compression is corrupt).
    #[error("Failed to read layer {layer} at {path}")]
    Read {
        layer: String,
        path: String,
        #[source]
        source: io::Error,
    },
    /// Writing to the destination failed.
    #[error("Failed to {op} {path} from layer {layer}")]
    Io {
        layer: String,
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// Hostile or malformed layers are the client's problem; a failing disk is ours.
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// Reads a (possibly compressed: detect it by magic bytes) tar stream and
/// unpacks it into `dest`, which must exist. `layer` is a label (usually the
/// layer digest) used in error messages.
///
/// Stops at the first hostile entry; the caller discards `dest` on error.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    mode: WhiteoutMode,
    layer: &str,
) -> Result<UnpackStats, UnpackError> {
    let root = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dest)
        .map_err(|source| UnpackError::Io {
            layer: layer.to_owned(),
            path: dest.display().to_string(),
            op: "open the destination",
            source,
        })?;
    let read_error = |path: String, source| UnpackError::Read {
        layer: layer.to_owned(),
        path,
        source,
    };
    let stream = Decoder::new(reader).map_err(|e| read_error("its start".into(), e))?;
    let mut archive = tar::Archive::new(stream);
    let mut unpacker = Unpacker::new(layer, OwnedFd::from(root), mode);
    let mut last: Option<String> = None;
    for entry in archive
        .entries()
        .map_err(|e| read_error("its start".into(), e))?
    {
        let mut entry = entry.map_err(|e| {
            let at = last
                .as_ref()
                .map_or("its first entry".into(), |p| format!("the entry after {p}"));
            read_error(at, e)
        })?;
        last = Some(unpacker.entry(&mut entry)?);
    }
    unpacker.finish()
}

/// The layer stream with its compression undone.
enum Decoder<R: Read> {
    Plain(BufReader<Peeked<R>>),
    Gzip(flate2::read::MultiGzDecoder<Peeked<R>>),
    Zstd(zstd::Decoder<'static, BufReader<Peeked<R>>>),
}

/// A stream whose first bytes were read to find its compression, put back in front.
type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

impl<R: Read> Decoder<R> {
    fn new(mut reader: R) -> io::Result<Self> {
        let mut magic = Vec::with_capacity(ZSTD_MAGIC.len());
        (&mut reader)
            .take(ZSTD_MAGIC.len() as u64)
            .read_to_end(&mut magic)?;
        let compression = Compression::detect(&magic);
        let stream = io::Cursor::new(magic).chain(reader);
        Ok(match compression {
            Compression::None => Decoder::Plain(BufReader::with_capacity(64 * 1024, stream)),
            Compression::Gzip => Decoder::Gzip(flate2::read::MultiGzDecoder::new(stream)),
            Compression::Zstd => Decoder::Zstd(zstd::Decoder::new(stream)?),
        })
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_detected_by_magic_and_media_type() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
        let mt = Compression::from_media_type;
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            mt("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            mt("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(mt("application/vnd.oci.image.config.v1+json"), None);
        assert_eq!(mt("application/vnd.oci.image.layer.v1.tar+bzip2"), None);
    }

    #[test]
    fn empty_stream_is_an_empty_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = unpack_layer(io::empty(), tmp.path(), WhiteoutMode::Overlay, "empty").unwrap();
        assert_eq!(stats, UnpackStats::default());
    }

    #[test]
    fn garbage_is_a_read_error_naming_the_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let garbage = vec![b'x'; 1024];
        let err = unpack_layer(
            &garbage[..],
            tmp.path(),
            WhiteoutMode::Overlay,
            "sha256:bad",
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Failed to read layer sha256:bad at its first entry"
        );
        // Truncated gzip: the header promises more than arrives.
        let err = unpack_layer(
            &[0x1f, 0x8b, 8, 0][..],
            tmp.path(),
            WhiteoutMode::Overlay,
            "sha256:bad",
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
    }
}
