//! Servin's native Linux runtime: turns a [`ContainerSpec`] into a running
//! container through a per-container shim (`servin-shim`), which owns the
//! container's stdio, log and exit status and outlives the daemon.
//!
//! The engine calls [`spawn_shim`] (which returns once the container is
//! created), attaches, calls [`ShimClient::start`], and later
//! [`ShimClient::wait`]; after a daemon restart it re-adopts running
//! containers with [`ShimClient::connect`] and reads finished ones with
//! [`read_exit_status`].

mod bundle;
mod caps;
mod cgroups;
mod client;
mod error;
mod fsutil;
mod lookup;
mod mounts;
mod paths;
pub mod protocol;
pub mod seccomp;
#[doc(hidden)]
pub mod shim;
mod spec;
mod users;

pub use client::{read_exit_status, spawn_shim, ShimClient};
pub use error::RuntimeError;
pub use shim::clean_up_after_lost_shim;
pub use spec::{
    ContainerSpec, ExecId, ExecStatus, ExitStatus, MountSpec, NetworkMode, ProcessSpec, Resources,
    RuntimeKind, ShimState, EXIT_FILE, PID_FILE, SHIM_LOG_FILE, SOCKET_FILE, SPEC_FILE,
};
