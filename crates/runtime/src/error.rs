//! The runtime's error taxonomy, and its form on the shim's control socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use servin_api::ErrorKind;

/// Everything that can go wrong creating, running or talking to a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The spec asks for something impossible or malformed.
    #[error("{0}")]
    InvalidSpec(String),
    /// A feature this runtime does not have yet.
    #[error("{0}")]
    Unsupported(String),
    /// The command is not in `$PATH` or does not exist (Docker exits 127).
    /// The detail reads like runc's: `"nosuch": executable file not found in $PATH`.
    #[error("Unable to start container process: exec: {0}")]
    ExecutableNotFound(String),
    /// The command exists but cannot be executed (Docker exits 126).
    #[error("Unable to start container process: exec: {0}")]
    PermissionDenied(String),
    /// `--user` names a user or group the image does not have.
    #[error("{0}")]
    User(String),
    /// The request does not fit the container's current state.
    #[error("{0}")]
    Conflict(String),
    /// No exec with this id in this container.
    #[error("No such exec instance: {0}")]
    ExecNotFound(String),
    /// The shim does not answer: it is gone or was never started.
    #[error("Cannot reach the shim of container at {path}")]
    ShimUnavailable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or process operation of the runtime failed.
    #[error("Failed to {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("Failed to {what}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    /// The OCI runtime (libcontainer or runc) refused or failed.
    #[error("OCI runtime {op} failed: {message}")]
    Oci { op: &'static str, message: String },
    /// The shim answered something this client does not understand.
    #[error("Malformed message on the shim socket: {0}")]
    Protocol(String),
    /// An internal failure reported by the shim, with its whole chain.
    #[error("{0}")]
    Shim(String),
}

impl RuntimeError {
    /// How the engine should classify this error (and so the HTTP status).
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::InvalidSpec(_)
            | RuntimeError::ExecutableNotFound(_)
            | RuntimeError::PermissionDenied(_)
            | RuntimeError::User(_) => ErrorKind::InvalidArgument,
            RuntimeError::Unsupported(_) => ErrorKind::Unsupported,
            RuntimeError::Conflict(_) => ErrorKind::Conflict,
            RuntimeError::ExecNotFound(_) => ErrorKind::NotFound,
            RuntimeError::ShimUnavailable { .. } => ErrorKind::Unavailable,
            RuntimeError::Io { .. }
            | RuntimeError::Sys { .. }
            | RuntimeError::Oci { .. }
            | RuntimeError::Protocol(_)
            | RuntimeError::Shim(_) => ErrorKind::Internal,
        }
    }

    /// The exit code Docker's CLI uses for this failure to start, if any.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            RuntimeError::ExecutableNotFound(_) => Some(127),
            RuntimeError::PermissionDenied(_) => Some(126),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            what: what.into(),
            source,
        }
    }
}

/// Formats an error with its chain of sources, `a: b: c`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}

/// An error as it travels on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub(crate) enum WireError {
    InvalidSpec(String),
    Unsupported(String),
    ExecutableNotFound(String),
    PermissionDenied(String),
    User(String),
    Conflict(String),
    ExecNotFound(String),
    Internal(String),
}

impl From<&RuntimeError> for WireError {
    fn from(e: &RuntimeError) -> Self {
        match e {
            RuntimeError::InvalidSpec(m) => WireError::InvalidSpec(m.clone()),
            RuntimeError::Unsupported(m) => WireError::Unsupported(m.clone()),
            RuntimeError::ExecutableNotFound(m) => WireError::ExecutableNotFound(m.clone()),
            RuntimeError::PermissionDenied(m) => WireError::PermissionDenied(m.clone()),
            RuntimeError::User(m) => WireError::User(m.clone()),
            RuntimeError::Conflict(m) => WireError::Conflict(m.clone()),
            RuntimeError::ExecNotFound(m) => WireError::ExecNotFound(m.clone()),
            other => WireError::Internal(chain(other)),
        }
    }
}

impl From<WireError> for RuntimeError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::InvalidSpec(m) => RuntimeError::InvalidSpec(m),
            WireError::Unsupported(m) => RuntimeError::Unsupported(m),
            WireError::ExecutableNotFound(m) => RuntimeError::ExecutableNotFound(m),
            WireError::PermissionDenied(m) => RuntimeError::PermissionDenied(m),
            WireError::User(m) => RuntimeError::User(m),
            WireError::Conflict(m) => RuntimeError::Conflict(m),
            WireError::ExecNotFound(m) => RuntimeError::ExecNotFound(m),
            WireError::Internal(m) => RuntimeError::Shim(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_keep_their_kind_over_the_wire() {
        let e = RuntimeError::ExecutableNotFound(
            "\"nosuch\": executable file not found in $PATH".into(),
        );
        let wire = serde_json::to_string(&WireError::from(&e)).unwrap();
        let back: RuntimeError = serde_json::from_str::<WireError>(&wire).unwrap().into();
        assert_eq!(back.exit_code(), Some(127));
        assert_eq!(
            back.to_string(),
            "Unable to start container process: exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(back.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn internal_errors_carry_their_chain() {
        let e = RuntimeError::io(
            "mount the root filesystem",
            std::io::Error::from_raw_os_error(libc::ENOENT),
        );
        let back: RuntimeError = WireError::from(&e).into();
        assert!(back
            .to_string()
            .starts_with("Failed to mount the root filesystem: No such file"));
        assert_eq!(back.kind(), ErrorKind::Internal);
    }
}
