//! `servin rmi` / `servin image rm`.

use anyhow::Result;
use bollard::query_parameters::RemoveImageOptions;

use super::Ctx;
use crate::client::ApiError;
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    #[arg(value_name = "IMAGE")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let client = ctx.client().await?;
    let options = RemoveImageOptions {
        force: args.force,
        noprune: args.no_prune,
        ..Default::default()
    };
    let mut errors = Vec::new();
    let mut fatal = false;
    for image in &args.args {
        match client
            .docker
            .remove_image(image, Some(options.clone()), None)
            .await
        {
            Ok(items) => {
                for item in items {
                    match (item.deleted, item.untagged) {
                        (Some(d), _) if !d.is_empty() => println!("Deleted: {d}"),
                        (_, u) => println!("Untagged: {}", u.unwrap_or_default()),
                    }
                }
            }
            Err(e) => {
                let e = client.err(e);
                fatal |= !ApiError::is_not_found(&e);
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let message = errors.join("\n");
    if !args.force || fatal {
        return Err(StatusError::fail(1, message));
    }
    // Docker's `rmi -f` reports missing images but still succeeds.
    eprintln!("{message}");
    Ok(())
}
