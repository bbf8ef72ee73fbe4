//! `servin pull`.

use anyhow::{bail, Result};
use hyper::Method;

use super::{parse_ref, Ctx};
use crate::client::{empty_body, Client, JsonStream};
use crate::progress::{self, Display};
use crate::usage::Usage;
use servin_api::ImageRef;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Download all tagged images in the repository
    #[arg(short, long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Skip image verification
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    disable_content_trust: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
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
    let client = ctx.client().await?;
    let tag = if args.all_tags {
        None
    } else {
        Some(match reference.digest() {
            Some(d) => d.to_string(),
            None => reference.tag().unwrap_or_default().to_string(),
        })
    };
    pull_image(
        client,
        &reference,
        tag,
        args.platform.as_deref(),
        Display::for_stdout(args.quiet),
    )
    .await?;
    if args.all_tags {
        println!("{}", reference.repository());
    } else {
        println!("{reference}");
    }
    Ok(())
}

/// `POST /images/create` for `reference` (a `tag` or digest, or all tags
/// when `None`), showing the progress stream on `display`.
pub async fn pull_image(
    client: &Client,
    reference: &ImageRef,
    tag: Option<String>,
    platform: Option<&str>,
    display: Display,
) -> Result<()> {
    let mut query = vec![("fromImage", reference.repository())];
    if let Some(tag) = tag {
        query.push(("tag", tag));
    }
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        query.push(("platform", p.to_lowercase()));
    }
    let resp = client
        .request(
            Method::POST,
            "/images/create",
            &query,
            &[(
                "X-Registry-Auth",
                &crate::auth::header_for(reference.domain()),
            )],
            empty_body(),
        )
        .await?;
    progress::show(JsonStream::new(resp), display).await
}
