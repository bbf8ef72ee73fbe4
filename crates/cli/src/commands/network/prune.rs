//! `servin network prune`.

use anyhow::Result;
use serde::Deserialize;

use super::super::{confirm, parse_filters, post_prune, Ctx};
use crate::usage::{Cancelled, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long, value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    #[arg(hide = true)]
    args: Vec<String>,
}

const WARNING: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Report {
    networks_deleted: Option<Vec<String>>,
}

/// What docker prints for a prune report: nothing when nothing went.
fn report_text(deleted: &[String]) -> String {
    if deleted.is_empty() {
        return String::new();
    }
    let mut text = String::from("Deleted Networks:\n");
    for id in deleted {
        text.push_str(id);
        text.push('\n');
    }
    text.push('\n');
    text
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    let filters = parse_filters(usage, "--filter", &args.filter)?;
    usage.no_args(&args.args)?;
    if !args.force && !confirm(WARNING)? {
        return Err(Cancelled.into());
    }
    let client = ctx.client().await?;
    let report: Report = post_prune(client, "/networks/prune", &filters).await?;
    print!(
        "{}",
        report_text(&report.networks_deleted.unwrap_or_default())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_as_docker_prints_it() {
        assert_eq!(report_text(&[]), "");
        assert_eq!(
            report_text(&["a".into(), "b".into()]),
            "Deleted Networks:\na\nb\n\n"
        );
    }
}
