//! Servin's VM guest.
//!
//! - [`contract`]: the host/guest contract of `docs/vm-guest-contract.md`
//!   (ports, kernel command line keys, control-port requests), shared by
//!   the host side (`crates/vm`) and `servin-init`. Light on dependencies:
//!   the host depends on this crate with default features off.
//! - [`modules`]: the kernel modules the guest loads and `modules.dep`.
//! - [`system`]: the image's system disk (its `/usr`, read-only).
//! - [`image`] (feature `builder`): the guest image builder.
//! - the `servin-init` binary (feature `init`): the guest's PID 1.

pub mod contract;
#[cfg(feature = "builder")]
pub mod image;
pub mod modules;
pub mod system;
