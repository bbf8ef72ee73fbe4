//! `servin network inspect`: the daemon's JSON as it came, through docker's
//! inspect formatting.

use anyhow::Result;

use super::super::inspect::Inspector;
use super::super::Ctx;
use super::{network_path, trim_id};
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    #[arg(value_name = "NETWORK")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let inspector = Inspector::new(args.format.as_deref().unwrap_or(""))?;
    let client = ctx.client().await?;
    let query = if args.verbose {
        vec![("verbose", "true".to_string())]
    } else {
        Vec::new()
    };
    let mut results = Vec::new();
    for name in &args.args {
        let result = async {
            let id = trim_id("network", name)?;
            client.get_raw(&network_path(&id), &query).await
        }
        .await;
        results.push(result);
    }
    inspector.print(results)
}
