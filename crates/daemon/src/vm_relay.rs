//! The host half of init's relay port (docs/vm-guest-contract.md, "Relay
//! port"): a stream to the guest engine or to a container's port in the
//! guest whose host-to-guest bytes travel in frames, so that a client's
//! half-close reaches the guest as a half-close. The vsock device turns
//! the end of its Unix side into a reset of the whole connection, which a
//! plain splice would hand to the guest as "the client is gone".

use std::sync::Arc;

use anyhow::Context as _;
use servin_guest::contract::{
    relay_frame_header, ControlResponse, RelayTarget, RELAY_FRAME_MAX, RELAY_PORT,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::vm_manager::VmManager;

/// Opens a relay stream to `target`, once init says it is connected.
pub async fn open(manager: &Arc<VmManager>, target: &RelayTarget) -> anyhow::Result<UnixStream> {
    let stream = manager.connect_port(RELAY_PORT).await?;
    stream.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(stream)?;
    stream.write_all(target.to_string().as_bytes()).await?;
    // Byte by byte: what follows the line is the target's.
    let mut line = Vec::new();
    loop {
        let b = stream
            .read_u8()
            .await
            .context("the guest closed the relay stream")?;
        if b == b'\n' || line.len() > 4096 {
            break;
        }
        line.push(b);
    }
    match ControlResponse::parse(&String::from_utf8_lossy(&line)) {
        Ok(ControlResponse::Ok(_)) => Ok(stream),
        Ok(ControlResponse::Err(e)) => anyhow::bail!("{e}"),
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// Copies both ways between a client and a relay stream until the guest
/// closes it or the client breaks off: `first` (bytes already read from
/// the client) goes first; the client's end of input becomes the relay's
/// end frame.
pub async fn splice<C>(client: C, first: &[u8], guest: UnixStream)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut guest_r, mut guest_w) = guest.into_split();
    let up = async {
        for part in first.chunks(RELAY_FRAME_MAX) {
            let mut frame = relay_frame_header(part.len()).to_vec();
            frame.extend_from_slice(part);
            guest_w.write_all(&frame).await?;
        }
        let mut buf = vec![0u8; 4 + RELAY_FRAME_MAX];
        loop {
            let n = client_r.read(&mut buf[4..]).await?;
            buf[..4].copy_from_slice(&relay_frame_header(n));
            guest_w.write_all(&buf[..4 + n]).await?;
            if n == 0 {
                // Half-closed: the answer may still be coming.
                return std::future::pending::<std::io::Result<()>>().await;
            }
        }
    };
    let down = async {
        let _ = tokio::io::copy(&mut guest_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    };
    tokio::select! {
        _ = up => {}
        () = down => {}
    }
}
