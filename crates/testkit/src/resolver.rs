//! A DNS resolver a test runs on loopback, for the embedded DNS server's
//! forwarding: `outside.test` has one A record, every other name is
//! NXDOMAIN. It answers UDP queries until dropped.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// The name [`FakeResolver`] knows.
pub const OUTSIDE_NAME: &str = "outside.test.";

pub struct FakeResolver {
    /// Where it listens (the port the OS chose when asked for 0).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeResolver {
    /// Listens on `bind` and answers `outside.test` A with `answer`.
    pub fn start(bind: SocketAddr, answer: Ipv4Addr) -> std::io::Result<FakeResolver> {
        let sock = UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.add_queries(q.queries.clone());
                match q.queries.first() {
                    Some(q) if q.name().to_ascii() == OUTSIDE_NAME => {
                        if q.query_type() == RecordType::A {
                            let rdata = RData::A(A(answer));
                            r.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                        }
                    }
                    _ => r.metadata.response_code = ResponseCode::NXDomain,
                }
                if let Ok(bytes) = r.to_vec() {
                    let _ = sock.send_to(&bytes, peer);
                }
            }
        });
        Ok(FakeResolver {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for FakeResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
