//! Harness for the network tests (root): test-unique nft table, bridge and
//! veth names, network namespaces standing in for containers, echo servers
//! and clients running inside them, and a check that nothing is left.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use servin_network::{Config, Networks};

/// How long a client waits for an answer that should come.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns true (after saying why on stderr) when the test cannot run:
/// not root, or a tool missing. Panics instead under SERVIN_REQUIRE_VM=1.
pub fn cannot_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return servin_testkit::skip(test, "needs root (netns, bridges, nftables)");
    }
    servin_testkit::skip_unless_tools(test, &["ip", "nft", "nsenter"])
}

/// One test's private names and data root.
pub struct Env {
    pub tag: String,
    pub cfg: Config,
    pub namespaces: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Env {
    /// `default_subnet` keeps parallel tests' default bridges apart.
    pub fn new(default_subnet: &str) -> Env {
        let tag = hex::encode(rand::random::<[u8; 2]>());
        let dir = tempfile::Builder::new()
            .prefix("servin-nettest-")
            .tempdir_in("/tmp")
            .unwrap();
        let mut cfg = Config::new(dir.path());
        cfg.table = format!("svt{tag}");
        cfg.bridge_prefix = format!("svb{tag}");
        cfg.veth_prefix = format!("svv{tag}");
        cfg.default_subnet = Some(default_subnet.parse().unwrap());
        cfg.upstream_dns = Some(vec![]);
        // Tests never route anything off the machine.
        cfg.enable_ip_forward = false;
        Env {
            tag,
            cfg,
            namespaces: Vec::new(),
            _dir: dir,
        }
    }

    /// A new network namespace playing a container; returns its path.
    pub fn netns(&mut self, name: &str) -> PathBuf {
        let ns = format!("svn{}{name}", self.tag);
        run("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        PathBuf::from(format!("/run/netns/{ns}"))
    }

    /// This test's links on the host (bridges and veths).
    pub fn links(&self) -> Vec<String> {
        let links = output("ip", &["-o", "link", "show"]);
        links
            .lines()
            .filter_map(|l| {
                let name = l.split(':').nth(1)?.trim().split('@').next()?.to_string();
                (name.starts_with(&self.cfg.bridge_prefix)
                    || name.starts_with(&self.cfg.veth_prefix))
                .then_some(name)
            })
            .collect()
    }

    /// Links, tables and namespaces of this test still present.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .links()
            .into_iter()
            .map(|l| format!("link {l}"))
            .collect();
        let tables = output("nft", &["list", "tables"]);
        if tables
            .lines()
            .any(|l| l.trim() == format!("table ip {}", self.cfg.table))
        {
            left.push(format!("nft table {}", self.cfg.table));
        }
        let nss = output("ip", &["netns", "list"]);
        for l in nss.lines() {
            if l.starts_with(&format!("svn{}", self.tag)) {
                left.push(format!("netns {l}"));
            }
        }
        left
    }

    /// Tears down what the networks made, deletes the namespaces and
    /// asserts nothing of the test remains.
    pub async fn finish(mut self, nets: Networks) {
        nets.destroy_all().await.unwrap();
        drop(nets);
        for ns in std::mem::take(&mut self.namespaces) {
            run("ip", &["netns", "del", &ns]);
        }
        let left = self.leftovers();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A failed test still cleans up after itself.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.cfg.table])
            .stderr(std::process::Stdio::null())
            .status();
        for name in self.links() {
            let _ = Command::new("ip").args(["link", "del", &name]).status();
        }
    }
}

pub fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?} failed");
}

pub fn output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn enter(ns: &Path) {
    let fd: OwnedFd = std::fs::File::open(ns).unwrap().into();
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// Runs `f` on a thread inside the netns and waits for it.
pub async fn in_ns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            enter(&ns);
            f()
        })
        .join()
        .unwrap()
    })
    .await
    .unwrap()
}

/// A TCP and UDP echo server on `port` inside a netns; each reply is
/// prefixed with `tag` so a test knows who answered. Stops when dropped.
pub struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Echo {
    pub fn start(ns: &Path, port: u16, tag: &'static str) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        {
            let ns = ns.to_path_buf();
            let stop = stop.clone();
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).unwrap();
                l.set_nonblocking(true).unwrap();
                tx.send(()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut c, peer)) => {
                            c.set_nonblocking(false).unwrap();
                            c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                            let mut buf = [0u8; 256];
                            if let Ok(n) = c.read(&mut buf) {
                                let reply = format!(
                                    "{tag} from {} got {}",
                                    peer.ip(),
                                    String::from_utf8_lossy(&buf[..n])
                                );
                                let _ = c.write_all(reply.as_bytes());
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }));
        }
        {
            let ns = ns.to_path_buf();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                tx.send(()).unwrap();
                let mut buf = [0u8; 256];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, peer)) = s.recv_from(&mut buf) {
                        let reply = format!("{tag} got {}", String::from_utf8_lossy(&buf[..n]));
                        let _ = s.send_to(reply.as_bytes(), peer);
                    }
                }
            }));
        }
        rx.recv().unwrap();
        rx.recv().unwrap();
        Echo { stop, threads }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends `msg` over TCP and returns the reply, or the error as text.
pub fn tcp_ask(addr: SocketAddr, msg: &str) -> Result<String, String> {
    tcp_ask_within(addr, msg, IO_TIMEOUT)
}

/// [`tcp_ask`] giving up on connecting after `limit` (for connections that
/// should be dropped).
pub fn tcp_ask_within(addr: SocketAddr, msg: &str, limit: Duration) -> Result<String, String> {
    let mut c = TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    c.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Sends `msg` over UDP and returns the reply.
pub fn udp_ask(addr: SocketAddr, msg: &str) -> Result<String, String> {
    let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.send_to(msg.as_bytes(), addr).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Asks 127.0.0.11:53 for `name` (A) from the calling thread's netns.
pub fn ask(name: &str, tcp: bool) -> Result<(ResponseCode, Vec<Ipv4Addr>), String> {
    let mut q = hickory_proto::op::Message::query();
    q.metadata.id = 4242;
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let bytes = q.to_vec().unwrap();
    let server: SocketAddr = "127.0.0.11:53".parse().unwrap();
    let reply = if tcp {
        let mut c = TcpStream::connect_timeout(&server, IO_TIMEOUT).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        c.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
        c.write_all(&bytes).unwrap();
        let mut len = [0u8; 2];
        c.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        c.read_exact(&mut buf).map_err(|e| e.to_string())?;
        buf
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.connect(server).unwrap();
        s.send(&bytes).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1500];
        let n = s.recv(&mut buf).map_err(|e| e.to_string())?;
        buf.truncate(n);
        buf
    };
    let r = Message::from_vec(&reply).map_err(|e| e.to_string())?;
    assert_eq!(r.metadata.id, 4242);
    let ips = r
        .answers
        .iter()
        .filter_map(|a| match a.data {
            RData::A(A(ip)) => Some(ip),
            _ => None,
        })
        .collect();
    Ok((r.metadata.response_code, ips))
}
