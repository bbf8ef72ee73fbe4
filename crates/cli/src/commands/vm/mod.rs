//! `servin vm …`: VM mode's switch, settings and lifecycle.
//!
//! `enable`, `disable` and `config` edit `DATA_ROOT/vm/config.toml` (they
//! work whatever mode the daemon runs in, and apply at its next start);
//! the others ask the daemon's VM bridge on its `/servin/vm/…` routes.

pub mod config;
pub mod lifecycle;
pub mod logs;
pub mod shell;

use std::path::PathBuf;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Request};

use super::Ctx;
use crate::client::{self, empty_body};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The daemon's data root, for enable, disable and config
    #[arg(
        long,
        env = "SERVIN_DATA_ROOT",
        default_value = "/var/lib/servin",
        global = true
    )]
    pub data_root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run containers in the VM from the daemon's next start
    Enable,
    /// Run containers natively from the daemon's next start
    Disable,
    /// Start the VM (containers commands also start it)
    Start,
    /// Power the VM off
    Stop,
    /// Power the VM off and start it again (applies `vm config` changes)
    Restart,
    /// Show the VM's state, resources and versions
    Status(lifecycle::StatusArgs),
    /// Show the VM settings, or change them with KEY=VALUE…
    Config(config::Args),
    /// Open a shell in the VM
    Shell,
    /// Show the VM's console
    Logs(logs::Args),
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let root = args.data_root;
    match args.command {
        Command::Enable => config::set_enabled(&root, true),
        Command::Disable => config::set_enabled(&root, false),
        Command::Config(a) => config::run(&root, a),
        Command::Start => lifecycle::start(ctx, "start").await,
        Command::Restart => lifecycle::start(ctx, "restart").await,
        Command::Stop => lifecycle::stop(ctx).await,
        Command::Status(a) => lifecycle::status(ctx, a).await,
        Command::Shell => shell::run(ctx).await,
        Command::Logs(a) => logs::run(ctx, a).await,
    }
}

/// Sends `method /servin/vm/<route>` to the daemon and returns the
/// response when it succeeded; a daemon without the route runs natively.
pub async fn request(
    ctx: &Ctx,
    method: Method,
    route: &str,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    request_host(&ctx.host, method, route).await
}

/// [`request`] for a daemon address.
pub async fn request_host(
    host: &crate::connect::Host,
    method: Method,
    route: &str,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let req = Request::builder()
        .method(method)
        .uri(format!("/servin/vm/{route}"))
        .header("Host", "docker")
        .header("User-Agent", concat!("servin/", env!("CARGO_PKG_VERSION")))
        .body(empty_body())?;
    let resp = client::send(&host.socket, &host.url, req).await?;
    let status = resp.status().as_u16();
    if status < 400 {
        return Ok(resp);
    }
    if status == 404 && !route.is_empty() && !is_bridge(&resp) {
        anyhow::bail!(
            "The daemon at {} runs containers natively, not in a VM: turn VM mode on with `servin vm enable` and restart servind (or start it with --mode vm)",
            host.url
        );
    }
    let body: Bytes = resp.into_body().collect().await?.to_bytes();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    Err(anyhow::anyhow!("Error response from daemon: {message}"))
}

fn is_bridge(resp: &hyper::Response<hyper::body::Incoming>) -> bool {
    resp.headers()
        .get("Server")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("vm bridge"))
}
