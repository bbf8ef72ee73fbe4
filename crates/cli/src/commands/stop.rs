//! `servin stop`.

use anyhow::Result;

use super::{for_each_container, Ctx};
use crate::containers;
use crate::opts::units::parse_int;
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

/// `-s` and `-t` as query parameters (`signal`, `t`), shared by `restart`.
pub fn stop_query(
    usage: &Usage,
    signal: Option<&str>,
    timeout: Option<&str>,
    time: Option<&str>,
) -> Result<Vec<(&'static str, String)>> {
    if timeout.is_some() && time.is_some() {
        anyhow::bail!("conflicting options: cannot specify both --timeout and --time");
    }
    let mut query = Vec::new();
    let (flag, value) = match (timeout, time) {
        (Some(v), _) => ("-t, --timeout", Some(v)),
        (None, v) => ("--time", v),
    };
    if let Some(v) = value {
        let t = parse_int(v, 64).map_err(|e| {
            usage.flag_error(&format!("invalid argument {v:?} for \"{flag}\" flag: {e}"))
        })?;
        query.push(("t", t.to_string()));
    }
    if let Some(s) = signal.filter(|s| !s.is_empty()) {
        query.push(("signal", s.to_string()));
    }
    query.sort_by_key(|(k, _)| *k);
    Ok(query)
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
    for_each_container(&args.args, |name| {
        let query = query.clone();
        async move { containers::post(client, &name, "stop", &query).await }
    })
    .await
}
