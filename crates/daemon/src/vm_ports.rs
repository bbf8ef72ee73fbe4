//! Published ports in VM mode: what a container publishes in the guest
//! answers on the host at the same address and port.
//!
//! The guest engine owns the ports (allocation, conflicts, `docker port`);
//! this follows its container events and, for each running container's
//! bindings, listens on the host's address and port and relays every
//! connection over vsock to the container's address in the guest
//! ([`crate::vm_relay`]). A container's listeners close when it stops, and
//! all of them when the VM stops. The bridge also asks for a container's
//! ports right after a start or restart succeeds, before the client hears
//! of it, so a `docker run -d -p` is reachable when it returns.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use serde_json::Value;
use servin_guest::contract::{relay_frame_header, RelayTarget, ENGINE_PORT, RELAY_FRAME_MAX};
use tokio::net::{TcpListener, UdpSocket, UnixStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use crate::vm_manager::{Phase, VmManager};

/// One host port relayed to one container port in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Binding {
    udp: bool,
    host: SocketAddr,
    target: SocketAddr,
}

/// How long a UDP flow through the relay lives without a datagram from
/// its client (the kernel's conntrack keeps an unreplied UDP flow 30 s and
/// a replied one 120 s).
const UDP_IDLE: Duration = Duration::from_secs(60);

struct Published {
    bindings: Vec<Binding>,
    tasks: Vec<JoinHandle<()>>,
    /// Why host ports could not be taken (one message each).
    failed: Vec<String>,
}

impl Published {
    /// Stops the listeners and returns once their sockets are closed
    /// (an aborted task drops its future only when the runtime gets to
    /// it, which may be after the client hears the container stopped).
    async fn close(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct Ports {
    manager: Arc<VmManager>,
    by_container: Mutex<HashMap<String, Published>>,
}

impl Ports {
    pub fn new(manager: Arc<VmManager>) -> Arc<Ports> {
        Arc::new(Ports {
            manager,
            by_container: Mutex::new(HashMap::new()),
        })
    }

    /// Follows the guest engine while the VM runs, for ever.
    pub async fn run(self: Arc<Self>) {
        let mut phase = self.manager.subscribe();
        loop {
            if *phase.borrow_and_update() == Phase::Running {
                if let Err(e) = self.follow().await {
                    tracing::debug!(error = %format!("{e:#}"), "stopped following the guest's containers");
                }
                let all: Vec<Published> = self
                    .by_container
                    .lock()
                    .await
                    .drain()
                    .map(|(_, p)| p)
                    .collect();
                for p in all {
                    p.close().await;
                }
            }
            // Wait for the next change of phase, or retry a broken
            // follow a little later while still running.
            let _ = tokio::time::timeout(Duration::from_secs(1), phase.changed()).await;
        }
    }

    async fn follow(&self) -> anyhow::Result<()> {
        // Events first, then the list: nothing started in between is
        // missed.
        let filters = r#"{"type":["container"]}"#;
        let mut events = get(
            &self.manager,
            &format!("/events?filters={}", urlencoding::encode(filters)),
        )
        .await?
        .into_body();
        let running = get_json(&self.manager, "/containers/json").await?;
        let ids: Vec<String> = running
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect();
        for id in ids {
            self.sync(&id).await;
        }
        let mut pending = Vec::new();
        while let Some(frame) = events.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let action = ev["Action"].as_str().unwrap_or("");
                let id = ev["Actor"]["ID"].as_str().or(ev["id"].as_str());
                if let (Some(id), "start" | "die" | "destroy" | "unpause") = (id, action) {
                    self.sync(id).await;
                }
            }
        }
        anyhow::bail!("the guest engine ended the event stream")
    }

    /// The full ID of a container the guest knows by `name_or_id`.
    pub async fn full_id(&self, name_or_id: &str) -> Option<String> {
        let c = get_json(&self.manager, &format!("/containers/{name_or_id}/json"))
            .await
            .ok()?;
        c["Id"].as_str().map(str::to_string)
    }

    /// Makes the host's listeners for container `id` match what the guest
    /// says it publishes now (none when it is not running or is gone).
    /// Returns why host ports it wants could not be taken (a host process
    /// holds them), one message each.
    pub async fn sync(&self, id: &str) -> Vec<String> {
        let (id, wanted) = match get_json(&self.manager, &format!("/containers/{id}/json")).await {
            Ok(c) => (c["Id"].as_str().unwrap_or(id).to_string(), bindings(&c)),
            Err(_) => (id.to_string(), Vec::new()),
        };
        let mut map = self.by_container.lock().await;
        let key = map
            .keys()
            .find(|k| k.starts_with(&id))
            .cloned()
            .unwrap_or(id);
        if let Some(p) = map.get(&key).filter(|p| p.bindings == wanted) {
            return p.failed.clone();
        }
        if let Some(old) = map.remove(&key) {
            old.close().await;
        }
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut tasks = Vec::new();
        let mut failed = Vec::new();
        for b in &wanted {
            let task = if b.udp {
                bind_udp(b.host).map(|s| tokio::spawn(serve_udp(self.manager.clone(), s, b.target)))
            } else {
                listen_tcp(b.host).map(|l| tokio::spawn(serve(self.manager.clone(), l, b.target)))
            };
            match task {
                Ok(t) => {
                    tracing::info!(host = %b.host, target = %b.target, udp = b.udp, "publishing a port of the VM");
                    tasks.push(t);
                }
                // A host without IPv6 serves the port on IPv4 only.
                Err(e) if b.host.is_ipv6() && e.kind() != std::io::ErrorKind::AddrInUse => {
                    tracing::info!(host = %b.host, error = %e, "no IPv6 side for a port of the VM");
                }
                Err(e) => {
                    tracing::warn!(
                        host = %b.host, udp = b.udp, error = %e,
                        "cannot publish a port of the VM on the host"
                    );
                    let proto = if b.udp { "udp" } else { "tcp" };
                    failed.push(format!("listen {proto} {}: {e}", b.host));
                }
            }
        }
        map.insert(
            key,
            Published {
                bindings: wanted,
                tasks,
                failed: failed.clone(),
            },
        );
        failed
    }
}

/// A socket of `ty` bound to `addr`; on an IPv6 address IPv6 only, beside
/// the IPv4 socket of the same port.
fn bound(addr: SocketAddr, ty: socket2::Type) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if ty == socket2::Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = bound(addr, socket2::Type::STREAM)?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(bound(addr, socket2::Type::DGRAM)?.into())
}

/// The bindings of an inspected container: protocol, host address and
/// port, and the container's address in the guest with the container
/// port. Of IPv6 host addresses only `::` is relayed, as the engine makes
/// no other; SCTP is not relayed.
fn bindings(c: &Value) -> Vec<Binding> {
    if c["State"]["Running"] != Value::Bool(true) {
        return Vec::new();
    }
    let settings = &c["NetworkSettings"];
    let ip = settings["IPAddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            settings["Networks"].as_object().and_then(|nets| {
                nets.values()
                    .filter_map(|n| n["IPAddress"].as_str())
                    .find(|s| !s.is_empty())
                    .map(str::to_string)
            })
        });
    let Some(ip) = ip.and_then(|s| s.parse::<IpAddr>().ok()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (port, hosts) in settings["Ports"].as_object().into_iter().flatten() {
        let (num, udp) = match port.split_once('/') {
            Some((num, "tcp")) => (num, false),
            Some((num, "udp")) => (num, true),
            _ => continue,
        };
        let Ok(container_port) = num.parse::<u16>() else {
            continue;
        };
        for h in hosts.as_array().into_iter().flatten() {
            let host_ip = match h["HostIp"].as_str().unwrap_or("") {
                "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                s => match s.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => IpAddr::V4(a),
                    // The engine's IPv6 side of a port on every address.
                    Ok(IpAddr::V6(a)) if a.is_unspecified() => IpAddr::V6(a),
                    _ => continue,
                },
            };
            let Some(host_port) = h["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            let b = Binding {
                udp,
                host: SocketAddr::new(host_ip, host_port),
                target: SocketAddr::new(ip, container_port),
            };
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out.sort();
    out
}

/// Accepts on a published host port and relays each connection.
async fn serve(manager: Arc<VmManager>, listener: TcpListener, target: SocketAddr) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = conn.set_nodelay(true);
        let manager = manager.clone();
        tokio::spawn(async move {
            match crate::vm_relay::open(&manager, &RelayTarget::Tcp(target)).await {
                Ok(guest) => crate::vm_relay::splice(conn, &[], guest).await,
                // The client sees the connection close, as when nothing
                // listens behind a published port natively.
                Err(e) => tracing::debug!(%target, error = %format!("{e:#}"), "relay failed"),
            }
        });
    }
}

/// Receives on a published UDP port and relays each client's datagrams
/// (one flow per client address, ended after [`UDP_IDLE`]).
async fn serve_udp(manager: Arc<VmManager>, socket: UdpSocket, target: SocketAddr) {
    let socket = Arc::new(socket);
    let down = socket.clone();
    servin_network::proxy::serve_udp_flows(socket, move |client, rx| {
        udp_flow(manager.clone(), down.clone(), client, target, rx)
    })
    .await;
}

async fn udp_flow(
    manager: Arc<VmManager>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let guest = match crate::vm_relay::open(&manager, &RelayTarget::Udp(target)).await {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(%target, error = %format!("{e:#}"), "UDP relay failed");
            return;
        }
    };
    let (mut guest_r, mut guest_w) = guest.into_split();
    let up = async {
        while let Ok(Some(d)) = tokio::time::timeout(UDP_IDLE, rx.recv()).await {
            let mut frame = relay_frame_header(d.len()).to_vec();
            frame.extend_from_slice(&d);
            if guest_w.write_all(&frame).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; RELAY_FRAME_MAX];
        while let Ok(len) = guest_r.read_u32().await {
            let len = len as usize;
            if len > RELAY_FRAME_MAX || guest_r.read_exact(&mut buf[..len]).await.is_err() {
                break;
            }
            let _ = socket.send_to(&buf[..len], client).await;
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// `POST path` (no body) to the guest engine of a running VM.
pub async fn post(manager: &Arc<VmManager>, path: &str) -> anyhow::Result<()> {
    request(manager, hyper::Method::POST, path).await.map(drop)
}

/// `GET path` on a new connection to the guest engine of a running VM
/// (never starts one).
async fn get(
    manager: &Arc<VmManager>,
    path: &str,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    request(manager, hyper::Method::GET, path).await
}

async fn request(
    manager: &Arc<VmManager>,
    method: hyper::Method,
    path: &str,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    if manager.phase() != Phase::Running {
        anyhow::bail!("the VM is not running");
    }
    let stream = manager.connect_port(ENGINE_PORT).await?;
    stream.set_nonblocking(true)?;
    let io = hyper_util::rt::TokioIo::new(UnixStream::from_std(stream)?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::builder()
        .method(method.clone())
        .uri(path)
        .header("Host", "servin-guest")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        anyhow::bail!("{method} {path}: {}", resp.status());
    }
    Ok(resp)
}

async fn get_json(manager: &Arc<VmManager>, path: &str) -> anyhow::Result<Value> {
    let body = get(manager, path).await?.into_body().collect().await?;
    serde_json::from_slice(&body.to_bytes()).with_context(|| format!("GET {path}: not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_follow_the_inspected_ports() {
        let c = json!({
            "State": {"Running": true},
            "NetworkSettings": {
                "IPAddress": "",
                "Networks": {"app": {"IPAddress": "172.18.0.5"}},
                "Ports": {
                    "80/tcp": [
                        {"HostIp": "0.0.0.0", "HostPort": "8080"},
                        {"HostIp": "::", "HostPort": "8080"}
                    ],
                    "53/udp": [
                        {"HostIp": "0.0.0.0", "HostPort": "5353"},
                        {"HostIp": "::", "HostPort": "5353"}
                    ],
                    "443/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8443"}],
                    "9000/tcp": null
                }
            }
        });
        let got: Vec<(bool, String, String)> = bindings(&c)
            .into_iter()
            .map(|b| (b.udp, b.host.to_string(), b.target.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    false,
                    "0.0.0.0:8080".to_string(),
                    "172.18.0.5:80".to_string()
                ),
                (
                    false,
                    "127.0.0.1:8443".to_string(),
                    "172.18.0.5:443".to_string()
                ),
                (false, "[::]:8080".to_string(), "172.18.0.5:80".to_string()),
                (
                    true,
                    "0.0.0.0:5353".to_string(),
                    "172.18.0.5:53".to_string()
                ),
                (true, "[::]:5353".to_string(), "172.18.0.5:53".to_string()),
            ]
        );
        let mut stopped = c.clone();
        stopped["State"]["Running"] = json!(false);
        assert!(bindings(&stopped).is_empty());
    }
}
