//! `servin vm logs [-f]`: the guest's console.

use anyhow::Result;
use hyper::Method;

use super::request;
use crate::client::body_reader;
use crate::commands::Ctx;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Follow the console output
    #[arg(short = 'f', long)]
    pub follow: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let route = if args.follow { "logs?follow=1" } else { "logs" };
    let resp = request(ctx, Method::GET, route).await?;
    let mut reader = body_reader(resp.into_body());
    tokio::io::copy(&mut reader, &mut tokio::io::stdout()).await?;
    Ok(())
}
