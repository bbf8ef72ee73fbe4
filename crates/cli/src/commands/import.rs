//! `servin import`.

use anyhow::Result;
use hyper::Method;

use super::{parse_ref, path_error, Ctx};
use crate::client::{empty_body, reader_body, Body, JsonStream};
use crate::progress::{self, Display};
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    #[arg(value_name = "file|URL|- [REPOSITORY[:TAG]]")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let source = args.args[0].as_str();
    let reference = args.args.get(1).cloned().unwrap_or_default();
    let (source_name, body): (&str, Body) = if source == "-" {
        ("-", reader_body(tokio::io::stdin()))
    } else if source.starts_with("http://") || source.starts_with("https://") {
        (source, empty_body())
    } else {
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| path_error("open", source, &e))?;
        ("-", reader_body(file))
    };
    if !reference.is_empty() {
        parse_ref(&reference).map_err(anyhow::Error::msg)?;
    }
    let mut query = vec![
        ("fromSrc", source_name.to_string()),
        ("repo", reference),
        ("tag", String::new()),
        ("message", args.message.unwrap_or_default()),
    ];
    if let Some(p) = args.platform.filter(|p| !p.is_empty()) {
        query.push(("platform", p.to_lowercase()));
    }
    query.extend(args.change.into_iter().map(|c| ("changes", c)));
    let client = ctx.client().await?;
    let resp = client
        .request(Method::POST, "/images/create", &query, &[], body)
        .await?;
    progress::show(JsonStream::new(resp), Display::for_stdout(false)).await
}
