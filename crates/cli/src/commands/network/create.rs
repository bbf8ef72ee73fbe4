//! `servin network create`: the flags become docker's `network.CreateRequest`
//! (subnets, ranges, gateways and aux addresses grouped per subnet as
//! docker's `createIPAMConfig` does, with its messages).

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::super::Ctx;
use super::{bad_flag, bool_flag, map_opts, post_json, string_slice};
use crate::opts::body::go_json;
use crate::usage::Usage;

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Enable manual container attachment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    attachable: Option<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "map")]
    aux_address: Vec<String>,
    /// The network from which to copy the configuration
    #[arg(
        long = "config-from",
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    config_from: String,
    /// Create a configuration only network
    #[arg(long = "config-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    config_only: Option<String>,
    /// Driver to manage the Network
    #[arg(short, long, value_name = "string", default_value = "bridge")]
    driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings")]
    gateway: Vec<String>,
    /// Create swarm routing-mesh network
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    ingress: Option<String>,
    /// Restrict external access to the network
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    internal: Option<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings")]
    ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", value_name = "string", default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "map")]
    ipam_opt: Vec<String>,
    /// Enable or disable IPv4 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    ipv4: Option<String>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    ipv6: Option<String>,
    /// Set metadata on a network
    #[arg(long, value_name = "list")]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long, value_name = "map")]
    opt: Vec<String>,
    /// Control the network's scope
    #[arg(
        long,
        value_name = "string",
        default_value = "",
        hide_default_value = true
    )]
    scope: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings")]
    subnet: Vec<String>,
    #[arg(value_name = "NETWORK")]
    args: Vec<String>,
}

/// Go's `network.CreateRequest`, fields in Go's order.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    pub driver: String,
    pub scope: String,
    #[serde(rename = "EnableIPv4", skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_only: bool,
    pub config_from: Option<ConfigReference>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub name: String,
    /// Sent as `true` to daemons older than API 1.44, as docker's client does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_duplicate: Option<bool>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    pub network: String,
}

/// Go's `network.IPAM`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamConfig>,
}

/// Go's `network.IPAMConfig`.
#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_address: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateResponse {
    #[serde(rename = "Id")]
    id: String,
}

/// Docker's `opts.ValidateLabel`.
fn validate_label(value: &str) -> Result<(), String> {
    let key = value.split_once('=').map_or(value, |(k, _)| k);
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{value}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(())
}

impl Args {
    /// The request docker would send for these flags (`modern`: the daemon
    /// speaks API 1.44 or later, which needs no `CheckDuplicate`).
    pub fn to_request(&self, usage: &Usage, modern: bool) -> Result<CreateRequest> {
        for label in &self.label {
            validate_label(label).map_err(|e| bad_flag(usage, "--label", label, e))?;
        }
        let internal = bool_flag(usage, "--internal", &self.internal)?;
        let attachable = bool_flag(usage, "--attachable", &self.attachable)?;
        let ingress = bool_flag(usage, "--ingress", &self.ingress)?;
        let config_only = bool_flag(usage, "--config-only", &self.config_only)?;
        let ipv4 = bool_flag(usage, "--ipv4", &self.ipv4)?;
        let ipv6 = bool_flag(usage, "--ipv6", &self.ipv6)?;
        let subnets = string_slice(usage, "--subnet", &self.subnet)?;
        let ranges = string_slice(usage, "--ip-range", &self.ip_range)?;
        let gateways = string_slice(usage, "--gateway", &self.gateway)?;
        usage.exact_args(&self.args, 1)?;
        let config = ipam_config(&subnets, &ranges, &gateways, &map_opts(&self.aux_address))
            .map_err(anyhow::Error::msg)?;
        Ok(CreateRequest {
            driver: self.driver.clone(),
            scope: self.scope.clone(),
            enable_ipv4: ipv4,
            enable_ipv6: ipv6,
            ipam: Ipam {
                driver: self.ipam_driver.clone(),
                options: map_opts(&self.ipam_opt),
                config,
            },
            internal: internal.unwrap_or(false),
            attachable: attachable.unwrap_or(false),
            ingress: ingress.unwrap_or(false),
            config_only: config_only.unwrap_or(false),
            config_from: (!self.config_from.is_empty()).then(|| ConfigReference {
                network: self.config_from.clone(),
            }),
            options: map_opts(&self.opt),
            labels: map_opts(&self.label),
            name: self.args[0].clone(),
            check_duplicate: (!modern).then_some(true),
        })
    }
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    // Flag and argument errors come before any connection, as in docker.
    args.to_request(usage, true)?;
    let client = ctx.client().await?;
    let body = args.to_request(usage, client.api_at_least(44))?;
    let raw = post_json(client, "/networks/create", go_json(&body)).await?;
    let resp: CreateResponse = crate::client::decode(&raw)?;
    println!("{}", resp.id);
    Ok(())
}

/// Go's `net.ParseCIDR`: the address as typed and its network, or
/// "invalid CIDR address: S".
fn parse_cidr(s: &str) -> Result<(IpAddr, IpAddr, u8), String> {
    let invalid = || format!("invalid CIDR address: {s}");
    let (addr, bits) = s.split_once('/').ok_or_else(invalid)?;
    let ip: IpAddr = addr.parse().map_err(|_| invalid())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let bits: u64 = bits.parse().map_err(|_| invalid())?;
    if bits > max {
        return Err(invalid());
    }
    Ok((ip, mask(ip, bits as u32), bits as u8))
}

fn mask(ip: IpAddr, bits: u32) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// Whether `ip` is in `net/bits`, treating IPv4-mapped IPv6 as IPv4 as Go's
/// `IPNet.Contains` does.
fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let (net, bits) = match net {
        IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), bits - 96),
            None => (net, bits),
        },
        _ => (net, bits),
    };
    let ip = ip.to_canonical();
    net.is_ipv4() == ip.is_ipv4() && mask(ip, bits.into()) == net
}

/// Docker's `subnetMatches`: whether `data` (an address, or a CIDR whose
/// address counts) lies in `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let (_, net, bits) = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        Some(parse_cidr(data)?.0)
    } else {
        data.parse::<IpAddr>().ok()
    };
    Ok(ip.is_some_and(|ip| contains(net, bits, ip)))
}

/// Docker's `createIPAMConfig`: one entry per subnet, in the order given,
/// with the range, gateway and aux addresses that fall in it.
pub fn ipam_config(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &BTreeMap<String, String>,
) -> Result<Vec<IpamConfig>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut data: Vec<IpamConfig> = Vec::new();
    for s in subnets {
        for k in &data {
            if subnet_matches(s, &k.subnet)? || subnet_matches(&k.subnet, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        data.push(IpamConfig {
            subnet: s.clone(),
            ..Default::default()
        });
    }
    for r in ranges {
        let mut matched = false;
        for entry in data.iter_mut() {
            parse_cidr(r)?;
            if !subnet_matches(&entry.subnet, r)? {
                continue;
            }
            if !entry.ip_range.is_empty() {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    entry.ip_range, entry.subnet
                ));
            }
            entry.ip_range = r.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        let mut matched = false;
        for entry in data.iter_mut() {
            if !subnet_matches(&entry.subnet, g)? {
                continue;
            }
            if !entry.gateway.is_empty() {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    entry.gateway, entry.subnet
                ));
            }
            entry.gateway = g.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, addr) in aux {
        let mut matched = false;
        for entry in data.iter_mut() {
            if subnet_matches(&entry.subnet, addr)? {
                entry.aux_address.insert(key.clone(), addr.clone());
                matched = true;
            }
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {addr}"));
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::NETWORK_CREATE;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    fn request(argv: &[&str], modern: bool) -> Result<String> {
        let cmd = Cmd::try_parse_from(std::iter::once("create").chain(argv.iter().copied()))?;
        Ok(go_json(&cmd.args.to_request(&NETWORK_CREATE, modern)?))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_create_body_is_dockers() {
        assert_eq!(
            request(&["n1"], true).unwrap(),
            r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"n1"}"#
        );
        // Daemons before API 1.44 are asked to refuse duplicate names.
        assert!(request(&["n1"], false)
            .unwrap()
            .ends_with(r#""Name":"n1","CheckDuplicate":true}"#));
    }

    #[test]
    fn every_flag_lands_in_the_body() {
        let body = request(
            &[
                "-d",
                "macvlan",
                "--subnet",
                "10.5.0.0/16,fd00:5::/64",
                "--ip-range=10.5.1.0/24",
                "--gateway",
                "10.5.0.254",
                "--aux-address",
                "host1=10.5.0.9",
                "--internal",
                "--attachable",
                "--ipv6",
                "--ipv4=false",
                "--label",
                "a=b",
                "--label",
                "flag",
                "-o",
                "com.docker.network.bridge.name=br9",
                "--ipam-opt",
                "k=v",
                "--ipam-driver",
                "other",
                "--scope",
                "local",
                "--config-from",
                "base",
                "--config-only",
                "n2",
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            body,
            r#"{"Driver":"macvlan","Scope":"local","EnableIPv4":false,"EnableIPv6":true,"IPAM":{"Driver":"other","Options":{"k":"v"},"Config":[{"Subnet":"10.5.0.0/16","IPRange":"10.5.1.0/24","Gateway":"10.5.0.254","AuxiliaryAddresses":{"host1":"10.5.0.9"}},{"Subnet":"fd00:5::/64"}]},"Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":true,"ConfigFrom":{"Network":"base"},"Options":{"com.docker.network.bridge.name":"br9"},"Labels":{"a":"b","flag":""},"Name":"n2"}"#
        );
    }

    #[test]
    fn ipam_errors_are_dockers() {
        let none = BTreeMap::new();
        let e = |s: &[&str], r: &[&str], g: &[&str]| {
            ipam_config(&strings(s), &strings(r), &strings(g), &none).unwrap_err()
        };
        assert_eq!(
            e(&[], &[], &["10.0.0.1"]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            e(&["10.0.0.0/8", "10.1.0.0/16"], &[], &[]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            e(&["10.1.0.0/16"], &["10.2.0.0/24"], &[]),
            "no matching subnet for range 10.2.0.0/24"
        );
        assert_eq!(
            e(&["10.1.0.0/16"], &["bogus"], &[]),
            "invalid CIDR address: bogus"
        );
        assert_eq!(
            e(&["10.1.0.0/16"], &[], &["10.9.0.1"]),
            "no matching subnet for gateway 10.9.0.1"
        );
        assert_eq!(
            e(&["bogus"], &[], &["10.9.0.1"]),
            "invalid subnet: invalid CIDR address: bogus"
        );
        assert_eq!(
            e(&["10.1.0.0/33"], &[], &["10.1.0.1"]),
            "invalid subnet: invalid CIDR address: 10.1.0.0/33"
        );
        assert_eq!(
            e(
                &["10.1.0.0/16", "10.2.0.0/16"],
                &["10.1.1.0/24", "10.1.2.0/24"],
                &[]
            ),
            "cannot configure multiple ranges (10.1.2.0/24, 10.1.1.0/24) on the same subnet (10.1.0.0/16)"
        );
        let aux = BTreeMap::from([("h".to_string(), "10.9.0.1".to_string())]);
        assert_eq!(
            ipam_config(&strings(&["10.1.0.0/16"]), &[], &[], &aux).unwrap_err(),
            "no matching subnet for aux-address 10.9.0.1"
        );
        // One subnet alone is the daemon's to judge.
        assert_eq!(
            ipam_config(&strings(&["bogus"]), &[], &[], &none).unwrap()[0].subnet,
            "bogus"
        );
    }

    #[test]
    fn addresses_match_subnets_as_go() {
        assert!(subnet_matches("10.0.0.0/8", "10.1.2.3").unwrap());
        assert!(subnet_matches("10.0.0.0/8", "10.1.0.0/16").unwrap());
        assert!(subnet_matches("10.0.0.0/8", "::ffff:10.1.2.3").unwrap());
        assert!(!subnet_matches("10.0.0.0/8", "11.0.0.1").unwrap());
        assert!(!subnet_matches("10.0.0.0/8", "not-an-ip").unwrap());
        assert!(subnet_matches("fd00::/64", "fd00::1").unwrap());
        assert!(!subnet_matches("fd00::/64", "10.0.0.1").unwrap());
        assert!(subnet_matches("0.0.0.0/0", "1.2.3.4").unwrap());
    }

    #[test]
    fn flag_errors_before_argument_count() {
        let e = request(&["--label", " =x", "n"], true).unwrap_err();
        assert!(e.to_string().starts_with(
            "invalid argument \" =x\" for \"--label\" flag: invalid label ' =x': empty name\n"
        ));
        let e = request(&["--label", "a b=x"], true).unwrap_err();
        assert!(e.to_string().starts_with(
            "invalid argument \"a b=x\" for \"--label\" flag: label 'a b' contains whitespaces\n"
        ));
        let e = request(&[], true).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("servin: 'servin network create' requires 1 argument\n"));
        assert!(request(&["a", "b"], true).is_err());
    }
}
