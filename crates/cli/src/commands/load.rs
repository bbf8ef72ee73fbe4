//! `servin load`.

use std::io::IsTerminal as _;

use anyhow::{bail, Result};
use http_body_util::BodyExt as _;
use hyper::Method;
use tokio::io::AsyncWriteExt as _;

use super::{path_error, Ctx};
use crate::client::{reader_body, Body, JsonStream};
use crate::progress::{self, Display};
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
    /// Load only the given platform variant ("os[/arch[/variant]]")
    #[arg(long)]
    platform: Option<String>,
    #[arg(hide = true)]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let body: Body = match args.input.as_deref().filter(|i| !i.is_empty()) {
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            reader_body(tokio::io::stdin())
        }
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| path_error("open", path, &e))?;
            reader_body(file)
        }
    };
    let quiet = args.quiet || !std::io::stdout().is_terminal();
    let mut query = vec![("quiet", if quiet { "1" } else { "0" }.to_string())];
    if let Some(p) = args.platform.as_deref().filter(|p| !p.is_empty()) {
        query.push(("platform", p.to_lowercase()));
    }
    let client = ctx.client().await?;
    let resp = client
        .request(
            Method::POST,
            "/images/load",
            &query,
            &[("Content-Type", "application/x-tar")],
            body,
        )
        .await?;
    let is_json = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return progress::show(JsonStream::new(resp), Display::for_stdout(false)).await;
    }
    let mut body = resp.into_body();
    let mut out = tokio::io::stdout();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.write_all(&data).await?;
        }
    }
    out.flush().await?;
    Ok(())
}
