//! `servin port`: a container's published ports.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::Ctx;
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_name = "CONTAINER [PRIVATE_PORT[/PROTO]]")]
    args: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Inspect {
    #[serde(rename = "NetworkSettings")]
    network_settings: NetworkSettings,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetworkSettings {
    #[serde(rename = "Ports")]
    ports: Option<BTreeMap<String, Option<Vec<Binding>>>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Binding {
    #[serde(rename = "HostIp")]
    host_ip: String,
    #[serde(rename = "HostPort")]
    host_port: String,
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.range_args(&args.args, 1, 2)?;
    let client = ctx.client().await?;
    let raw = containers::inspect_raw(client, &args.args[0]).await?;
    let c: Inspect = crate::client::decode(&raw)?;
    let ports = c.network_settings.ports.unwrap_or_default();
    let out = match args.args.get(1) {
        Some(wanted) => {
            let (port, proto) = wanted.split_once('/').unwrap_or((wanted, ""));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            if port.parse::<u16>().is_err() {
                anyhow::bail!(
                    "Error: invalid port ({port}): strconv.ParseUint: parsing {port:?}: {}",
                    if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
                        "value out of range"
                    } else {
                        "invalid syntax"
                    }
                );
            }
            let frontends = ports
                .get(&format!("{port}/{proto}"))
                .cloned()
                .flatten()
                .unwrap_or_default();
            if frontends.is_empty() {
                anyhow::bail!(
                    "Error: No public port '{wanted}' published for {}",
                    args.args[0]
                );
            }
            frontends
                .iter()
                .map(|f| join_host_port(&f.host_ip, &f.host_port))
                .collect()
        }
        None => ports
            .iter()
            .flat_map(|(from, frontends)| {
                frontends
                    .iter()
                    .flatten()
                    .map(move |f| format!("{from} -> {}", join_host_port(&f.host_ip, &f.host_port)))
            })
            .collect::<Vec<_>>(),
    };
    let mut out = out;
    out.sort_by(|a, b| crate::format::natural_cmp(a, b));
    if !out.is_empty() {
        println!("{}", out.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_and_hosts() {
        let mut v = vec![
            "9000/udp -> 0.0.0.0:9000",
            "80/tcp -> 0.0.0.0:8080",
            "443/tcp -> [::]:8443",
        ];
        v.sort_by(|a, b| crate::format::natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "80/tcp -> 0.0.0.0:8080",
                "443/tcp -> [::]:8443",
                "9000/udp -> 0.0.0.0:9000"
            ]
        );
        assert_eq!(join_host_port("::", "80"), "[::]:80");
    }
}
