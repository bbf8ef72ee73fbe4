//! `servin kill`.

use anyhow::Result;

use super::{for_each_container, Ctx};
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    signal: Option<String>,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let mut query = Vec::new();
    if let Some(s) = args.signal.filter(|s| !s.is_empty()) {
        query.push(("signal", s));
    }
    let client = ctx.client().await?;
    for_each_container(&args.args, |name| {
        let query = query.clone();
        async move { containers::post(client, &name, "kill", &query).await }
    })
    .await
}
