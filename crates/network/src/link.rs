//! Links, addresses and routes through rtnetlink: bridges, veth pairs, and
//! the container side of a veth configured from inside its netns.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{Error, Result};
use crate::netns;

/// A netlink connection, bound to the netns it was opened in.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

fn errno(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
        _ => 0,
    }
}

impl Netlink {
    /// Opens a connection in the calling thread's netns; its driver runs as a
    /// task on the current tokio runtime.
    pub fn open() -> Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::Link(format!("cannot open a netlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Opens a connection inside the netns at `path`.
    pub async fn open_in(path: &Path) -> Result<Netlink> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = netns::run_in(path, move || {
            let _guard = rt.enter();
            rtnetlink::new_connection()
        })
        .await?
        .map_err(|e| Error::Link(format!("cannot open a netlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// The link named `name`, if any.
    pub async fn link(&self, name: &str) -> Result<Option<LinkMessage>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == libc::ENODEV => Ok(None),
            Err(e) => Err(nl(format!("get link {name}"))(e)),
        }
    }

    async fn index(&self, name: &str) -> Result<u32> {
        self.link(name)
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| Error::Link(format!("link {name} not found")))
    }

    /// Creates bridge `name` with `gateway/prefix` unless it exists, and sets
    /// it up. Returns whether it was created.
    pub async fn ensure_bridge(&self, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<bool> {
        let created = if self.link(name).await?.is_none() {
            let msg = LinkBridge::new(name).build();
            match self.handle.link().add(msg).execute().await {
                Ok(()) => true,
                Err(e) if errno(&e) == libc::EEXIST => false,
                Err(e) => return Err(nl(format!("create bridge {name}"))(e)),
            }
        } else {
            false
        };
        let index = self.index(name).await?;
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(gateway), prefix)
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if errno(&e) == libc::EEXIST => {}
            Err(e) => return Err(nl(format!("add {gateway}/{prefix} to {name}"))(e)),
        }
        self.set_up(index, name).await?;
        Ok(created)
    }

    async fn set_up(&self, index: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(format!("set {name} up")))
    }

    /// Deletes link `name`; a link that is not there is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let Some(link) = self.link(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == libc::ENODEV => Ok(()),
            Err(e) => Err(nl(format!("delete link {name}"))(e)),
        }
    }

    /// The host's IPv4 routes in the main table, default routes left out:
    /// subnets a new network must not overlap.
    pub async fn routes(&self) -> Result<Vec<Ipv4Net>> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut routes = self.handle.route().get(msg).execute();
        let mut out = Vec::new();
        while let Some(r) = routes.try_next().await.map_err(nl("list routes"))? {
            let len = r.header.destination_prefix_length;
            if len == 0 || r.header.table != libc::RT_TABLE_MAIN {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(dst)) = a {
                    if let Ok(net) = Ipv4Net::new(*dst, len) {
                        out.push(net.trunc());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Creates a veth pair `host`/`peer` (with the network's MTU), puts
    /// `host` into `bridge` and up (isolated without ICC), gives `peer` its
    /// MAC and moves it into the netns `ns`.
    pub async fn veth_into(
        &self,
        host: &str,
        peer: &str,
        bridge: &str,
        mac: [u8; 6],
        ns: &OwnedFd,
        opts: &crate::model::BridgeOptions,
    ) -> Result<()> {
        let (mtu, isolated) = (opts.mtu, !opts.icc);
        let mut msg = LinkVeth::new(host, peer);
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        let msg = msg.build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl(format!("create veth {host}")))?;
        let made = async {
            let bridge_index = self.index(bridge).await?;
            let host_index = self.index(host).await?;
            let msg = LinkUnspec::new_with_index(host_index)
                .controller(bridge_index)
                .up()
                .build();
            self.handle
                .link()
                .set(msg)
                .execute()
                .await
                .map_err(nl(format!("attach {host} to {bridge}")))?;
            if isolated {
                // An isolated port reaches only the bridge's non-isolated
                // ones: the host, not the network's other containers.
                let msg = LinkBridgePort::new(host_index).isolated(true).build();
                self.handle
                    .link()
                    .set_port(msg)
                    .execute()
                    .await
                    .map_err(nl(format!("isolate {host} on {bridge}")))?;
            }
            let peer_index = self.index(peer).await?;
            let mut msg = LinkUnspec::new_with_index(peer_index)
                .address(mac.to_vec())
                .setns_by_fd(ns.as_raw_fd());
            if let Some(mtu) = mtu {
                msg = msg.mtu(mtu);
            }
            let msg = msg.build();
            self.handle
                .link()
                .set(msg)
                .execute()
                .await
                .map_err(nl(format!("move {peer} into the container's netns")))
        }
        .await;
        if made.is_err() {
            let _ = self.delete(host).await;
        }
        made
    }

    /// Inside a container's netns: brings `lo` up, renames `peer` to
    /// `ifname`, adds `ip/prefix`, sets it up and, if the netns has no
    /// default route yet, routes through `gateway`.
    pub async fn configure_inside(
        &self,
        peer: &str,
        ifname: &str,
        ip: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        if let Ok(lo) = self.index("lo").await {
            self.set_up(lo, "lo").await?;
        }
        let index = self.index(peer).await?;
        let msg = LinkUnspec::new_with_index(index)
            .name(ifname.to_string())
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(format!("rename {peer} to {ifname}")))?;
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(nl(format!("add {ip}/{prefix} to {ifname}")))?;
        self.set_up(index, ifname).await?;
        if let Some(gw) = gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build();
            match self.handle.route().add(route).execute().await {
                Ok(()) => {}
                // A first network already gave the container its default route.
                Err(e) if errno(&e) == libc::EEXIST => {}
                Err(e) => return Err(nl(format!("add a default route via {gw}"))(e)),
            }
        }
        Ok(())
    }

    /// The name of a link by index, to find a free `ethN` in a netns.
    pub async fn names(&self) -> Result<Vec<String>> {
        let mut links = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(l) = links.try_next().await.map_err(nl("list links"))? {
            for a in l.attributes {
                if let LinkAttribute::IfName(n) = a {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }
}

/// Lets packets with a loopback source leave through `bridge`, so DNAT of
/// the host's own 127.0.0.1 to a container works (the reply comes back to
/// the masqueraded bridge address).
pub fn route_localnet(bridge: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::write(&path, "1").map_err(|source| Error::Io {
        what: "write",
        path: path.into(),
        source,
    })
}
