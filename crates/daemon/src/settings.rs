//! The daemon's settings: flags over environment over the TOML config
//! file, resolved once into typed values.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Deserialize;

pub const DEFAULT_DATA_ROOT: &str = "/var/lib/servin";
pub const DEFAULT_HOST: &str = "unix:///run/servin/servin.sock";
/// Debian's static `tini` (package `tini`): what `--init` runs by default.
pub const DEFAULT_INIT_PATH: &str = "/usr/bin/tini-static";

#[derive(Debug, clap::Parser)]
#[command(
    name = "servind",
    version,
    about = "Servin engine daemon: the Docker Engine API on a unix socket"
)]
pub struct Args {
    /// Root of persistent state.
    #[arg(long, env = "SERVIN_DATA_ROOT")]
    pub data_root: Option<PathBuf>,
    /// Socket(s) to listen on (unix:///path; vsock://:PORT inside a VM guest).
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Where containers run: native, vm, or auto.
    #[arg(long, value_parser = ["native", "vm", "auto"])]
    pub mode: Option<String>,
    /// Registry reached over plain HTTP (host[:port]); loopback ones always are.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, short = 'l')]
    pub log_level: Option<String>,
    /// Init binary for containers run with --init.
    #[arg(long, env = "SERVIN_INIT_PATH")]
    pub init_path: Option<PathBuf>,
    /// TOML settings file (default DATA_ROOT/servind.toml when present).
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Address that reaches the host's loopback (in a VM guest): loopback
    /// registries (127.0.0.1:PORT, localhost:PORT) are reached there.
    #[arg(long)]
    pub host_gateway: Option<std::net::IpAddr>,
    /// Published host addresses are another machine's (this engine is the
    /// guest of Servin's VM, whose host listens on them): an address this
    /// machine lacks is accepted, and the port is held on every address.
    #[arg(long)]
    pub published_elsewhere: bool,
    /// nftables table for NAT, published ports and isolation (default
    /// `servin`).
    #[arg(long)]
    pub nft_table: Option<String>,
    /// Bridges are PREFIX0 (the default network) and PREFIX-ID (default
    /// `servin`).
    #[arg(long)]
    pub bridge_prefix: Option<String>,
    /// Host ends of containers' veth pairs are PREFIX… (default `veth`).
    #[arg(long)]
    pub veth_prefix: Option<String>,
    /// The default bridge network's subnet, CIDR (Docker's `--bip`);
    /// default: the first free of Docker's pools, 172.17.0.0/16 first.
    #[arg(long)]
    pub bip: Option<String>,
    /// The MTU of the default bridge's container interfaces (Docker's
    /// `--mtu`).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Whether containers on the default bridge reach each other (Docker's
    /// `--icc`).
    #[arg(long, value_name = "BOOL")]
    pub icc: Option<bool>,
    /// Outbound NAT for the default bridge (Docker's `--ip-masq`).
    #[arg(long, value_name = "BOOL")]
    pub ip_masq: Option<bool>,
    /// The host address of ports published without one (Docker's `--ip`).
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
}

/// The optional TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    hosts: Option<Vec<String>>,
    mode: Option<String>,
    insecure_registries: Option<Vec<String>>,
    log_level: Option<String>,
    init_path: Option<PathBuf>,
    nft_table: Option<String>,
    bridge_prefix: Option<String>,
    veth_prefix: Option<String>,
    bip: Option<String>,
    mtu: Option<u32>,
    icc: Option<bool>,
    ip_masq: Option<bool>,
    ip: Option<std::net::Ipv4Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Native,
    Vm,
    Auto,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_root: PathBuf,
    pub sockets: Vec<PathBuf>,
    /// vsock ports to serve on (`-H vsock://:PORT`).
    pub vsock_ports: Vec<u32>,
    pub mode: Mode,
    pub insecure_registries: Vec<String>,
    pub log_level: String,
    pub host_gateway: Option<std::net::IpAddr>,
    pub init_path: PathBuf,
    /// Container networking (native mode).
    pub network: servin_engine::NetworkConfig,
}

impl Settings {
    pub fn resolve(args: Args) -> anyhow::Result<Self> {
        let data_root = args
            .data_root
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT));
        let file_path = args
            .config_file
            .clone()
            .unwrap_or_else(|| data_root.join("servind.toml"));
        let file: FileSettings = match std::fs::read_to_string(&file_path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("Invalid settings file {}", file_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.config_file.is_none() => {
                FileSettings::default()
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("Cannot read settings file {}", file_path.display()))
            }
        };
        let hosts = if !args.hosts.is_empty() {
            args.hosts
        } else if let Some(h) = file.hosts {
            h
        } else {
            vec![DEFAULT_HOST.to_string()]
        };
        let mut sockets = Vec::new();
        let mut vsock_ports = Vec::new();
        for h in &hosts {
            if let Some(p) = h.strip_prefix("vsock://") {
                vsock_ports.push(parse_vsock_port(h, p)?);
            } else if let Some(p) = h.strip_prefix("unix://") {
                if p.is_empty() {
                    bail!("Invalid host {h:?}: the unix socket path is empty");
                }
                sockets.push(PathBuf::from(p));
            } else if h.starts_with("tcp://") {
                bail!(
                    "Refusing to listen on {h}: tcp:// needs TLS, which servind does not serve yet"
                );
            } else {
                bail!("Invalid host {h:?}: expected unix:///path/to/socket");
            }
        }
        let mode = match args.mode.or(file.mode).as_deref() {
            None | Some("auto") => Mode::Auto,
            Some("native") => Mode::Native,
            Some("vm") => Mode::Vm,
            Some(other) => bail!("Invalid mode {other:?}: expected native, vm or auto"),
        };
        let mut network = servin_engine::NetworkConfig::new(&data_root);
        network.published_elsewhere = args.published_elsewhere;
        if let Some(t) = args.nft_table.or(file.nft_table) {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!("Invalid nft table name {t:?}: use letters, digits and '_'");
            }
            network.table = t;
        }
        if let Some(p) = args.bridge_prefix.or(file.bridge_prefix) {
            if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bail!("Invalid bridge prefix {p:?}: 1 to 10 letters or digits");
            }
            network.bridge_prefix = p;
        }
        if let Some(p) = args.veth_prefix.or(file.veth_prefix) {
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bail!("Invalid veth prefix {p:?}: 1 to 9 letters or digits");
            }
            network.veth_prefix = p;
        }
        if let Some(b) = args.bip.or(file.bip) {
            let net: servin_engine::NetworkSubnet = b
                .parse()
                .with_context(|| format!("Invalid --bip {b:?}: expected an IPv4 CIDR"))?;
            network.default_subnet = Some(net.trunc());
        }
        let bridge_opts = [
            (
                "com.docker.network.driver.mtu",
                args.mtu.or(file.mtu).map(|m| m.to_string()),
            ),
            (
                "com.docker.network.bridge.enable_icc",
                args.icc.or(file.icc).map(|b| b.to_string()),
            ),
            (
                "com.docker.network.bridge.enable_ip_masquerade",
                args.ip_masq.or(file.ip_masq).map(|b| b.to_string()),
            ),
            (
                "com.docker.network.bridge.host_binding_ipv4",
                args.ip.or(file.ip).map(|ip| ip.to_string()),
            ),
        ];
        for (key, value) in bridge_opts {
            if let Some(v) = value {
                network.default_bridge_options.insert(key.to_string(), v);
            }
        }
        // Refused here: at network start a bad value would leave the
        // daemon running with loopback-only containers.
        servin_network::BridgeOptions::from(&network.default_bridge_options)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut insecure_registries = file.insecure_registries.unwrap_or_default();
        insecure_registries.extend(args.insecure_registries);
        Ok(Self {
            data_root,
            sockets,
            vsock_ports,
            mode,
            insecure_registries,
            log_level: args
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            host_gateway: args.host_gateway,
            init_path: args
                .init_path
                .or(file.init_path)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_INIT_PATH)),
            network,
        })
    }

    pub fn engine_config(&self) -> servin_engine::EngineConfig {
        servin_engine::EngineConfig {
            data_root: self.data_root.clone(),
            registries: servin_image::RegistryConfig {
                insecure: self.insecure_registries.clone(),
                host_gateway: self.host_gateway,
                ..Default::default()
            },
            shim_binary: shim_binary(),
            init_path: self.init_path.clone(),
            build: servin_engine::BuildInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                git_commit: option_env!("SERVIN_GIT_COMMIT")
                    .unwrap_or("unknown")
                    .to_string(),
            },
        }
    }
}

/// The port of `vsock://:PORT` (any CID: the guest serves whoever
/// connects through the VM's vsock device).
fn parse_vsock_port(host: &str, rest: &str) -> anyhow::Result<u32> {
    let port = rest.strip_prefix(':').unwrap_or(rest);
    if !cfg!(target_os = "linux") {
        bail!("Invalid host {host:?}: vsock listeners exist on Linux only");
    }
    port.parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("Invalid host {host:?}: expected vsock://:PORT"))
}

/// `servin-shim` next to this executable (`SERVIN_SHIM` overrides).
fn shim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SERVIN_SHIM") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("servin-shim")))
        .unwrap_or_else(|| PathBuf::from("servin-shim"))
}
