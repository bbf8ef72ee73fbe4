//! `servin container prune`.

use anyhow::Result;
use serde::Deserialize;

use super::{confirm, parse_filters, post_prune, print_prune_report, Ctx};
use crate::usage::{Cancelled, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long, value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    #[arg(hide = true)]
    args: Vec<String>,
}

const WARNING: &str =
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?";

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Report {
    containers_deleted: Option<Vec<String>>,
    space_reclaimed: u64,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let filters = parse_filters(usage, "--filter", &args.filter)?;
    if !args.force && !confirm(WARNING)? {
        return Err(Cancelled.into());
    }
    let client = ctx.client().await?;
    let report: Report = post_prune(client, "/containers/prune", &filters).await?;
    let deleted = report.containers_deleted.unwrap_or_default();
    print_prune_report("Containers", &deleted, report.space_reclaimed);
    Ok(())
}
