//! Figures for the network layer (root; `cargo run --release -p
//! servin-network --example measure`): attach/detach time, TCP connection
//! round trips and bulk throughput to a published port by the three paths
//! (straight to the container, DNAT from the host's loopback, and a
//! userland proxy like docker-proxy for comparison), and embedded DNS
//! latency. Uses its own table, bridge and namespaces; removes them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use servin_network::ports::parse_publish;
use servin_network::{AttachRequest, Config, CreateRequest, Networks};

const BULK: usize = 256 << 20;
const ROUNDS: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn enter(ns: &Path) {
    let fd: OwnedFd = std::fs::File::open(ns).unwrap().into();
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// In the netns: `p` → one byte back; `b` → read to EOF, then one byte.
fn server(ns: PathBuf, port: u16) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter(&ns);
        let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
        tx.send(()).unwrap();
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut kind = [0u8; 1];
                if c.read_exact(&mut kind).is_err() {
                    return;
                }
                if kind[0] == b'b' {
                    let mut buf = vec![0u8; 1 << 16];
                    while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
                }
                let _ = c.write_all(b"k");
            });
        }
    });
    rx.recv().unwrap();
}

fn round_trips(addr: SocketAddr) -> Duration {
    median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(b"p").unwrap();
                c.read_exact(&mut [0u8; 1]).unwrap();
                t.elapsed()
            })
            .collect(),
    )
}

fn bulk(addr: SocketAddr) -> f64 {
    let chunk = vec![7u8; 1 << 16];
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"b").unwrap();
    for _ in 0..BULK / chunk.len() {
        c.write_all(&chunk).unwrap();
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    c.read_exact(&mut [0u8; 1]).unwrap();
    BULK as f64 / t.elapsed().as_secs_f64() / 1e6
}

async fn proxy(target: SocketAddr) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut out = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            });
        }
    });
    addr
}

fn dns_rtt(ns: PathBuf, name: &'static str) -> Duration {
    std::thread::spawn(move || {
        enter(&ns);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect("127.0.0.11:53").unwrap();
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let bytes = q.to_vec().unwrap();
        let mut buf = [0u8; 512];
        median(
            (0..ROUNDS)
                .map(|_| {
                    let t = Instant::now();
                    s.send(&bytes).unwrap();
                    s.recv(&mut buf).unwrap();
                    t.elapsed()
                })
                .collect(),
        )
    })
    .join()
    .unwrap()
}

fn req(id: &str, ns: &Path, ports: &[&str]) -> AttachRequest {
    AttachRequest {
        container_id: format!("{id}{}", "0".repeat(64 - id.len())),
        container_name: id.into(),
        network: "meas".into(),
        aliases: vec![],
        ip: None,
        ports: ports.iter().map(|p| parse_publish(p).unwrap()).collect(),
        netns: ns.to_path_buf(),
        links: vec![],
        dns: vec![],
        mac: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::Builder::new()
        .prefix("servin-netmeasure-")
        .tempdir()
        .unwrap();
    let mut cfg = Config::new(dir.path());
    cfg.table = "svmeasure".into();
    cfg.bridge_prefix = "svmeas".into();
    cfg.veth_prefix = "svmv".into();
    cfg.default_subnet = Some("172.30.90.0/24".parse().unwrap());
    cfg.upstream_dns = Some(vec![]);
    cfg.enable_ip_forward = false;
    let nss = ["svmeas-a", "svmeas-b"];
    for ns in nss {
        Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap();
    }
    let (a, b) = (
        PathBuf::from("/run/netns/svmeas-a"),
        PathBuf::from("/run/netns/svmeas-b"),
    );
    let nets = Networks::open(cfg).await.unwrap();
    nets.create(CreateRequest {
        name: "meas".into(),
        subnet: Some("172.30.91.0/24".into()),
        ..CreateRequest::default()
    })
    .await
    .unwrap();

    let (mut at, mut de) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let e = nets.attach(req("b", &b, &["80"])).await.unwrap();
        at.push(t.elapsed());
        let t = Instant::now();
        nets.detach_all(&e.container_id).await.unwrap();
        de.push(t.elapsed());
    }
    println!(
        "attach (veth, address, route, DNS server, port, rules): median {:?} of 20",
        median(at)
    );
    println!("detach: median {:?} of 20", median(de));

    let port = 40000 + (std::process::id() % 20000) as u16;
    let ea = nets
        .attach(req("a", &a, &[&format!("127.0.0.1:{port}:5001")]))
        .await
        .unwrap();
    nets.attach(req("b", &b, &[])).await.unwrap();
    server(a.clone(), 5001);
    let direct = SocketAddr::from((ea.ip, 5001));
    let dnat = SocketAddr::from(([127, 0, 0, 1], port));
    let proxied = proxy(direct).await;
    for (what, addr) in [
        ("direct to the container", direct),
        ("DNAT from 127.0.0.1", dnat),
        ("userland proxy on 127.0.0.1", proxied),
    ] {
        let (rtt, mbs) = tokio::task::spawn_blocking(move || (round_trips(addr), bulk(addr)))
            .await
            .unwrap();
        println!("{what}: connect+1-byte round trip median {rtt:?} of {ROUNDS}; {} MiB in one stream: {mbs:.0} MB/s", BULK >> 20);
    }
    let rtt = tokio::task::spawn_blocking(move || dns_rtt(b, "a"))
        .await
        .unwrap();
    println!("embedded DNS, container name over UDP: median {rtt:?} of {ROUNDS}");

    nets.destroy_all().await.unwrap();
    for ns in nss {
        Command::new("ip")
            .args(["netns", "del", ns])
            .status()
            .unwrap();
    }
}
