//! `servin network rm`: each network in turn; failures are reported as they
//! happen and make the exit status 1 (docker prints "exit status 1" last).

use anyhow::Result;
use http_body_util::BodyExt as _;
use hyper::Method;
use serde::Deserialize;

use super::super::{confirm, Ctx};
use super::{network_path, trim_id};
use crate::client::{empty_body, ApiError, Client};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(value_name = "NETWORK")]
    args: Vec<String>,
}

const INGRESS_WARNING: &str = "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue?";

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ingress {
    ingress: bool,
}

/// Whether the network is a swarm's routing mesh (never on Servin, but a
/// Docker daemon may have one).
async fn is_ingress(client: &Client, name: &str) -> bool {
    let Ok(id) = trim_id("network", name) else {
        return false;
    };
    match client.get_raw(&network_path(&id), &[]).await {
        Ok(raw) => crate::client::decode::<Ingress>(&raw).is_ok_and(|n| n.ingress),
        Err(_) => false,
    }
}

async fn remove(client: &Client, name: &str) -> Result<()> {
    let id = trim_id("network", name)?;
    let resp = client
        .request(Method::DELETE, &network_path(&id), &[], &[], empty_body())
        .await?;
    resp.into_body().collect().await?;
    Ok(())
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let client = ctx.client().await?;
    let mut failed = false;
    for name in &args.args {
        if is_ingress(client, name).await && !confirm(INGRESS_WARNING)? {
            continue;
        }
        match remove(client, name).await {
            Ok(()) => println!("{name}"),
            Err(e) if args.force && ApiError::is_not_found(&e) => {}
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(StatusError::fail(1, "exit status 1"));
    }
    Ok(())
}
