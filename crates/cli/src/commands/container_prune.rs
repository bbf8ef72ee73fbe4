//! `servin container prune`.

use anyhow::Result;
use http_body_util::BodyExt as _;
use hyper::Method;
use serde::Deserialize;

use super::{confirm, parse_filters, ps::filters_json, Ctx};
use crate::client::empty_body;
use crate::format::human_size;
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
    let mut query = Vec::new();
    if !filters.is_empty() {
        query.push(("filters", filters_json(&filters)));
    }
    let client = ctx.client().await?;
    let resp = client
        .request(Method::POST, "/containers/prune", &query, &[], empty_body())
        .await?;
    let raw = resp.into_body().collect().await?.to_bytes();
    let report: Report = crate::client::decode(&raw)?;
    let deleted = report.containers_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        let mut text = String::from("Deleted Containers:\n");
        for id in deleted {
            text.push_str(&id);
            text.push('\n');
        }
        println!("{text}");
        reclaimed = report.space_reclaimed;
    }
    println!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(())
}
