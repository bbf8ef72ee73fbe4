//! `servin wait`: block until containers stop, print their exit codes.

use anyhow::Result;

use super::{join_errors, Ctx};
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
    let mut errors = Vec::new();
    for name in &args.args {
        match containers::wait_status(client, name).await {
            Ok(code) => println!("{code}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    join_errors(errors)
}
