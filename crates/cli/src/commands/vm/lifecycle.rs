//! `servin vm start|stop|restart|status`.

use std::io::Write as _;

use anyhow::Result;
use http_body_util::BodyExt as _;
use hyper::Method;
use serde::Deserialize;
use servin_vm::size::human;
use tokio::io::AsyncBufReadExt as _;

use super::{request, request_host};
use crate::client::body_reader;
use crate::commands::Ctx;
use crate::connect::Host;

/// Starts (or restarts) the VM, showing each boot step on stderr.
pub async fn start(ctx: &Ctx, route: &str) -> Result<()> {
    start_host(&ctx.host, route).await
}

/// Before a command's first API request: when the daemon is a VM bridge
/// whose VM is not running, starts it here so the boot steps show on stderr
/// (the request would otherwise wait in silence). Does nothing for a
/// native daemon; a failed start is left for the command's own request to
/// report.
pub async fn show_boot(host: &Host) {
    let Ok(resp) = request_host(host, Method::GET, "status").await else {
        return;
    };
    let Ok(body) = resp.into_body().collect().await else {
        return;
    };
    let state = serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_string));
    if state.is_some_and(|s| s != "running") {
        let _ = start_host(host, "start").await;
    }
}

async fn start_host(host: &Host, route: &str) -> Result<()> {
    let resp = request_host(host, Method::POST, route).await?;
    let mut lines = tokio::io::BufReader::new(body_reader(resp.into_body())).lines();
    while let Some(line) = lines.next_line().await? {
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            anyhow::bail!("{e}");
        }
        match v.get("status").and_then(|s| s.as_str()) {
            Some("running") => {
                eprintln!("The VM is running.");
                return Ok(());
            }
            Some(step) => {
                eprintln!("VM: {step}…");
                let _ = std::io::stderr().flush();
            }
            None => {}
        }
    }
    anyhow::bail!("The daemon ended the start without saying whether the VM runs")
}

pub async fn stop(ctx: &Ctx) -> Result<()> {
    request(ctx, Method::POST, "stop").await?;
    eprintln!("The VM is stopped.");
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the status as JSON
    #[arg(long, value_name = "json")]
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Report {
    state: String,
    detail: Option<String>,
    provider: String,
    accelerator: String,
    accelerator_note: Option<String>,
    cpus: u32,
    memory: u64,
    disk_size: u64,
    disk_used: Option<u64>,
    disk_host: Option<u64>,
    shares: Vec<String>,
    guest_version: Option<String>,
    image_version: Option<String>,
    booted_at: Option<String>,
    host_memory: Option<u64>,
    pid: Option<u32>,
}

pub async fn status(ctx: &Ctx, args: StatusArgs) -> Result<()> {
    let resp = request(ctx, Method::GET, "status").await?;
    let body = resp.into_body().collect().await?.to_bytes();
    match args.format.as_deref() {
        Some("json") => {
            println!("{}", String::from_utf8_lossy(&body).trim());
            return Ok(());
        }
        Some(other) => anyhow::bail!("Unsupported format {other:?}: only json is"),
        None => {}
    }
    let r: Report = serde_json::from_slice(&body)?;
    let state = match &r.detail {
        Some(d) => format!("{} ({d})", r.state),
        None => r.state.clone(),
    };
    let accel = match &r.accelerator_note {
        Some(n) => format!("{} ({n})", r.accelerator),
        None => r.accelerator.clone(),
    };
    let mut disk = human(r.disk_size);
    match (r.disk_used, r.disk_host) {
        (Some(u), Some(h)) => disk.push_str(&format!(
            ", {} used in the guest, {} on the host",
            human(u),
            human(h)
        )),
        (None, Some(h)) => disk.push_str(&format!(", {} on the host", human(h))),
        (Some(u), None) => disk.push_str(&format!(", {} used", human(u))),
        (None, None) => {}
    }
    let dash = || "-".to_string();
    let engine = match (&r.guest_version, &r.image_version) {
        (Some(g), Some(i)) => format!("{g} (image {i})"),
        (None, Some(i)) => format!("- (image {i})"),
        (g, None) => g.clone().unwrap_or_else(dash),
    };
    let host_mem = match (r.host_memory, r.pid) {
        (Some(m), Some(pid)) => format!("{} (pid {pid})", human(m)),
        _ => dash(),
    };
    let shares = if r.shares.is_empty() {
        "none".to_string()
    } else {
        r.shares.join(", ")
    };
    for (k, v) in [
        ("State", state),
        ("Provider", r.provider),
        ("Accelerator", accel),
        ("CPUs", r.cpus.to_string()),
        ("Memory", human(r.memory)),
        ("Disk", disk),
        ("Shared folders", shares),
        ("Guest engine", engine),
        ("Booted", r.booted_at.unwrap_or_else(dash)),
        ("Host memory", host_mem),
    ] {
        println!("{:<16}{v}", format!("{k}:"));
    }
    Ok(())
}
