//! The image store: content blobs by digest, image metadata, layer snapshots,
//! registry transfers and image archives.

pub mod unpack;
