//! `servin rm` / `servin container rm`.

use anyhow::Result;
use http_body_util::BodyExt as _;
use hyper::Method;

use super::{join_errors, Ctx};
use crate::client::{empty_body, ApiError};
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove the specified link
    #[arg(short, long)]
    link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let mut query = Vec::new();
    if args.force {
        query.push(("force", "1".to_string()));
    }
    if args.link {
        query.push(("link", "1".to_string()));
    }
    if args.volumes {
        query.push(("v", "1".to_string()));
    }
    let client = ctx.client().await?;
    let results = futures::future::join_all(args.args.iter().map(|name| {
        let query = &query;
        async move {
            let name = name.trim_matches('/');
            if name.is_empty() {
                anyhow::bail!("container name cannot be empty");
            }
            let path = containers::user_path(name)?;
            let resp = client
                .request(Method::DELETE, &path, query, &[], empty_body())
                .await?;
            resp.into_body().collect().await?;
            Ok(())
        }
    }))
    .await;
    let mut errors = Vec::new();
    for (name, result) in args.args.iter().zip(results) {
        match result {
            Ok(()) => println!("{name}"),
            // `rm -f` of a missing container reports it and carries on.
            Err(e) if args.force && ApiError::is_not_found(&e) => eprintln!("{e:#}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    join_errors(errors)
}
