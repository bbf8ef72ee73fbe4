//! `servin run` / `servin container run`: create, attach, wait, start, and
//! exit with the container's status, as docker's `runContainer`.

use anyhow::Result;

use super::create::{self, CreateFlags};
use super::Ctx;
use crate::containers;
use crate::opts::ContainerFlags;
use crate::stream::{self, Ended, Streams};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub create: CreateFlags,
    #[command(flatten)]
    pub flags: ContainerFlags,
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    let mut request = create::prepare(usage, &args.create, &args.flags, &args.args)?;
    let config = &mut request.config;
    if args.detach {
        if !args.flags.attach.is_empty() {
            anyhow::bail!("conflicting options: cannot specify both --attach and --detach");
        }
        config.attach_stdin = false;
        config.attach_stdout = false;
        config.attach_stderr = false;
        config.stdin_once = false;
    } else if config.tty && config.attach_stdin && !crate::tty::stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    let streams = Streams {
        tty: config.tty,
        stdin: config.attach_stdin,
        stdout: config.attach_stdout,
        stderr: config.attach_stderr,
        detach_keys: args.detach_keys.clone(),
    };
    let auto_remove = request.host_config.auto_remove;
    let client = ctx.client().await.map_err(|e| to_status_error(usage, &e))?;
    create::check_api(client, &args.flags)?;
    let id = create::create(client, request, &args.create)
        .await
        .map_err(|e| to_status_error(usage, &e))?;
    if args.sig_proxy {
        crate::signals::forward(client, &id);
    }
    let attached = streams.stdin || streams.stdout || streams.stderr;
    let conn = if attached {
        Some(containers::attach(client, &id, &streams).await?)
    } else {
        None
    };
    let condition = if auto_remove { "removed" } else { "next-exit" };
    let status = containers::wait(client, &id, condition).await?;
    if let Err(e) = containers::post(client, &id, "start", &[]).await {
        drop(conn);
        if auto_remove {
            let _ = status.await;
        }
        return Err(to_status_error(usage, &e));
    }
    let Some(conn) = conn else {
        println!("{id}");
        return Ok(());
    };
    if streams.tty && crate::tty::stdout_is_terminal() {
        crate::tty::monitor_size(client, containers::path(&id));
    }
    let streaming = stream::stream(conn, &streams);
    tokio::pin!(streaming, status);
    let code = tokio::select! {
        ended = &mut streaming => {
            if ended? == Ended::Detached {
                return Ok(());
            }
            (&mut status).await.unwrap_or(125)
        }
        code = &mut status => {
            let code = code.unwrap_or(125);
            // The output may still be in flight: drain it unless nothing
            // but stdin was attached.
            if streams.stdout || streams.stderr {
                let _ = streaming.await;
            }
            code
        }
    };
    if code != 0 {
        return Err(StatusError::fail(code, ""));
    }
    Ok(())
}

/// Docker's `toStatusError`: 127 when the command was not found, 126 when
/// it could not be invoked, else 125; worded with `--help`.
pub fn to_status_error(usage: &Usage, err: &anyhow::Error) -> anyhow::Error {
    if let Some(e) = err.downcast_ref::<StatusError>() {
        return StatusError::fail(e.code, e.message.clone());
    }
    let message = format!("{err:#}");
    let text = usage.with_help(&message).to_string();
    StatusError::fail(status_for(&message), text)
}

fn status_for(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_statuses() {
        let e = anyhow::anyhow!("Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nonexist\": executable file not found in $PATH: unknown");
        let s = to_status_error(&crate::usage::RUN, &e);
        let s = s.downcast_ref::<StatusError>().unwrap();
        assert_eq!(s.code, 127);
        assert!(s
            .message
            .starts_with("servin: Error response from daemon: failed to create shim task"));
        assert!(s
            .message
            .ends_with("\n\nRun 'servin run --help' for more information"));
        assert_eq!(
            status_for("exec: \"/etc/passwd\": permission denied: unknown"),
            126
        );
        assert_eq!(
            status_for("Conflict. The container name \"/d1\" is already in use"),
            125
        );
    }
}
