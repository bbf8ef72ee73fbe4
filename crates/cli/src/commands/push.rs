//! `servin push`.

use anyhow::{bail, Result};
use hyper::Method;

use super::{parse_ref, Ctx};
use crate::client::{empty_body, escape_path, JsonStream};
use crate::progress::{self, Display};
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Push all tags of an image to the repository
    #[arg(short, long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Push a platform-specific manifest as a single-platform image
    #[arg(long)]
    platform: Option<String>,
    /// Skip image signing
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    disable_content_trust: bool,
    #[arg(value_name = "NAME[:TAG]")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.exact_args(&args.args, 1)?;
    let mut reference = parse_ref(&args.args[0]).map_err(anyhow::Error::msg)?;
    let name_only = reference.tag().is_none() && reference.digest().is_none();
    if args.all_tags && !name_only {
        bail!("tag can't be used with --all-tags/-a");
    }
    if !args.all_tags && name_only {
        reference = reference.with_default_tag();
        if !args.quiet {
            println!("Using default tag: {}", servin_api::DEFAULT_TAG);
        }
    }
    if reference.digest().is_some() {
        bail!("cannot push a digest reference");
    }
    let mut query = Vec::new();
    if let Some(tag) = reference.tag().filter(|_| !args.all_tags) {
        query.push(("tag", tag.to_string()));
    }
    if let Some(p) = args.platform.as_deref().filter(|p| !p.is_empty()) {
        let (os, rest) = p.split_once('/').unwrap_or((p, ""));
        let (arch, variant) = rest.split_once('/').unwrap_or((rest, ""));
        let platform = serde_json::json!({"os": os, "architecture": arch, "variant": variant});
        query.push(("platform", platform.to_string()));
    }
    let client = ctx.client().await?;
    let path = format!(
        "/images/{}/push",
        escape_path(&reference.familiar_repository())
    );
    let resp = client
        .request(
            Method::POST,
            &path,
            &query,
            &[(
                "X-Registry-Auth",
                &crate::auth::header_for(reference.domain()),
            )],
            empty_body(),
        )
        .await?;
    progress::show(JsonStream::new(resp), Display::for_stdout(args.quiet)).await?;
    if args.quiet {
        println!("{reference}");
    }
    Ok(())
}
