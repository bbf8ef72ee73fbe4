//! `servin attach`: the streams of a running container.

use anyhow::Result;

use super::Ctx;
use crate::containers::{self, Inspect};
use crate::stream::{self, Ended, Streams};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

fn check_state(c: &Inspect) -> Result<()> {
    if !c.state.running {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    if c.state.paused {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if c.state.restarting {
        anyhow::bail!("You cannot attach to a restarting container, wait until it is running");
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.exact_args(&args.args, 1)?;
    let name = &args.args[0];
    let client = ctx.client().await?;
    // Waiting starts first so an exit during attach is not missed.
    let status = containers::wait(client, name, "").await;
    let c = containers::inspect(client, name).await?;
    check_state(&c)?;
    let status = status?;
    if c.config.tty && !args.no_stdin && !crate::tty::stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    let streams = Streams {
        tty: c.config.tty,
        stdin: !args.no_stdin && c.config.open_stdin,
        stdout: true,
        stderr: true,
        detach_keys: args.detach_keys,
    };
    if args.sig_proxy && !c.config.tty {
        crate::signals::forward(client, &c.id);
    }
    let conn = containers::attach(client, name, &streams).await?;
    check_state(&containers::inspect(client, name).await?)?;
    if c.config.tty && crate::tty::stdout_is_terminal() {
        crate::tty::nudge_size(client, &containers::path(&c.id)).await;
        crate::tty::monitor_size(client, containers::path(&c.id));
    }
    if stream::stream(conn, &streams).await? == Ended::Detached {
        // Docker reports the detach as its escape error.
        anyhow::bail!("read escape sequence");
    }
    match status.await.unwrap_or(125) {
        0 => Ok(()),
        code => Err(StatusError::fail(code, "")),
    }
}
