//! Types shared by every Servin crate: typed identifiers, image references,
//! the error taxonomy, and the Docker Engine API models (re-exported from
//! `bollard-stubs`, which mirrors Docker's swagger).

mod digest;
mod duration;
mod error;
mod link;
mod reference;
mod sysctl;

pub use bollard_stubs::models;
pub use digest::{Digest, DigestError};
pub use duration::{parse_go_bool, parse_go_duration};
pub use error::{Error, ErrorKind};
pub use link::parse_link;
pub use reference::{ImageRef, ReferenceError, DEFAULT_REGISTRY, DEFAULT_TAG};
pub use sysctl::sysctl_is_namespaced;

/// Highest Docker Engine API version this engine speaks.
pub const API_VERSION: &str = "1.45";
/// Lowest Docker Engine API version this engine accepts.
pub const MIN_API_VERSION: &str = "1.24";
