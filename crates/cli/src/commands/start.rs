//! `servin start`: start containers, or start one attached (`-a`, `-i`).

use anyhow::Result;

use super::Ctx;
use crate::containers;
use crate::stream::{self, Ended, Streams};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    detach_keys: Option<String>,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let client = ctx.client().await?;
    if !(args.attach || args.interactive) {
        let mut failed = Vec::new();
        for name in &args.args {
            match containers::post(client, name, "start", &[]).await {
                Ok(()) => println!("{name}"),
                Err(e) => {
                    eprintln!("{e:#}");
                    failed.push(name.as_str());
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        return Err(StatusError::fail(
            1,
            format!("Error: failed to start containers: {}", failed.join(", ")),
        ));
    }
    if args.args.len() > 1 {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    }
    let c = containers::inspect(client, &args.args[0]).await?;
    if !c.config.tty {
        crate::signals::forward(client, &c.id);
    }
    let streams = Streams {
        tty: c.config.tty,
        stdin: args.interactive && c.config.open_stdin,
        stdout: true,
        stderr: true,
        detach_keys: args.detach_keys,
    };
    let conn = containers::attach(client, &c.id, &streams).await?;
    let condition = if c.host_config.auto_remove {
        "removed"
    } else {
        "next-exit"
    };
    let status = containers::wait(client, &c.id, condition).await?;
    if let Err(e) = containers::post(client, &c.id, "start", &[]).await {
        drop(conn);
        if c.host_config.auto_remove {
            let _ = status.await;
        }
        return Err(e);
    }
    if c.config.tty && crate::tty::stdout_is_terminal() {
        crate::tty::monitor_size(client, containers::path(&c.id));
    }
    if stream::stream(conn, &streams).await? == Ended::Detached {
        return Ok(());
    }
    match status.await.unwrap_or(125) {
        0 => Ok(()),
        code => Err(StatusError::fail(code, "")),
    }
}
