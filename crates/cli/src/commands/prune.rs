//! `servin image prune`.

use anyhow::Result;
use bollard::query_parameters::PruneImagesOptions;

use super::{confirm, parse_filters, Ctx};
use crate::format::human_size;
use crate::usage::{Cancelled, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
    #[arg(hide = true)]
    args: Vec<String>,
}

const DANGLING_WARNING: &str =
    "WARNING! This will remove all dangling images.\nAre you sure you want to continue?";
const ALL_WARNING: &str = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?";

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let mut filters = parse_filters(usage, "--filter", &args.filter)?;
    filters.insert("dangling".into(), vec![(!args.all).to_string()]);
    if !args.force
        && !confirm(if args.all {
            ALL_WARNING
        } else {
            DANGLING_WARNING
        })?
    {
        return Err(Cancelled.into());
    }
    let client = ctx.client().await?;
    let report = client
        .docker
        .prune_images(Some(PruneImagesOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| client.err(e))?;
    let deleted = report.images_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        let mut text = String::from("Deleted Images:\n");
        for item in deleted {
            match (item.untagged.filter(|u| !u.is_empty()), item.deleted) {
                (Some(u), _) => text.push_str(&format!("untagged: {u}\n")),
                (None, d) => text.push_str(&format!("deleted: {}\n", d.unwrap_or_default())),
            }
        }
        println!("{text}");
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(())
}
