//! What is persisted, in Docker's field names where Docker has the field, so
//! `network inspect` can be served from it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// One network, as `GET /networks/{id}` shows it (less `Containers`, which
/// is computed from the endpoints).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The Linux bridge of a `bridge` network (not a Docker field: Docker
    /// keeps it in `Options["com.docker.network.bridge.name"]` for the
    /// default network only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "ServinBridge"
    )]
    pub bridge: Option<String>,
}

impl Network {
    /// The network's subnet and gateway (bridge networks have exactly one).
    pub fn subnet(&self) -> Option<(Ipv4Net, Ipv4Addr)> {
        let c = self.ipam.config.first()?;
        Some((c.subnet, c.gateway))
    }

    /// `bridge`, `host` and `none`: made by the engine, never removed.
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// The default `bridge` network: no DNS by name, no `--ip`, as Docker.
    pub fn is_default_bridge(&self) -> bool {
        self.name == "bridge"
    }

    /// Its bridge driver options (`network create -o`).
    pub fn bridge_options(&self) -> crate::Result<BridgeOptions> {
        BridgeOptions::from(&self.options)
    }
}

/// The bridge driver's options Docker has and we honour; the others are
/// kept and shown, as Docker keeps unknown ones.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeOptions {
    /// `com.docker.network.driver.mtu`: the containers' interfaces' MTU.
    pub mtu: Option<u32>,
    /// `com.docker.network.bridge.enable_icc`: whether containers of the
    /// network reach each other (the bridge ports are isolated if not).
    pub icc: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade`: outbound NAT.
    pub masquerade: bool,
    /// `com.docker.network.bridge.host_binding_ipv4`: the host address of a
    /// port published without one.
    pub host_binding: Option<Ipv4Addr>,
}

impl BridgeOptions {
    pub fn from(options: &BTreeMap<String, String>) -> crate::Result<BridgeOptions> {
        let bad = |key: &str, value: &str, why: &str| {
            crate::Error::InvalidOption(format!("invalid value {value:?} for option {key}: {why}"))
        };
        let flag = |key: &str| -> crate::Result<bool> {
            match options.get(key).map(String::as_str) {
                None => Ok(true),
                Some(v) => servin_api::parse_go_bool(v).ok_or_else(|| bad(key, v, "not a boolean")),
            }
        };
        const MTU: &str = "com.docker.network.driver.mtu";
        const BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
        let mtu = match options.get(MTU) {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(0) => None,
                Ok(n) if (68..=65535).contains(&n) => Some(n),
                _ => return Err(bad(MTU, v, "an MTU is a number from 68 to 65535")),
            },
        };
        let host_binding = match options.get(BINDING) {
            None => None,
            Some(v) => match v.parse::<Ipv4Addr>() {
                Ok(ip) if ip.is_unspecified() => None,
                Ok(ip) => Some(ip),
                Err(_) => return Err(bad(BINDING, v, "not an IPv4 address")),
            },
        };
        Ok(BridgeOptions {
            mtu,
            icc: flag("com.docker.network.bridge.enable_icc")?,
            masquerade: flag("com.docker.network.bridge.enable_ip_masquerade")?,
            host_binding,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// `--ip-range`: where addresses are handed out from (an asked `--ip`
    /// may be anywhere in the subnet).
    #[serde(default, rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    /// `--aux-address name=ip`: addresses never handed out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, Ipv4Addr>,
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port asked for: `-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: Proto,
    pub container_port: u16,
    /// `None`: every host address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// `None`: a free port from the ephemeral range.
    pub host_port: Option<u16>,
    /// With `host_port`, the last port of a range (`8000-8010`): the first
    /// free one of the range is taken.
    pub host_port_end: Option<u16>,
}

/// A port as published: the host side is always concrete.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedPort {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    /// A port published on every address is also served on `[::]` (by a
    /// userland proxy, `proxy.rs`: the container has IPv4 only), as Docker
    /// does.
    #[serde(default)]
    pub v6: bool,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub container_id: String,
    /// The container's name without the leading `/`.
    pub container_name: String,
    /// `--network-alias` values.
    pub aliases: Vec<String>,
    /// Names the embedded DNS answers for (Docker's `DNSNames`): the
    /// container's name, its short ID and the aliases; empty on the default
    /// bridge.
    pub dns_names: Vec<String>,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The host side of the veth pair.
    pub host_veth: String,
    /// The interface name inside the container (`eth0`, `eth1`, …).
    pub ifname: String,
    pub ports: Vec<PublishedPort>,
    /// The netns the endpoint was made in, as the engine named it.
    pub netns: PathBuf,
    /// Port of the embedded DNS server inside the container's netns (the
    /// netns's own nft rule sends 127.0.0.11:53 there); 0 when none.
    #[serde(default)]
    pub dns_port: u16,
    /// The `--ip` asked for, shown as `IPAMConfig` in inspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_ip: Option<Ipv4Addr>,
    /// `--link`s on this (user) network: names only this container
    /// resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<NetLink>,
    /// The container's own resolvers (`--dns`): where its embedded DNS
    /// forwards the names it does not know, instead of the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<SocketAddr>,
}

/// A legacy link on a user network (`--link NAME:ALIAS`), as Docker keeps
/// it there: ALIAS resolves, for the linking container only, to the linked
/// container's address on the same network; nothing else (no variables,
/// no `/etc/hosts` line) comes of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetLink {
    /// The link as given (`db:database`), shown in inspect's `Links`.
    pub spec: String,
    /// The linked container's ID.
    pub container_id: String,
    pub alias: String,
}

/// What `attach` is asked to do.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub container_id: String,
    pub container_name: String,
    /// Network name, ID or unique ID prefix.
    pub network: String,
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<PortRequest>,
    /// The container's network namespace: `/proc/PID/ns/net` or a bind mount.
    pub netns: PathBuf,
    pub links: Vec<NetLink>,
    /// `--dns` servers (see [`Endpoint::dns_servers`]).
    pub dns: Vec<SocketAddr>,
    /// `--mac-address`; `None`: derived from the address, as Docker's.
    pub mac: Option<[u8; 6]>,
}

/// `POST /networks/create`, in our terms.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    /// Empty means `bridge`.
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// `--ip-range` (needs `subnet`).
    pub ip_range: Option<String>,
    /// `--aux-address`: name → address (needs `subnet`).
    pub aux_addresses: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    /// Refused for now: IPv6 is not supported yet.
    pub enable_ipv6: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// Everything persisted, in one file written atomically.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub networks: Vec<Network>,
    pub endpoints: Vec<Endpoint>,
}
