//! `servin volume create`.

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Method;
use serde::Serialize;
use std::collections::BTreeMap;

use super::super::Ctx;
use super::Volume;
use crate::opts::body::go_json;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Specify volume driver name
    #[arg(short, long, value_name = "string", default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long, value_name = "list")]
    label: Vec<String>,
    /// Specify volume name
    #[arg(long, value_name = "string", hide = true)]
    name: Option<String>,
    /// Set driver specific options
    #[arg(short, long, value_name = "map")]
    opt: Vec<String>,
    #[arg(value_name = "VOLUME")]
    args: Vec<String>,
}

/// Go's `volume.CreateOptions`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    driver: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
}

fn kv(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.max_args(&args.args, 1)?;
    let mut name = args.name.clone().unwrap_or_default();
    if let Some(positional) = args.args.first() {
        if !name.is_empty() {
            anyhow::bail!("conflicting options: cannot specify a volume-name through both --name and as a positional arg");
        }
        name = positional.clone();
    }
    let body = CreateOptions {
        driver: args.driver.clone(),
        driver_opts: kv(&args.opt),
        labels: kv(&args.label),
        name,
    };
    let client = ctx.client().await?;
    let resp = client
        .request(
            Method::POST,
            "/volumes/create",
            &[],
            &[("Content-Type", "application/json")],
            Full::new(Bytes::from(go_json(&body)))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .await?;
    let raw = resp.into_body().collect().await?.to_bytes();
    let vol: Volume = crate::client::decode(&raw)?;
    println!("{}", vol.name);
    Ok(())
}
