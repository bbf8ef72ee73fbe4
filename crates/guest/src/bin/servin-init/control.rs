//! The control port on vsock: one request line per connection.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use servin_guest::contract::{ControlRequest, ControlResponse, GuestStats};
use vsock::{VsockListener, VsockStream, VMADDR_CID_ANY};

use crate::engine::Engine;
use crate::{say, Children};

/// Binds a vsock port of the guest; the vsock transport may still be
/// probing, so the bind is retried a while. `None` (said on the console)
/// when it never works.
pub(crate) fn bind_vsock(port: u32, what: &str) -> Option<VsockListener> {
    let mut tries = 0;
    loop {
        match VsockListener::bind_with_cid_port(VMADDR_CID_ANY, port) {
            Ok(l) => return Some(l),
            Err(e) if tries < 200 => {
                tries += 1;
                if tries == 1 {
                    say!("waiting for vsock: {e}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                say!("error: cannot serve the {what} port {port}: {e}");
                return None;
            }
        }
    }
}

pub fn serve(port: u32, children: Arc<Children>, engine: Arc<Engine>) {
    let Some(listener) = bind_vsock(port, "control") else {
        return;
    };
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (children, engine) = (children.clone(), engine.clone());
        std::thread::spawn(move || handle(conn, &children, &engine));
    }
}

/// Reads one line byte by byte, so nothing after it (a shell's input) is
/// consumed.
pub(crate) fn read_line(conn: &mut VsockStream) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 256 {
        match conn.read(&mut b) {
            Ok(1) if b[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

fn reply(conn: &mut VsockStream, r: ControlResponse) {
    let _ = conn.write_all(r.to_string().as_bytes());
}

fn handle(mut conn: VsockStream, children: &Children, engine: &Engine) {
    let Some(line) = read_line(&mut conn) else {
        return;
    };
    let req = match ControlRequest::parse(&line) {
        Ok(r) => r,
        Err(e) => return reply(&mut conn, ControlResponse::Err(e)),
    };
    match req {
        ControlRequest::Ping => reply(
            &mut conn,
            ControlResponse::Ok(env!("CARGO_PKG_VERSION").to_string()),
        ),
        ControlRequest::Stats => {
            let (disk_size, disk_used) = crate::disk::usage();
            let (mem_total, mem_available) = meminfo();
            let stats = GuestStats {
                disk_size,
                disk_used,
                mem_total,
                mem_available,
            };
            let json = serde_json::to_string(&stats).unwrap_or_default();
            reply(&mut conn, ControlResponse::Ok(json));
        }
        ControlRequest::Poweroff => {
            reply(&mut conn, ControlResponse::Ok(String::new()));
            drop(conn);
            say!("powering off");
            engine.stop();
            crate::setup::power_off();
        }
        ControlRequest::Shell { rows, cols } => {
            if let Err(e) = shell(conn, children, rows, cols) {
                say!("warning: shell: {e}");
            }
        }
        ControlRequest::ShellExit { pid } => match shell_exit(pid) {
            Some(code) => reply(&mut conn, ControlResponse::Ok(code.to_string())),
            None => reply(
                &mut conn,
                ControlResponse::Err(format!("no ended shell {pid}")),
            ),
        },
    }
}

/// Exit statuses of `vm shell` shells by pid: `None` while one runs. An
/// entry goes when its status is asked for.
static SHELLS: Mutex<BTreeMap<i32, Option<i32>>> = Mutex::new(BTreeMap::new());
static SHELL_ENDED: Condvar = Condvar::new();

/// The exit status of shell `pid`, waiting a little for the reaper to
/// record it (the client asks right after the shell's terminal closed).
fn shell_exit(pid: i32) -> Option<i32> {
    let mut shells = SHELLS.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match shells.get(&pid) {
            None => return None,
            Some(Some(code)) => {
                let code = *code;
                shells.remove(&pid);
                return Some(code);
            }
            Some(None) => {
                let left = deadline.checked_duration_since(std::time::Instant::now())?;
                shells = SHELL_ENDED
                    .wait_timeout(shells, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

/// `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes.
fn meminfo() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// `/bin/sh -l` on a new pty, its bytes relayed both ways over `conn`.
fn shell(mut conn: VsockStream, children: &Children, rows: u16, cols: u16) -> Result<(), String> {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(|e| format!("openpty: {e}"))?;
    let slave: OwnedFd = pty.slave;
    let stdio = |fd: &OwnedFd| -> Result<std::process::Stdio, String> {
        Ok(fd.try_clone().map_err(|e| e.to_string())?.into())
    };
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-l")
        .stdin(stdio(&slave)?)
        .stdout(stdio(&slave)?)
        .stderr(stdio(&slave)?)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("TERM", "xterm")
        .env("DOCKER_HOST", "unix:///run/servin/servin.sock")
        .current_dir("/root");
    // SAFETY: between fork and exec only async-signal-safe calls are
    // made: setsid and an ioctl on fd 0 (the pty slave) to make it the
    // controlling terminal of the new session.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (pid, exited) = children
        .spawn(&mut cmd)
        .map_err(|e| format!("Cannot start /bin/sh: {e}"))?;
    SHELLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, None);
    std::thread::spawn(move || {
        let code = exited.recv().unwrap_or(-1);
        SHELLS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, Some(code));
        SHELL_ENDED.notify_all();
    });
    // The Command holds copies of the slave side: the master reads EIO
    // (the shell is gone) only once every copy is closed.
    drop(cmd);
    drop(slave);
    // The pid names the shell for SHELLEXIT.
    reply(&mut conn, ControlResponse::Ok(pid.to_string()));

    let master = std::fs::File::from(pty.master);
    let mut to_shell = master.try_clone().map_err(|e| e.to_string())?;
    let mut from_client = conn.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_shell);
        // The client is gone: hang up the shell's session.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(-pid),
            nix::sys::signal::Signal::SIGHUP,
        );
    });
    let mut from_shell = master;
    let mut buf = [0u8; 8192];
    loop {
        // EIO once every holder of the slave side has closed it.
        match from_shell.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
    Ok(())
}
