//! Errors of the network layer, each with the [`ErrorKind`] the API maps to a
//! status. Messages follow Docker's wording where Docker has one.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use servin_api::ErrorKind;

/// What a network operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    NetworkInUse { name: String, id: String },
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("invalid subnet {0}: {1}")]
    InvalidSubnet(String, String),
    #[error("invalid pool request: Pool overlaps with other one on this address space")]
    PoolOverlap(Ipv4Net),
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
    #[error("{0}")]
    InvalidOption(String),
    #[error("invalid ip range {0}: {1}")]
    InvalidRange(String, String),
    #[error("invalid auxiliary address {name}={value}: {why}")]
    InvalidAux {
        name: String,
        value: String,
        why: String,
    },
    #[error("Invalid gateway {gateway}: it is not in subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("no available IPv4 addresses on this network's address pools: {name} ({id})")]
    PoolExhausted { name: String, id: String },
    #[error("Address already in use")]
    AddressInUse(Ipv4Addr),
    #[error("Invalid address {ip}: It does not belong to any of this network's subnets")]
    AddressOutside { ip: Ipv4Addr },
    #[error("user specified IP address is supported on user defined networks only")]
    AddressOnDefault,
    #[error("IPv6 networks are not supported by Servin yet")]
    Ipv6Unsupported,
    #[error("invalid network driver {0:?}: only \"bridge\" is supported")]
    UnsupportedDriver(String),
    #[error("invalid network name {0:?}: {1}")]
    InvalidName(String, &'static str),
    #[error("{0}")]
    InvalidPort(String),
    #[error("Bind for {addr}:{port} failed: port is already allocated")]
    PortAllocated { addr: String, port: u16 },
    #[error("Cannot publish {addr}:{port}")]
    PortBind {
        addr: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("Bind for {addr}:{lo}-{hi} failed: every port of the range is already allocated")]
    PortRangeAllocated { addr: String, lo: u16, hi: u16 },
    #[error("no free host port in {0}-{1}")]
    NoFreePort(u16, u16),
    #[error("endpoint with name {name} already exists in network {network}")]
    EndpointExists { name: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("Cannot open the network namespace {path}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Netlink request failed: {what}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("Netlink request failed: {0}")]
    Link(String),
    #[error("Cannot apply nftables rules in table {table}")]
    Nft {
        table: String,
        #[source]
        source: nftables::helper::NftablesError,
    },
    #[error("Cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot parse {path}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("Cannot start the DNS server in the container's network namespace")]
    Dns(#[source] std::io::Error),
}

impl Error {
    /// The API error class, hence the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            NetworkNotFound(_) | NotConnected { .. } => ErrorKind::NotFound,
            NetworkExists(_)
            | NetworkInUse { .. }
            | AddressInUse(_)
            | PortAllocated { .. }
            | PortRangeAllocated { .. }
            | EndpointExists { .. } => ErrorKind::Conflict,
            Predefined(_) => ErrorKind::Conflict,
            InvalidSubnet(..)
            | InvalidRange(..)
            | InvalidOption(_)
            | InvalidAux { .. }
            | PoolOverlap(_)
            | GatewayOutside { .. }
            | AddressOutside { .. }
            | AddressOnDefault
            | UnsupportedDriver(_)
            | InvalidName(..)
            | InvalidPort(_)
            | PortBind { .. } => ErrorKind::InvalidArgument,
            Ipv6Unsupported => ErrorKind::Unsupported,
            NoPool | PoolExhausted { .. } | NoFreePort(..) => ErrorKind::Unavailable,
            Netns { .. }
            | Netlink { .. }
            | Link(_)
            | Nft { .. }
            | Io { .. }
            | Corrupt { .. }
            | Dns(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
