//! Servin's VM guest.
//!
//! - [`contract`]: the host/guest contract of `docs/vm-guest-contract.md`
//!   (ports, kernel command line keys, control-port requests), shared by
//!   the host side (`crates/vm`) and `servin-init`. Light on dependencies.

pub mod contract;
