//! Starting, watching, restarting and stopping `servind` (step 6).

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use servin_guest::contract::{DATA_MOUNT, ENGINE_READY_LINE, GUEST_ENGINE_SOCKET, HOST_GATEWAY};

use crate::{say, BootTimes, Children};

#[derive(Default)]
struct State {
    pid: Option<i32>,
    stopping: bool,
}

pub struct Engine {
    port: u32,
    state: Mutex<State>,
    changed: Condvar,
    times: std::sync::Arc<BootTimes>,
}

impl Engine {
    pub fn new(port: u32, times: std::sync::Arc<BootTimes>) -> Engine {
        Engine {
            port,
            state: Mutex::default(),
            changed: Condvar::new(),
            times,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/servind");
        cmd.args(["--mode", "native", "--data-root", DATA_MOUNT])
            .arg("-H")
            .arg(format!("vsock://:{}", self.port))
            .arg("-H")
            .arg(format!("unix://{GUEST_ENGINE_SOCKET}"))
            .args(["--host-gateway", HOST_GATEWAY])
            // The host daemon listens on published addresses (vm_ports).
            .arg("--published-elsewhere")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("SERVIN_LOG", "warn");
        cmd
    }

    /// Runs `servind` for ever, restarting it when it dies, until
    /// [`Engine::stop`].
    pub fn supervise(&self, children: &Children) {
        let mut failures = 0u32;
        let mut first_start = true;
        loop {
            let spawned = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.stopping {
                    return;
                }
                let r = children.spawn(&mut self.command());
                if let Ok((pid, _)) = &r {
                    st.pid = Some(*pid);
                }
                r
            };
            let (pid, exited) = match spawned {
                Ok(s) => s,
                Err(e) => {
                    say!("error: cannot start servind: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            let started = Instant::now();
            let status = match wait_ready(&exited) {
                Ok(()) if first_start => {
                    first_start = false;
                    self.times.mark("engine");
                    // The seconds since the kernel started at each step's end.
                    println!("{ENGINE_READY_LINE} ({})", self.times.summary());
                    exited.recv().unwrap_or(-1)
                }
                Ok(()) => {
                    println!("{ENGINE_READY_LINE}");
                    exited.recv().unwrap_or(-1)
                }
                Err(status) => status,
            };
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.pid = None;
            self.changed.notify_all();
            if st.stopping {
                return;
            }
            drop(st);
            say!("servind (pid {pid}) exited with status {status}; restarting it");
            // Back off when it dies at once, so a broken engine does not spin.
            if started.elapsed() < Duration::from_secs(5) {
                failures += 1;
            } else {
                failures = 0;
            }
            std::thread::sleep(Duration::from_millis(200 * u64::from(failures.min(25))));
        }
    }

    /// SIGTERM, then SIGKILL after 10 s; returns when it has exited.
    pub fn stop(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.stopping = true;
        for (signal, grace) in [
            (Signal::SIGTERM, Duration::from_secs(10)),
            (Signal::SIGKILL, Duration::from_secs(5)),
        ] {
            let Some(pid) = st.pid else { return };
            let _ = kill(Pid::from_raw(pid), signal);
            st = self
                .changed
                .wait_timeout_while(st, grace, |s| s.pid.is_some())
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Polls `/_ping` on the guest socket until it answers `OK`; the exit
/// status if the engine exits first.
fn wait_ready(exited: &std::sync::mpsc::Receiver<i32>) -> Result<(), i32> {
    loop {
        if ping() {
            return Ok(());
        }
        match exited.recv_timeout(Duration::from_millis(50)) {
            Ok(status) => return Err(status),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(-1),
        }
    }
}

/// One `GET /_ping` on the engine's unix socket.
pub fn ping() -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(GUEST_ENGINE_SOCKET) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: servin\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with("OK")
}
