//! The relay port on vsock: streams from the host to the guest engine's
//! socket or to a container's published port, with the host's half in
//! frames so that its half-close (`docker run -i` reaching the end of its
//! input, an HTTP client done sending) arrives as one. The vsock device on
//! the host (`vhost-device-vsock`) turns the end of its Unix side into a
//! reset of the whole connection, so an unframed stream cannot carry it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use servin_guest::contract::{
    relay_frame_header, ControlResponse, RelayTarget, GUEST_ENGINE_SOCKET, RELAY_FRAME_MAX,
};
use vsock::VsockStream;

use crate::control::{bind_vsock, read_line};

pub fn serve(port: u32) {
    let Some(listener) = bind_vsock(port, "relay") else {
        return;
    };
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || handle(conn));
    }
}

/// The guest side of a relayed stream.
enum Target {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Target {
    fn connect(to: &RelayTarget) -> io::Result<Target> {
        Ok(match to {
            RelayTarget::Udp(_) => unreachable!("datagrams are relayed by `datagrams`"),
            RelayTarget::Engine => Target::Unix(UnixStream::connect(GUEST_ENGINE_SOCKET)?),
            RelayTarget::Tcp(addr) => {
                let s = TcpStream::connect_timeout(addr, Duration::from_secs(5))?;
                let _ = s.set_nodelay(true);
                Target::Tcp(s)
            }
        })
    }

    fn try_clone(&self) -> io::Result<Target> {
        Ok(match self {
            Target::Unix(s) => Target::Unix(s.try_clone()?),
            Target::Tcp(s) => Target::Tcp(s.try_clone()?),
        })
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Target::Unix(s) => s.shutdown(how),
            Target::Tcp(s) => s.shutdown(how),
        };
    }

    fn reader(&mut self) -> &mut dyn Read {
        match self {
            Target::Unix(s) => s,
            Target::Tcp(s) => s,
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Target::Unix(s) => s,
            Target::Tcp(s) => s,
        }
    }
}

fn handle(mut conn: VsockStream) {
    let Some(line) = read_line(&mut conn) else {
        return;
    };
    if let Ok(RelayTarget::Udp(addr)) = RelayTarget::parse(&line) {
        return datagrams(conn, addr);
    }
    let mut target = match RelayTarget::parse(&line)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            Target::connect(&t)
                .map_err(|e| format!("cannot connect to {}: {e}", t.to_string().trim_end()))
        }) {
        Ok(t) => t,
        Err(e) => {
            let _ = conn.write_all(ControlResponse::Err(e).to_string().as_bytes());
            return;
        }
    };
    if conn
        .write_all(ControlResponse::Ok(String::new()).to_string().as_bytes())
        .is_err()
    {
        return;
    }
    let (Ok(mut back), Ok(mut down)) = (target.try_clone(), conn.try_clone()) else {
        return;
    };
    let downstream = std::thread::spawn(move || {
        let _ = io::copy(back.reader(), &mut down);
        // The whole stream: the device does not pass a half-close on.
        let _ = down.shutdown(Shutdown::Both);
    });
    let _ = upstream(&mut conn, &mut target);
    target.shutdown(Shutdown::Both);
    let _ = downstream.join();
}

/// Unframes the host's bytes into the target until the host closes the
/// stream; a frame of length 0 shuts down the target's writing half.
fn upstream(conn: &mut VsockStream, target: &mut Target) -> io::Result<()> {
    let mut buf = vec![0u8; RELAY_FRAME_MAX];
    loop {
        let mut header = [0u8; 4];
        conn.read_exact(&mut header)?;
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 {
            target.shutdown(Shutdown::Write);
            // Nothing more comes; wait for the host to close.
            while conn.read(&mut buf)? > 0 {}
            return Ok(());
        }
        if len > RELAY_FRAME_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "relay frame too long",
            ));
        }
        conn.read_exact(&mut buf[..len])?;
        target.writer().write_all(&buf[..len])?;
    }
}

/// A UDP flow: each frame from the host is one datagram to `addr`, each
/// datagram back is one frame to the host, until the host closes.
fn datagrams(mut conn: VsockStream, addr: std::net::SocketAddr) {
    let socket = match UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| {
        s.connect(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot reach {addr}: {e}");
            let _ = conn.write_all(ControlResponse::Err(msg).to_string().as_bytes());
            return;
        }
    };
    if conn
        .write_all(ControlResponse::Ok(String::new()).to_string().as_bytes())
        .is_err()
    {
        return;
    }
    let done = Arc::new(AtomicBool::new(false));
    let (Ok(back), Ok(mut down)) = (socket.try_clone(), conn.try_clone()) else {
        return;
    };
    let replies = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4 + RELAY_FRAME_MAX];
            while !done.load(Ordering::Relaxed) {
                // Timeouts come back to check `done`; an error (an ICMP
                // unreachable while nothing listens yet) is the target's.
                if let Ok(n) = back.recv(&mut buf[4..]) {
                    buf[..4].copy_from_slice(&relay_frame_header(n));
                    if down.write_all(&buf[..4 + n]).is_err() {
                        break;
                    }
                }
            }
        })
    };
    let mut buf = vec![0u8; RELAY_FRAME_MAX];
    loop {
        let mut header = [0u8; 4];
        if conn.read_exact(&mut header).is_err() {
            break;
        }
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 || len > RELAY_FRAME_MAX || conn.read_exact(&mut buf[..len]).is_err() {
            break;
        }
        let _ = socket.send(&buf[..len]);
    }
    done.store(true, Ordering::Relaxed);
    let _ = conn.shutdown(Shutdown::Both);
    let _ = replies.join();
}
