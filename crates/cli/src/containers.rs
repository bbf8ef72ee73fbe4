//! Container requests that several commands share: inspect, attach, wait
//! and start, made as the docker CLI makes them.

use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::Method;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::client::{empty_body, escape_path, Client, Hijacked};
use crate::stream::Streams;

/// What commands need from `GET /containers/{id}/json`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Inspect {
    #[serde(rename = "Id")]
    pub id: String,
    pub name: String,
    pub config: InspectConfig,
    pub state: InspectState,
    pub host_config: InspectHostConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectConfig {
    pub tty: bool,
    pub open_stdin: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectState {
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectHostConfig {
    pub auto_remove: bool,
}

/// `/containers/NAME` with the name escaped for a URL path.
pub fn path(name: &str) -> String {
    format!("/containers/{}", escape_path(name))
}

/// The path for a name the user typed: trimmed, and refused when empty
/// (the docker client's `trimID`).
pub fn user_path(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        anyhow::bail!("invalid container name or ID: value is empty");
    }
    Ok(path(name))
}

pub async fn inspect_raw(client: &Client, name: &str) -> Result<Bytes> {
    client
        .get_raw(&format!("{}/json", user_path(name)?), &[])
        .await
}

pub async fn inspect(client: &Client, name: &str) -> Result<Inspect> {
    let raw = inspect_raw(client, name).await?;
    crate::client::decode(&raw)
}

/// `POST /containers/ID/ACTION?QUERY` with no body, answer discarded.
pub async fn post(
    client: &Client,
    name: &str,
    action: &str,
    query: &[(&str, String)],
) -> Result<()> {
    let resp = client
        .request(
            Method::POST,
            &format!("{}/{action}", user_path(name)?),
            query,
            &[],
            empty_body(),
        )
        .await?;
    resp.into_body().collect().await?;
    Ok(())
}

/// Attaches to the streams named in `streams` (query keys in Go's sorted
/// order, as docker sends them).
pub async fn attach(client: &Client, id: &str, streams: &Streams) -> Result<Hijacked> {
    let mut query = Vec::new();
    if let Some(keys) = streams.detach_keys.as_ref().filter(|k| !k.is_empty()) {
        query.push(("detachKeys", keys.clone()));
    }
    if streams.stderr {
        query.push(("stderr", "1".to_string()));
    }
    if streams.stdin {
        query.push(("stdin", "1".to_string()));
    }
    if streams.stdout {
        query.push(("stdout", "1".to_string()));
    }
    query.push(("stream", "1".to_string()));
    client
        .upgrade(
            &format!("{}/attach", path(id)),
            &query,
            "text/plain",
            Bytes::new(),
        )
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WaitResponse {
    status_code: i64,
    error: Option<WaitError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WaitError {
    message: String,
}

/// Sends `POST /containers/ID/wait?condition=…` and returns once the daemon
/// has answered with headers (so a following start cannot be missed); the
/// handle yields the exit status, 125 when waiting failed (docker's
/// `waitExitOrRemoved`).
pub async fn wait(client: &Client, id: &str, condition: &str) -> Result<JoinHandle<i32>> {
    let query: Vec<(&str, String)> = if condition.is_empty() {
        Vec::new()
    } else {
        vec![("condition", condition.to_string())]
    };
    let resp = client
        .request(
            Method::POST,
            &format!("{}/wait", path(id)),
            &query,
            &[],
            empty_body(),
        )
        .await?;
    Ok(tokio::spawn(async move {
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                eprintln!("error waiting for container: {e}");
                return 125;
            }
        };
        match crate::client::decode::<WaitResponse>(&body) {
            Ok(WaitResponse { error: Some(e), .. }) if !e.message.is_empty() => {
                eprintln!("Error waiting for container: {}", e.message);
                125
            }
            Ok(r) => r.status_code as i32,
            Err(_) => {
                eprintln!(
                    "error waiting for container: {}",
                    String::from_utf8_lossy(&body).trim()
                );
                125
            }
        }
    }))
}

/// Reads a wait answer for `wait`, which reports errors rather than exiting.
pub async fn wait_status(client: &Client, name: &str) -> Result<i64> {
    let resp = client
        .request(
            Method::POST,
            &format!("{}/wait", user_path(name)?),
            &[],
            &[],
            empty_body(),
        )
        .await?;
    let body = resp.into_body().collect().await?.to_bytes();
    let r: WaitResponse = crate::client::decode(&body)
        .map_err(|_| anyhow::anyhow!("{}", String::from_utf8_lossy(&body).trim()))?;
    if let Some(e) = r.error.filter(|e| !e.message.is_empty()) {
        anyhow::bail!(e.message);
    }
    Ok(r.status_code)
}
