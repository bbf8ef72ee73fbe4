//! Container networking for Servin, natively on Linux: Docker's `bridge`
//! driver.
//!
//! - [`Networks`] is the one handle the engine uses: networks (`create`,
//!   `remove`, `prune`, `list`, `inspect`) and endpoints (`attach`,
//!   `detach`, `restore` after a daemon restart).
//! - Links, addresses and routes go through rtnetlink ([`link`]); NAT, port
//!   DNAT and isolation through nftables in a table of our own
//!   ([`firewall`]); names through an embedded DNS server per container
//!   ([`dns`]); addresses from [`ipam`]; host ports from [`ports`].
//! - State lives in `DATA_ROOT/network/state.json` ([`store`]).
//!
//! How the engine uses it (native mode):
//! - daemon start: [`Networks::open`] with [`Config::new`]`(data_root)`,
//!   then [`Networks::restore`] with each running container's netns path;
//! - start of a `bridge`/user-network container: [`netns::create`] at
//!   `containers/<id>/netns`, [`Networks::attach`] for each network (ports
//!   from `HostConfig.PortBindings` via [`ports::from_api`], `-P` as
//!   requests without a host port), write `/etc/hosts` with the endpoint's
//!   address and `resolv.conf` from [`Networks::resolv_conf`], then run the
//!   container joining that netns path;
//! - exit: [`Networks::detach_all`], then [`netns::remove`];
//! - `network connect`/`disconnect`: `attach`/`detach` on the running
//!   container's netns;
//! - inspect: [`api::endpoint_settings`], [`api::port_map`].

pub mod api;
pub mod dns;
mod endpoints;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod model;
pub mod netns;
mod networks;
pub mod ports;
pub mod proxy;
pub mod store;

pub use error::{Error, Result};
pub use model::{
    AttachRequest, BridgeOptions, CreateRequest, Endpoint, NetLink, Network, PortRequest, Proto,
    PublishedPort,
};
pub use networks::{Config, ContainerEntry, NetworkInspect, Networks};
