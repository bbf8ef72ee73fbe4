//! `servin inspect` (any object: a container, else an image, else …),
//! `servin image inspect` and `servin container inspect`.

use anyhow::Result;
use bytes::Bytes;

use super::Ctx;
use crate::client::{ApiError, Client};
use crate::format::json::{self, Value};
use crate::template::{MissingKey, Options, Template};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Inspect a specific platform of the multi-platform image
    #[arg(long)]
    platform: Option<String>,
    #[arg(value_name = "IMAGE")]
    args: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ContainerArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Only inspect objects of the given type
    #[arg(long = "type")]
    kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    #[arg(value_name = "NAME|ID")]
    args: Vec<String>,
}

const ALL_TYPES: &[&str] = &[
    "config",
    "container",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "task",
    "volume",
];

pub async fn run_image(ctx: &Ctx, usage: &Usage, args: ImageArgs) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let mut query = Vec::new();
    if let Some(p) = args.platform.filter(|p| !p.is_empty()) {
        let (os, rest) = p.split_once('/').unwrap_or((&p, ""));
        let (arch, variant) = rest.split_once('/').unwrap_or((rest, ""));
        query.push((
            "platform",
            serde_json::json!({"os": os, "architecture": arch, "variant": variant}).to_string(),
        ));
    }
    let inspector = Inspector::new(args.format.as_deref().unwrap_or(""))?;
    let client = ctx.client().await?;
    let mut results = Vec::new();
    for name in &args.args {
        results.push(get_image(client, name, &query).await);
    }
    inspector.print(results)
}

pub async fn run_container(ctx: &Ctx, usage: &Usage, args: ContainerArgs) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let inspector = Inspector::new(args.format.as_deref().unwrap_or(""))?;
    let client = ctx.client().await?;
    let mut results = Vec::new();
    for name in &args.args {
        results.push(get_object(client, "container", name, args.size).await);
    }
    inspector.print(results)
}

/// The order docker tries object types in when none is given; swarm
/// objects (services, tasks, nodes, secrets, configs) are only looked for
/// on a swarm manager, which a Servin daemon never is.
const AUTODETECT: &[&str] = &["container", "image", "network", "volume", "plugin"];

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let kind = args.kind.unwrap_or_default();
    if !kind.is_empty() && !ALL_TYPES.contains(&kind.as_str()) {
        anyhow::bail!(
            "unknown type: {kind:?}: must be one of \"{}\"",
            ALL_TYPES.join("\", \"")
        );
    }
    let inspector = Inspector::new(args.format.as_deref().unwrap_or(""))?;
    let client = ctx.client().await?;
    let kinds: Vec<&str> = if kind.is_empty() {
        AUTODETECT.to_vec()
    } else {
        vec![kind.as_str()]
    };
    let mut results = Vec::new();
    for name in &args.args {
        let mut result = Err(no_such_object(name));
        for k in &kinds {
            match get_object(client, k, name, args.size).await {
                Err(e) if kind.is_empty() && skippable(&e) => continue,
                Ok(raw) => {
                    if args.size && *k != "container" {
                        eprintln!("WARNING: --size ignored for {k}");
                    }
                    result = Ok(raw);
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        results.push(result);
    }
    inspector.print(results)
}

/// Docker's `isErrSkippable`: look for the next kind of object.
fn skippable(e: &anyhow::Error) -> bool {
    let text = e.to_string();
    ApiError::is_not_found(e)
        || text.contains("not supported")
        || text.contains("invalid reference format")
}

/// `GET` of one object's JSON, untouched.
async fn get_object(client: &Client, kind: &str, name: &str, size: bool) -> Result<Bytes> {
    let escaped = crate::client::escape_path(name);
    match kind {
        "container" => {
            let path = format!("{}/json", crate::containers::user_path(name)?);
            let query = if size {
                vec![("size", "1".to_string())]
            } else {
                Vec::new()
            };
            client.get_raw(&path, &query).await
        }
        "image" => get_image(client, name, &[]).await,
        "network" => client.get_raw(&format!("/networks/{escaped}"), &[]).await,
        "volume" => client.get_raw(&format!("/volumes/{escaped}"), &[]).await,
        "plugin" => {
            client
                .get_raw(&format!("/plugins/{escaped}/json"), &[])
                .await
        }
        "service" => {
            let query = [("insertDefaults", "true".to_string())];
            client
                .get_raw(&format!("/services/{escaped}"), &query)
                .await
        }
        other => client.get_raw(&format!("/{other}s/{escaped}"), &[]).await,
    }
}

fn no_such_object(name: &str) -> anyhow::Error {
    anyhow::anyhow!("Error: No such object: {name}")
}

async fn get_image(client: &Client, name: &str, query: &[(&str, String)]) -> Result<Bytes> {
    let path = format!("/images/{}/json", crate::client::escape_path(name));
    client.get_raw(&path, query).await
}

/// Docker's `inspect.Inspect`: indented JSON array, compact JSON, or a
/// template per element; errors are collected and reported together.
pub enum Inspector {
    Indented,
    Json,
    Template(Template),
}

impl Inspector {
    pub fn new(format: &str) -> Result<Self> {
        Ok(match format {
            "" => Inspector::Indented,
            "json" => Inspector::Json,
            f => Inspector::Template(
                Template::parse("", f)
                    .map_err(|e| StatusError::fail(64, format!("template parsing error: {e}")))?,
            ),
        })
    }

    pub fn print(&self, results: Vec<Result<Bytes>>) -> Result<()> {
        let mut errors = Vec::new();
        let mut raws = Vec::new();
        let mut out = String::new();
        for result in results {
            let raw = match result {
                Ok(raw) => raw,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            match self {
                Inspector::Template(t) => match Value::from_json(&raw) {
                    Ok(value) => {
                        let opts = Options {
                            missing: MissingKey::Error,
                            header: false,
                        };
                        match t.execute(&value, opts) {
                            Ok(text) => {
                                out.push_str(&text);
                                out.push('\n');
                            }
                            Err(e) => errors.push(format!("template parsing error: {e}")),
                        }
                    }
                    Err(e) => errors.push(format!("unable to read inspect data: {e}")),
                },
                _ => raws.push(raw),
            }
        }
        let text = match self {
            Inspector::Template(_) if out.is_empty() => "\n".to_string(),
            Inspector::Template(_) => out,
            _ if raws.is_empty() => "[]\n".to_string(),
            _ => {
                let mut array = b"[".to_vec();
                for (i, raw) in raws.iter().enumerate() {
                    if i > 0 {
                        array.push(b',');
                    }
                    array.extend_from_slice(raw);
                }
                array.push(b']');
                match self {
                    Inspector::Json => json::compact(&array) + "\n",
                    _ => json::indent(&array, "    ") + "\n",
                }
            }
        };
        print!("{text}");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StatusError::fail(1, errors.join("\n")))
        }
    }
}
