//! Endpoints: a container joining and leaving networks, and picking up
//! after a daemon restart.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::dns;
use crate::error::{Error, Result};
use crate::firewall;
use crate::ipam;
use crate::link::Netlink;
use crate::model::{AttachRequest, Endpoint};
use crate::netns;
use crate::networks::{Inner, Networks};
use crate::ports;

fn random_hex(n: usize) -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)[..n].to_string()
}

impl Networks {
    /// Connects a container (its netns at `req.netns`) to a network: a veth
    /// pair into the bridge, an address, a default route, published ports,
    /// and on user networks the embedded DNS server. On failure nothing of
    /// it remains.
    pub async fn attach(&self, req: AttachRequest) -> Result<Endpoint> {
        let mut inner = self.inner.lock().await;
        let net = Self::find(&inner.state, &req.network)?.clone();
        let (Some(bridge), Some((subnet, gateway))) = (net.bridge.clone(), net.subnet()) else {
            return Err(Error::UnsupportedDriver(net.driver.clone()));
        };
        if inner
            .state
            .endpoints
            .iter()
            .any(|e| e.network_id == net.id && e.container_id == req.container_id)
        {
            return Err(Error::EndpointExists {
                name: req.container_name.clone(),
                network: net.name.clone(),
            });
        }
        if req.ip.is_some() && net.is_default_bridge() {
            return Err(Error::AddressOnDefault);
        }
        let config = net.ipam.config.first();
        let used: BTreeSet<_> = inner
            .state
            .endpoints
            .iter()
            .filter(|e| e.network_id == net.id)
            .map(|e| e.ip)
            .chain(
                config
                    .into_iter()
                    .flat_map(|c| c.auxiliary_addresses.values().copied()),
            )
            .collect();
        let range = config.and_then(|c| c.ip_range);
        let ip = ipam::allocate(subnet, range, gateway, &used, req.ip)?.ok_or_else(|| {
            Error::PoolExhausted {
                name: net.name.clone(),
                id: net.id.clone(),
            }
        })?;
        let opts = net.bridge_options()?;
        let ns = netns::open(&req.netns)?;
        let asked_ports: Vec<_> = req
            .ports
            .iter()
            .map(|p| {
                let mut p = *p;
                p.host_ip = p.host_ip.or(opts.host_binding);
                p
            })
            .collect();
        let (published, mut held) = ports::publish(
            &asked_ports,
            &inner.state.endpoints,
            self.cfg.port_range,
            self.cfg.published_elsewhere,
        )?;

        let mine = inner
            .state
            .endpoints
            .iter()
            .filter(|e| e.container_id == req.container_id)
            .count();
        let ifname = format!("eth{mine}");
        let host_veth = format!(
            "{}{}",
            self.cfg.veth_prefix,
            random_hex(15 - self.cfg.veth_prefix.len().min(11))
        );
        let peer = format!(
            "{}p{}",
            self.cfg.veth_prefix,
            random_hex(14 - self.cfg.veth_prefix.len().min(10))
        );
        let mac = req.mac.unwrap_or_else(|| ipam::mac_for(ip));
        let dns_names = if net.is_default_bridge() {
            Vec::new()
        } else {
            let mut names = vec![req.container_name.clone()];
            names.push(req.container_id.chars().take(12).collect());
            names.extend(req.aliases.iter().cloned());
            names.retain(|n| !n.is_empty());
            names.dedup();
            names
        };
        let mut ep = Endpoint {
            id: hex::encode(rand::random::<[u8; 32]>()),
            network_id: net.id.clone(),
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
            aliases: req.aliases.clone(),
            dns_names,
            ip,
            prefix_len: subnet.prefix_len(),
            gateway,
            mac: ipam::mac_string(mac),
            host_veth: host_veth.clone(),
            ifname: ifname.clone(),
            ports: published,
            netns: req.netns.clone(),
            dns_port: 0,
            requested_ip: req.ip,
            links: req.links.clone(),
            dns_servers: req.dns.clone(),
        };

        let mut started_dns = false;
        let made = async {
            self.host
                .veth_into(&host_veth, &peer, &bridge, mac, &ns, &opts)
                .await?;
            let inside = Netlink::open_in(&req.netns).await?;
            let route = (!net.internal).then_some(gateway);
            inside
                .configure_inside(&peer, &ifname, ip, subnet.prefix_len(), route)
                .await?;
            if !net.is_default_bridge() {
                if let Some(server) = inner.dns.get(&req.container_id) {
                    ep.dns_port = server.port;
                } else {
                    let port = self
                        .start_dns(&mut inner, &req.container_id, &req.netns)
                        .await?;
                    started_dns = true;
                    ep.dns_port = port;
                }
            }
            inner.state.endpoints.push(ep.clone());
            let saved = match self.sync(&mut inner).await {
                Ok(()) => inner.store.save(&inner.state),
                Err(e) => Err(e),
            };
            if let Err(e) = saved {
                inner.state.endpoints.pop();
                let _ = self.sync(&mut inner).await;
                return Err(e);
            }
            Ok(())
        }
        .await;
        if let Err(e) = made {
            let _ = self.host.delete(&host_veth).await;
            let _ = self.host.delete(&peer).await;
            if started_dns {
                inner.dns.remove(&req.container_id);
                let _ = firewall::remove(&self.cfg.table, Some(&req.netns)).await;
            }
            return Err(e);
        }
        for r in &mut held {
            r.serve(ip);
        }
        inner.held.insert(ep.id.clone(), held);
        tracing::info!(container_id = %ep.container_id, network = %net.name, %ip, "endpoint attached");
        Ok(ep)
    }

    async fn start_dns(&self, inner: &mut Inner, container: &str, ns: &Path) -> Result<u16> {
        let server = dns::start(ns, container.to_string(), self.directory.clone()).await?;
        let port = server.port;
        firewall::apply(
            &self.cfg.table,
            firewall::dns_rules(&self.cfg.table, port),
            Some(ns),
        )
        .await?;
        inner.dns.insert(container.to_string(), server);
        Ok(port)
    }

    /// Disconnects a container from one network (`network disconnect`):
    /// veth, address, ports and rules go; the DNS server goes with the
    /// container's last user network.
    pub async fn detach(&self, container_id: &str, network: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let net = Self::find(&inner.state, network)?.clone();
        let Some(ep) = inner
            .state
            .endpoints
            .iter()
            .find(|e| e.network_id == net.id && e.container_id == container_id)
            .cloned()
        else {
            return Err(Error::NotConnected {
                container: container_id.to_string(),
                network: net.name,
            });
        };
        self.drop_endpoints(&mut inner, &[ep]).await
    }

    /// Disconnects a container from every network (on stop or removal).
    pub async fn detach_all(&self, container_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let eps: Vec<Endpoint> = inner
            .state
            .endpoints
            .iter()
            .filter(|e| e.container_id == container_id)
            .cloned()
            .collect();
        self.drop_endpoints(&mut inner, &eps).await
    }

    async fn drop_endpoints(&self, inner: &mut Inner, eps: &[Endpoint]) -> Result<()> {
        if eps.is_empty() {
            return Ok(());
        }
        let ids: BTreeSet<&str> = eps.iter().map(|e| e.id.as_str()).collect();
        inner
            .state
            .endpoints
            .retain(|e| !ids.contains(e.id.as_str()));
        for e in eps {
            inner.held.remove(&e.id);
        }
        inner.store.save(&inner.state)?;
        // Everything is tried; the first failure is reported.
        let mut first = self.sync(inner).await.err();
        for e in eps {
            if let Err(err) = self.host.delete(&e.host_veth).await {
                first.get_or_insert(err);
            }
            let still_named = inner
                .state
                .endpoints
                .iter()
                .any(|x| x.container_id == e.container_id && x.dns_port != 0);
            if !still_named && inner.dns.remove(&e.container_id).is_some() && e.netns.exists() {
                // The netns may be on its way out with the container; its
                // table goes with it then.
                let _ = firewall::remove(&self.cfg.table, Some(&e.netns)).await;
            }
            tracing::info!(container_id = %e.container_id, ip = %e.ip, "endpoint detached");
        }
        first.map_or(Ok(()), Err)
    }

    /// After a daemon restart: `live` maps each running container's ID to
    /// its netns path. Endpoints of other containers are removed (with
    /// their rules and addresses); live ones get their host ports held
    /// again and a new DNS server. Returns the endpoints kept.
    pub async fn restore(&self, live: &HashMap<String, PathBuf>) -> Result<Vec<Endpoint>> {
        let gone: Vec<Endpoint> = {
            let inner = self.inner.lock().await;
            inner
                .state
                .endpoints
                .iter()
                .filter(|e| !live.contains_key(&e.container_id))
                .cloned()
                .collect()
        };
        let mut inner = self.inner.lock().await;
        self.drop_endpoints(&mut inner, &gone).await?;
        let mut kept = Vec::new();
        let eps = inner.state.endpoints.clone();
        for (i, e) in eps.iter().enumerate() {
            let path = live[&e.container_id].clone();
            if !inner.held.contains_key(&e.id) {
                let (held, lost) =
                    ports::reserve_again(&e.ports, e.ip, self.cfg.published_elsewhere);
                for p in lost {
                    tracing::warn!(container_id = %e.container_id, port = p.host_port, "host port taken by another program while the daemon was down");
                }
                inner.held.insert(e.id.clone(), held);
            }
            let mut ep = e.clone();
            ep.netns = path.clone();
            if e.dns_port != 0 {
                let port = match inner.dns.get(&e.container_id) {
                    Some(s) => s.port,
                    None => self.start_dns(&mut inner, &e.container_id, &path).await?,
                };
                ep.dns_port = port;
            }
            inner.state.endpoints[i] = ep.clone();
            kept.push(ep);
        }
        inner.store.save(&inner.state)?;
        // Runs no nft when the rules are those `open` and the removals
        // installed (the usual case); refreshes the DNS views.
        self.sync(&mut inner).await?;
        Ok(kept)
    }

    /// The endpoints of a container, for its inspect and `/etc/hosts`.
    pub async fn endpoints_of(&self, container_id: &str) -> Vec<Endpoint> {
        let inner = self.inner.lock().await;
        inner
            .state
            .endpoints
            .iter()
            .filter(|e| e.container_id == container_id)
            .cloned()
            .collect()
    }

    /// The `resolv.conf` a container on user networks gets: the embedded
    /// server, as Docker writes it. `None` for a container on the default
    /// bridge only (it gets the host's resolvers).
    pub async fn resolv_conf(&self, container_id: &str) -> Option<String> {
        let inner = self.inner.lock().await;
        inner
            .state
            .endpoints
            .iter()
            .any(|e| e.container_id == container_id && e.dns_port != 0)
            .then(|| format!("nameserver {}\noptions ndots:0\n", firewall::DNS_ADDR))
    }
}
