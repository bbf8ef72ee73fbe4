//! `servin volume ls`.

use anyhow::Result;
use serde::Deserialize;

use super::super::{parse_filters, ps::filters_json, Ctx};
use super::Volume;
use crate::format::json::{StructValue, Value};
use crate::format::{self, list};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Display only cluster volumes, and use cluster volume list formatting
    #[arg(long)]
    cluster: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    #[arg(hide = true)]
    args: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ListResponse {
    volumes: Option<Vec<Volume>>,
}

/// Docker's `NewVolumeFormat`.
fn volume_format(source: &str, quiet: bool) -> String {
    match source {
        "" | list::TABLE_KEY if quiet => "{{.Name}}".into(),
        "" | list::TABLE_KEY => "table {{.Driver}}\t{{.Name}}".into(),
        "raw" if quiet => "name: {{.Name}}".into(),
        "raw" => "name: {{.Name}}\\ndriver: {{.Driver}}\\n".into(),
        other => other.into(),
    }
}

fn header() -> Value {
    let h = |k: &str, v: &str| (k.to_string(), Value::str(v));
    Value::Object(vec![
        h("ID", "ID"),
        h("Name", "VOLUME NAME"),
        h("Group", "GROUP"),
        h("Driver", "DRIVER"),
        h("Scope", "SCOPE"),
        h("Availability", "AVAILABILITY"),
        h("Mountpoint", "MOUNTPOINT"),
        h("Labels", "LABELS"),
        h("Links", "LINKS"),
        h("Size", "SIZE"),
        h("Status", "STATUS"),
    ])
}

/// Docker's `volumeContext` (cluster fields "N/A": no swarm here).
fn row(v: &Volume) -> Value {
    let labels = v
        .labels
        .as_ref()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let (links, size) = match &v.usage_data {
        Some(u) => (u.ref_count.to_string(), format::human_size(u.size as f64)),
        None => ("N/A".into(), "N/A".into()),
    };
    let fields = vec![
        ("Availability", Value::str("N/A")),
        ("Driver", Value::str(&v.driver)),
        ("Group", Value::str("N/A")),
        ("Labels", Value::String(labels)),
        ("Links", Value::String(links)),
        ("Mountpoint", Value::str(&v.mountpoint)),
        ("Name", Value::str(&v.name)),
        ("Scope", Value::str(&v.scope)),
        ("Size", Value::String(size)),
        ("Status", Value::str("N/A")),
    ];
    Value::Struct(Box::new(StructValue {
        type_name: "*formatter.volumeContext",
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        sorted_json: true,
        json: None,
    }))
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let filters = parse_filters(usage, "-f, --filter", &args.filter)?;
    let mut query = Vec::new();
    if !filters.is_empty() {
        query.push(("filters", filters_json(&filters)));
    }
    let client = ctx.client().await?;
    let raw = client.get_raw("/volumes", &query).await?;
    let mut volumes = crate::client::decode::<ListResponse>(&raw)?
        .volumes
        .unwrap_or_default();
    if args.cluster {
        volumes.retain(|v| v.cluster_volume.is_some());
    }
    volumes.sort_by(|a, b| format::natural_cmp(&a.name, &b.name));
    let source = args.format.clone().unwrap_or_default();
    let format = volume_format(&source, args.quiet);
    let rows: Vec<Value> = volumes.iter().map(row).collect();
    let out = list::render(&format, &rows, &header()).map_err(|e| StatusError::fail(1, e))?;
    print!("{out}");
    Ok(())
}
