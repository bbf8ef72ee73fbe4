//! `servin logs`.

use anyhow::Result;
use hyper::Method;

use super::Ctx;
use crate::client::{body_reader, empty_body};
use crate::containers;
use crate::timestamp::get_timestamp;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(
        short = 'n',
        long,
        value_name = "string",
        default_value = "all",
        allow_hyphen_values = true
    )]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.exact_args(&args.args, 1)?;
    let client = ctx.client().await?;
    let c = containers::inspect(client, &args.args[0]).await?;
    let now = chrono::Local::now().fixed_offset();
    // Keys in Go's sorted `url.Values` order.
    let mut query = Vec::new();
    if args.details {
        query.push(("details", "1".to_string()));
    }
    if args.follow {
        query.push(("follow", "1".to_string()));
    }
    if let Some(s) = args.since.as_deref().filter(|s| !s.is_empty()) {
        let ts = get_timestamp(s, now)
            .map_err(|e| anyhow::anyhow!("invalid value for \"since\": {e}"))?;
        query.push(("since", ts));
    }
    query.push(("stderr", "1".to_string()));
    query.push(("stdout", "1".to_string()));
    query.push(("tail", args.tail.clone()));
    if args.timestamps {
        query.push(("timestamps", "1".to_string()));
    }
    if let Some(u) = args.until.as_deref().filter(|s| !s.is_empty()) {
        let ts = get_timestamp(u, now)
            .map_err(|e| anyhow::anyhow!("invalid value for \"until\": {e}"))?;
        query.push(("until", ts));
    }
    let resp = client
        .request(
            Method::GET,
            &format!("{}/logs", containers::path(&c.id)),
            &query,
            &[],
            empty_body(),
        )
        .await?;
    crate::stream::copy_logs(body_reader(resp.into_body()), c.config.tty).await
}
