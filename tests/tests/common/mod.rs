//! Shared set-up for the acceptance tests: a real registry, a busybox
//! fixture pushed to it with skopeo, and our own daemon on a temp socket.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use servin_testkit::{Cli, Daemon, DaemonOpts, Fixture, Registry};

pub struct Env {
    pub registry: Registry,
    pub daemon: Daemon,
    pub docker: Cli,
}

impl Env {
    pub fn start() -> Env {
        let registry = Registry::start().expect("registry starts");
        let daemon = Daemon::start(DaemonOpts::default()).expect("servind starts");
        let docker = Cli::docker(&daemon.host()).expect("docker CLI");
        Env {
            registry,
            daemon,
            docker,
        }
    }

    /// Pushes `fixture` as `REGISTRY/name` and returns that reference.
    pub fn publish(&self, fixture: &Fixture, name: &str) -> String {
        let r = self.registry.reference(name);
        servin_testkit::push(fixture, &r).expect("skopeo push");
        r
    }

    pub fn servin(&self) -> Cli {
        Cli::servin(&self.daemon.host()).expect("servin CLI")
    }
}

/// A daemon with the busybox fixture pulled from the test registry, and
/// that image's reference.
pub fn env_with_busybox() -> (Env, String) {
    let env = Env::start();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();
    (env, image)
}

/// Every file under the store's data (blobs, snapshots, index) with its
/// size, and the index's bytes: equal listings mean an unchanged store.
pub fn store_state(data_root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for sub in ["content", "snapshots", "images"] {
        walk(&data_root.join(sub), data_root, &mut out);
    }
    if let Ok(index) = std::fs::read_to_string(data_root.join("images/index.json")) {
        out.insert("index.json contents".into(), index);
    }
    out
}

fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.insert(rel, format!("{}", meta.len()));
        if meta.is_dir() {
            walk(&p, root, out);
        }
    }
}

/// The file holding a blob in the registry's filesystem storage.
pub fn registry_blob(registry: &Registry, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    let mut stack = vec![registry.dir().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read registry dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == hex) && p.join("data").is_file() {
                    return p.join("data");
                }
                stack.push(p);
            }
        }
    }
    panic!("blob {digest} not found in the registry's storage");
}

/// A TCP port free on the host's loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on 127.0.0.1:port: the body, or None when nothing answers.
pub fn http_get(port: u16) -> Option<String> {
    http_get_at(std::net::Ipv4Addr::LOCALHOST.into(), port)
}

/// [`http_get`] to `ip` (`::1`, say) instead of 127.0.0.1.
pub fn http_get_at(ip: std::net::IpAddr, port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split("\r\n\r\n").nth(1).map(str::to_string)
}

/// An echo server for UDP port 53 ("echo:" + each datagram), built with
/// rustc as a static musl binary into `dir`.
pub fn udp_echo_binary(dir: &Path) -> PathBuf {
    let src = dir.join("udp_echo.rs");
    std::fs::write(
        &src,
        "fn main() {\n\
         let s = std::net::UdpSocket::bind(\"0.0.0.0:53\").unwrap();\n\
         let mut b = [0u8; 1500];\n\
         loop {\n\
         let (n, from) = s.recv_from(&mut b).unwrap();\n\
         let mut out = b\"echo:\".to_vec();\n\
         out.extend_from_slice(&b[..n]);\n\
         let _ = s.send_to(&out, from);\n\
         }\n\
         }\n",
    )
    .unwrap();
    let bin = dir.join("udp-echo");
    let out = std::process::Command::new("rustc")
        .args([
            "--edition",
            "2021",
            "-O",
            "--target",
            "x86_64-unknown-linux-musl",
            "-o",
        ])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("rustc runs");
    assert!(
        out.status.success(),
        "building the UDP echo server for musl failed (rustup target add x86_64-unknown-linux-musl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Runs the UDP echo server ([`udp_echo_binary`], built into `dir` and
/// mounted from there read-only) as container `name` of `image`,
/// detached, publishing `publish` (`PORT:53/udp` and the like).
pub fn run_udp_echo(docker: &Cli, dir: &Path, name: &str, image: &str, publish: &str) {
    let echo = udp_echo_binary(dir);
    let mount = format!("{}:/opt/echo:ro", dir.display());
    let exe = format!("/opt/echo/{}", echo.file_name().unwrap().to_str().unwrap());
    docker
        .run(&[
            "run", "-d", "--name", name, "-p", publish, "-v", &mount, image, &exe,
        ])
        .ok();
}

pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// Sends `msg` to 127.0.0.1:port until a datagram comes back, for at most
/// `limit` (a hang guard, not a speed check).
pub fn udp_ask_until_answered(port: u16, msg: &[u8], limit: std::time::Duration) -> String {
    udp_ask_until_answered_at(std::net::Ipv4Addr::LOCALHOST.into(), port, msg, limit)
}

/// [`udp_ask_until_answered`] to `ip` (`::1`, say).
pub fn udp_ask_until_answered_at(
    ip: std::net::IpAddr,
    port: u16,
    msg: &[u8],
    limit: std::time::Duration,
) -> String {
    let local: std::net::SocketAddr = match ip {
        std::net::IpAddr::V4(_) => (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        std::net::IpAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
    };
    let s = std::net::UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 1500];
    while std::time::Instant::now() < deadline {
        s.send_to(msg, (ip, port)).unwrap();
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    panic!("nothing came back from {ip} port {port}/udp");
}
