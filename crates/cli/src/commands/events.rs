//! `servin events`: the daemon's event stream, one line per event as
//! docker prints it, or through a template.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::Result;
use chrono::{DateTime, Local, TimeZone as _};
use hyper::Method;
use serde::{Deserialize, Serialize};

use super::{parse_filters, ps::filters_json, Ctx};
use crate::client::{empty_body, JsonStream};
use crate::format::json::{StructValue, Value};
use crate::opts::body::go_json;
use crate::template::{Options, Template};
use crate::timestamp::get_timestamp;
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Filter output based on conditions provided
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    until: Option<String>,
    #[arg(hide = true)]
    args: Vec<String>,
}

/// Go's `events.Message`, encoded with its JSON tags.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Message {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub time: i64,
    #[serde(rename = "timeNano", skip_serializing_if = "is_zero")]
    pub time_nano: i64,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: Option<BTreeMap<String, String>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Docker's line: `TIME TYPE ACTION ID (k=v, …)`, the time in local
/// `RFC3339Nano` with nine digits.
pub fn pretty(e: &Message) -> String {
    let mut line = String::new();
    let time = if e.time_nano != 0 {
        Some(Local.timestamp_nanos(e.time_nano))
    } else if e.time != 0 {
        Local.timestamp_opt(e.time, 0).single()
    } else {
        None
    };
    if let Some(t) = time {
        line.push_str(&rfc3339_nano_fixed(&t));
        line.push(' ');
    }
    line.push_str(&format!("{} {} {}", e.kind, e.action, e.actor.id));
    if let Some(attrs) = e.actor.attributes.as_ref().filter(|a| !a.is_empty()) {
        let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    line.push('\n');
    line
}

fn rfc3339_nano_fixed<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let offset = t.format("%:z").to_string();
    let zone = if offset == "+00:00" {
        "Z".to_string()
    } else {
        offset
    };
    format!("{}{zone}", t.format("%Y-%m-%dT%H:%M:%S%.9f"))
}

/// The event as a template sees it: Go field names, JSON by tags.
/// `type_name` is `*events.Message` for docker's trial run on an empty one.
fn value(e: &Message, type_name: &'static str) -> Value {
    let json = Value::from_json(go_json(e).as_bytes()).unwrap_or(Value::Null);
    let attributes = match &e.actor.attributes {
        Some(a) => Value::Object(a.iter().map(|(k, v)| (k.clone(), Value::str(v))).collect()),
        None => Value::TypedNull("map[]"),
    };
    let actor = Value::Struct(Box::new(StructValue {
        type_name: "events.Actor",
        fields: vec![
            ("ID".into(), Value::str(&e.actor.id)),
            ("Attributes".into(), attributes),
        ],
        sorted_json: false,
        json: None,
    }));
    Value::Struct(Box::new(StructValue {
        type_name,
        fields: vec![
            ("Status".into(), Value::str(&e.status)),
            ("ID".into(), Value::str(&e.id)),
            ("From".into(), Value::str(&e.from)),
            ("Type".into(), Value::str(&e.kind)),
            ("Action".into(), Value::str(&e.action)),
            ("Actor".into(), actor),
            ("Scope".into(), Value::str(&e.scope)),
            ("Time".into(), Value::int(e.time)),
            ("TimeNano".into(), Value::int(e.time_nano)),
        ],
        sorted_json: false,
        json: Some(Box::new(json)),
    }))
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let filters = parse_filters(usage, "-f, --filter", &args.filter)?;
    let template = match args.format.as_deref() {
        None | Some("") => None,
        Some(f) => {
            let source = if f == "json" { "{{json .}}" } else { f };
            let bad = |e: String| StatusError::fail(64, format!("Error parsing format: {e}"));
            let t = Template::parse("", source).map_err(bad)?;
            t.execute(
                &value(&Message::default(), "*events.Message"),
                Options::default(),
            )
            .map_err(bad)?;
            Some(t)
        }
    };
    let now = Local::now().fixed_offset();
    let mut query = Vec::new();
    if !filters.is_empty() {
        query.push(("filters", filters_json(&filters)));
    }
    if let Some(s) = args.since.as_deref().filter(|s| !s.is_empty()) {
        query.push(("since", get_timestamp(s, now).map_err(anyhow::Error::msg)?));
    }
    if let Some(u) = args.until.as_deref().filter(|s| !s.is_empty()) {
        query.push(("until", get_timestamp(u, now).map_err(anyhow::Error::msg)?));
    }
    let client = ctx.client().await?;
    let resp = client
        .request(Method::GET, "/events", &query, &[], empty_body())
        .await?;
    let mut events = JsonStream::new(resp);
    while let Some(e) = events.next::<Message>().await? {
        let text = match &template {
            None => pretty(&e),
            Some(t) => {
                let mut s = t
                    .execute(&value(&e, "events.Message"), Options::default())
                    .map_err(|e| StatusError::fail(1, e))?;
                s.push('\n');
                s
            }
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"status":"start","id":"8d1f","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"8d1f","Attributes":{"name":"e1","image":"busybox"}},"scope":"local","time":1795922487,"timeNano":1795922487123456789}"#;

    #[test]
    fn pretty_line_like_docker() {
        let e: Message = serde_json::from_str(EVENT).unwrap();
        let line = pretty(&e);
        let t = rfc3339_nano_fixed(&Local.timestamp_nanos(1_795_922_487_123_456_789));
        assert_eq!(
            line,
            format!("{t} container start 8d1f (image=busybox, name=e1)\n")
        );
        let utc = chrono::Utc.timestamp_nanos(1_795_922_487_000_000_001);
        assert_eq!(rfc3339_nano_fixed(&utc), "2026-11-29T03:21:27.000000001Z");
    }

    #[test]
    fn templates_see_go_fields_and_json_tags() {
        let e: Message = serde_json::from_str(EVENT).unwrap();
        let t = Template::parse(
            "",
            "{{.Status}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{json .}}",
        )
        .unwrap();
        assert_eq!(
            t.execute(&value(&e, "events.Message"), Options::default())
                .unwrap(),
            format!(
                "start 8d1f e1 {}",
                EVENT.replace(
                    r#""name":"e1","image":"busybox""#,
                    r#""image":"busybox","name":"e1""#
                )
            )
        );
    }
}
