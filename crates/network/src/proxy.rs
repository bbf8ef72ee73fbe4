//! The IPv6 side of a port published on every address: `[::]:PORT`
//! (IPv6 only) relayed to the container's IPv4 address and port.
//! nftables' DNAT cannot turn IPv6 into IPv4 and containers have IPv4
//! only, so this is the one place a userland proxy serves, as Docker's
//! docker-proxy does for `[::]`. TCP: one task per connection. UDP: one
//! flow (a socket connected to the container) per client address, ended
//! after [`UDP_IDLE`] without a datagram either way. Dropping the proxy
//! closes its socket and every connection and flow.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
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

async fn relay_udp(socket: std::net::UdpSocket, target: SocketAddr) {
    let Ok(socket) = UdpSocket::from_std(socket) else {
        return;
    };
    let socket = Arc::new(socket);
    let down = socket.clone();
    serve_udp_flows(socket, move |client, rx| {
        udp_flow(down.clone(), client, target, rx)
    })
    .await;
}

/// Serves a UDP socket as flows, one per client address: `flow` starts a
/// client's flow at its first datagram, and every datagram from that
/// client is queued to it until the flow ends (it drops its receiver). A
/// full queue drops the datagram, as a full socket buffer would. Runs
/// until dropped; dropping it ends every flow. The VM's port relay
/// (servind's `vm_ports`) serves its UDP ports with it too.
pub async fn serve_udp_flows<F, Fut>(socket: Arc<UdpSocket>, mut flow: F)
where
    F: FnMut(SocketAddr, mpsc::Receiver<Vec<u8>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Owned here: dropping this future ends every flow's task.
    let mut tasks = JoinSet::new();
    let mut flows: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        flows.retain(|_, tx| !tx.is_closed());
        while tasks.try_join_next().is_some() {}
        let tx = flows.entry(from).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(256);
            tasks.spawn(flow(from, rx));
            tx
        });
        let _ = tx.try_send(buf[..n].to_vec());
    }
}

/// One client's flow to the container, from a socket of its own; it ends
/// after [`UDP_IDLE`] without a datagram either way.
async fn udp_flow(
    down: Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let Ok(up) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
        return;
    };
    if up.connect(target).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(d) => {
                    let _ = up.send(&d).await;
                }
                None => return,
            },
            got = up.recv(&mut buf) => match got {
                Ok(n) => {
                    let _ = down.send_to(&buf[..n], client).await;
                }
                Err(_) => return,
            },
            () = tokio::time::sleep(UDP_IDLE) => return,
        }
    }
}
