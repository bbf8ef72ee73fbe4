//! `servin vm shell`: a login shell in the VM (init's control port SHELL,
//! through the daemon as an HTTP upgrade).

use anyhow::Result;
use bytes::Bytes;

use crate::client::Client;
use crate::commands::Ctx;
use crate::stream::{self, Streams};
use crate::tty;
use crate::usage::StatusError;

pub async fn run(ctx: &Ctx) -> Result<()> {
    // No version negotiation: it would start the VM through the guest's
    // /version; the bridge takes any version prefix.
    let docker =
        bollard::Docker::connect_with_unix(&ctx.host.url, 3600, bollard::API_DEFAULT_VERSION)
            .map_err(|e| crate::client::api_error(&ctx.host.url, e))?;
    let client = Client::new(docker, ctx.host.url.clone(), ctx.host.socket.clone());
    let [rows, cols] = match tty::size() {
        [0, 0] => [24, 80],
        s => s,
    };
    let conn = client
        .upgrade(
            "/servin/vm/shell",
            &[("rows", rows.to_string()), ("cols", cols.to_string())],
            "text/plain",
            Bytes::new(),
        )
        .await?;
    let streams = Streams {
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
        detach_keys: None,
    };
    let pid = conn
        .headers
        .get("Servin-Shell-Pid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    stream::stream(conn, &streams).await?;
    // The shell's exit status becomes ours, as `docker exec` does.
    let Some(pid) = pid else { return Ok(()) };
    let raw = client
        .get_raw("/servin/vm/shell-exit", &[("pid", pid)])
        .await?;
    let exit: ShellExit = crate::client::decode(&raw)?;
    match exit.code {
        0 => Ok(()),
        code => Err(StatusError::fail(code, "")),
    }
}

#[derive(serde::Deserialize)]
struct ShellExit {
    #[serde(rename = "ExitCode")]
    code: i32,
}
