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
//! body, or chunks); everything else is the guest engine's. Two kinds of
//! request get more than a splice: attach and exec streams go through
//! init's relay port (`vm_relay`), which carries the end of the client's
//! stdin; a container start, restart, stop, kill or removal is answered
//! only once the container's published ports listen (or no longer listen)
//! on the host (`vm_ports`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use servin_api::API_VERSION;
use servin_guest::contract::{ControlRequest, ControlResponse, RelayTarget, CONTROL_PORT};
use servin_vm::VmPaths;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::settings::Settings;
use crate::vm_manager::{Phase, VmManager};
use crate::vm_ports::Ports;

const MAX_HEAD: usize = 64 * 1024;

/// Serves until SIGINT/SIGTERM, then powers the VM off and removes the
/// sockets.
pub async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let provider = servin_vm::default_provider()?;
    let manager = VmManager::new(VmPaths::new(&settings.data_root), provider);
    tokio::spawn(manager.clone().health_loop());
    let ports = Ports::new(manager.clone());
    tokio::spawn(ports.clone().run());
    let mut tasks = Vec::new();
    for path in &settings.sockets {
        let listener = crate::server::bind(path)?;
        tracing::info!(socket = %path.display(), data_root = %settings.data_root.display(), "servind listening (VM mode)");
        let manager = manager.clone();
        let ports = ports.clone();
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
                let (manager, ports) = (manager.clone(), ports.clone());
                tokio::spawn(async move {
                    if let Err(e) = handle(manager, ports, stream).await {
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
    chunked: bool,
    close: bool,
    /// The client asks to switch protocols (`Upgrade:`).
    upgrade: bool,
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
                        chunked: header("transfer-encoding")
                            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
                        upgrade: header("upgrade").is_some(),
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
    let total = fill(client, buf, head).await?;
    buf.drain(..total);
    Ok(())
}

/// Reads until `buf` holds the whole request (head and a body of known
/// length); returns its length.
async fn fill(client: &mut UnixStream, buf: &mut Vec<u8>, head: &Head) -> anyhow::Result<usize> {
    let total = head.len + head.content_length;
    while buf.len() < total {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed inside a request body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(total)
}

async fn handle(
    manager: Arc<VmManager>,
    ports: Arc<Ports>,
    mut client: UnixStream,
) -> anyhow::Result<()> {
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
        if hijacks(&head) {
            // Attach and exec streams go through init's relay, which
            // carries the client's half-close (the end of its stdin).
            let opened = match manager.ensure_running().await {
                Ok(()) => crate::vm_relay::open(&manager, &RelayTarget::Engine).await,
                Err(e) => Err(e),
            };
            let guest = match opened {
                Ok(g) => g,
                Err(e) => return refuse(&mut client, &mut buf, &head, e).await,
            };
            crate::vm_relay::splice(&mut client, &buf, guest).await;
            return Ok(());
        }
        let guest = match manager.connect_engine().await {
            Ok(s) => s,
            Err(e) => return refuse(&mut client, &mut buf, &head, e).await,
        };
        guest.set_nonblocking(true)?;
        let mut guest = UnixStream::from_std(guest)?;
        if let Some(mut id) = changes_ports(&head) {
            if head.method == "DELETE" {
                // Afterwards the name no longer leads to the ID.
                id = ports.full_id(&id).await.unwrap_or(id);
            }
            // One request and its answer; the container's ports open (or
            // close) on the host before the client hears of the change.
            let total = fill(&mut client, &mut buf, &head).await?;
            guest.write_all(&buf[..total]).await?;
            let (status, mut answer) = read_response(&mut guest).await?;
            if (200..300).contains(&status) {
                let failed = ports.sync(&id).await;
                let starts = head.path.ends_with("/start") || head.path.ends_with("/restart");
                if !failed.is_empty() && starts {
                    // A host process holds a port the container publishes:
                    // the start fails as natively, and the container stops.
                    let path = format!("/containers/{id}/stop?t=0");
                    let _ = crate::vm_ports::post(&manager, &path).await;
                    ports.sync(&id).await;
                    let message =
                        format!("Ports are not available on the host: {}", failed.join("; "));
                    let body = json!({ "message": message }).to_string();
                    answer = response(500, "application/json", body.as_bytes());
                }
            }
            client.write_all(&answer).await?;
            buf.drain(..total);
            if head.close {
                return Ok(());
            }
            continue;
        }
        if !head.upgrade {
            // One request per guest connection: the guest closes it after
            // its answer, so the client sends its next request on a new
            // connection, which this bridge sees (and may handle) again.
            close_after(&mut buf, head.len);
        }
        guest.write_all(&buf).await?;
        splice(&mut client, &mut guest).await;
        return Ok(());
    }
}

/// The guest cannot be reached: a 500 naming why.
async fn refuse(
    client: &mut UnixStream,
    buf: &mut Vec<u8>,
    head: &Head,
    e: anyhow::Error,
) -> anyhow::Result<()> {
    // Read the request's body first: a client still writing it to a closed
    // connection sees a broken pipe, not our error.
    let _ = consume(client, buf, head).await;
    let body = json!({ "message": format!("{e:#}") });
    client
        .write_all(&response(
            500,
            "application/json",
            body.to_string().as_bytes(),
        ))
        .await?;
    Ok(())
}

/// Rewrites the request head at the front of `buf` (`head_len` bytes) to
/// end with `Connection: close` instead of any connection header it had.
fn close_after(buf: &mut Vec<u8>, head_len: usize) {
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut out = String::with_capacity(head.len() + 19);
    for line in head.split_inclusive("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim();
        if line == "\r\n" {
            out.push_str("Connection: close\r\n\r\n");
        } else if !name.eq_ignore_ascii_case("connection")
            && !name.eq_ignore_ascii_case("keep-alive")
        {
            out.push_str(line);
        }
    }
    buf.splice(..head_len, out.into_bytes());
}

/// Whether a request becomes a raw stream both ways (Docker's hijacked
/// attach and exec start).
fn hijacks(head: &Head) -> bool {
    if head.method != "POST" {
        return false;
    }
    let parts: Vec<&str> = head.path.trim_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["containers", _, "attach"] | ["exec", _, "start"]
    )
}

/// The container whose published ports a request may open or close (a
/// start, restart, stop, kill or removal; bodies of known length only).
fn changes_ports(head: &Head) -> Option<String> {
    if head.chunked {
        return None;
    }
    let parts: Vec<&str> = head.path.trim_matches('/').split('/').collect();
    let id = match (head.method.as_str(), parts.as_slice()) {
        ("POST", ["containers", id, "start" | "restart" | "stop" | "kill"]) => id,
        ("DELETE", ["containers", id]) => id,
        _ => return None,
    };
    Some(urlencoding::decode(id).ok()?.into_owned())
}

/// Reads one whole response (head and body) from the guest engine:
/// its status and bytes.
async fn read_response(guest: &mut UnixStream) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&data)? {
            let status = resp.code.unwrap_or(500);
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            };
            let length = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
            let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
            let done = |d: &[u8]| match length {
                Some(n) => d.len() >= len + n,
                None if chunked => d[len..].ends_with(b"0\r\n\r\n"),
                None => status == 204 || status == 304,
            };
            while !done(&data) {
                let n = guest.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, data));
        }
        let n = guest.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("the guest engine closed the connection without an answer");
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

/// Copies both ways until the guest ends the connection. The client's
/// half-close is not passed on: vhost-device-vsock turns the end of its
/// Unix side into a reset of the guest's connection, which would cut an
/// answer short. (Streams that need it, attach and exec, go through the
/// relay instead.)
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
        ("GET", "shell-exit") => {
            let pid = query_value(&head.query, "pid")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            match shell_exit(manager, pid).await {
                Ok(code) => {
                    let body = json!({ "ExitCode": code }).to_string();
                    client
                        .write_all(&response(200, "application/json", body.as_bytes()))
                        .await?
                }
                Err(e) => {
                    client
                        .write_all(&error_json(404, &format!("{e:#}")))
                        .await?
                }
            }
            Ok(true)
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

/// The exit status of the guest shell `pid` (init's SHELLEXIT).
async fn shell_exit(manager: &Arc<VmManager>, pid: i32) -> anyhow::Result<i32> {
    let (_, code) = control_request(manager, &ControlRequest::ShellExit { pid }).await?;
    Ok(code.trim().parse()?)
}

/// Sends one request to init's control port: the stream (for what
/// follows, as a shell's terminal) and the reply's `OK` payload.
async fn control_request(
    manager: &Arc<VmManager>,
    request: &ControlRequest,
) -> anyhow::Result<(UnixStream, String)> {
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
        Ok(ControlResponse::Ok(payload)) => Ok((s, payload)),
        Ok(ControlResponse::Err(e)) => anyhow::bail!("{e}"),
        Err(e) => anyhow::bail!("{e}"),
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
        control_request(manager, &request)
            .await
            .context("The guest refused the shell")
    }
    .await;
    let (mut guest, pid) = match opened {
        Ok(s) => s,
        Err(e) => {
            client
                .write_all(&error_json(500, &format!("{e:#}")))
                .await?;
            return Ok(());
        }
    };
    let mut s = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n".to_string();
    // Where `GET /servin/vm/shell-exit?pid=` finds its exit status.
    s.push_str(&format!("Servin-Shell-Pid: {}\r\n", pid.trim()));
    common_headers(&mut s);
    s.push_str("\r\n");
    client.write_all(s.as_bytes()).await?;
    guest
        .write_all(buf)
        .await
        .context("Cannot write to the guest shell")?;
    buf.clear();
    // The end of the user's input is not passed on (`splice`): the shell's
    // terminal ends when the shell does (`exit`), so output after the last
    // line of a piped script still arrives.
    splice(client, &mut guest).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str) -> Head {
        Head {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            len: 0,
            content_length: 0,
            chunked: false,
            close: false,
            upgrade: false,
        }
    }

    #[test]
    fn forwarded_requests_ask_the_guest_to_close() {
        let req = b"POST /v1.45/containers/create HTTP/1.1\r\nHost: api\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}";
        let mut buf = req.to_vec();
        close_after(&mut buf, req.len() - 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "POST /v1.45/containers/create HTTP/1.1\r\nHost: api\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }

    #[test]
    fn streams_and_port_changes_are_recognised() {
        assert!(hijacks(&head("POST", "/containers/abc/attach")));
        assert!(hijacks(&head("POST", "/exec/abc/start")));
        assert!(!hijacks(&head("POST", "/containers/abc/start")));
        assert!(!hijacks(&head("GET", "/containers/abc/attach")));
        assert_eq!(
            changes_ports(&head("POST", "/containers/my%20web/start")),
            Some("my web".to_string())
        );
        assert_eq!(
            changes_ports(&head("DELETE", "/containers/web")),
            Some("web".to_string())
        );
        assert_eq!(changes_ports(&head("POST", "/containers/web/wait")), None);
        assert_eq!(changes_ports(&head("POST", "/containers/create")), None);
        let mut chunked = head("POST", "/containers/web/start");
        chunked.chunked = true;
        assert_eq!(changes_ports(&chunked), None);
    }

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
