//! `servin network inspect`: the daemon's JSON as it came, through docker's
//! inspect formatting. A template runs first on the network as docker's
//! typed `network.Inspect` (so `{{.Created}}` is a Go time and
//! `{{.IPAM.Config}}` prints Go structs) and, when that fails, on the raw
//! JSON, as docker's `TemplateInspector` does.

use std::collections::BTreeMap;

use anyhow::Result;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::super::inspect::Inspector;
use super::super::Ctx;
use super::ls::go_time;
use super::{network_path, trim_id};
use crate::format::json::{StructValue, Value};
use crate::template::{MissingKey, Options, Template};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    #[arg(value_name = "NETWORK")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let inspector = Inspector::new(args.format.as_deref().unwrap_or(""))?;
    let client = ctx.client().await?;
    let query = if args.verbose {
        vec![("verbose", "true".to_string())]
    } else {
        Vec::new()
    };
    let mut results = Vec::new();
    for name in &args.args {
        let result = async {
            let id = trim_id("network", name)?;
            client.get_raw(&network_path(&id), &query).await
        }
        .await;
        results.push(result);
    }
    match &inspector {
        Inspector::Template(t) => print_templated(t, results),
        _ => inspector.print(results),
    }
}

/// Docker's `inspect.Inspect` with a template: typed first, raw JSON next;
/// errors are collected and reported together (exit status 1).
fn print_templated(t: &Template, results: Vec<Result<Bytes>>) -> Result<()> {
    let mut out = String::new();
    let mut errors = Vec::new();
    for result in results {
        match result.and_then(|raw| execute(t, &raw).map_err(anyhow::Error::msg)) {
            Ok(text) => {
                out.push_str(&text);
                out.push('\n');
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if out.is_empty() {
        out.push('\n');
    }
    print!("{out}");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StatusError::fail(1, errors.join("\n")))
    }
}

fn execute(t: &Template, raw: &[u8]) -> Result<String, String> {
    if let Some(typed) = typed(raw) {
        if let Ok(text) = t.execute(&typed, Options::default()) {
            return Ok(text);
        }
    }
    let value = Value::from_json(raw).map_err(|e| format!("unable to read inspect data: {e}"))?;
    let opts = Options {
        missing: MissingKey::Error,
        header: false,
    };
    t.execute(&value, opts)
        .map_err(|e| format!("template parsing error: {e}"))
}

/// Go's `network.Inspect` (API v1.50), in its field order.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct Network {
    name: String,
    #[serde(rename = "Id")]
    id: String,
    created: String,
    scope: String,
    driver: String,
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Ipam,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: ConfigReference,
    config_only: bool,
    containers: Option<BTreeMap<String, Endpoint>>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peers: Vec<Peer>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    options: Option<BTreeMap<String, String>>,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    gateway: String,
    #[serde(
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    aux_address: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConfigReference {
    network: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct Endpoint {
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    mac_address: String,
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct Peer {
    name: String,
    #[serde(rename = "IP")]
    ip: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct Service {
    #[serde(rename = "VIP")]
    vip: String,
    ports: Option<Vec<String>>,
    #[serde(rename = "LocalLBIndex")]
    local_lb_index: i64,
    tasks: Option<Vec<Task>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
struct Task {
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(rename = "EndpointIP")]
    endpoint_ip: String,
    info: Option<BTreeMap<String, String>>,
}

/// A Go struct for templates: its fields by Go name, and `{{json}}` as
/// `encoding/json` writes it.
fn go_struct<T: Serialize>(type_name: &'static str, json: &T, fields: Vec<(&str, Value)>) -> Value {
    let json = serde_json::to_vec(json)
        .ok()
        .and_then(|b| Value::from_json(&b).ok())
        .unwrap_or(Value::Null);
    Value::Struct(Box::new(StructValue {
        type_name,
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        sorted_json: false,
        json: Some(Box::new(json)),
    }))
}

fn string_map(m: &Option<BTreeMap<String, String>>) -> Value {
    Value::Object(
        m.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::str(v)))
            .collect(),
    )
}

/// The daemon's answer as docker decodes it, or `None` when it does not
/// decode (then only the raw JSON is used).
fn typed(raw: &[u8]) -> Option<Value> {
    let n: Network = crate::client::decode(raw).ok()?;
    let ipam_configs = n
        .ipam
        .config
        .iter()
        .flatten()
        .map(|c| {
            go_struct(
                "network.IPAMConfig",
                c,
                vec![
                    ("Subnet", Value::str(&c.subnet)),
                    ("IPRange", Value::str(&c.ip_range)),
                    ("Gateway", Value::str(&c.gateway)),
                    ("AuxAddress", string_map(&Some(c.aux_address.clone()))),
                ],
            )
        })
        .collect();
    let ipam = go_struct(
        "network.IPAM",
        &n.ipam,
        vec![
            ("Driver", Value::str(&n.ipam.driver)),
            ("Options", string_map(&n.ipam.options)),
            ("Config", Value::Array(ipam_configs)),
        ],
    );
    let containers = n
        .containers
        .iter()
        .flatten()
        .map(|(id, e)| {
            let v = go_struct(
                "network.EndpointResource",
                e,
                vec![
                    ("Name", Value::str(&e.name)),
                    ("EndpointID", Value::str(&e.endpoint_id)),
                    ("MacAddress", Value::str(&e.mac_address)),
                    ("IPv4Address", Value::str(&e.ipv4_address)),
                    ("IPv6Address", Value::str(&e.ipv6_address)),
                ],
            );
            (id.clone(), v)
        })
        .collect();
    let peers = n
        .peers
        .iter()
        .map(|p| {
            go_struct(
                "network.PeerInfo",
                p,
                vec![("Name", Value::str(&p.name)), ("IP", Value::str(&p.ip))],
            )
        })
        .collect();
    let services = n
        .services
        .iter()
        .map(|(name, s)| {
            let tasks = s
                .tasks
                .iter()
                .flatten()
                .map(|t| {
                    go_struct(
                        "network.Task",
                        t,
                        vec![
                            ("Name", Value::str(&t.name)),
                            ("EndpointID", Value::str(&t.endpoint_id)),
                            ("EndpointIP", Value::str(&t.endpoint_ip)),
                            ("Info", string_map(&t.info)),
                        ],
                    )
                })
                .collect();
            let v = go_struct(
                "network.ServiceInfo",
                s,
                vec![
                    ("VIP", Value::str(&s.vip)),
                    ("Ports", Value::strings(s.ports.iter().flatten())),
                    ("LocalLBIndex", Value::int(s.local_lb_index)),
                    ("Tasks", Value::Array(tasks)),
                ],
            );
            (name.clone(), v)
        })
        .collect();
    let config_from = go_struct(
        "network.ConfigReference",
        &n.config_from,
        vec![("Network", Value::str(&n.config_from.network))],
    );
    Some(go_struct(
        "network.Inspect",
        &n,
        vec![
            ("Name", Value::str(&n.name)),
            ("ID", Value::str(&n.id)),
            ("Created", Value::String(go_time(&n.created))),
            ("Scope", Value::str(&n.scope)),
            ("Driver", Value::str(&n.driver)),
            ("EnableIPv4", Value::Bool(n.enable_ipv4)),
            ("EnableIPv6", Value::Bool(n.enable_ipv6)),
            ("IPAM", ipam),
            ("Internal", Value::Bool(n.internal)),
            ("Attachable", Value::Bool(n.attachable)),
            ("Ingress", Value::Bool(n.ingress)),
            ("ConfigFrom", config_from),
            ("ConfigOnly", Value::Bool(n.config_only)),
            ("Containers", Value::Object(containers)),
            ("Options", string_map(&n.options)),
            ("Labels", string_map(&n.labels)),
            ("Peers", Value::Array(peers)),
            ("Services", Value::Object(services)),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = br#"{"Name":"n1","Id":"abc","Created":"2026-11-29T06:25:01.3308885Z","Scope":"local","Driver":"bridge","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/24","Gateway":"10.1.0.1"},{"Subnet":"fd00::/64","AuxiliaryAddresses":{"h":"fd00::9"}}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{"c1":{"Name":"web","EndpointID":"e1","MacAddress":"02:42:0a:01:00:02","IPv4Address":"10.1.0.2/24","IPv6Address":""}},"Options":{},"Labels":{"k":"v"}}"#;

    fn run(src: &str) -> Result<String, String> {
        execute(&Template::parse("", src).unwrap(), RAW)
    }

    #[test]
    fn templates_see_docker_typed_network() {
        assert_eq!(
            run("{{.IPAM.Config}}").unwrap(),
            "[{10.1.0.0/24  10.1.0.1 map[]} {fd00::/64   map[h:fd00::9]}]"
        );
        assert_eq!(
            run("{{.Created}}").unwrap(),
            "2026-11-29 06:25:01.3308885 +0000 UTC"
        );
        // Go's field is ID; the JSON's key Id is found in the raw fallback.
        assert_eq!(run("{{.ID}}").unwrap(), "abc");
        assert_eq!(run("{{.Id}}").unwrap(), "abc");
        assert!(run("{{.ID}} {{.Id}}").is_err());
        assert_eq!(run("{{.ConfigFrom}} {{.Peers}}").unwrap(), "{} []");
        assert_eq!(
            run("{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}").unwrap(),
            "web 10.1.0.2/24"
        );
        assert_eq!(run("{{.Labels.nope}}").unwrap(), "<no value>");
        // JSON as Go encodes the typed struct: its fields, its order.
        assert_eq!(
            run("{{json .IPAM}}").unwrap(),
            r#"{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/24","Gateway":"10.1.0.1"},{"Subnet":"fd00::/64","AuxiliaryAddresses":{"h":"fd00::9"}}]}"#
        );
        assert!(run("{{json .}}")
            .unwrap()
            .starts_with(r#"{"Name":"n1","Id":"abc","Created":"2026-11-29T06:25:01.3308885Z","Scope":"local","Driver":"bridge","EnableIPv4":false,"EnableIPv6":false,"IPAM""#));
    }

    #[test]
    fn raw_json_is_the_fallback() {
        // A field the typed struct lacks: the raw JSON's error.
        assert_eq!(
            run("{{.Nope}}").unwrap_err(),
            "template parsing error: template: :1:2: executing \"\" at <.Nope>: map has no entry for key \"Nope\""
        );
    }
}
