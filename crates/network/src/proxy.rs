//! The IPv6 side of a port published on every address: `[::]:PORT`
//! (IPv6 only) relayed to the container's IPv4 address and port.
//! nftables' DNAT cannot turn IPv6 into IPv4 and containers have IPv4
//! only, so this is the one place a userland proxy serves, as Docker's
//! docker-proxy does for `[::]`. TCP: one task per connection. UDP: one
//! flow (a socket connected to the container) per client address, ended
//! after [`UDP_IDLE`] without a datagram either way. Dropping the proxy
//! closes its socket and every connection and flow.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};

use crate::model::Proto;

/// How long a UDP flow lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

#[derive(Debug)]
pub(crate) struct V6Proxy {
    bound: Option<Bound>,
    container_port: u16,
    task: Option<AbortHandle>,
}

impl V6Proxy {
    /// Takes `[::]:port` (IPv6 only); fails on a host without IPv6 or
    /// when something else holds it.
    pub(crate) fn bind(proto: Proto, port: u16, container_port: u16) -> std::io::Result<V6Proxy> {
        let ty = match proto {
            Proto::Tcp => Type::STREAM,
            Proto::Udp => Type::DGRAM,
        };
        let socket = Socket::new(Domain::IPV6, ty, None)?;
        socket.set_only_v6(true)?;
        if proto == Proto::Tcp {
            socket.set_reuse_address(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
        let bound = match proto {
            Proto::Tcp => {
                socket.listen(128)?;
                Bound::Tcp(socket.into())
            }
            Proto::Udp => Bound::Udp(socket.into()),
        };
        Ok(V6Proxy {
            bound: Some(bound),
            container_port,
            task: None,
        })
    }

    /// Starts relaying to the container at `ip` (once; in a tokio runtime).
    pub(crate) fn serve(&mut self, ip: Ipv4Addr) {
        let target = SocketAddr::from((ip, self.container_port));
        let task = match self.bound.take() {
            Some(Bound::Tcp(l)) => tokio::spawn(relay_tcp(l, target)),
            Some(Bound::Udp(s)) => tokio::spawn(relay_udp(s, target)),
            None => return,
        };
        self.task = Some(task.abort_handle());
    }
}

impl Drop for V6Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn relay_tcp(listener: std::net::TcpListener, target: SocketAddr) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    // Owned here: aborting this task drops every connection's task.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut client, _)) => {
                    conns.spawn(async move {
                        if let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                }
                // Out of descriptors, say: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// One client's flow: its socket to the container and when it last carried
/// a datagram (milliseconds since the relay started).
struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    replies: AbortHandle,
}

async fn relay_udp(socket: std::net::UdpSocket, target: SocketAddr) {
    let Ok(socket) = UdpSocket::from_std(socket) else {
        return;
    };
    let socket = Arc::new(socket);
    let start = Instant::now();
    let now_ms = move || start.elapsed().as_millis() as u64;
    // Owned here: aborting this task drops every flow's reply task.
    let mut replies = JoinSet::new();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut sweep = tokio::time::interval(UDP_IDLE / 4);
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let Ok((n, client)) = got else { continue };
                let flow = match flows.entry(client) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let Ok(upstream) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                            continue;
                        };
                        if upstream.connect(target).await.is_err() {
                            continue;
                        }
                        let upstream = Arc::new(upstream);
                        let last = Arc::new(AtomicU64::new(now_ms()));
                        let (up, down, seen) = (upstream.clone(), socket.clone(), last.clone());
                        let handle = replies.spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            while let Ok(n) = up.recv(&mut buf).await {
                                seen.store(now_ms(), Ordering::Relaxed);
                                let _ = down.send_to(&buf[..n], client).await;
                            }
                        });
                        e.insert(Flow { upstream, last, replies: handle })
                    }
                };
                flow.last.store(now_ms(), Ordering::Relaxed);
                let _ = flow.upstream.send(&buf[..n]).await;
            }
            _ = sweep.tick() => {
                let idle = UDP_IDLE.as_millis() as u64;
                flows.retain(|_, f| {
                    let live = now_ms().saturating_sub(f.last.load(Ordering::Relaxed)) < idle;
                    if !live {
                        f.replies.abort();
                    }
                    live
                });
            }
            Some(_) = replies.join_next(), if !replies.is_empty() => {}
        }
    }
}
