//! `servin volume rm`.

use anyhow::Result;
use http_body_util::BodyExt as _;
use hyper::Method;

use super::super::{join_errors, Ctx};
use crate::client::empty_body;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(value_name = "VOLUME")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let client = ctx.client().await?;
    let query = if args.force {
        vec![("force", "1".to_string())]
    } else {
        Vec::new()
    };
    let mut errors = Vec::new();
    for name in &args.args {
        let result = async {
            let trimmed = name.trim();
            if trimmed.is_empty() {
                anyhow::bail!("invalid volume name or ID: value is empty");
            }
            let path = format!("/volumes/{}", crate::client::escape_path(trimmed));
            let resp = client
                .request(Method::DELETE, &path, &query, &[], empty_body())
                .await?;
            resp.into_body().collect().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    join_errors(errors)
}
