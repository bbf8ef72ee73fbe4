//! Published ports: parsing Docker's spellings, choosing host ports and
//! holding them.
//!
//! Traffic reaches a container through DNAT rules (see `firewall`); the
//! daemon also binds each host port (TCP without listening, UDP without
//! reading) so no other program can take it meanwhile and a port already in
//! use on the host is refused at once, with Docker's message.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use crate::error::{Error, Result};
use crate::model::{Endpoint, PortRequest, Proto, PublishedPort};
use crate::proxy::V6Proxy;

/// Docker's default range for random host ports (Linux's ephemeral range).
pub const EPHEMERAL: (u16, u16) = (32768, 60999);

/// Parses one `-p`/`--publish` value:
/// `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`.
pub fn parse_publish(spec: &str) -> Result<PortRequest> {
    let bad = || Error::InvalidPort(format!("invalid port specification: {spec:?}"));
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, parse_proto(proto)?),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad()),
    };
    let container_port = parse_port(container)
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::InvalidPort(format!("invalid containerPort: {container}")))?;
    let (host_port, host_port_end) = parse_host_ports(host)?;
    Ok(PortRequest {
        proto,
        container_port,
        host_ip: parse_host_ip(ip)?,
        host_port,
        host_port_end,
    })
}

/// Reads one entry of the API's `HostConfig.PortBindings`: key `80/tcp`,
/// value `{HostIp, HostPort}` (both may be empty).
pub fn from_api(key: &str, host_ip: &str, host_port: &str) -> Result<PortRequest> {
    let (port, proto) = match key.split_once('/') {
        Some((p, proto)) => (p, parse_proto(proto)?),
        None => (key, Proto::Tcp),
    };
    let container_port = parse_port(port)
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::InvalidPort(format!("invalid containerPort: {port}")))?;
    let (host_port, host_port_end) = parse_host_ports(host_port)?;
    Ok(PortRequest {
        proto,
        container_port,
        host_ip: parse_host_ip(host_ip)?,
        host_port,
        host_port_end,
    })
}

/// A host port (`8080`, `0` or empty: any) or range (`8000-8010`).
fn parse_host_ports(h: &str) -> Result<(Option<u16>, Option<u16>)> {
    let bad = || Error::InvalidPort(format!("invalid hostPort: {h}"));
    if h.is_empty() {
        return Ok((None, None));
    }
    if let Some((lo, hi)) = h.split_once('-') {
        let (lo, hi) = (
            parse_port(lo).ok_or_else(bad)?,
            parse_port(hi).ok_or_else(bad)?,
        );
        if lo == 0 || hi < lo {
            return Err(bad());
        }
        return Ok((Some(lo), (hi > lo).then_some(hi)));
    }
    let port = parse_port(h).ok_or_else(bad)?;
    Ok(((port != 0).then_some(port), None))
}

fn parse_proto(s: &str) -> Result<Proto> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        _ => Err(Error::InvalidPort(format!("invalid proto: {s}"))),
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_host_ip(s: &str) -> Result<Option<Ipv4Addr>> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    if s.is_empty() {
        return Ok(None);
    }
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| Error::InvalidPort(format!("invalid IP address: {s}")))?;
    Ok((!ip.is_unspecified()).then_some(ip))
}

/// Whether two host bindings would take the same port.
fn clash(a: &PublishedPort, proto: Proto, ip: Ipv4Addr, port: u16) -> bool {
    a.proto == proto
        && a.host_port == port
        && (a.host_ip == ip || a.host_ip.is_unspecified() || ip.is_unspecified())
}

/// A host port held by the daemon for a published port, and for one
/// published on every address its IPv6 side.
#[derive(Debug)]
pub struct Reservation {
    _fd: OwnedFd,
    v6: Option<V6Proxy>,
}

impl Reservation {
    /// Starts relaying the IPv6 side (if any) to the container at `ip`.
    pub fn serve(&mut self, ip: Ipv4Addr) {
        if let Some(v6) = &mut self.v6 {
            v6.serve(ip);
        }
    }
}

/// The IPv6 side of a port published on every address, when this host
/// has IPv6 and `[::]:PORT` is free; `None` otherwise (IPv4 only then).
fn reserve_v6(proto: Proto, ip: Ipv4Addr, port: u16, container_port: u16) -> Option<V6Proxy> {
    ip.is_unspecified()
        .then(|| V6Proxy::bind(proto, port, container_port).ok())
        .flatten()
}

/// Binds `ip:port` for `proto` without listening; fails when the port is
/// taken on the host.
pub fn reserve(proto: Proto, ip: Ipv4Addr, port: u16) -> std::io::Result<Reservation> {
    let ty = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)?;
    if proto == Proto::Tcp {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(ip, port)),
    )?;
    Ok(Reservation { _fd: fd, v6: None })
}

/// [`reserve`], except that with `elsewhere` (the host addresses are
/// another machine's) an address this one lacks holds the port on every
/// address instead.
fn reserve_for(
    proto: Proto,
    ip: Ipv4Addr,
    port: u16,
    elsewhere: bool,
) -> std::io::Result<Reservation> {
    match reserve(proto, ip, port) {
        Err(e) if elsewhere && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            reserve(proto, Ipv4Addr::UNSPECIFIED, port)
        }
        r => r,
    }
}

/// Chooses and holds the host side of each requested port. `others` are the
/// endpoints already published (ours); on any failure nothing is held.
/// `elsewhere`: see [`reserve_for`].
pub fn publish(
    requests: &[PortRequest],
    others: &[Endpoint],
    range: (u16, u16),
    elsewhere: bool,
) -> Result<(Vec<PublishedPort>, Vec<Reservation>)> {
    let mut published: Vec<PublishedPort> = Vec::new();
    let mut held = Vec::new();
    let taken = |p: &[PublishedPort], proto, ip, port| {
        others
            .iter()
            .flat_map(|e| e.ports.iter())
            .chain(p.iter())
            .any(|x| clash(x, proto, ip, port))
    };
    for r in requests {
        let ip = r.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let is_taken = |port| taken(&published, r.proto, ip, port);
        let port = match (r.host_port, r.host_port_end) {
            // The first port of the range that is free, in order.
            (Some(lo), Some(hi)) => {
                first_free(lo..=hi, is_taken, r.proto, ip, elsewhere, &mut held).ok_or(
                    Error::PortRangeAllocated {
                        addr: ip.to_string(),
                        lo,
                        hi,
                    },
                )?
            }
            (Some(port), None) => {
                let allocated = || Error::PortAllocated {
                    addr: ip.to_string(),
                    port,
                };
                if is_taken(port) {
                    return Err(allocated());
                }
                let res = reserve_for(r.proto, ip, port, elsewhere).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        allocated()
                    } else {
                        Error::PortBind {
                            addr: ip.to_string(),
                            port,
                            source: e,
                        }
                    }
                })?;
                held.push(res);
                port
            }
            // A free one of the random range, from a random start.
            (None, _) => {
                let (lo, hi) = range;
                let span = u32::from(hi - lo) + 1;
                let start = rand::random_range(0..span);
                let ports = (0..span).map(|i| (u32::from(lo) + (start + i) % span) as u16);
                first_free(ports, is_taken, r.proto, ip, elsewhere, &mut held)
                    .ok_or(Error::NoFreePort(lo, hi))?
            }
        };
        // With `elsewhere` the host's side is another machine's to serve
        // (VM mode: the host daemon listens on `[::]` too).
        let (v6, has_v6) = if elsewhere {
            (None, ip.is_unspecified())
        } else {
            let v6 = reserve_v6(r.proto, ip, port, r.container_port);
            let has = v6.is_some();
            (v6, has)
        };
        if let Some(held) = held.last_mut() {
            held.v6 = v6;
        }
        published.push(PublishedPort {
            proto: r.proto,
            container_port: r.container_port,
            host_ip: ip,
            host_port: port,
            v6: has_v6,
        });
    }
    Ok((published, held))
}

/// The first of `ports` that is neither `taken` (ours) nor in use on the
/// host, held (its reservation pushed on `held`).
fn first_free(
    ports: impl Iterator<Item = u16>,
    taken: impl Fn(u16) -> bool,
    proto: Proto,
    ip: Ipv4Addr,
    elsewhere: bool,
    held: &mut Vec<Reservation>,
) -> Option<u16> {
    for port in ports.filter(|p| !taken(*p)) {
        if let Ok(res) = reserve_for(proto, ip, port, elsewhere) {
            held.push(res);
            return Some(port);
        }
    }
    None
}

/// Holds again the host ports of an endpoint restored after a restart;
/// a port that something else took meanwhile is reported, not fatal.
pub fn reserve_again(
    ports: &[PublishedPort],
    ip: Ipv4Addr,
    elsewhere: bool,
) -> (Vec<Reservation>, Vec<PublishedPort>) {
    let mut held = Vec::new();
    let mut lost = Vec::new();
    for p in ports {
        match reserve_for(p.proto, p.host_ip, p.host_port, elsewhere) {
            Ok(mut r) => {
                if p.v6 && !elsewhere {
                    r.v6 = reserve_v6(p.proto, p.host_ip, p.host_port, p.container_port);
                }
                r.serve(ip);
                held.push(r)
            }
            Err(_) => lost.push(*p),
        }
    }
    (held, lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_like_docker() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.host_ip),
            (Some(8080), 80, None)
        );
        let p = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        let p = parse_publish("80").unwrap();
        assert_eq!((p.host_port, p.container_port), (None, 80));
        let p = parse_publish("53:53/udp").unwrap();
        assert_eq!(p.proto, Proto::Udp);
        let p = parse_publish("127.0.0.1::80").unwrap();
        assert_eq!((p.host_ip, p.host_port), (Some(Ipv4Addr::LOCALHOST), None));

        let err = |s: &str| parse_publish(s).unwrap_err().to_string();
        assert_eq!(err("abc"), "invalid containerPort: abc");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("80/sctpx"), "invalid proto: sctpx");
        assert_eq!(err("1:2:3:4"), "invalid port specification: \"1:2:3:4\"");
        assert_eq!(err("300.0.0.1:80:80"), "invalid IP address: 300.0.0.1");
        assert_eq!(err("70000:80"), "invalid hostPort: 70000");
    }

    #[test]
    fn api_bindings_parse() {
        let p = from_api("80/tcp", "", "8080").unwrap();
        assert_eq!((p.host_port, p.container_port), (Some(8080), 80));
        let p = from_api("53/udp", "0.0.0.0", "").unwrap();
        assert_eq!((p.proto, p.host_ip, p.host_port), (Proto::Udp, None, None));
        assert!(from_api("80/tcp", "", "http").is_err());
        let p = from_api("80/tcp", "", "8000-8010").unwrap();
        assert_eq!((p.host_port, p.host_port_end), (Some(8000), Some(8010)));
        let p = from_api("80/tcp", "", "8000-8000").unwrap();
        assert_eq!((p.host_port, p.host_port_end), (Some(8000), None));
        for bad in ["8010-8000", "0-10", "8000-", "-8000", "1-2-3"] {
            assert_eq!(
                from_api("80/tcp", "", bad).unwrap_err().to_string(),
                format!("invalid hostPort: {bad}")
            );
        }
    }

    #[test]
    fn a_host_range_takes_its_first_free_port() {
        // Two free ports next to each other on loopback, the first held.
        let (lo, _first) = loop {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break (port, l);
            }
        };
        let req = |end| PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: Some(lo),
            host_port_end: end,
        };
        let (published, held) = publish(&[req(Some(lo + 1))], &[], EPHEMERAL, false).unwrap();
        assert_eq!(published[0].host_port, lo + 1);
        drop(held);
        // The whole range taken by programs of the host.
        let _second = std::net::TcpListener::bind(("127.0.0.1", lo + 1)).unwrap();
        let err = publish(&[req(Some(lo + 1))], &[], EPHEMERAL, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Bind for 127.0.0.1:{lo}-{} failed: every port of the range is already allocated",
                lo + 1
            )
        );
    }

    #[test]
    fn an_address_of_another_machine_is_accepted_only_when_published_elsewhere() {
        // 198.51.100.7 (TEST-NET-2) is on no machine: only bound, never sent to.
        let req = PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Some(Ipv4Addr::new(198, 51, 100, 7)),
            host_port: None,
            host_port_end: None,
        };
        let err = publish(&[req], &[], EPHEMERAL, false).unwrap_err();
        assert!(
            matches!(err, Error::NoFreePort(..)),
            "{err}: a missing address is refused natively"
        );
        let (published, _held) = publish(&[req], &[], EPHEMERAL, true).unwrap();
        assert_eq!(published[0].host_ip, Ipv4Addr::new(198, 51, 100, 7));
    }

    #[test]
    fn clashes_consider_wildcards() {
        let a = PublishedPort {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            v6: false,
        };
        assert!(clash(&a, Proto::Tcp, Ipv4Addr::LOCALHOST, 8080));
        assert!(!clash(&a, Proto::Udp, Ipv4Addr::LOCALHOST, 8080));
        assert!(!clash(&a, Proto::Tcp, Ipv4Addr::LOCALHOST, 8081));
    }
}
