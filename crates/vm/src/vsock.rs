//! Reaching a guest vsock port from the host through `vhost-device-vsock`'s
//! unix socket (`CONNECT <port>\n` → `OK <n>\n`, then the stream is the
//! guest's port).

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use servin_guest::contract::{vsock_connect_line, vsock_connect_ok};

use crate::VmError;

/// Opens a stream to `port` in the guest. `timeout` bounds the handshake;
/// the returned stream has no timeouts.
pub fn connect(socket: &Path, port: u32, timeout: Duration) -> Result<UnixStream, VmError> {
    let fail = |message: String| VmError::Connect { port, message };
    let mut s =
        UnixStream::connect(socket).map_err(|e| fail(format!("{}: {e}", socket.display())))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(vsock_connect_line(port).as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    // Byte by byte: whatever follows the reply line is the guest's.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        match s.read(&mut byte) {
            Ok(0) => {
                return Err(fail(
                    "the vsock device closed the connection (nothing listens on that port yet)"
                        .into(),
                ))
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let reply = String::from_utf8_lossy(&line).to_string();
    if !vsock_connect_ok(&reply) {
        return Err(fail(format!("unexpected reply {reply:?}")));
    }
    s.set_read_timeout(None)
        .and_then(|()| s.set_write_timeout(None))
        .map_err(|e| fail(e.to_string()))?;
    Ok(s)
}

/// Sends one control-port request and reads its reply line; for requests
/// whose reply is the whole conversation (PING, STATS, POWEROFF).
pub fn control(
    socket: &Path,
    port: u32,
    request: servin_guest::contract::ControlRequest,
    timeout: Duration,
) -> Result<String, VmError> {
    use servin_guest::contract::ControlResponse;
    let fail = |message: String| VmError::Connect { port, message };
    let mut s = connect(socket, port, timeout)?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(request.to_string().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    match ControlResponse::parse(&String::from_utf8_lossy(&line)) {
        Ok(ControlResponse::Ok(rest)) => Ok(rest),
        Ok(ControlResponse::Err(message)) => Err(fail(message)),
        Err(message) => Err(fail(message)),
    }
}
