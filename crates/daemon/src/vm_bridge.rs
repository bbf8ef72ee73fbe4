//! `servind --mode vm`: a thin bridge in front of the engine in the VM.
//!
//! Each Docker API connection on the host socket is spliced, byte for byte,
//! to a new vsock connection to the guest engine: bodies are never
//! buffered, and upgrades (attach, exec, build sessions) and streams pass
//! through untouched. Only the head of a connection's first requests is
//! read here, to answer what the host must answer itself:
//!
//! - `/_ping` while the VM is not running yet (the client may then wait on
//!   its next request while the VM boots, which `_ping` starts);
//! - Servin's own `/servin/vm/…` routes (status, start, stop, restart,
//!   logs, shell), which the `servin vm` verbs use.
//!
//! Those few responses are written by hand (a status line, headers and a
//! body, or chunks); everything else is the guest engine's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use servin_api::API_VERSION;
use servin_guest::contract::{ControlRequest, ControlResponse, CONTROL_PORT};
use servin_vm::VmPaths;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::settings::Settings;
use crate::vm_manager::{Phase, VmManager};

const MAX_HEAD: usize = 64 * 1024;

/// Serves until SIGINT/SIGTERM, then powers the VM off and removes the
/// sockets.
pub async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let provider = servin_vm::default_provider()?;
    let manager = VmManager::new(VmPaths::new(&settings.data_root), provider);
    tokio::spawn(manager.clone().health_loop());
    let mut tasks = Vec::new();
    for path in &settings.sockets {
        let listener = crate::server::bind(path)?;
        tracing::info!(socket = %path.display(), data_root = %settings.data_root.display(), "servind listening (VM mode)");
        let manager = manager.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let manager = manager.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(manager, stream).await {
                        tracing::debug!(error = %format!("{e:#}"), "bridged connection ended with an error");
                    }
                });
            }
        }));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("servind shutting down: stopping the VM");
    for t in &tasks {
        t.abort();
    }
    if let Err(e) = manager.stop().await {
        tracing::error!(error = %format!("{e:#}"), "stopping the VM failed");
    }
    for path in &settings.sockets {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// A parsed request head.
struct Head {
    method: String,
    /// Without the `/vX.Y` prefix and the query.
    path: String,
    query: String,
    len: usize,
    content_length: usize,
    close: bool,
}

/// Reads until `buf` holds a whole request head; None at a clean EOF.
async fn read_head(client: &mut UnixStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<Head>> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let target = req.path.unwrap_or("/");
                    let (path, query) = target.split_once('?').unwrap_or((target, ""));
                    let header = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).to_string())
                    };
                    return Ok(Some(Head {
                        method: req.method.unwrap_or("GET").to_string(),
                        path: strip_version(path).to_string(),
                        query: query.to_string(),
                        len,
                        content_length: header("content-length")
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0),
                        close: header("connection")
                            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
                    }));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => anyhow::bail!("request head too large"),
                Err(e) => {
                    let body = json!({ "message": format!("Invalid HTTP request: {e}") });
                    let _ = client
                        .write_all(&response(
                            400,
                            "application/json",
                            body.to_string().as_bytes(),
                        ))
                        .await;
                    anyhow::bail!("invalid request: {e}");
                }
            }
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            anyhow::bail!("connection closed inside a request head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `/v1.45/containers/json` → `/containers/json`.
fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            if rest[..i].split('.').all(|p| p.parse::<u32>().is_ok()) {
                return &rest[i..];
            }
        }
    }
    path
}

/// Drops a handled request (head and body) from the front of `buf`.
async fn consume(client: &mut UnixStream, buf: &mut Vec<u8>, head: &Head) -> anyhow::Result<()> {
    let total = head.len + head.content_length;
    while buf.len() < total {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed inside a request body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..total);
    Ok(())
}

async fn handle(manager: Arc<VmManager>, mut client: UnixStream) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut client, &mut buf).await? else {
            return Ok(());
        };
        if let Some(route) = head.path.strip_prefix("/servin/vm/") {
            let route = route.to_string();
            consume(&mut client, &mut buf, &head).await?;
            let keep = local(&manager, &mut client, &head, &route, &mut buf).await?;
            if !keep || head.close {
                return Ok(());
            }
            continue;
        }
        if head.path == "/_ping" && manager.phase() != Phase::Running {
            manager.kick();
            consume(&mut client, &mut buf, &head).await?;
            let body: &[u8] = if head.method == "HEAD" { b"" } else { b"OK" };
            let mut resp = response(200, "text/plain; charset=utf-8", body);
            if head.method == "HEAD" {
                // HEAD: the length of what GET would send, and no body.
                resp = response_head(200, "text/plain; charset=utf-8", 2);
            }
            client.write_all(&resp).await?;
            if head.close {
                return Ok(());
            }
            continue;
        }
        let guest = match manager.connect_engine().await {
            Ok(s) => s,
            Err(e) => {
                // Read the request's body first: a client still writing it
                // to a closed connection sees a broken pipe, not our error.
                let _ = consume(&mut client, &mut buf, &head).await;
                let body = json!({ "message": format!("{e:#}") });
                client
                    .write_all(&response(
                        500,
                        "application/json",
                        body.to_string().as_bytes(),
                    ))
                    .await?;
                return Ok(());
            }
        };
        guest.set_nonblocking(true)?;
        let mut guest = UnixStream::from_std(guest)?;
        guest.write_all(&buf).await?;
        splice(&mut client, &mut guest).await;
        return Ok(());
    }
}

/// Copies both ways until the guest ends the connection. The client's
/// half-close (the docker CLI's `CloseWrite` on an attach without stdin) is
/// not passed on: vhost-device-vsock turns the end of its Unix side into a
/// reset of the guest's connection, which would cut the container's output
/// short. So the end of a client's stdin does not reach the guest either.
async fn splice(client: &mut UnixStream, guest: &mut UnixStream) {
    use tokio::io::AsyncWriteExt as _;
    let (mut client_r, mut client_w) = client.split();
    let (mut guest_r, mut guest_w) = guest.split();
    let up = async {
        let _ = tokio::io::copy(&mut client_r, &mut guest_w).await;
        std::future::pending::<()>().await
    };
    let down = async {
        let _ = tokio::io::copy(&mut guest_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

fn common_headers(out: &mut String) {
    out.push_str(&format!("Api-Version: {API_VERSION}\r\n"));
    out.push_str("Docker-Experimental: false\r\nOstype: linux\r\n");
    out.push_str(concat!(
        "Server: Servin/",
        env!("CARGO_PKG_VERSION"),
        " (linux; vm bridge)\r\n"
    ));
    out.push_str("Cache-Control: no-cache, no-store, must-revalidate\r\nPragma: no-cache\r\n");
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Internal Server Error",
    }
}

fn response_head(status: u16, content_type: &str, len: usize) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    common_headers(&mut s);
    s.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n"
    ));
    s.into_bytes()
}

fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = response_head(status, content_type, body.len());
    out.extend_from_slice(body);
    out
}

fn error_json(status: u16, message: &str) -> Vec<u8> {
    response(
        status,
        "application/json",
        json!({ "message": message }).to_string().as_bytes(),
    )
}

async fn start_chunked(client: &mut UnixStream, content_type: &str) -> std::io::Result<()> {
    let mut s = "HTTP/1.1 200 OK\r\n".to_string();
    common_headers(&mut s);
    s.push_str(&format!(
        "Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ));
    client.write_all(s.as_bytes()).await
}

async fn chunk(client: &mut UnixStream, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    client.write_all(&out).await?;
    client.flush().await
}

async fn end_chunked(client: &mut UnixStream) -> std::io::Result<()> {
    client.write_all(b"0\r\n\r\n").await
}

fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string())
}

/// Serves one `/servin/vm/<route>` request; false when the connection must
/// end after it (streams, upgrades).
async fn local(
    manager: &Arc<VmManager>,
    client: &mut UnixStream,
    head: &Head,
    route: &str,
    buf: &mut Vec<u8>,
) -> anyhow::Result<bool> {
    match (head.method.as_str(), route) {
        ("GET", "status") => {
            let report = manager.status().await;
            let body = serde_json::to_vec(&report)?;
            client
                .write_all(&response(200, "application/json", &body))
                .await?;
            Ok(true)
        }
        ("POST", "start") => {
            progress(manager, client).await?;
            Ok(false)
        }
        ("POST", "stop") => {
            match manager.stop().await {
                Ok(()) => client.write_all(&response(204, "text/plain", b"")).await?,
                Err(e) => {
                    client
                        .write_all(&error_json(500, &format!("{e:#}")))
                        .await?
                }
            }
            Ok(true)
        }
        ("POST", "restart") => {
            if let Err(e) = manager.stop().await {
                client
                    .write_all(&error_json(500, &format!("{e:#}")))
                    .await?;
                return Ok(true);
            }
            progress(manager, client).await?;
            Ok(false)
        }
        ("GET", "logs") => {
            let follow =
                query_value(&head.query, "follow").is_some_and(|v| v == "1" || v == "true");
            logs(&manager.paths.console_log(), client, follow).await?;
            Ok(false)
        }
        ("POST", "shell") => {
            shell(manager, client, head, buf).await?;
            Ok(false)
        }
        _ => {
            client
                .write_all(&error_json(
                    404,
                    &format!("page not found: {} /servin/vm/{route}", head.method),
                ))
                .await?;
            Ok(true)
        }
    }
}

/// Starts the VM and streams its progress as JSON lines: `{"status": …}`
/// for each step, then `{"status":"running"}` or `{"error": …}`.
async fn progress(manager: &Arc<VmManager>, client: &mut UnixStream) -> anyhow::Result<()> {
    let mut rx = manager.subscribe();
    start_chunked(client, "application/json").await?;
    let start = {
        let m = manager.clone();
        tokio::spawn(async move { m.ensure_running().await })
    };
    let mut last = None;
    loop {
        let phase = rx.borrow_and_update().clone();
        if last.as_ref() != Some(&phase) {
            if let Phase::Starting(step) = &phase {
                chunk(
                    client,
                    format!("{}\n", json!({ "status": step })).as_bytes(),
                )
                .await?;
            }
            last = Some(phase);
        }
        if start.is_finished() {
            break;
        }
        tokio::select! {
            _ = rx.changed() => {},
            _ = tokio::time::sleep(Duration::from_millis(200)) => {},
        }
    }
    let line = match start.await? {
        Ok(()) => json!({ "status": "running" }),
        Err(e) => json!({ "error": format!("{e:#}") }),
    };
    chunk(client, format!("{line}\n").as_bytes()).await?;
    end_chunked(client).await?;
    Ok(())
}

/// The guest console, from the start; with `follow`, then what comes.
async fn logs(path: &Path, client: &mut UnixStream, follow: bool) -> anyhow::Result<()> {
    start_chunked(client, "text/plain; charset=utf-8").await?;
    let mut offset = 0u64;
    loop {
        let data = match tokio::fs::File::open(path).await {
            Ok(mut f) => {
                let len = f.metadata().await?.len();
                if len < offset {
                    // A new boot started a new log.
                    offset = 0;
                }
                let mut data = Vec::new();
                use tokio::io::AsyncSeekExt as _;
                f.seek(std::io::SeekFrom::Start(offset)).await?;
                f.read_to_end(&mut data).await?;
                data
            }
            Err(_) => Vec::new(),
        };
        offset += data.len() as u64;
        chunk(client, &data).await?;
        if !follow {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    end_chunked(client).await?;
    Ok(())
}

/// A shell in the guest: the control port's SHELL, after a 101 upgrade.
async fn shell(
    manager: &Arc<VmManager>,
    client: &mut UnixStream,
    head: &Head,
    buf: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let size = |k: &str, d: u16| {
        query_value(&head.query, k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let request = ControlRequest::Shell {
        rows: size("rows", 24),
        cols: size("cols", 80),
    };
    let opened = async {
        manager.ensure_running().await?;
        let s = manager.connect_port(CONTROL_PORT).await?;
        s.set_nonblocking(true)?;
        let mut s = UnixStream::from_std(s)?;
        s.write_all(request.to_string().as_bytes()).await?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while s.read(&mut byte).await? == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        match ControlResponse::parse(&String::from_utf8_lossy(&line)) {
            Ok(ControlResponse::Ok(_)) => Ok(s),
            Ok(ControlResponse::Err(e)) => anyhow::bail!("The guest refused the shell: {e}"),
            Err(e) => anyhow::bail!("{e}"),
        }
    }
    .await;
    let mut guest = match opened {
        Ok(s) => s,
        Err(e) => {
            client
                .write_all(&error_json(500, &format!("{e:#}")))
                .await?;
            return Ok(());
        }
    };
    let mut s = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n".to_string();
    common_headers(&mut s);
    s.push_str("\r\n");
    client.write_all(s.as_bytes()).await?;
    guest
        .write_all(buf)
        .await
        .context("Cannot write to the guest shell")?;
    buf.clear();
    // The end of the user's input is not passed on: the shell's terminal
    // ends when the shell does (`exit`), so output after the last line of a
    // piped script still arrives.
    let (mut from_client, mut to_client) = client.split();
    let (mut from_guest, mut to_guest) = guest.split();
    let input = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_guest).await;
        std::future::pending::<()>().await
    };
    let output = async {
        let _ = tokio::io::copy(&mut from_guest, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::select! {
        _ = input => {}
        _ = output => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stripped_only_when_they_are_versions() {
        assert_eq!(strip_version("/v1.45/containers/json"), "/containers/json");
        assert_eq!(strip_version("/_ping"), "/_ping");
        assert_eq!(
            strip_version("/v1.45/servin/vm/status"),
            "/servin/vm/status"
        );
        assert_eq!(strip_version("/volumes/x"), "/volumes/x");
    }

    #[tokio::test]
    async fn heads_are_parsed_and_bodies_stay_for_the_guest() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"POST /v1.45/containers/create?name=x HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let head = read_head(&mut a, &mut buf).await.unwrap().unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/containers/create");
        assert_eq!(head.query, "name=x");
        assert_eq!(head.content_length, 2);
        assert!(buf.ends_with(b"{}"), "the body is forwarded as read");
        drop(b);
        let mut rest = Vec::new();
        assert!(read_head(&mut a, &mut rest).await.unwrap().is_none());
    }
}
