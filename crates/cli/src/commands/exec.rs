//! `servin exec`: create an exec, start it attached (or detached), and exit
//! with its exit code.

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Method;
use serde::Deserialize;

use super::Ctx;
use crate::client::Client;
use crate::containers;
use crate::opts::body::{go_json, ExecConfig, ExecStart};
use crate::stream::{self, Ended, Streams};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    workdir: Option<String>,
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    args: Vec<String>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct ExecInspect {
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i64>,
}

/// Docker's `parseExec`: the exec create body.
fn exec_config(args: &Args) -> Result<ExecConfig> {
    let lookup = |k: &str| std::env::var(k).ok();
    for e in &args.env {
        if e.split('=').next().unwrap_or_default().is_empty() {
            anyhow::bail!(
                "invalid argument {e:?} for \"-e, --env\" flag: invalid environment variable: {e}"
            );
        }
    }
    let mut env =
        crate::opts::read_files(&args.env_file, Some(&lookup)).map_err(anyhow::Error::msg)?;
    env.extend(args.env.iter().map(|e| {
        if e.contains('=') {
            e.clone()
        } else {
            lookup(e).map_or_else(|| e.clone(), |v| format!("{e}={v}"))
        }
    }));
    Ok(ExecConfig {
        user: args.user.clone().unwrap_or_default(),
        privileged: args.privileged,
        tty: args.tty,
        console_size: None,
        attach_stdin: !args.detach && args.interactive,
        attach_stdout: !args.detach,
        attach_stderr: !args.detach,
        detach: args.detach,
        detach_keys: args.detach_keys.clone().unwrap_or_default(),
        env: if env.is_empty() { None } else { Some(env) },
        working_dir: args.workdir.clone().unwrap_or_default(),
        cmd: args.args[1..].to_vec(),
    })
}

fn json_body(json: String) -> crate::client::Body {
    Full::new(Bytes::from(json))
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.reject_flag(args.args.first())?;
    usage.min_args(&args.args, 2)?;
    let mut config = exec_config(&args).map_err(|e| {
        if e.to_string().starts_with("invalid argument") {
            usage.flag_error(&e.to_string())
        } else {
            e
        }
    })?;
    let name = &args.args[0];
    let client = ctx.client().await?;
    containers::inspect(client, name).await?;
    if !config.detach && config.tty && config.attach_stdin && !crate::tty::stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    // The docker client drops the size for daemons older than API 1.42.
    if config.tty && client.api_at_least(42) {
        config.console_size = Some(crate::tty::size());
    }
    let resp = client
        .request(
            Method::POST,
            &format!("{}/exec", containers::user_path(name)?),
            &[],
            &[("Content-Type", "application/json")],
            json_body(go_json(&config)),
        )
        .await?;
    let created: Created = crate::client::decode(&resp.into_body().collect().await?.to_bytes())?;
    if created.id.is_empty() {
        anyhow::bail!("exec ID empty");
    }
    let start = ExecStart {
        detach: config.detach,
        tty: config.tty,
        console_size: config.console_size,
    };
    let start_path = format!("/exec/{}/start", created.id);
    if config.detach {
        let resp = client
            .request(
                Method::POST,
                &start_path,
                &[],
                &[("Content-Type", "application/json")],
                json_body(go_json(&start)),
            )
            .await?;
        resp.into_body().collect().await?;
        return Ok(());
    }
    let streams = Streams {
        tty: config.tty,
        stdin: config.attach_stdin,
        stdout: config.attach_stdout,
        stderr: config.attach_stderr,
        detach_keys: args.detach_keys.clone(),
    };
    let conn = client
        .upgrade(
            &start_path,
            &[],
            "application/json",
            Bytes::from(go_json(&start)),
        )
        .await?;
    if config.tty && crate::tty::stdin_is_terminal() {
        crate::tty::monitor_size(client, format!("/exec/{}", created.id));
    }
    if stream::stream(conn, &streams).await? == Ended::Detached {
        anyhow::bail!("read escape sequence");
    }
    exit_status(client, &created.id).await
}

/// Docker's `getExecExitStatus`.
async fn exit_status(client: &Client, id: &str) -> Result<()> {
    let raw = client.get_raw(&format!("/exec/{id}/json"), &[]).await?;
    let inspect: ExecInspect = crate::client::decode(&raw)?;
    match inspect.exit_code.unwrap_or(0) {
        0 => Ok(()),
        code => Err(StatusError::fail(code as i32, "")),
    }
}
