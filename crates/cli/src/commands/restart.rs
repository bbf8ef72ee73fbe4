//! `servin restart`.

use anyhow::Result;

use super::{join_errors, stop::stop_query, Ctx};
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short, long, value_name = "int", allow_hyphen_values = true)]
    timeout: Option<String>,
    /// Seconds to wait before killing the container (deprecated: use --timeout)
    #[arg(long, value_name = "int", hide = true, allow_hyphen_values = true)]
    time: Option<String>,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let query = stop_query(
        usage,
        args.signal.as_deref(),
        args.timeout.as_deref(),
        args.time.as_deref(),
    )?;
    let client = ctx.client().await?;
    // The docker client sends no signal to daemons before API 1.42.
    let query: Vec<_> = query
        .into_iter()
        .filter(|(k, _)| *k != "signal" || client.api_at_least(42))
        .collect();
    // One after the other, as docker restarts them.
    let mut errors = Vec::new();
    for name in &args.args {
        match containers::post(client, name, "restart", &query).await {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    join_errors(errors)
}
