//! The image store: content blobs by digest, image metadata, layer snapshots,
//! registry transfers and image archives.

pub mod archive;
pub mod content;
mod error;
pub mod manifest;
pub mod meta;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use error::StoreError;
pub use meta::{ImageRecord, LayerRecord};
pub use platform::Platform;
pub use progress::{Progress, ProgressSink};
pub use registry::{Credentials, RegistryConfig};
pub use store::{dir_size, DeleteItem, ImageStore};
