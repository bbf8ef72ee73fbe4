//! Container networking in the engine: the [`Networks`] handle of
//! `servin-network` (opened at daemon start), the `/networks` operations,
//! and each container's network sandbox: made and wired at start, released
//! at exit and removal.
//!
//! A container's networks are kept in its record as Docker's create body
//! has them (`Config.NetworkingConfig.EndpointsConfig`, keyed by network
//! name); `HostConfig.NetworkMode` names the first one. `connect` and
//! `disconnect` edit that map, so a stopped container keeps its networks
//! for the next start.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{json, Map, Value};
use servin_api::{Error, ErrorKind};
use servin_network::{api, netns, ports, AttachRequest, CreateRequest, Endpoint, Networks};
use servin_runtime::{NetworkMode, ShimClient, ShimState};

use crate::containers::{ContainerRecord, State};
use crate::Engine;

pub use servin_network::Config as NetworkConfig;
/// An IPv4 subnet, as [`NetworkConfig::default_subnet`] takes it.
pub type NetworkSubnet = ipnet::Ipv4Net;

/// The engine's networking state.
#[derive(Default)]
pub(crate) struct NetState {
    handle: OnceLock<Arc<Networks>>,
    /// Why networking could not be opened, if it could not.
    open_error: OnceLock<String>,
    /// Networks by ID, name and default-bridge flag, for synchronous checks
    /// (container create) and views.
    known: RwLock<Vec<Known>>,
    /// Each attached container's endpoints with their network's name, for
    /// the synchronous views (inspect, ps).
    endpoints: RwLock<HashMap<String, Vec<(String, Endpoint)>>>,
}

#[derive(Clone)]
struct Known {
    id: String,
    name: String,
    driver: String,
    gateway: Option<Ipv4Addr>,
}

/// How a container's network namespace is made, from its record.
pub(crate) enum Plan {
    Host,
    None,
    /// `container:NAME`.
    Container(String),
    /// Networks to attach to, the first one first (`eth0`).
    Attach(Vec<Want>),
}

/// One network a container asks for.
pub(crate) struct Want {
    pub network: String,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    /// The endpoint's `Links` (`--link` on a user network).
    pub links: Vec<String>,
    /// `--mac-address` (the endpoint's `MacAddress`).
    pub mac: Option<[u8; 6]>,
}

/// What a start gets from [`Engine::setup_network`].
pub(crate) struct Sandbox {
    pub mode: NetworkMode,
    /// The container's endpoints, first network first.
    pub endpoints: Vec<Endpoint>,
    /// Whether its resolver is the embedded DNS server (user networks).
    pub embedded_dns: bool,
    /// `container:` mode: the other container's directory, whose `hosts`,
    /// `resolv.conf` and `hostname` are shared.
    pub share_from: Option<PathBuf>,
    /// Linked containers on the default bridge (`--link`).
    pub links: Vec<crate::links::Linked>,
}

fn net_error(e: servin_network::Error) -> Error {
    Error::from_chain(e.kind(), &e)
}

/// The network mode as Docker normalises it: empty and `default` are
/// `bridge`.
pub(crate) fn network_mode(hc: &Value) -> String {
    match hc["NetworkMode"].as_str().unwrap_or("") {
        "" | "default" => "bridge".into(),
        m => m.to_string(),
    }
}

fn endpoints_config(config: &Value) -> Map<String, Value> {
    config["NetworkingConfig"]["EndpointsConfig"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn mac_from(v: &Value) -> Result<Option<[u8; 6]>, Error> {
    match v.as_str() {
        None | Some("") => Ok(None),
        Some(s) => servin_network::ipam::parse_mac(s)
            .map(Some)
            .map_err(Error::invalid),
    }
}

fn want_from(network: &str, settings: &Value) -> Result<Want, Error> {
    let ip = match settings["IPAMConfig"]["IPv4Address"].as_str() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| Error::invalid(format!("invalid IPv4 address: {s}")))?,
        ),
    };
    let strs = crate::strs;
    Ok(Want {
        network: network.to_string(),
        aliases: strs(&settings["Aliases"]),
        ip,
        links: strs(&settings["Links"]),
        mac: mac_from(&settings["MacAddress"])?,
    })
}

/// Options that cannot go with a `host` or `container:` network mode, with
/// Docker's messages, in Docker's order.
fn mode_conflicts(mode: &str, hc: &Value, config: &Value) -> Result<(), Error> {
    let container = mode.starts_with("container:");
    let host = mode == "host";
    let given = |v: &Value| match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    };
    let conflicts = [
        (container && given(&config["Hostname"]), "hostname and the network mode"),
        (
            container && given(&hc["Links"]),
            "container type network can't be used with links. This would result in undefined behavior",
        ),
        (container && given(&hc["Dns"]), "dns and the network mode"),
        (
            container && given(&hc["ExtraHosts"]),
            "custom host-to-IP mapping and the network mode",
        ),
        (
            (container || host)
                && (given(&config["MacAddress"])
                    || endpoints_config(config)
                        .values()
                        .any(|s| given(&s["MacAddress"]))),
            "mac-address and the network mode",
        ),
        (
            container && (given(&hc["PortBindings"]) || given(&hc["PublishAllPorts"])),
            "port publishing and the container type network mode",
        ),
        (
            container && given(&config["ExposedPorts"]),
            "port exposing and the container type network mode",
        ),
        (
            host && given(&hc["Links"]),
            "host type networking can't be used with links. This would result in undefined behavior",
        ),
    ];
    match conflicts.iter().find(|(hit, _)| *hit) {
        Some((_, what)) => Err(Error::invalid(format!("conflicting options: {what}"))),
        None => Ok(()),
    }
}

/// The plan for a record: its mode, then the networks of its endpoints
/// config (the mode's network first).
pub(crate) fn plan(rec: &ContainerRecord) -> Result<Plan, Error> {
    let mode = network_mode(&rec.host_config);
    match mode.as_str() {
        "host" => return Ok(Plan::Host),
        "none" => return Ok(Plan::None),
        _ => {}
    }
    if let Some(other) = mode.strip_prefix("container:") {
        return Ok(Plan::Container(other.to_string()));
    }
    let ec = endpoints_config(&rec.config);
    let mut wants = Vec::new();
    if let Some(s) = ec.get(&mode) {
        wants.push(want_from(&mode, s)?);
    }
    for (name, s) in &ec {
        if *name != mode {
            wants.push(want_from(name, s)?);
        }
    }
    // `Config.MacAddress` (before API 1.44) is the first network's.
    if let Some(first) = wants.first_mut() {
        if first.mac.is_none() {
            first.mac = mac_from(&rec.config["MacAddress"])?;
        }
    }
    Ok(Plan::Attach(wants))
}

/// Host resolvers as Docker passes them to a container on the default
/// bridge: loopback ones cannot work from inside a container and are left
/// out; when none remain, Docker's defaults (Google's public resolvers).
fn host_nameservers(resolv: &str) -> Vec<String> {
    let servers: Vec<String> = resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| {
            s.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .collect();
    if servers.is_empty() {
        vec!["8.8.8.8".into(), "8.8.4.4".into()]
    } else {
        servers
    }
}

/// The `resolv.conf` a container gets, as Docker writes it.
pub(crate) fn resolv_conf(hc: &Value, host_resolv: &str, embedded: bool, host_net: bool) -> String {
    let list = |key: &str| -> Vec<String> {
        hc[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let (dns, search, options) = (list("Dns"), list("DnsSearch"), list("DnsOptions"));
    if host_net && dns.is_empty() && search.is_empty() && options.is_empty() {
        return host_resolv.to_string();
    }
    let host_lines = |prefix: &str| -> Vec<String> {
        host_resolv
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .flat_map(|s| s.split_whitespace().map(str::to_string))
            .collect()
    };
    let search = if search.is_empty() {
        host_lines("search")
    } else {
        search
    };
    let mut out = String::new();
    if embedded {
        out.push_str("nameserver 127.0.0.11\n");
    } else {
        let servers = if dns.is_empty() {
            host_nameservers(host_resolv)
        } else {
            dns.clone()
        };
        for s in servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    let mut opts = if options.is_empty() {
        host_lines("options")
    } else {
        options
    };
    if embedded && !opts.iter().any(|o| o.starts_with("ndots:")) {
        opts.push("ndots:0".into());
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    if embedded && !dns.is_empty() {
        // The embedded server forwards to these (Docker's "external
        // servers"), not to the host's.
        out.push_str(&format!("\n# ExtServers: [{}]\n", dns.join(" ")));
    }
    out
}

impl NetState {
    fn handle(&self) -> Option<&Arc<Networks>> {
        self.handle.get()
    }

    fn find(&self, key: &str) -> Option<Known> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        known
            .iter()
            .find(|n| n.id == key)
            .or_else(|| known.iter().find(|n| n.name == key))
            .or_else(|| {
                let mut m = known
                    .iter()
                    .filter(|n| !key.is_empty() && n.id.starts_with(key));
                match (m.next(), m.next()) {
                    (Some(n), None) => Some(n),
                    _ => None,
                }
            })
            .cloned()
    }

    fn set_endpoints(&self, id: &str, eps: Vec<(String, Endpoint)>) {
        let mut map = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        if eps.is_empty() {
            map.remove(id);
        } else {
            map.insert(id.to_string(), eps);
        }
    }

    fn endpoints(&self, id: &str) -> Vec<(String, Endpoint)> {
        self.endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
}

impl Engine {
    fn net(&self) -> &NetState {
        &self.inner.net
    }

    fn networks(&self) -> Result<&Arc<Networks>, Error> {
        self.net().handle().ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "Container networking is not available: {}",
                    self.net()
                        .open_error
                        .get()
                        .map_or("it was not set up", String::as_str)
                ),
            )
        })
    }

    /// Opens container networking (daemon start, before [`Engine::restore`]):
    /// makes the predefined networks, and keeps the addresses, ports and
    /// names of containers whose shims still run; the others' endpoints
    /// go. A failure is remembered: the engine runs on, and containers
    /// asking for a network get the reason.
    pub async fn open_networks(&self, cfg: NetworkConfig) -> Result<(), Error> {
        let result = self.open_networks_inner(cfg).await;
        if let Err(e) = &result {
            let _ = self.net().open_error.set(e.to_string());
        }
        result
    }

    async fn open_networks_inner(&self, cfg: NetworkConfig) -> Result<(), Error> {
        let nets = Networks::open(cfg).await.map_err(net_error)?;
        let engine = self.clone();
        let live: HashMap<String, PathBuf> = tokio::task::spawn_blocking(move || {
            engine
                .containers()
                .all()
                .into_iter()
                .filter(|r| {
                    matches!(
                        r.state,
                        State::Running { .. } | State::Paused { .. } | State::Restarting { .. }
                    )
                })
                .filter_map(|r| {
                    let dir = engine.containers().dir(&r.id);
                    let alive = ShimClient::connect(&dir)
                        .and_then(|c| c.state())
                        .is_ok_and(|s| !matches!(s, ShimState::Exited { .. }));
                    let ns = dir.join("netns");
                    (alive && ns.exists()).then_some((r.id, ns))
                })
                .collect()
        })
        .await
        .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))?;
        let kept = nets.restore(&live).await.map_err(net_error)?;
        let _ = self.net().handle.set(Arc::new(nets));
        self.refresh_known().await;
        for id in live.keys() {
            self.refresh_endpoints(id).await;
        }
        tracing::info!(endpoints = kept.len(), "container networking ready");
        Ok(())
    }

    async fn refresh_known(&self) {
        let Some(nets) = self.net().handle() else {
            return;
        };
        let list = nets.list().await;
        *self.net().known.write().unwrap_or_else(|p| p.into_inner()) = list
            .iter()
            .map(|n| Known {
                id: n.network.id.clone(),
                name: n.network.name.clone(),
                driver: n.network.driver.clone(),
                gateway: n.network.subnet().map(|(_, g)| g),
            })
            .collect();
    }

    async fn refresh_endpoints(&self, id: &str) {
        let Some(nets) = self.net().handle() else {
            return;
        };
        let eps = nets
            .endpoints_of(id)
            .await
            .into_iter()
            .map(|e| {
                let name = self
                    .net()
                    .find(&e.network_id)
                    .map_or_else(|| e.network_id.clone(), |k| k.name);
                (name, e)
            })
            .collect();
        self.net().set_endpoints(id, eps);
    }

    /// Checks a create body's networking against the known networks and
    /// returns the endpoints config to record (keys are network names; the
    /// mode's network is always in it).
    pub(crate) fn check_networking(
        &self,
        hc: &Value,
        body: &Value,
    ) -> Result<Option<Value>, Error> {
        let mode = network_mode(hc);
        mode_conflicts(&mode, hc, body)?;
        if matches!(mode.as_str(), "host" | "none") {
            return Ok(None);
        }
        if let Some(other) = mode.strip_prefix("container:") {
            if other.is_empty() {
                return Err(Error::invalid(
                    "invalid container format container:<name|id>",
                ));
            }
            self.containers().get(other)?;
            return Ok(None);
        }
        let mut given = endpoints_config(body);
        // The CLI keys the default network `default`.
        if let Some(v) = given.remove("default") {
            given.entry("bridge".to_string()).or_insert(v);
        }
        if !given.contains_key(&mode) {
            // The CLI may key the mode's network by ID; any other key is an
            // extra network.
            let same = self.net().find(&mode).map(|k| k.name);
            let key = given
                .keys()
                .find(|k| same.is_some() && self.net().find(k).map(|x| x.name) == same)
                .cloned();
            let settings = key.and_then(|k| given.remove(&k)).unwrap_or(json!({}));
            given.insert(mode.clone(), settings);
        }
        // `--link` on a user network is the endpoint's (Docker keeps it
        // there); `check_links` drops it from the host config.
        if mode != "bridge" && hc["Links"].as_array().is_some_and(|l| !l.is_empty()) {
            if let Some(settings) = given.get_mut(&mode).and_then(Value::as_object_mut) {
                if !settings.get("Links").is_some_and(Value::is_array) {
                    settings.insert("Links".into(), hc["Links"].clone());
                }
            }
        }
        let ready = self.net().handle().is_some();
        let mut out = Map::new();
        for (key, settings) in given {
            let want = want_from(&key, &settings)?;
            let name = match self.net().find(&key) {
                Some(k) => {
                    if k.driver == "host" || k.driver == "null" {
                        return Err(Error::invalid(format!(
                            "container cannot be connected to multiple networks with one of the networks in private (none) mode or host mode: {}",
                            k.name
                        )));
                    }
                    if k.name == "bridge" && want.ip.is_some() {
                        return Err(Error::invalid(
                            "user specified IP address is supported on user defined networks only",
                        ));
                    }
                    if k.name == "bridge" && !want.aliases.is_empty() {
                        return Err(Error::invalid(
                            "network-scoped alias is supported only for containers in user defined networks",
                        ));
                    }
                    k.name
                }
                None if !ready && key == "bridge" => key,
                None => return Err(Error::not_found(format!("network {key} not found"))),
            };
            out.insert(name, settings);
        }
        Ok(Some(json!({ "EndpointsConfig": out })))
    }

    /// Makes the container's network sandbox before its shim starts. On
    /// failure nothing of it remains.
    pub(crate) async fn setup_network(&self, rec: &ContainerRecord) -> Result<Sandbox, Error> {
        let bare = |mode| Sandbox {
            mode,
            endpoints: vec![],
            embedded_dns: false,
            share_from: None,
            links: vec![],
        };
        let wants = match plan(rec)? {
            Plan::Host => return Ok(bare(NetworkMode::Host)),
            Plan::None => return Ok(bare(NetworkMode::None)),
            Plan::Container(other) => {
                let o = self.containers().get(&other)?;
                let pid = match o.state {
                    State::Running { pid, .. } | State::Paused { pid, .. } => pid,
                    _ => {
                        return Err(Error::conflict(format!(
                            "cannot join network namespace of a non running container: {}",
                            o.id
                        )))
                    }
                };
                let dir = self.containers().dir(&o.id);
                let pinned = dir.join("netns");
                let path = if pinned.exists() {
                    pinned
                } else {
                    PathBuf::from(format!("/proc/{pid}/ns/net"))
                };
                return Ok(Sandbox {
                    mode: NetworkMode::Join(path),
                    endpoints: vec![],
                    embedded_dns: false,
                    share_from: Some(dir),
                    links: vec![],
                });
            }
            Plan::Attach(w) => w,
        };
        let Some(nets) = self.net().handle().cloned() else {
            if wants.iter().all(|w| w.network == "bridge") {
                // No networking on this host: the loopback-only sandbox the
                // engine had before, with the reason in the log.
                tracing::warn!(container_id = %rec.id, "container networking is not available; the container gets loopback only");
                return Ok(bare(NetworkMode::Private));
            }
            return Err(self.networks().err().unwrap_or_else(|| Error::internal("")));
        };
        // Links are checked before anything is made.
        let links = match wants.first() {
            Some(w) if w.network == "bridge" => self.linked_on_bridge(rec)?,
            _ => vec![],
        };
        let mut net_links = Vec::new();
        for w in &wants {
            net_links.push(self.net_links(&w.links)?);
        }
        let path = self.containers().dir(&rec.id).join("netns");
        netns::remove(&path).map_err(net_error)?;
        netns::create(&path).await.map_err(net_error)?;
        let mut endpoints = Vec::new();
        let made: Result<(), Error> = async {
            for (i, w) in wants.iter().enumerate() {
                let ports = if i == 0 { port_requests(rec)? } else { vec![] };
                let ep = nets
                    .attach(AttachRequest {
                        container_id: rec.id.clone(),
                        container_name: rec.name.clone(),
                        network: w.network.clone(),
                        aliases: w.aliases.clone(),
                        ip: w.ip,
                        ports,
                        netns: path.clone(),
                        links: net_links[i].clone(),
                        dns: dns_servers(&rec.host_config),
                        mac: w.mac,
                    })
                    .await
                    .map_err(|e| {
                        let port = matches!(
                            e,
                            servin_network::Error::PortAllocated { .. }
                                | servin_network::Error::PortRangeAllocated { .. }
                                | servin_network::Error::PortBind { .. }
                                | servin_network::Error::NoFreePort(..)
                        );
                        let err = net_error(e);
                        let what = if port {
                            format!(
                                "driver failed programming external connectivity on endpoint {}: ",
                                rec.name
                            )
                        } else {
                            String::new()
                        };
                        Error::new(
                            err.kind,
                            format!(
                                "failed to set up container networking: {what}{}",
                                err.message
                            ),
                        )
                    })?;
                endpoints.push(ep);
            }
            Ok(())
        }
        .await;
        if let Err(e) = made {
            let _ = nets.detach_all(&rec.id).await;
            let _ = netns::remove(&path);
            self.net().set_endpoints(&rec.id, vec![]);
            return Err(e);
        }
        let embedded_dns = nets.resolv_conf(&rec.id).await.is_some();
        self.refresh_endpoints(&rec.id).await;
        Ok(Sandbox {
            mode: NetworkMode::Join(path),
            endpoints,
            embedded_dns,
            share_from: None,
            links,
        })
    }

    /// Gives back a container's addresses, ports, names and netns (exit,
    /// failed start, removal). Safe to call more than once.
    pub(crate) async fn release_network(&self, id: &str) {
        if let Some(nets) = self.net().handle() {
            if let Err(e) = nets.detach_all(id).await {
                tracing::warn!(container_id = %id, error = %e, "cannot release all of the container's network");
            }
        }
        self.net().set_endpoints(id, vec![]);
        let path = self.containers().dir(id).join("netns");
        if let Err(e) = netns::remove(&path) {
            tracing::warn!(container_id = %id, error = %e, "cannot remove the container's network namespace");
        }
    }

    /// A container's address on the default bridge, while it has one.
    pub(crate) fn bridge_address(&self, id: &str) -> Option<Ipv4Addr> {
        self.net()
            .endpoints(id)
            .into_iter()
            .find(|(n, _)| n == "bridge")
            .map(|(_, e)| e.ip)
    }

    /// The gateway of the default bridge: what `host-gateway` in
    /// `--add-host` stands for.
    pub(crate) fn host_gateway_ip(&self) -> Option<Ipv4Addr> {
        self.net().find("bridge").and_then(|k| k.gateway)
    }

    /// `NetworkSettings` of a container's inspect.
    pub(crate) fn network_settings_view(&self, rec: &ContainerRecord) -> Value {
        let eps = if rec.state.is_running() {
            self.net().endpoints(&rec.id)
        } else {
            vec![]
        };
        let mode = network_mode(&rec.host_config);
        let mut networks = Map::new();
        let mut names: Vec<String> = match mode.as_str() {
            "host" | "none" => vec![mode.clone()],
            m if m.starts_with("container:") => vec![],
            _ => endpoints_config(&rec.config).keys().cloned().collect(),
        };
        for (name, _) in &eps {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        for name in names {
            let v = match eps.iter().find(|(n, _)| *n == name) {
                Some((_, e)) => serde_json::to_value(api::endpoint_settings(e)).unwrap_or_default(),
                None => json!({
                    "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                    "NetworkID": self.net().find(&name).map(|k| k.id).unwrap_or_default(),
                    "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                    "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                    "DNSNames": null,
                }),
            };
            networks.insert(name, v);
        }
        let endpoints: Vec<Endpoint> = eps.iter().map(|(_, e)| e.clone()).collect();
        let ports = if rec.state.is_running() && !endpoints.is_empty() {
            serde_json::to_value(api::port_map(&endpoints, &exposed(rec))).unwrap_or_default()
        } else {
            json!({})
        };
        let default = eps.iter().find(|(n, _)| n == "bridge").map(|(_, e)| e);
        let pinned = self.containers().dir(&rec.id).join("netns");
        json!({
            "Bridge": "",
            "SandboxID": if rec.state.is_running() && pinned.exists() { rec.id.clone() } else { String::new() },
            "SandboxKey": if rec.state.is_running() && pinned.exists() { pinned.display().to_string() } else { String::new() },
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": default.map(|e| e.id.clone()).unwrap_or_default(),
            "Gateway": default.map(|e| e.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": default.map(|e| e.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": default.map(|e| e.prefix_len).unwrap_or(0),
            "IPv6Gateway": "",
            "MacAddress": default.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks,
        })
    }

    /// `Ports` of a `GET /containers/json` row.
    pub(crate) fn ports_row_view(&self, rec: &ContainerRecord) -> Value {
        if !rec.state.is_running() {
            return json!([]);
        }
        let mut rows = Vec::new();
        let eps = self.net().endpoints(&rec.id);
        let mut bound = Vec::new();
        for (_, e) in &eps {
            for p in &e.ports {
                bound.push(format!("{}/{}", p.container_port, p.proto.as_str()));
                rows.push(json!({"IP": p.host_ip.to_string(), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto.as_str()}));
                if p.v6 {
                    rows.push(json!({"IP": "::", "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto.as_str()}));
                }
            }
        }
        for key in exposed(rec) {
            if !bound.contains(&key) {
                let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
                if let Ok(port) = port.parse::<u16>() {
                    rows.push(json!({"PrivatePort": port, "Type": proto}));
                }
            }
        }
        json!(rows)
    }

    /// `GET /networks`, with Docker's filters.
    pub async fn list_networks(&self, filters: &str) -> Result<Vec<Value>, Error> {
        let filters = crate::filters::Filters::parse(filters)?;
        for key in filters.keys() {
            if !matches!(
                key.as_str(),
                "name" | "id" | "driver" | "label" | "type" | "scope" | "dangling"
            ) {
                return Err(Error::invalid(format!("invalid filter '{key}'")));
            }
        }
        let nets = self.networks()?;
        let mut out = Vec::new();
        for n in nets.list().await {
            let net = &n.network;
            let any = |key: &str, f: &dyn Fn(&str) -> bool| {
                let v = filters.values(key);
                v.is_empty() || v.iter().any(|x| f(x))
            };
            let keep = any("name", &|x| net.name.contains(x))
                && any("id", &|x| net.id.starts_with(x))
                && any("driver", &|x| net.driver == x)
                && any("scope", &|x| net.scope == x)
                && any("type", &|x| match x {
                    "builtin" => net.is_predefined(),
                    "custom" => !net.is_predefined(),
                    _ => false,
                })
                && any("dangling", &|x| {
                    let dangling = matches!(x, "true" | "1");
                    dangling == (n.containers.is_empty() && !net.is_predefined())
                })
                && filters
                    .values("label")
                    .iter()
                    .all(|l| match l.split_once('=') {
                        Some((k, v)) => net.labels.get(k).is_some_and(|x| x == v),
                        None => net.labels.contains_key(l.as_str()),
                    });
            if keep {
                out.push(serde_json::to_value(&n).unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// `GET /networks/{id}`.
    pub async fn inspect_network(&self, key: &str) -> Result<Value, Error> {
        let n = self.networks()?.inspect(key).await.map_err(net_error)?;
        Ok(serde_json::to_value(&n).unwrap_or_default())
    }

    /// `POST /networks/create`: answers `{Id, Warning}`.
    pub async fn create_network(&self, body: &Value) -> Result<Value, Error> {
        let strings = |v: &Value| -> std::collections::BTreeMap<String, String> {
            v.as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        };
        let name = body["Name"].as_str().unwrap_or("");
        if name.is_empty() {
            return Err(Error::invalid("network name must not be empty"));
        }
        let configs = body["IPAM"]["Config"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if configs.len() > 1 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "only one IPAM config (one IPv4 subnet) per network is supported",
            ));
        }
        let first = configs.first().cloned().unwrap_or(json!({}));
        let opt = |k: &str| {
            first[k]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let req = CreateRequest {
            name: name.to_string(),
            driver: body["Driver"].as_str().unwrap_or("").to_string(),
            subnet: opt("Subnet"),
            gateway: opt("Gateway"),
            ip_range: opt("IPRange"),
            aux_addresses: strings(&first["AuxiliaryAddresses"]),
            internal: body["Internal"].as_bool().unwrap_or(false),
            attachable: body["Attachable"].as_bool().unwrap_or(false),
            enable_ipv6: body["EnableIPv6"].as_bool().unwrap_or(false),
            options: strings(&body["Options"]),
            labels: strings(&body["Labels"]),
        };
        let n = self.networks()?.create(req).await.map_err(net_error)?;
        self.refresh_known().await;
        self.emit(network_event("create", &n.network.id, &n.network.name));
        Ok(json!({"Id": n.network.id, "Warning": ""}))
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, key: &str) -> Result<(), Error> {
        let nets = self.networks()?;
        let n = nets.inspect(key).await.map_err(net_error)?;
        nets.remove(key).await.map_err(net_error)?;
        self.refresh_known().await;
        self.emit(network_event("destroy", &n.network.id, &n.network.name));
        Ok(())
    }

    /// `POST /networks/prune`: `{NetworksDeleted}`.
    pub async fn prune_networks(&self, filters: &str) -> Result<Value, Error> {
        let filters = crate::filters::Filters::parse(filters)?;
        for key in filters.keys() {
            if key != "label" {
                return Err(Error::invalid(format!("invalid filter '{key}'")));
            }
        }
        let removed = self
            .networks()?
            .prune(&filters.values("label"))
            .await
            .map_err(net_error)?;
        self.refresh_known().await;
        Ok(json!({ "NetworksDeleted": removed }))
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        settings: &Value,
    ) -> Result<(), Error> {
        let nets = self.networks()?.clone();
        let net = nets.inspect(network).await.map_err(net_error)?.network;
        let rec = self.containers().get(container)?;
        let mode = network_mode(&rec.host_config);
        if matches!(mode.as_str(), "host" | "none") || mode.starts_with("container:") {
            return Err(Error::invalid(
                "container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        if net.driver != "bridge" {
            return Err(Error::invalid(format!(
                "container cannot be disconnected from host network or connected to host network: {}",
                net.name
            )));
        }
        if endpoints_config(&rec.config).contains_key(&net.name) {
            return Err(Error::conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.name
            )));
        }
        let want = want_from(&net.name, settings)?;
        if net.is_default_bridge() && want.ip.is_some() {
            return Err(Error::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if net.is_default_bridge() && !want.aliases.is_empty() {
            return Err(Error::invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        let pinned = self.containers().dir(&rec.id).join("netns");
        if rec.state.is_running() {
            if !pinned.exists() {
                return Err(Error::conflict(format!(
                    "container {} has no network sandbox to connect",
                    rec.short_id()
                )));
            }
            let ep = nets
                .attach(AttachRequest {
                    container_id: rec.id.clone(),
                    container_name: rec.name.clone(),
                    network: net.id.clone(),
                    aliases: want.aliases.clone(),
                    ip: want.ip,
                    ports: vec![],
                    netns: pinned,
                    links: if net.is_default_bridge() {
                        vec![]
                    } else {
                        self.net_links(&want.links)?
                    },
                    dns: dns_servers(&rec.host_config),
                    mac: want.mac,
                })
                .await
                .map_err(net_error)?;
            self.refresh_endpoints(&rec.id).await;
            let hosts = self.containers().dir(&rec.id).join("hosts");
            let hostname = rec.config["Hostname"].as_str().unwrap_or("").to_string();
            let mut text = std::fs::read_to_string(&hosts).unwrap_or_default();
            text.push_str(&format!("{}\t{hostname}\n", ep.ip));
            let _ = std::fs::write(&hosts, text);
        }
        let settings = settings.clone();
        let name = net.name.clone();
        self.containers().update(&rec.id, move |r| {
            let mut nc = r.config["NetworkingConfig"].clone();
            if !nc.is_object() {
                nc = json!({"EndpointsConfig": {}});
            }
            if !nc["EndpointsConfig"].is_object() {
                nc["EndpointsConfig"] = json!({});
            }
            nc["EndpointsConfig"][&name] = settings.clone();
            r.config["NetworkingConfig"] = nc;
            Ok(())
        })?;
        self.emit(network_event("connect", &net.id, &net.name).with("container", &rec.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(&self, network: &str, container: &str) -> Result<(), Error> {
        let nets = self.networks()?.clone();
        let net = nets.inspect(network).await.map_err(net_error)?.network;
        let rec = self.containers().get(container)?;
        let configured = endpoints_config(&rec.config).contains_key(&net.name);
        let attached = self
            .net()
            .endpoints(&rec.id)
            .iter()
            .any(|(_, e)| e.network_id == net.id);
        if !configured && !attached {
            return Err(Error::not_found(format!(
                "container {} is not connected to network {}",
                rec.id, net.name
            )));
        }
        if attached {
            nets.detach(&rec.id, &net.id).await.map_err(net_error)?;
            self.refresh_endpoints(&rec.id).await;
        }
        let name = net.name.clone();
        self.containers().update(&rec.id, move |r| {
            if let Some(ec) = r.config["NetworkingConfig"]["EndpointsConfig"].as_object_mut() {
                ec.remove(&name);
            }
            Ok(())
        })?;
        self.emit(network_event("disconnect", &net.id, &net.name).with("container", &rec.id));
        Ok(())
    }
}

/// A `network` event (`create`, `destroy`, `connect`, `disconnect`).
fn network_event(action: &str, id: &str, name: &str) -> crate::Event {
    let mut e = crate::Event::image(action, id, None);
    e.kind = "network";
    e.actor.attributes.clear();
    e.with("name", name).with("type", "bridge")
}

/// `Config.ExposedPorts` keys (`80/tcp`).
/// `--dns` servers, where a user network's embedded DNS forwards the
/// container's other names (Docker's "external servers").
fn dns_servers(hc: &Value) -> Vec<std::net::SocketAddr> {
    hc["Dns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect()
}

pub(crate) fn exposed(rec: &ContainerRecord) -> Vec<String> {
    rec.config["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Host ports asked for: `HostConfig.PortBindings`, and with
/// `PublishAllPorts` every other exposed port on a random host port.
fn port_requests(rec: &ContainerRecord) -> Result<Vec<servin_network::PortRequest>, Error> {
    let hc = &rec.host_config;
    let mut out = Vec::new();
    let mut bound = Vec::new();
    if let Some(map) = hc["PortBindings"].as_object() {
        for (key, list) in map {
            bound.push(key.clone());
            for b in list.as_array().into_iter().flatten() {
                out.push(
                    ports::from_api(
                        key,
                        b["HostIp"].as_str().unwrap_or(""),
                        b["HostPort"].as_str().unwrap_or(""),
                    )
                    .map_err(net_error)?,
                );
            }
        }
    }
    if hc["PublishAllPorts"].as_bool().unwrap_or(false) {
        for key in exposed(rec) {
            if !bound.contains(&key) {
                out.push(ports::from_api(&key, "", "").map_err(net_error)?);
            }
        }
    }
    Ok(out)
}

/// Copies `hosts`, `resolv.conf` and `hostname` of the container whose
/// netns a `container:` mode container joins.
pub(crate) fn shared_etc(from: &Path, to: &Path) -> Result<(PathBuf, PathBuf, PathBuf), Error> {
    let mut out = Vec::new();
    for f in ["hosts", "resolv.conf", "hostname"] {
        let dst = to.join(f);
        std::fs::copy(from.join(f), &dst)
            .map_err(|e| Error::internal(format!("Cannot write {}: {e}", dst.display())))?;
        out.push(dst);
    }
    let mut it = out.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(Error::internal("Cannot share the container's /etc files")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_resolvers_leave_out_loopback_as_docker_does() {
        let hc = json!({});
        assert_eq!(
            resolv_conf(
                &hc,
                "nameserver 127.0.0.53\nsearch example.org\n",
                false,
                false
            ),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch example.org\n"
        );
        assert_eq!(
            resolv_conf(&hc, "nameserver 10.0.0.2\nnameserver ::1\n", false, false),
            "nameserver 10.0.0.2\n"
        );
        let hc = json!({"Dns": ["10.9.9.9"], "DnsSearch": ["a.test"], "DnsOptions": ["rotate"]});
        assert_eq!(
            resolv_conf(&hc, "nameserver 10.0.0.2\n", false, false),
            "nameserver 10.9.9.9\nsearch a.test\noptions rotate\n"
        );
        assert_eq!(
            resolv_conf(&hc, "nameserver 10.0.0.2\n", true, false),
            "nameserver 127.0.0.11\nsearch a.test\noptions rotate ndots:0\n\n# ExtServers: [10.9.9.9]\n"
        );
        assert_eq!(
            resolv_conf(&json!({}), "nameserver 127.0.0.53\n", false, true),
            "nameserver 127.0.0.53\n"
        );
    }

    #[test]
    fn plans_follow_the_mode_then_the_endpoints() {
        let rec = |mode: &str, ec: Value| ContainerRecord {
            id: "c".repeat(64),
            name: "web".into(),
            created: String::new(),
            image: String::new(),
            image_id: String::new(),
            config: json!({"NetworkingConfig": {"EndpointsConfig": ec}}),
            host_config: json!({"NetworkMode": mode}),
            state: State::Created,
            restart_count: 0,
            manually_stopped: false,
            runtime: "servin".into(),
            health: None,
            anonymous_volumes: Default::default(),
        };
        assert!(matches!(plan(&rec("host", json!({}))).unwrap(), Plan::Host));
        assert!(matches!(plan(&rec("none", json!({}))).unwrap(), Plan::None));
        assert!(
            matches!(plan(&rec("container:db", json!({}))).unwrap(), Plan::Container(c) if c == "db")
        );
        let Plan::Attach(w) = plan(&rec(
            "front",
            json!({"back": {}, "front": {"Aliases": ["www"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}}}),
        ))
        .unwrap() else {
            panic!("not an attach plan");
        };
        assert_eq!(w[0].network, "front");
        assert_eq!(w[0].aliases, ["www"]);
        assert_eq!(w[0].ip, Some(Ipv4Addr::new(10, 1, 0, 9)));
        assert_eq!(w[1].network, "back");
        assert!(plan(&rec(
            "front",
            json!({"front": {"IPAMConfig": {"IPv4Address": "x"}}})
        ))
        .is_err());
    }
}
