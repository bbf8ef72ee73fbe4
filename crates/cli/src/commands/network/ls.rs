//! `servin network ls`.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::super::{parse_filters, ps::filters_json, Ctx};
use crate::format::json::{StructValue, Value};
use crate::format::{self, list};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    #[arg(hide = true)]
    args: Vec<String>,
}

/// The fields of Go's `network.Summary` that the list shows.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Summary {
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    pub internal: bool,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Docker's network `NewFormat`.
fn network_format(source: &str, quiet: bool) -> String {
    match source {
        list::TABLE_KEY if quiet => "{{.ID}}".into(),
        list::TABLE_KEY => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into(),
        "raw" if quiet => "network_id: {{.ID}}".into(),
        "raw" => {
            "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
                .into()
        }
        other => other.into(),
    }
}

fn header() -> Value {
    let h = |k: &str, v: &str| (k.to_string(), Value::str(v));
    Value::Object(vec![
        h("ID", "NETWORK ID"),
        h("Name", "NAME"),
        h("Driver", "DRIVER"),
        h("Scope", "SCOPE"),
        h("IPv4", "IPV4"),
        h("IPv6", "IPV6"),
        h("Internal", "INTERNAL"),
        h("Labels", "LABELS"),
        h("CreatedAt", "CREATED AT"),
    ])
}

/// Go's `time.Time.String()` of an RFC 3339 timestamp as decoded by Go:
/// "2026-11-29 06:25:01.3308885 +0000 UTC".
pub(super) fn go_time(rfc3339: &str) -> String {
    let t = DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|_| {
        DateTime::<FixedOffset>::parse_from_rfc3339("0001-01-01T00:00:00Z").expect("valid")
    });
    let mut text = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        text.push('.');
        text.push_str(frac.trim_end_matches('0'));
    }
    let numeric = t.format("%z").to_string();
    // A "Z" time is in UTC; any other offset is a zone without a name,
    // which Go prints as the offset again.
    let zone = if rfc3339.ends_with(['Z', 'z']) {
        "UTC".to_string()
    } else {
        numeric.clone()
    };
    format!("{text} {numeric} {zone}")
}

/// Docker's `networkContext`.
fn row(n: &Summary, trunc: bool) -> Value {
    let id = if trunc {
        format::short_id(&n.id).to_string()
    } else {
        n.id.clone()
    };
    let labels = n
        .labels
        .as_ref()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let fields = vec![
        ("CreatedAt", Value::String(go_time(&n.created))),
        ("Driver", Value::str(&n.driver)),
        ("ID", Value::String(id)),
        ("IPv4", Value::String(n.enable_ipv4.to_string())),
        ("IPv6", Value::String(n.enable_ipv6.to_string())),
        ("Internal", Value::String(n.internal.to_string())),
        ("Labels", Value::String(labels)),
        ("Name", Value::str(&n.name)),
        ("Scope", Value::str(&n.scope)),
    ];
    Value::Struct(Box::new(StructValue {
        type_name: "*network.networkContext",
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        sorted_json: true,
        json: None,
    }))
}

/// The list as docker prints it, sorted by name.
pub fn render(
    networks: &mut [Summary],
    format: Option<&str>,
    quiet: bool,
    trunc: bool,
) -> Result<String, String> {
    networks.sort_by(|a, b| format::natural_cmp(&a.name, &b.name));
    let source = match format {
        None | Some("") => list::TABLE_KEY,
        Some(f) => f,
    };
    let rows: Vec<Value> = networks.iter().map(|n| row(n, trunc)).collect();
    list::render(&network_format(source, quiet), &rows, &header())
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    let filters = parse_filters(usage, "-f, --filter", &args.filter)?;
    usage.no_args(&args.args)?;
    let mut query = Vec::new();
    if !filters.is_empty() {
        query.push(("filters", filters_json(&filters)));
    }
    let client = ctx.client().await?;
    let raw = client.get_raw("/networks", &query).await?;
    let mut networks: Vec<Summary> =
        crate::client::decode::<Option<Vec<Summary>>>(&raw)?.unwrap_or_default();
    let out = render(
        &mut networks,
        args.format.as_deref(),
        args.quiet,
        !args.no_trunc,
    )
    .map_err(|e| StatusError::fail(1, e))?;
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, id: &str, driver: &str) -> Summary {
        Summary {
            name: name.into(),
            id: id.into(),
            created: "2026-11-29T06:25:01.3308885Z".into(),
            scope: "local".into(),
            driver: driver.into(),
            ..Default::default()
        }
    }

    fn nets() -> Vec<Summary> {
        vec![
            net("net10", &"b".repeat(64), "bridge"),
            net("net9", &"a".repeat(64), "bridge"),
            net("host", &"c".repeat(64), "host"),
        ]
    }

    #[test]
    fn table_sorted_naturally_and_truncated() {
        let out = render(&mut nets(), None, false, true).unwrap();
        assert_eq!(
            out,
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             cccccccccccc   host      host      local\n\
             aaaaaaaaaaaa   net9      bridge    local\n\
             bbbbbbbbbbbb   net10     bridge    local\n"
        );
        let quiet = render(&mut nets(), None, true, false).unwrap();
        assert_eq!(
            quiet,
            format!(
                "{}\n{}\n{}\n",
                "c".repeat(64),
                "a".repeat(64),
                "b".repeat(64)
            )
        );
        // A template of one's own wins over -q, as in docker.
        let named = render(&mut nets(), Some("{{.Name}}"), true, true).unwrap();
        assert_eq!(named, "host\nnet9\nnet10\n");
    }

    #[test]
    fn json_and_created_at() {
        let mut one = vec![net("n", "0123456789abcdef", "bridge")];
        one[0].labels = Some(BTreeMap::from([("k".into(), "v".into())]));
        let out = render(&mut one, Some("json"), false, true).unwrap();
        assert_eq!(
            out,
            "{\"CreatedAt\":\"2026-11-29 06:25:01.3308885 +0000 UTC\",\"Driver\":\"bridge\",\"ID\":\"0123456789ab\",\"IPv4\":\"false\",\"IPv6\":\"false\",\"Internal\":\"false\",\"Labels\":\"k=v\",\"Name\":\"n\",\"Scope\":\"local\"}\n"
        );
        assert_eq!(
            go_time("2026-01-02T03:04:05+01:00"),
            "2026-01-02 03:04:05 +0100 +0100"
        );
        let err = render(&mut one, Some("{{.Bogus}}"), false, true).unwrap_err();
        assert!(err.starts_with("template parsing error: "), "{err}");
    }
}
