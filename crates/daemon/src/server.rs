//! The HTTP server: unix (and, in a VM guest, vsock) listeners, API
//! version handling and the headers Docker clients expect on every response.

use std::path::Path;

use anyhow::Context;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use servin_api::{API_VERSION, MIN_API_VERSION};
use servin_engine::Engine;
use tower::ServiceExt;

use crate::settings::Settings;

/// The API version a request asked for (from its `/vX.Y` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('.')?;
        Some(Self(a.parse().ok()?, b.parse().ok()?))
    }
    pub fn current() -> Self {
        Self::parse(API_VERSION).expect("valid constant")
    }
    fn min() -> Self {
        Self::parse(MIN_API_VERSION).expect("valid constant")
    }
}

/// Strips `/vX.Y` from the path after checking X.Y, and records it.
/// Fails with the message for a 400 when the version is out of range.
fn route_version(mut req: Request) -> Result<Request, String> {
    let path = req.uri().path();
    let mut version = ApiVersion::current();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if let Some(v) = ApiVersion::parse(ver) {
            if v > ApiVersion::current() {
                return Err(format!(
                    "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                ));
            }
            if v < ApiVersion::min() {
                return Err(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ));
            }
            version = v;
            let new_path = tail.to_string();
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query =
                Some(pq.parse().map_err(|_| "invalid request path".to_string())?);
            *req.uri_mut() = axum::http::Uri::from_parts(parts)
                .map_err(|_| "invalid request path".to_string())?;
        }
    }
    req.extensions_mut().insert(version);
    Ok(req)
}

fn version_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

fn add_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Servin/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

pub fn app(engine: Engine) -> Router {
    crate::routes::router(engine)
}

/// Serves until SIGINT/SIGTERM, then removes the sockets.
pub async fn serve(engine: Engine, settings: &Settings) -> anyhow::Result<()> {
    let router = app(engine);
    let service = tower::service_fn(move |req: Request| {
        let router = router.clone();
        async move {
            let resp = match route_version(req) {
                Ok(req) => router.oneshot(req).await.unwrap_or_else(|e| match e {}),
                Err(message) => version_error(message),
            };
            Ok::<_, std::convert::Infallible>(add_headers(resp))
        }
    });

    let mut tasks = Vec::new();
    for path in &settings.sockets {
        let listener = bind(path)?;
        tracing::info!(socket = %path.display(), data_root = %settings.data_root.display(), "servind listening");
        let svc = service.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => serve_connection(stream, svc.clone()),
                    Err(e) => accept_failed(e).await,
                }
            }
        }));
    }
    #[cfg(target_os = "linux")]
    for &port in &settings.vsock_ports {
        let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port);
        let listener = tokio_vsock::VsockListener::bind(addr)
            .with_context(|| format!("Cannot listen on vsock port {port}"))?;
        tracing::info!(vsock_port = port, data_root = %settings.data_root.display(), "servind listening");
        let svc = service.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => serve_connection(stream, svc.clone()),
                    Err(e) => accept_failed(e).await,
                }
            }
        }));
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("servind shutting down");
    for t in &tasks {
        t.abort();
    }
    for path in &settings.sockets {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// Serves HTTP/1.1 (with upgrades) on one accepted connection.
fn serve_connection<S, T>(stream: S, svc: T)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    T::Future: Send,
{
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(stream);
        let hyper_svc =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let svc = svc.clone();
                async move { svc.oneshot(req.map(Body::new)).await }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, hyper_svc)
            .with_upgrades();
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

pub(crate) fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    }
    if path.exists() {
        // A socket nobody answers on is a leftover of a crash; a live one is another daemon.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("Another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("Cannot remove stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("Cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("Cannot set permissions on {}", path.display()))?;
    Ok(listener)
}
