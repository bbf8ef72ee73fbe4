//! Image archives: `docker load`, `docker save` and `docker import`.
//!
//! Load reads the archive once, as a stream. Manifests usually come last in
//! the tar, so every file is first staged on disk while its digest is
//! computed: in the content store's ingest directory, on the data root's
//! filesystem (layers can be large) and emptied whenever the store opens, so
//! a crash leaves nothing behind. Then the manifests are read, every digest
//! checked, and every layer unpacked into a pending snapshot while it is
//! copied, uncompressed, into an uncommitted blob. Only when all of that
//! succeeded are blobs, snapshots and images published, image by image; a
//! failure before that leaves the store exactly as it was.
//!
//! Save writes the layout Docker 25 writes, which Docker 20.10's `load`
//! (through `manifest.json`) and OCI tools (through `index.json`) both read.
//! Layers go in uncompressed. The size of a layer stored compressed is learnt
//! by a first decompression pass that only counts bytes, rather than from a
//! temporary file: it costs CPU, not disk space, and the second pass checks
//! size and diff ID as it streams.

mod changes;
mod import;
mod layout;
mod load;
mod publish;
mod save;
mod staging;

use crate::StoreError;

pub use self::changes::apply_changes;
pub use self::import::{import, ImportOptions};
pub use self::load::{load, LoadedImage};
pub use self::save::save;

/// Annotation naming a manifest in an OCI layout (Docker 25 puts the tag alone there).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and Docker 25 put the full image name in.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidImage(msg.into())
}
