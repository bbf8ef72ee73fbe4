//! The embedded DNS server, Docker's `127.0.0.11`: containers on user
//! networks find each other by name and alias (and a peer's address by
//! `PTR`, as `NAME.NETWORK`); everything else goes to the container's own
//! `--dns` servers, or else to the host's resolvers.
//!
//! One server per container: a UDP socket and a TCP listener that a thread
//! inside the container's netns binds on `127.0.0.11:<port>` (a socket stays
//! in the netns it was made in), served by tasks of the daemon's runtime.
//! The netns's own nft rule sends `127.0.0.11:53` there, so a program in the
//! container may still bind port 53 itself. The sockets die with the
//! daemon; `restore` binds new ones and rewrites the rule. Upstream queries
//! leave from the host's netns, so a host resolver on loopback works.
//!
//! Messages are parsed and built with `hickory-proto`; the small server
//! loop is ours (hickory-server's authority model does not fit a per-client
//! view of names).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::firewall::DNS_ADDR;
use crate::netns;

/// Docker's TTL for container names.
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// What one container may resolve.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Lower-case name → addresses.
    pub names: HashMap<String, Vec<Ipv4Addr>>,
    /// Whether unknown names go upstream (not from internal-only networks).
    pub forward: bool,
    /// The container's own resolvers (`--dns`); empty: the directory's.
    pub upstreams: Vec<SocketAddr>,
    /// Reverse names: a peer's address → `NAME.NETWORK`, as Docker
    /// answers `PTR` queries for containers.
    pub reverse: HashMap<Ipv4Addr, String>,
}

/// The address of a full IPv4 reverse name (`2.0.18.172.in-addr.arpa.`).
fn reverse_ip(name: &Name) -> Option<Ipv4Addr> {
    match name.parse_arpa_name().ok()? {
        ipnet::IpNet::V4(net) if net.prefix_len() == 32 => Some(net.addr()),
        _ => None,
    }
}

/// Every container's view, replaced whole when endpoints change.
#[derive(Debug, Default)]
pub struct Directory {
    pub views: HashMap<String, View>,
    pub upstreams: Vec<SocketAddr>,
}

pub type SharedDirectory = Arc<RwLock<Directory>>;

/// A running server for one container; stops when dropped.
pub struct Server {
    pub port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds UDP and TCP on the same free port of 127.0.0.11 inside `netns`.
fn bind_pair() -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = std::net::UdpSocket::bind(SocketAddrV4::new(DNS_ADDR, 0))?;
        let port = udp.local_addr()?.port();
        match std::net::TcpListener::bind(SocketAddrV4::new(DNS_ADDR, port)) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// Starts the server for `container` inside the netns at `path`.
pub async fn start(path: &Path, container: String, dir: SharedDirectory) -> Result<Server> {
    let (udp, tcp) = netns::run_in(path, bind_pair).await?.map_err(Error::Dns)?;
    let port = udp.local_addr().map_err(Error::Dns)?.port();
    let udp = Arc::new(UdpSocket::from_std(udp).map_err(Error::Dns)?);
    let tcp = TcpListener::from_std(tcp).map_err(Error::Dns)?;
    let tasks = vec![
        tokio::spawn(serve_udp(udp, container.clone(), dir.clone())),
        tokio::spawn(serve_tcp(tcp, container, dir)),
    ];
    Ok(Server { port, tasks })
}

async fn serve_udp(sock: Arc<UdpSocket>, container: String, dir: SharedDirectory) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let sock = sock.clone();
        let container = container.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            if let Some(reply) = answer(&query, &container, &dir).await {
                let _ = sock.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, container: String, dir: SharedDirectory) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let container = container.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            let mut len = [0u8; 2];
            while conn.read_exact(&mut len).await.is_ok() {
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(reply) = answer(&query, &container, &dir).await else {
                    return;
                };
                let Ok(rlen) = u16::try_from(reply.len()) else {
                    return;
                };
                if conn.write_all(&rlen.to_be_bytes()).await.is_err()
                    || conn.write_all(&reply).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Answers one query for `container`: from its view when the name is a
/// container's, else from upstream. `None` for a message not worth a reply.
pub async fn answer(query: &[u8], container: &str, dir: &SharedDirectory) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    if msg.metadata.message_type != MessageType::Query {
        return None;
    }
    let (local, forward, upstreams) = {
        let d = dir.read().expect("directory lock");
        let view = d.views.get(container);
        let q = msg.queries.first();
        let local = q.and_then(|q| {
            let name = q
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let view = view?;
            if q.query_type() == RecordType::PTR {
                let target = view.reverse.get(&reverse_ip(q.name())?)?;
                return Some((q.clone(), Local::Ptr(target.clone())));
            }
            view.names
                .get(&name)
                .cloned()
                .map(|ips| (q.clone(), Local::A(ips)))
        });
        let upstreams = match view {
            Some(v) if !v.upstreams.is_empty() => v.upstreams.clone(),
            _ => d.upstreams.clone(),
        };
        (local, view.is_none_or(|v| v.forward), upstreams)
    };
    let mut reply = Message::response(msg.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = msg.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(msg.queries.clone());
    if let Some((q, found)) = local {
        reply.metadata.authoritative = true;
        match found {
            Local::A(ips) if q.query_type() == RecordType::A => {
                for ip in ips {
                    reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
                }
            }
            Local::Ptr(target) => {
                if let Ok(name) = Name::from_ascii(format!("{target}.")) {
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(name)),
                    ));
                }
            }
            Local::A(_) => {}
        }
        // Other types of a container's name: no data, no error, as Docker.
        return reply.to_vec().ok();
    }
    if forward && msg.metadata.op_code == OpCode::Query {
        for up in &upstreams {
            if let Some(r) = ask_upstream(query, *up).await {
                return Some(r);
            }
        }
    }
    reply.metadata.response_code = ResponseCode::ServFail;
    reply.to_vec().ok()
}

/// What a container's view answers for a query.
enum Local {
    A(Vec<Ipv4Addr>),
    Ptr(String),
}

async fn ask_upstream(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.connect(upstream).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The host's resolvers from a `resolv.conf`, as Docker forwards to them.
pub fn upstreams_from(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, ty: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
        m.to_vec().unwrap()
    }

    fn dir() -> SharedDirectory {
        let mut d = Directory::default();
        let mut v = View::default();
        v.names
            .insert("web".into(), vec![Ipv4Addr::new(10, 1, 0, 2)]);
        v.reverse
            .insert(Ipv4Addr::new(10, 1, 0, 2), "web.front".into());
        d.views.insert("c1".into(), v);
        Arc::new(RwLock::new(d))
    }

    #[tokio::test]
    async fn names_in_the_view_are_answered() {
        let d = dir();
        let r = answer(&query("Web.", RecordType::A), "c1", &d)
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A(Ipv4Addr::new(10, 1, 0, 2))));

        let r = answer(&query("web.", RecordType::AAAA), "c1", &d)
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
    }

    #[tokio::test]
    async fn a_peers_address_has_its_reverse_name() {
        let d = dir();
        let r = answer(&query("2.0.1.10.in-addr.arpa.", RecordType::PTR), "c1", &d)
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(
            r.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("web.front.").unwrap()))
        );
        // Another address is not ours to answer (no upstream here).
        let r = answer(&query("3.0.1.10.in-addr.arpa.", RecordType::PTR), "c1", &d)
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        let arpa = |s| Name::from_ascii(s).unwrap();
        assert_eq!(
            reverse_ip(&arpa("2.0.1.10.in-addr.arpa.")),
            Some(Ipv4Addr::new(10, 1, 0, 2))
        );
        assert_eq!(reverse_ip(&arpa("0.1.10.in-addr.arpa.")), None);
        assert_eq!(reverse_ip(&arpa("web.front.")), None);
    }

    #[tokio::test]
    async fn unknown_names_without_upstream_fail() {
        let d = dir();
        let r = answer(&query("example.test.", RecordType::A), "c1", &d)
            .await
            .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn resolv_conf_nameservers() {
        let ups = upstreams_from("# x\nnameserver 127.0.0.53\nsearch lan\nnameserver ::1\n");
        assert_eq!(
            ups,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
