use std::path::{Path, PathBuf};

use servin_api::{Digest, ErrorKind, ReferenceError};

use crate::unpack::UnpackError;

/// Failures of the image store and registry transfers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Failed to {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Blob {0} is missing from the content store")]
    MissingBlob(Digest),
    #[error("Digest mismatch: expected {expected}, got {actual} (the content is corrupt or was altered)")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("No such image: {0}")]
    ImageNotFound(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("{0}")]
    InvalidImage(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Registry(String),
    #[error("{0}")]
    Unsupported(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Io { .. } | StoreError::MissingBlob(_) => ErrorKind::Internal,
            StoreError::DigestMismatch { .. } | StoreError::Registry(_) => ErrorKind::Unavailable,
            StoreError::ImageNotFound(_) | StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Reference(_)
            | StoreError::InvalidArgument(_)
            | StoreError::InvalidImage(_) => ErrorKind::InvalidArgument,
            StoreError::Unpack(_) => ErrorKind::InvalidArgument,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            // Not 401: the docker CLI answers a 401 on pull with an interactive
            // login prompt; Docker itself reports registry auth failures as 500.
            StoreError::Unauthorized(_) => ErrorKind::Unavailable,
            StoreError::Unsupported(_) => ErrorKind::Unsupported,
        }
    }
}

impl From<StoreError> for servin_api::Error {
    fn from(e: StoreError) -> Self {
        servin_api::Error::from_chain(e.kind(), &e)
    }
}
