//! `servin rename`.

use anyhow::Result;

use super::Ctx;
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_name = "CONTAINER NEW_NAME")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.exact_args(&args.args, 2)?;
    let old = args.args[0].trim();
    let new = args.args[1].trim();
    if old.is_empty() || new.is_empty() {
        anyhow::bail!("Error: Neither old nor new names may be empty");
    }
    let client = ctx.client().await?;
    if let Err(e) = containers::post(client, old, "rename", &[("name", new.to_string())]).await {
        eprintln!("{e:#}");
        anyhow::bail!("Error: failed to rename container named {old}");
    }
    Ok(())
}
