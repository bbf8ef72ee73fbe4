//! `servin volume prune`.

use anyhow::Result;
use serde::Deserialize;

use super::super::{confirm, parse_filters, post_prune, print_prune_report, Ctx};
use crate::usage::{Cancelled, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long, value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    #[arg(hide = true)]
    args: Vec<String>,
}

const UNUSED_WARNING: &str = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?";
const ALL_WARNING: &str = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?";

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Report {
    volumes_deleted: Option<Vec<String>>,
    space_reclaimed: u64,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let mut filters = parse_filters(usage, "--filter", &args.filter)?;
    let client = ctx.client().await?;
    // Before API 1.42 every unused volume is pruned, named or not.
    let version = client.api_version();
    let modern = client.api_at_least(42);
    if args.all && !modern {
        anyhow::bail!(
            "\"--all\" requires API version 1.42, but the Servin daemon API version is {version}"
        );
    }
    let mut warning = if modern { UNUSED_WARNING } else { ALL_WARNING };
    if modern && args.all {
        if filters.contains_key("all") {
            anyhow::bail!("conflicting options: cannot specify both --all and --filter all=1");
        }
        filters.insert("all".into(), vec!["true".into()]);
        warning = ALL_WARNING;
    }
    if !args.force && !confirm(warning)? {
        return Err(Cancelled.into());
    }
    let report: Report = post_prune(client, "/volumes/prune", &filters).await?;
    let deleted = report.volumes_deleted.unwrap_or_default();
    print_prune_report("Volumes", &deleted, report.space_reclaimed);
    Ok(())
}
