//! `servin volume inspect`: docker re-encodes the daemon's answer as its
//! `volume.Volume` struct, so this does too.

use anyhow::Result;
use bytes::Bytes;

use super::super::inspect::Inspector;
use super::super::Ctx;
use super::Volume;
use crate::client::Client;
use crate::opts::body::go_json;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    #[arg(value_name = "VOLUME")]
    args: Vec<String>,
}

pub async fn get(client: &Client, name: &str) -> Result<Bytes> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        anyhow::bail!("invalid volume name or ID: value is empty");
    }
    let raw = client
        .get_raw(
            &format!("/volumes/{}", crate::client::escape_path(trimmed)),
            &[],
        )
        .await?;
    let vol: Volume = crate::client::decode(&raw)?;
    Ok(Bytes::from(go_json(&vol)))
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let inspector = Inspector::new(args.format.as_deref().unwrap_or(""))?;
    let client = ctx.client().await?;
    let mut results = Vec::new();
    for name in &args.args {
        results.push(get(client, name).await);
    }
    inspector.print(results)
}
