//! `servin top`: the processes of a container.

use anyhow::Result;
use serde::Deserialize;

use super::Ctx;
use crate::containers;
use crate::format::table::TabWriter;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER [ps OPTIONS]"
    )]
    args: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Top {
    titles: Vec<String>,
    processes: Vec<Vec<String>>,
}

/// `tabwriter.NewWriter(out, 20, 1, 3, ' ', 0)`.
const TOP: TabWriter = TabWriter {
    min_width: 20,
    padding: 3,
};

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.reject_flag(args.args.first())?;
    usage.min_args(&args.args, 1)?;
    let client = ctx.client().await?;
    let mut query = Vec::new();
    if args.args.len() > 1 {
        query.push(("ps_args", args.args[1..].join(" ")));
    }
    let path = format!("{}/top", containers::user_path(&args.args[0])?);
    let top: Top = crate::client::decode(&client.get_raw(&path, &query).await?)?;
    let mut text = top.titles.join("\t");
    text.push('\n');
    for p in &top.processes {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    print!("{}", TOP.render(&text));
    Ok(())
}
