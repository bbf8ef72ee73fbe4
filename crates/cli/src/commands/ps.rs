//! `servin ps` / `servin container ls`.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use chrono::Utc;
use serde::Deserialize;

use super::{parse_filters, Ctx};
use crate::format::json::{StructValue, Value};
use crate::format::{self, list};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Filter output based on conditions provided
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", allow_hyphen_values = true)]
    last: Option<String>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    size: Option<String>,
    #[arg(hide = true)]
    args: Vec<String>,
}

/// One element of `GET /containers/json` (`container.Summary`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Summary {
    #[serde(rename = "Id")]
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: Vec<Port>,
    pub size_rw: i64,
    pub size_root_fs: i64,
    pub labels: Option<BTreeMap<String, String>>,
    pub state: String,
    pub status: String,
    pub network_settings: Option<NetworkSummary>,
    pub mounts: Vec<MountPoint>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Port {
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    #[serde(rename = "PublicPort")]
    pub public_port: u16,
    #[serde(rename = "Type")]
    pub kind: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSummary {
    pub networks: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    pub name: String,
    pub source: String,
    pub driver: String,
}

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const RAW_FORMAT: &str = "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n";

/// Docker's `NewContainerFormat`.
fn container_format(source: &str, quiet: bool, size: bool) -> String {
    match source {
        "" | list::TABLE_KEY if quiet => "{{.ID}}".into(),
        "" | list::TABLE_KEY if size => format!("{DEFAULT_FORMAT}\t{{{{.Size}}}}"),
        "" | list::TABLE_KEY => DEFAULT_FORMAT.into(),
        "raw" if quiet => "container_id: {{.ID}}".into(),
        "raw" if size => format!("{RAW_FORMAT}size: {{{{.Size}}}}\n"),
        "raw" => RAW_FORMAT.into(),
        _ if quiet => "{{.ID}}".into(),
        other => other.into(),
    }
}

/// Whether a template reads `.Size`, which makes docker ask for sizes.
fn uses_size(format: &str) -> bool {
    format.contains(".Size") || format == list::JSON_KEY || format.contains("json .")
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let filters = parse_filters(usage, "-f, --filter", &args.filter)?;
    let last = match &args.last {
        None => -1,
        Some(v) => crate::opts::units::parse_int(v, 64).map_err(|e| {
            usage.flag_error(&format!(
                "invalid argument {v:?} for \"-n, --last\" flag: {e}"
            ))
        })?,
    };
    let size_flag = match &args.size {
        None => None,
        Some(v) => Some(crate::opts::units::parse_bool(v).map_err(|e| {
            usage.flag_error(&format!(
                "invalid argument {v:?} for \"-s, --size\" flag: {e}"
            ))
        })?),
    };
    let source = args.format.clone().unwrap_or_default();
    if !source.is_empty() && args.quiet {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
    }
    let mut size = size_flag.unwrap_or(false);
    if !source.is_empty() {
        // Docker parses and runs the template on an empty container first.
        let tmpl = crate::template::Template::parse("", &source)
            .map_err(|e| anyhow::anyhow!("failed to parse template: {e}"))?;
        let blank = row(&Summary::default(), true, Utc::now());
        tmpl.execute(&blank, crate::template::Options::default())
            .map_err(|e| anyhow::anyhow!("failed to execute template: {e}"))?;
        if !args.quiet && size_flag.is_none() && uses_size(&source) {
            size = true;
        }
    }
    let limit = if args.latest && last == -1 { 1 } else { last };
    let mut query = Vec::new();
    if args.all {
        query.push(("all", "1".to_string()));
    }
    if !filters.is_empty() {
        query.push(("filters", filters_json(&filters)));
    }
    if limit > 0 {
        query.push(("limit", limit.to_string()));
    }
    if size {
        query.push(("size", "1".to_string()));
    }
    let client = ctx.client().await?;
    let raw = client.get_raw("/containers/json", &query).await?;
    let containers: Vec<Summary> = crate::client::decode(&raw)?;
    let format = container_format(&source, args.quiet, size);
    let now = Utc::now();
    let rows: Vec<Value> = containers
        .iter()
        .map(|c| row(c, !args.no_trunc, now))
        .collect();
    let out = list::render(&format, &rows, &header()).map_err(|e| StatusError::fail(1, e))?;
    print!("{out}");
    Ok(())
}

/// Filters as the API's `filters` parameter: `{"name":{"value":true}}`.
pub fn filters_json(filters: &HashMap<String, Vec<String>>) -> String {
    let map: BTreeMap<&String, BTreeMap<&String, bool>> = filters
        .iter()
        .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

fn header() -> Value {
    let h = |k: &str, v: &str| (k.to_string(), Value::str(v));
    Value::Object(vec![
        h("ID", "CONTAINER ID"),
        h("Names", "NAMES"),
        h("Image", "IMAGE"),
        h("Command", "COMMAND"),
        h("CreatedAt", "CREATED AT"),
        h("RunningFor", "CREATED"),
        h("Ports", "PORTS"),
        h("State", "STATE"),
        h("Status", "STATUS"),
        h("Size", "SIZE"),
        h("Labels", "LABELS"),
        h("Mounts", "MOUNTS"),
        h("LocalVolumes", "LOCAL VOLUMES"),
        h("Networks", "NETWORKS"),
        h("Platform", "PLATFORM"),
    ])
}

/// Docker's `ContainerContext` for one container.
fn row(c: &Summary, trunc: bool, now: chrono::DateTime<Utc>) -> Value {
    let id = if trunc {
        format::short_id(&c.id).to_string()
    } else {
        c.id.clone()
    };
    let mut names: Vec<&str> = c.names.iter().map(|n| n.get(1..).unwrap_or("")).collect();
    if trunc {
        if let Some(n) = names.iter().find(|n| !n.contains('/')) {
            names = vec![*n];
        }
    }
    let command = if trunc {
        format::ellipsis(&c.command, 20)
    } else {
        c.command.clone()
    };
    let size = {
        let rw = format::human_size_with_precision(c.size_rw as f64, 3);
        if c.size_root_fs > 0 {
            format!(
                "{rw} (virtual {})",
                format::human_size_with_precision(c.size_root_fs as f64, 3)
            )
        } else {
            rw
        }
    };
    let labels = c
        .labels
        .as_ref()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let mounts = c
        .mounts
        .iter()
        .map(|m| {
            let name = if m.name.is_empty() {
                &m.source
            } else {
                &m.name
            };
            if trunc {
                format::ellipsis(name, 15)
            } else {
                name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let local_volumes = c.mounts.iter().filter(|m| m.driver == "local").count();
    let networks = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let fields = vec![
        ("Command", Value::String(format::go_quote(&command))),
        (
            "CreatedAt",
            Value::String(format::go_time_string(c.created)),
        ),
        ("ID", Value::String(id)),
        ("Image", Value::String(image(c, trunc))),
        ("Labels", Value::String(labels)),
        ("LocalVolumes", Value::String(local_volumes.to_string())),
        ("Mounts", Value::String(mounts)),
        ("Names", Value::String(names.join(","))),
        ("Networks", Value::String(networks)),
        ("Platform", Value::Null),
        ("Ports", Value::String(displayable_ports(&c.ports))),
        ("RunningFor", Value::String(format::since(c.created, now))),
        ("Size", Value::String(size)),
        ("State", Value::str(&c.state)),
        ("Status", Value::str(&c.status)),
    ];
    Value::Struct(Box::new(StructValue {
        type_name: "*formatter.ContainerContext",
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        sorted_json: true,
        json: None,
    }))
}

/// The IMAGE column: a short ID when the container was created from one,
/// else the familiar name with its tag (a digest dropped).
fn image(c: &Summary, trunc: bool) -> String {
    if c.image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return c.image.clone();
    }
    let short = format::short_id(&c.image_id);
    if short == format::short_id(&c.image) {
        return short.to_string();
    }
    match servin_api::ImageRef::parse(&c.image) {
        Ok(r) => match r.tag() {
            Some(tag) => format!("{}:{tag}", r.familiar_repository()),
            None => r.familiar_repository(),
        },
        Err(_) => c.image.clone(),
    }
}

/// Docker's `DisplayablePorts`: consecutive ports grouped into ranges,
/// mappings to other host ports listed after.
pub fn displayable_ports(ports: &[Port]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| {
        a.private_port
            .cmp(&b.private_port)
            .then_with(|| a.ip.cmp(&b.ip))
            .then_with(|| a.public_port.cmp(&b.public_port))
            .then_with(|| a.kind.cmp(&b.kind))
    });
    let mut groups: HashMap<String, (u16, u16)> = HashMap::new();
    let mut keys: Vec<String> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &ports {
        let current = p.private_port;
        let mut key = p.kind.clone();
        if !p.ip.is_empty() {
            if p.public_port != current {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&p.ip, &p.public_port.to_string()),
                    p.private_port,
                    p.kind
                ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.kind);
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (current, current));
                keys.push(key);
            }
            Some(g) if current == g.1.wrapping_add(1) => g.1 = current,
            Some(g) => {
                result.push(form_group(&key, g.0, g.1));
                *g = (current, current);
            }
        }
    }
    for key in &keys {
        let (first, last) = groups[key];
        result.push(form_group(key, first, last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, start: u16, last: u16) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, kind)) => (ip, kind),
        None => ("", key),
    };
    let mut group = start.to_string();
    if start != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{kind}")
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn summary() -> Summary {
        Summary {
            id: "c6299f42c2869a960c79900896bb642a5d1dc192d7a691b21ce02ad2c7df6309".into(),
            names: vec!["/l1".into()],
            image: "busybox".into(),
            image_id: "sha256:4bdbb5a74a08a737b9f53635f8103254691ec671ec5b87a9188cae56a3d4909f"
                .into(),
            command: "sh -c 'echo a; echo b >&2; echo c; sleep 1000'".into(),
            created: 1_000,
            state: "running".into(),
            status: "Up 59 seconds".into(),
            size_root_fs: 1_982_291,
            ..Default::default()
        }
    }

    fn render(format: &str, trunc: bool) -> String {
        let now = Utc.timestamp_opt(1_059, 0).unwrap();
        list::render(format, &[row(&summary(), trunc, now)], &header()).unwrap()
    }

    #[test]
    fn default_table_like_docker() {
        assert_eq!(
            render(&container_format("", false, false), true),
            "CONTAINER ID   IMAGE     COMMAND                  CREATED          STATUS          PORTS     NAMES\n\
             c6299f42c286   busybox   \"sh -c 'echo a; echo…\"   59 seconds ago   Up 59 seconds             l1\n"
        );
        assert_eq!(
            render(&container_format("", true, false), true),
            "c6299f42c286\n"
        );
        let wide = render(&container_format("", false, false), false);
        assert!(
            wide.contains("\"sh -c 'echo a; echo b >&2; echo c; sleep 1000'\""),
            "{wide}"
        );
    }

    #[test]
    fn json_row_like_docker() {
        let out = render("{{json .}}", true);
        assert_eq!(
            out,
            format!(
                "{{\"Command\":\"\\\"sh -c 'echo a; echo…\\\"\",\"CreatedAt\":\"{}\",\"ID\":\"c6299f42c286\",\"Image\":\"busybox\",\"Labels\":\"\",\"LocalVolumes\":\"0\",\"Mounts\":\"\",\"Names\":\"l1\",\"Networks\":\"\",\"Platform\":null,\"Ports\":\"\",\"RunningFor\":\"59 seconds ago\",\"Size\":\"0B (virtual 1.98MB)\",\"State\":\"running\",\"Status\":\"Up 59 seconds\"}}\n",
                format::go_time_string(1_000)
            )
        );
        assert!(uses_size("{{json .}}") && uses_size("table {{.Size}}") && !uses_size("{{.ID}}"));
    }

    #[test]
    fn ports_grouped_like_docker() {
        let p = |ip: &str, private: u16, public: u16, kind: &str| Port {
            ip: ip.into(),
            private_port: private,
            public_port: public,
            kind: kind.into(),
        };
        let ports = [
            p("0.0.0.0", 80, 8080, "tcp"),
            p("", 7000, 0, "tcp"),
            p("", 7001, 0, "tcp"),
            p("0.0.0.0", 9000, 9000, "udp"),
            p("::", 9000, 9000, "udp"),
        ];
        assert_eq!(
            displayable_ports(&ports),
            "7000-7001/tcp, 0.0.0.0:9000->9000/udp, [::]:9000->9000/udp, 0.0.0.0:8080->80/tcp"
        );
    }

    #[test]
    fn images_shown_as_docker_shows_them() {
        let mut c = summary();
        assert_eq!(image(&c, true), "busybox");
        c.image = "docker.io/library/busybox:1.36@sha256:6b4b630faba42c25a3a09c79980c5fb5533a813c882ae75037b08abdbcc093b8".into();
        assert_eq!(image(&c, true), "busybox:1.36");
        c.image = "sha256:4bdbb5a74a08a737b9f53635f8103254691ec671ec5b87a9188cae56a3d4909f".into();
        assert_eq!(image(&c, true), "4bdbb5a74a08");
        c.image = String::new();
        assert_eq!(image(&c, true), "<no image>");
    }
}
