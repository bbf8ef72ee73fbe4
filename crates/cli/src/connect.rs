//! Which daemon to talk to, and starting `servind` when the default one is
//! not running.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use http_body_util::BodyExt as _;
use hyper::Request;

use crate::client::{self, api_error, Client, ConnectError};

pub const DEFAULT_HOST: &str = "unix:///run/servin/servin.sock";
const HOST_ENV: &str = "SERVIN_HOST";
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Pulls and loads can take long before the daemon answers; docker has no
/// client-side timeout either.
const REQUEST_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// A daemon address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub url: String,
    pub socket: PathBuf,
    /// Nobody chose it: we may start `servind` for it.
    pub is_default: bool,
}

impl Host {
    /// `-H` wins over `SERVIN_HOST`, which wins over the default.
    pub fn resolve(flag: Option<&str>) -> Result<Host> {
        let env = std::env::var(HOST_ENV).ok().filter(|v| !v.is_empty());
        match flag.map(str::to_string).or(env) {
            Some(url) => Host::parse(&url, false),
            None => Host::parse(DEFAULT_HOST, true),
        }
    }

    fn parse(url: &str, is_default: bool) -> Result<Host> {
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("invalid host {url:?}: empty socket path");
            }
            return Ok(Host {
                url: url.to_string(),
                socket: PathBuf::from(path),
                is_default,
            });
        }
        if url.starts_with("tcp://") {
            bail!("tcp:// hosts are not supported yet: {url}");
        }
        bail!("invalid host {url:?}: only unix:// hosts are supported")
    }
}

/// Connects and negotiates the API version, starting `servind` first when
/// nothing answers on the default socket.
pub async fn connect(host: &Host) -> Result<Client> {
    if !ping(host).await {
        if !host.is_default {
            return Err(ConnectError {
                host: host.url.clone(),
            }
            .into());
        }
        start_daemon(host).await?;
    }
    crate::commands::vm::lifecycle::show_boot(host).await;
    let docker = bollard::Docker::connect_with_unix(
        &host.url,
        REQUEST_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| api_error(&host.url, e))?
    .negotiate_version()
    .await
    .map_err(|e| api_error(&host.url, e))?;
    let prefix = format!("/v{}", docker.client_version());
    let docker = docker.with_request_modifier(move |req| versioned(req, &prefix));
    Ok(Client::new(docker, host.url.clone(), host.socket.clone()))
}

/// bollard sends unversioned paths (`/images/json`); the docker CLI puts the
/// negotiated version first (`/v1.41/images/json`), and so do we.
fn versioned<B>(mut req: Request<B>, prefix: &str) -> Request<B> {
    let mut parts = req.uri().clone().into_parts();
    let Some(pq) = parts.path_and_query.as_ref() else {
        return req;
    };
    if pq.path().starts_with("/v1.") {
        return req;
    }
    if let Ok(new) = format!("{prefix}{pq}").parse() {
        parts.path_and_query = Some(new);
        if let Ok(uri) = hyper::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Whether anything answers `GET /_ping` over HTTP on the socket (an error
/// status still means a daemon is there; its errors are reported later).
async fn ping(host: &Host) -> bool {
    let Ok(req) = Request::get("/_ping")
        .header("Host", "docker")
        .body(client::empty_body())
    else {
        return false;
    };
    let attempt = async {
        let resp = client::send(&host.socket, &host.url, req).await.ok()?;
        resp.into_body().collect().await.ok()?;
        Some(true)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(true))
    )
}

async fn start_daemon(host: &Host) -> Result<()> {
    let Some(exe) = find_servind() else {
        bail!(
            "Cannot connect to the servin daemon at {}, and servind was not found next to servin or on PATH to start it",
            host.url
        );
    };
    let (log_path, log) = open_log()?;
    eprintln!(
        "servin: starting servind in the background (log: {})",
        log_path.display()
    );
    // What this start writes to the shared log begins here.
    let log_start = log.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut cmd = Command::new(&exe);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid(2), which is async-signal-safe and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("Failed to start {}: {e}", exe.display()))?;
    let started = Instant::now();
    let mut exited = None;
    while started.elapsed() < START_TIMEOUT {
        if exited.is_none() {
            exited = child.try_wait()?;
        }
        // Two commands racing to start the daemon: the second servind
        // stops at the first one's data-root lock, and the first serves.
        let lost_race = || {
            std::fs::read(&log_path).is_ok_and(|log| {
                let ours = log.get(log_start..).unwrap_or_default();
                String::from_utf8_lossy(ours).contains("is using the data root")
            })
        };
        if let Some(status) = exited.filter(|_| !lost_race()) {
            bail!(
                "servind exited ({status}) before answering on {}; see {}",
                host.url,
                log_path.display()
            );
        }
        if ping(host).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "servind did not answer on {} within {} s; see {}",
        host.url,
        START_TIMEOUT.as_secs(),
        log_path.display()
    )
}

/// `servind` next to this executable, else on `PATH`.
fn find_servind() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("servind")));
    if let Some(path) = beside.filter(|p| is_executable(p)) {
        return Some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("servind"))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `/var/log/servind.log`, else in `$XDG_RUNTIME_DIR`, else in the temp dir.
fn open_log() -> Result<(PathBuf, File)> {
    let mut candidates = vec![PathBuf::from("/var/log/servind.log")];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(dir).join("servind.log"));
    }
    candidates.push(std::env::temp_dir().join("servind.log"));
    let mut last_err = None;
    for path in candidates {
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "Failed to open a log file for servind: {}",
        last_err.map_or_else(|| "no candidate".to_string(), |e| e.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_the_api_version() {
        let req = Request::get("unix://2f746d70/images/json?all=false")
            .body(())
            .unwrap();
        assert_eq!(
            versioned(req, "/v1.41").uri().to_string(),
            "unix://2f746d70/v1.41/images/json?all=false"
        );
        let req = Request::get("unix://2f746d70/v1.45/info").body(()).unwrap();
        assert_eq!(
            versioned(req, "/v1.41").uri().to_string(),
            "unix://2f746d70/v1.45/info"
        );
    }

    #[test]
    fn parses_hosts() {
        let h = Host::parse("unix:///tmp/d.sock", false).unwrap();
        assert_eq!(h.socket, PathBuf::from("/tmp/d.sock"));
        assert!(!h.is_default);
        assert_eq!(
            Host::parse("tcp://1.2.3.4:2375", false)
                .unwrap_err()
                .to_string(),
            "tcp:// hosts are not supported yet: tcp://1.2.3.4:2375"
        );
        assert!(Host::parse("/tmp/x", false).is_err());
        assert!(Host::parse(DEFAULT_HOST, true).unwrap().is_default);
    }
}
