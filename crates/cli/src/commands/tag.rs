//! `servin tag`.

use anyhow::{bail, Result};
use bollard::query_parameters::TagImageOptions;

use super::{parse_ref, Ctx};
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_name = "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")]
    args: Vec<String>,
}

/// A full image ID (`sha256:…` or 64 hex digits) is a valid source too.
fn is_image_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.exact_args(&args.args, 2)?;
    let (source, target) = (&args.args[0], &args.args[1]);
    let invalid = |s: &str, e: String| {
        anyhow::anyhow!("Error parsing reference: {s:?} is not a valid repository/tag: {e}")
    };
    if !is_image_id(source) {
        parse_ref(source).map_err(|e| invalid(source, e))?;
    }
    let target_ref = parse_ref(target).map_err(|e| invalid(target, e))?;
    if target_ref.digest().is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let target_ref = target_ref.with_default_tag();
    let client = ctx.client().await?;
    let options = TagImageOptions {
        repo: Some(target_ref.repository()),
        tag: target_ref.tag().map(str::to_string),
    };
    client
        .docker
        .tag_image(&crate::client::escape_path(source), Some(options))
        .await
        .map_err(|e| client.err(e))
}
