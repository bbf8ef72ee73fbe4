//! `servin network connect` and `servin network disconnect`.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::super::Ctx;
use super::{bad_flag, network_path, post_json, string_slice, trim_id};
use crate::opts::body::go_json;
use crate::opts::units::parse_int;
use crate::usage::Usage;

#[derive(clap::Args, Debug, Default)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings")]
    alias: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_name = "strings")]
    driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(long = "gw-priority", value_name = "int", allow_hyphen_values = true)]
    gw_priority: Option<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    ip: String,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    ip6: String,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_name = "strings")]
    link_local_ip: Vec<String>,
    #[arg(value_name = "NETWORK CONTAINER")]
    args: Vec<String>,
}

#[derive(clap::Args, Debug, Default)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    #[arg(value_name = "NETWORK CONTAINER")]
    args: Vec<String>,
}

/// Go's `network.ConnectOptions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectRequest {
    pub container: String,
    pub endpoint_config: EndpointSettings,
}

/// Go's `network.EndpointSettings` as docker's `network connect` fills it
/// (the operational fields are sent empty, as Go does).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: EndpointIpamConfig,
    pub links: Option<Vec<String>>,
    pub aliases: Vec<String>,
    pub mac_address: String,
    pub driver_opts: BTreeMap<String, String>,
    pub gw_priority: i64,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

#[derive(Debug, Default, Serialize)]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
}

/// Go's `network.DisconnectOptions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisconnectRequest {
    pub container: String,
    pub force: bool,
}

/// Docker's `opts.ValidateLink` (`name` or `name:alias`).
fn validate_link(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("empty string specified for links".into());
    }
    if value.split(':').count() > 2 {
        return Err(format!("bad format for links: {value}"));
    }
    Ok(())
}

/// Docker's `convertDriverOpt`.
fn driver_opts(values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for v in values {
        let (k, val) = v.split_once('=').unwrap_or((v, ""));
        let k = k.trim();
        if !v.contains('=') || k.is_empty() {
            return Err("invalid key/value pair format in driver options".into());
        }
        out.insert(k.to_string(), val.trim().to_string());
    }
    Ok(out)
}

impl ConnectArgs {
    /// The network, and the request docker would send for these flags.
    pub fn to_request(&self, usage: &Usage) -> Result<(String, ConnectRequest)> {
        for link in &self.link {
            validate_link(link).map_err(|e| bad_flag(usage, "--link", link, e))?;
        }
        let gw_priority = match &self.gw_priority {
            Some(v) => parse_int(v, 64).map_err(|e| bad_flag(usage, "--gw-priority", v, e))?,
            None => 0,
        };
        let aliases = string_slice(usage, "--alias", &self.alias)?;
        let link_local_ips = string_slice(usage, "--link-local-ip", &self.link_local_ip)?;
        let opts = string_slice(usage, "--driver-opt", &self.driver_opt)?;
        usage.exact_args(&self.args, 2)?;
        let driver_opts = driver_opts(&opts).map_err(anyhow::Error::msg)?;
        let network = trim_id("network", &self.args[0])?;
        let container = trim_id("container", &self.args[1])?;
        let endpoint_config = EndpointSettings {
            ipam_config: EndpointIpamConfig {
                ipv4_address: self.ip.clone(),
                ipv6_address: self.ip6.clone(),
                link_local_ips,
            },
            links: (!self.link.is_empty()).then(|| self.link.clone()),
            aliases,
            driver_opts,
            gw_priority,
            ..Default::default()
        };
        Ok((
            network,
            ConnectRequest {
                container,
                endpoint_config,
            },
        ))
    }
}

pub async fn run_connect(ctx: &Ctx, usage: &Usage, args: ConnectArgs) -> Result<()> {
    let (network, body) = args.to_request(usage)?;
    let client = ctx.client().await?;
    let path = format!("{}/connect", network_path(&network));
    post_json(client, &path, go_json(&body)).await?;
    Ok(())
}

pub async fn run_disconnect(ctx: &Ctx, usage: &Usage, args: DisconnectArgs) -> Result<()> {
    usage.exact_args(&args.args, 2)?;
    let network = trim_id("network", &args.args[0])?;
    let container = trim_id("container", &args.args[1])?;
    let client = ctx.client().await?;
    let path = format!("{}/disconnect", network_path(&network));
    let body = DisconnectRequest {
        container,
        force: args.force,
    };
    post_json(client, &path, go_json(&body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::NETWORK_CONNECT;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        args: ConnectArgs,
    }

    fn request(argv: &[&str]) -> Result<(String, String)> {
        let cmd = Cmd::try_parse_from(std::iter::once("connect").chain(argv.iter().copied()))?;
        let (net, body) = cmd.args.to_request(&NETWORK_CONNECT)?;
        Ok((net, go_json(&body)))
    }

    #[test]
    fn plain_connect_body_is_dockers() {
        let (net, body) = request(&[" n1 ", "c1"]).unwrap();
        assert_eq!(net, "n1");
        assert_eq!(
            body,
            r#"{"Container":"c1","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":[],"MacAddress":"","DriverOpts":{},"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#
        );
    }

    #[test]
    fn flags_land_in_the_endpoint() {
        let (_, body) = request(&[
            "--alias",
            "a1,a2",
            "--alias=a3",
            "--ip",
            "10.9.0.5",
            "--ip6",
            "fd00::5",
            "--link",
            "other:o",
            "--link-local-ip",
            "169.254.0.5",
            "--driver-opt",
            " k = v ",
            "--gw-priority",
            "-3",
            "n",
            "c",
        ])
        .unwrap();
        assert_eq!(
            body,
            r#"{"Container":"c","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.9.0.5","IPv6Address":"fd00::5","LinkLocalIPs":["169.254.0.5"]},"Links":["other:o"],"Aliases":["a1","a2","a3"],"MacAddress":"","DriverOpts":{"k":"v"},"GwPriority":-3,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}"#
        );
    }

    #[test]
    fn bad_input_is_refused_as_docker_does() {
        let msg = |argv: &[&str]| request(argv).unwrap_err().to_string();
        assert!(msg(&["--link", "a:b:c", "n", "c"]).starts_with(
            "invalid argument \"a:b:c\" for \"--link\" flag: bad format for links: a:b:c\n"
        ));
        assert!(msg(&["--gw-priority", "x", "n", "c"]).starts_with(
            "invalid argument \"x\" for \"--gw-priority\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n"
        ));
        assert_eq!(
            msg(&["--driver-opt", "novalue", "n", "c"]),
            "invalid key/value pair format in driver options"
        );
        assert!(msg(&["n"]).starts_with("servin: 'servin network connect' requires 2 arguments\n"));
        assert_eq!(
            msg(&["n", " "]),
            "invalid container name or ID: value is empty"
        );
    }
}
