//! The [`Networks`] handle: configuration, opening, and networks' lifecycle.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ipnet::Ipv4Net;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::dns::{self, Directory, SharedDirectory};
use crate::error::{Error, Result};
use crate::firewall::{self, NetRules, PortRules};
use crate::ipam;
use crate::link::{self, Netlink};
use crate::model::{CreateRequest, Ipam, IpamConfig, Network, State};
use crate::ports::{self, Reservation};
use crate::store::Store;

/// Docker's option naming a network's Linux bridge.
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// How the network layer is set up; defaults in [`Config::new`].
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    /// The nftables table on the host and in each container's netns.
    pub table: String,
    /// Bridges are `<prefix>0` (the default network) and `<prefix>-<id>`.
    pub bridge_prefix: String,
    /// Host ends of veth pairs are `<prefix><hex>`.
    pub veth_prefix: String,
    /// The default network's subnet (Docker's `--bip`); `None`: the first
    /// free default pool, 172.17.0.0/16 unless the host routes it.
    pub default_subnet: Option<Ipv4Net>,
    /// Where unknown names are forwarded; `None`: the host's
    /// `/etc/resolv.conf`.
    pub upstream_dns: Option<Vec<SocketAddr>>,
    /// Turn on `net.ipv4.ip_forward` (needed for outbound traffic).
    pub enable_ip_forward: bool,
    /// Where random host ports come from.
    pub port_range: (u16, u16),
    /// Published host addresses are another machine's (the VM's host): a
    /// host address this machine lacks is accepted and its port held on
    /// every address instead.
    pub published_elsewhere: bool,
    /// The default bridge's driver options that the daemon sets (Docker's
    /// `--mtu`, `--icc`, `--ip-masq`, `--ip`), over Docker's defaults, at
    /// every start.
    pub default_bridge_options: BTreeMap<String, String>,
}

impl Config {
    pub fn new(data_root: impl Into<PathBuf>) -> Config {
        Config {
            data_root: data_root.into(),
            table: "servin".into(),
            bridge_prefix: "servin".into(),
            veth_prefix: "veth".into(),
            default_subnet: None,
            upstream_dns: None,
            enable_ip_forward: true,
            port_range: ports::EPHEMERAL,
            default_bridge_options: BTreeMap::new(),
            published_elsewhere: false,
        }
    }

    pub(crate) fn default_bridge(&self) -> String {
        format!("{}0", self.bridge_prefix)
    }
}

/// A container on a network, as `network inspect` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerEntry {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `GET /networks/{id}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    #[serde(flatten)]
    pub network: Network,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, ContainerEntry>,
}

/// Docker's `ConfigFrom` (config-only networks are not supported: empty).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    pub network: String,
}

/// The engine's handle on container networking.
pub struct Networks {
    pub(crate) cfg: Config,
    pub(crate) host: Netlink,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) directory: SharedDirectory,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) state: State,
    /// Host ports held, by endpoint ID.
    pub(crate) held: HashMap<String, Vec<Reservation>>,
    /// DNS servers, by container ID.
    pub(crate) dns: HashMap<String, dns::Server>,
    /// The host rule set last installed (nft's JSON), so that a change
    /// which leaves the rules as they are (a container without published
    /// ports) runs no `nft` process.
    pub(crate) installed: Option<String>,
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Networks {
    /// Loads the saved state, makes the predefined networks (`bridge`,
    /// `host`, `none`) on first start, makes sure every bridge exists and
    /// installs the rules for all saved endpoints. Call
    /// [`Networks::restore`] next with the containers still running.
    pub async fn open(cfg: Config) -> Result<Networks> {
        let store = Store::new(&cfg.data_root)?;
        let state = store.load()?;
        let host = Netlink::open()?;
        let upstreams = match &cfg.upstream_dns {
            Some(u) => u.clone(),
            None => dns::upstreams_from(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
        };
        let directory = Arc::new(RwLock::new(Directory {
            views: HashMap::new(),
            upstreams,
        }));
        if cfg.enable_ip_forward {
            let path = "/proc/sys/net/ipv4/ip_forward";
            std::fs::write(path, "1").map_err(|source| Error::Io {
                what: "write",
                path: path.into(),
                source,
            })?;
        }
        let nets = Networks {
            cfg,
            host,
            inner: Mutex::new(Inner {
                store,
                state,
                held: HashMap::new(),
                dns: HashMap::new(),
                installed: None,
            }),
            directory,
        };
        {
            let mut inner = nets.inner.lock().await;
            nets.ensure_predefined(&mut inner).await?;
            for n in inner.state.networks.clone() {
                if let (Some(br), Some((subnet, gw))) = (&n.bridge, n.subnet()) {
                    nets.host.ensure_bridge(br, gw, subnet.prefix_len()).await?;
                    link::route_localnet(br)?;
                }
            }
            tracing::debug!("bridges ready");
            nets.sync(&mut inner).await?;
            tracing::debug!("host rules installed");
        }
        Ok(nets)
    }

    async fn ensure_predefined(&self, inner: &mut Inner) -> Result<()> {
        let mut changed = false;
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !inner.state.networks.iter().any(|n| n.name == name) {
                inner.state.networks.push(Network {
                    name: name.into(),
                    id: random_id(),
                    created: now(),
                    scope: "local".into(),
                    driver: driver.into(),
                    enable_ipv6: false,
                    ipam: Ipam {
                        driver: "default".into(),
                        options: BTreeMap::new(),
                        config: vec![],
                    },
                    internal: false,
                    attachable: false,
                    ingress: false,
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    bridge: None,
                });
                changed = true;
            }
        }
        crate::model::BridgeOptions::from(&self.cfg.default_bridge_options)?;
        if let Some(n) = inner.state.networks.iter_mut().find(|n| n.name == "bridge") {
            for (k, v) in &self.cfg.default_bridge_options {
                if n.options.get(k) != Some(v) {
                    n.options.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
        if !inner.state.networks.iter().any(|n| n.name == "bridge") {
            let subnet = match self.cfg.default_subnet {
                Some(s) => s,
                None => ipam::pick_pool(&self.taken(inner).await?)?,
            };
            let gateway = ipam::gateway(subnet, None)?;
            let bridge = self.cfg.default_bridge();
            let mut options = BTreeMap::from([
                (
                    "com.docker.network.bridge.default_bridge".into(),
                    "true".into(),
                ),
                ("com.docker.network.bridge.enable_icc".into(), "true".into()),
                (
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "true".into(),
                ),
                (
                    "com.docker.network.bridge.host_binding_ipv4".into(),
                    "0.0.0.0".into(),
                ),
                (BRIDGE_NAME_OPTION.into(), bridge.clone()),
                ("com.docker.network.driver.mtu".into(), "1500".into()),
            ]);
            options.extend(self.cfg.default_bridge_options.clone());
            inner.state.networks.push(bridge_network(
                "bridge",
                subnet,
                gateway,
                bridge,
                options,
                false,
                BTreeMap::new(),
            ));
            changed = true;
        }
        if changed {
            inner.store.save(&inner.state)?;
        }
        Ok(())
    }

    /// Subnets a new network must not overlap: other networks' and the
    /// host's routes (less our own bridges').
    async fn taken(&self, inner: &Inner) -> Result<Vec<Ipv4Net>> {
        let mut taken: Vec<Ipv4Net> = inner
            .state
            .networks
            .iter()
            .filter_map(|n| n.subnet().map(|(s, _)| s))
            .collect();
        taken.extend(self.host.routes().await?);
        Ok(taken)
    }

    /// Finds a network by ID, name or unique ID prefix.
    pub(crate) fn find<'s>(state: &'s State, key: &str) -> Result<&'s Network> {
        if let Some(n) = state.networks.iter().find(|n| n.id == key) {
            return Ok(n);
        }
        if let Some(n) = state.networks.iter().find(|n| n.name == key) {
            return Ok(n);
        }
        let mut by_prefix = state
            .networks
            .iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) => Ok(n),
            _ => Err(Error::NetworkNotFound(key.to_string())),
        }
    }

    /// `docker network create`.
    pub async fn create(&self, req: CreateRequest) -> Result<NetworkInspect> {
        if !valid_name(&req.name) {
            return Err(Error::InvalidName(
                req.name.clone(),
                "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            ));
        }
        if !(req.driver.is_empty() || req.driver == "bridge") {
            return Err(Error::UnsupportedDriver(req.driver.clone()));
        }
        if req.enable_ipv6 {
            return Err(Error::Ipv6Unsupported);
        }
        let mut inner = self.inner.lock().await;
        if inner.state.networks.iter().any(|n| n.name == req.name) {
            return Err(Error::NetworkExists(req.name.clone()));
        }
        let subnet = match &req.subnet {
            Some(s) => {
                let subnet = ipam::parse_subnet(s)?;
                let clash = inner
                    .state
                    .networks
                    .iter()
                    .filter_map(|n| n.subnet())
                    .any(|(other, _)| ipam::overlaps(&subnet, &other));
                if clash {
                    return Err(Error::PoolOverlap(subnet));
                }
                subnet
            }
            None => {
                if req.gateway.is_some() {
                    return Err(Error::InvalidSubnet(
                        req.gateway.clone().unwrap_or_default(),
                        "a gateway needs a subnet".into(),
                    ));
                }
                if let Some(r) = &req.ip_range {
                    return Err(Error::InvalidRange(
                        r.clone(),
                        "an ip range needs a subnet".into(),
                    ));
                }
                if let Some((name, value)) = req.aux_addresses.iter().next() {
                    return Err(Error::InvalidAux {
                        name: name.clone(),
                        value: value.clone(),
                        why: "an auxiliary address needs a subnet".into(),
                    });
                }
                ipam::pick_pool(&self.taken(&inner).await?)?
            }
        };
        let gateway = ipam::gateway(subnet, req.gateway.as_deref())?;
        crate::model::BridgeOptions::from(&req.options)?;
        let ip_range = match &req.ip_range {
            Some(r) => Some(ipam::parse_range(subnet, r)?),
            None => None,
        };
        let mut aux = BTreeMap::new();
        for (name, value) in &req.aux_addresses {
            aux.insert(name.clone(), ipam::parse_aux(subnet, name, value)?);
        }
        let id = random_id();
        let bridge = match req.options.get(BRIDGE_NAME_OPTION) {
            Some(b) => b.clone(),
            None => {
                let room = 15usize
                    .saturating_sub(self.cfg.bridge_prefix.len() + 1)
                    .max(4);
                format!("{}-{}", self.cfg.bridge_prefix, &id[..room.min(12)])
            }
        };
        if bridge.is_empty()
            || bridge.len() > 15
            || bridge.contains('/')
            || bridge.contains(char::is_whitespace)
        {
            return Err(Error::InvalidName(
                bridge,
                "a bridge name has 1 to 15 characters, no '/' or spaces",
            ));
        }
        if inner
            .state
            .networks
            .iter()
            .any(|n| n.bridge.as_deref() == Some(bridge.as_str()))
        {
            return Err(Error::NetworkExists(bridge));
        }
        let mut net = bridge_network(
            &req.name,
            subnet,
            gateway,
            bridge.clone(),
            req.options.clone(),
            req.internal,
            req.labels.clone(),
        );
        net.id = id;
        net.attachable = req.attachable;
        if let Some(c) = net.ipam.config.first_mut() {
            c.ip_range = ip_range;
            c.auxiliary_addresses = aux;
        }

        let created = self
            .host
            .ensure_bridge(&bridge, gateway, subnet.prefix_len())
            .await;
        let made = async {
            created?;
            link::route_localnet(&bridge)?;
            inner.state.networks.push(net.clone());
            if let Err(e) = self.sync(&mut inner).await {
                inner.state.networks.pop();
                return Err(e);
            }
            if let Err(e) = inner.store.save(&inner.state) {
                inner.state.networks.pop();
                let _ = self.sync(&mut inner).await;
                return Err(e);
            }
            Ok(())
        }
        .await;
        if let Err(e) = made {
            let _ = self.host.delete(&bridge).await;
            return Err(e);
        }
        tracing::info!(network = %net.name, id = %net.id, %subnet, "network created");
        Ok(inspect_of(&inner.state, &net))
    }

    /// `docker network rm`: refused for predefined networks and networks
    /// with endpoints, with Docker's messages.
    pub async fn remove(&self, key: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let net = Self::find(&inner.state, key)?.clone();
        if net.is_predefined() {
            return Err(Error::Predefined(net.name));
        }
        if inner.state.endpoints.iter().any(|e| e.network_id == net.id) {
            return Err(Error::NetworkInUse {
                name: net.name,
                id: net.id,
            });
        }
        inner.state.networks.retain(|n| n.id != net.id);
        inner.store.save(&inner.state)?;
        self.sync(&mut inner).await?;
        if let Some(br) = &net.bridge {
            self.host.delete(br).await?;
        }
        tracing::info!(network = %net.name, id = %net.id, "network removed");
        Ok(())
    }

    /// `docker network prune`: removes every unused user network whose
    /// labels include all of `labels` (`key` or `key=value`); returns their
    /// names.
    pub async fn prune(&self, labels: &[String]) -> Result<Vec<String>> {
        let victims: Vec<String> = {
            let inner = self.inner.lock().await;
            inner
                .state
                .networks
                .iter()
                .filter(|n| !n.is_predefined())
                .filter(|n| !inner.state.endpoints.iter().any(|e| e.network_id == n.id))
                .filter(|n| {
                    labels.iter().all(|l| match l.split_once('=') {
                        Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                        None => n.labels.contains_key(l),
                    })
                })
                .map(|n| n.id.clone())
                .collect()
        };
        let mut removed = Vec::new();
        for id in victims {
            let name = {
                let inner = self.inner.lock().await;
                Self::find(&inner.state, &id).map(|n| n.name.clone())
            };
            if let Ok(name) = name {
                match self.remove(&id).await {
                    Ok(()) => removed.push(name),
                    Err(Error::NetworkInUse { .. }) | Err(Error::NetworkNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    /// `docker network ls` (each with its containers, as the API's list).
    pub async fn list(&self) -> Vec<NetworkInspect> {
        let inner = self.inner.lock().await;
        inner
            .state
            .networks
            .iter()
            .map(|n| inspect_of(&inner.state, n))
            .collect()
    }

    /// `docker network inspect`.
    pub async fn inspect(&self, key: &str) -> Result<NetworkInspect> {
        let inner = self.inner.lock().await;
        let net = Self::find(&inner.state, key)?;
        Ok(inspect_of(&inner.state, net))
    }

    /// Installs the host rules for the current state and refreshes the DNS
    /// views.
    pub(crate) async fn sync(&self, inner: &mut Inner) -> Result<()> {
        let nets: Vec<NetRules> = inner
            .state
            .networks
            .iter()
            .filter_map(|n| {
                Some(NetRules {
                    bridge: n.bridge.clone()?,
                    subnet: n.subnet()?.0,
                    internal: n.internal,
                    masquerade: n.bridge_options().map_or(true, |o| o.masquerade),
                })
            })
            .collect();
        let eps: Vec<PortRules> = inner
            .state
            .endpoints
            .iter()
            .filter(|e| !e.ports.is_empty())
            .map(|e| PortRules {
                ip: e.ip,
                ports: e.ports.clone(),
            })
            .collect();
        let rules = firewall::host_rules(&self.cfg.table, &nets, &eps);
        let json = serde_json::to_string(&rules).ok();
        if json.is_none() || json != inner.installed {
            // Forgotten first: after a failed transaction the kernel's
            // rules are not known.
            inner.installed = None;
            firewall::apply(&self.cfg.table, rules, None).await?;
            inner.installed = json;
        }
        self.refresh_directory(&inner.state);
        Ok(())
    }

    fn refresh_directory(&self, state: &State) {
        let mut views: HashMap<String, dns::View> = HashMap::new();
        for e in &state.endpoints {
            let Ok(net) = Self::find(state, &e.network_id) else {
                continue;
            };
            if net.is_default_bridge() {
                continue;
            }
            let view = views.entry(e.container_id.clone()).or_default();
            view.forward |= !net.internal;
            if view.upstreams.is_empty() {
                view.upstreams = e.dns_servers.clone();
            }
            for peer in state
                .endpoints
                .iter()
                .filter(|p| p.network_id == e.network_id)
            {
                for name in &peer.dns_names {
                    let ips = view.names.entry(name.to_ascii_lowercase()).or_default();
                    if !ips.contains(&peer.ip) {
                        ips.push(peer.ip);
                    }
                }
                view.reverse
                    .insert(peer.ip, format!("{}.{}", peer.container_name, net.name));
            }
            // Its links: the alias names the linked container's address
            // here, for this container only (none when it is elsewhere).
            for l in &e.links {
                for peer in state
                    .endpoints
                    .iter()
                    .filter(|p| p.network_id == e.network_id && p.container_id == l.container_id)
                {
                    let ips = view.names.entry(l.alias.to_ascii_lowercase()).or_default();
                    if !ips.contains(&peer.ip) {
                        ips.push(peer.ip);
                    }
                }
            }
        }
        self.directory.write().expect("directory lock").views = views;
    }

    /// Removes every rule and bridge this handle made and forgets all
    /// state: for tests and `servind --reset`-like cleanups.
    pub async fn destroy_all(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        inner.dns.clear();
        inner.held.clear();
        for e in std::mem::take(&mut inner.state.endpoints) {
            self.host.delete(&e.host_veth).await?;
        }
        for n in std::mem::take(&mut inner.state.networks) {
            if let Some(br) = &n.bridge {
                self.host.delete(br).await?;
            }
        }
        inner.installed = None;
        firewall::remove(&self.cfg.table, None).await?;
        inner.store.save(&inner.state)?;
        Ok(())
    }
}

fn bridge_network(
    name: &str,
    subnet: Ipv4Net,
    gateway: std::net::Ipv4Addr,
    bridge: String,
    options: BTreeMap<String, String>,
    internal: bool,
    labels: BTreeMap<String, String>,
) -> Network {
    Network {
        name: name.into(),
        id: random_id(),
        created: now(),
        scope: "local".into(),
        driver: "bridge".into(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: BTreeMap::new(),
            config: vec![IpamConfig {
                subnet,
                gateway,
                ip_range: None,
                auxiliary_addresses: BTreeMap::new(),
            }],
        },
        internal,
        attachable: false,
        ingress: false,
        options,
        labels,
        bridge: Some(bridge),
    }
}

fn inspect_of(state: &State, net: &Network) -> NetworkInspect {
    let containers = state
        .endpoints
        .iter()
        .filter(|e| e.network_id == net.id)
        .map(|e| {
            (
                e.container_id.clone(),
                ContainerEntry {
                    name: e.container_name.clone(),
                    endpoint_id: e.id.clone(),
                    mac_address: e.mac.clone(),
                    ipv4_address: format!("{}/{}", e.ip, e.prefix_len),
                    ipv6_address: String::new(),
                },
            )
        })
        .collect();
    NetworkInspect {
        network: net.clone(),
        config_from: ConfigReference::default(),
        config_only: false,
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        assert!(valid_name("my-net_1.x"));
        assert!(valid_name("a"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
    }
}
