//! `servin unpause`.

use anyhow::Result;

use super::{for_each_container, Ctx};
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let client = ctx.client().await?;
    for_each_container(&args.args, |name| async move {
        containers::post(client, &name, "unpause", &[]).await
    })
    .await
}
