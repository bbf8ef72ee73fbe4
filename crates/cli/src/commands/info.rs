//! `servin info`.

use anyhow::Result;
use base64::Engine as _;

use super::Ctx;
use crate::format::bytes_size;
use crate::format::json::{StructValue, Value};
use crate::template::{print_value, Options, Template};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(hide = true)]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let format = args.format.unwrap_or_default();
    let server = match ctx.client().await {
        Ok(client) => client
            .get_raw("/info", &[])
            .await
            .and_then(|raw| Ok(Value::from_json(&raw)?)),
        Err(e) => Err(e),
    };
    if format.is_empty() {
        print!("{}", client_text());
        println!();
        println!("Server:");
        let info = server?;
        let (text, warnings) = server_text(&info);
        print!("{text}");
        for w in warnings {
            eprintln!("{w}");
        }
        return Ok(());
    }
    let format = if format == "json" {
        "{{json .}}".to_string()
    } else {
        format
    };
    let tmpl = Template::parse("", &format)
        .map_err(|e| StatusError::fail(64, format!("template parsing error: {e}")))?;
    let mut fields = match server? {
        Value::Object(fields) => fields,
        _ => Vec::new(),
    };
    fields.push(("ClientInfo".into(), client_info()));
    let data = Value::Struct(Box::new(StructValue {
        type_name: "system.dockerInfo",
        fields,
        sorted_json: false,
        json: None,
    }));
    let result = tmpl.execute(&data, Options::default());
    println!("{}", result.as_deref().unwrap_or(""));
    result.map(|_| ()).map_err(anyhow::Error::msg)
}

fn client_info() -> Value {
    Value::Object(vec![
        ("Debug".into(), Value::Bool(false)),
        ("Version".into(), Value::str(env!("CARGO_PKG_VERSION"))),
        (
            "DefaultAPIVersion".into(),
            Value::String(bollard::API_DEFAULT_VERSION.to_string()),
        ),
        ("Os".into(), Value::str(std::env::consts::OS)),
        ("Arch".into(), Value::str(super::version::go_arch())),
        ("Context".into(), Value::str("default")),
        ("Plugins".into(), Value::Array(Vec::new())),
        ("Warnings".into(), Value::Null),
    ])
}

fn client_text() -> String {
    format!(
        "Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => print_value(other),
    }
}

fn num(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

fn flag(v: &Value, key: &str) -> bool {
    matches!(v.get(key), Some(Value::Bool(true)))
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    match v.get(key) {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

fn words(v: &Value, key: &str) -> String {
    list(v, key)
        .iter()
        .map(print_value)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Docker's `prettyPrintServerInfo`; returns the text and the warnings.
fn server_text(info: &Value) -> (String, Vec<String>) {
    let mut o = Lines::default();
    o.line(format!(" Containers: {}", num(info, "Containers")));
    o.line(format!("  Running: {}", num(info, "ContainersRunning")));
    o.line(format!("  Paused: {}", num(info, "ContainersPaused")));
    o.line(format!("  Stopped: {}", num(info, "ContainersStopped")));
    o.line(format!(" Images: {}", num(info, "Images")));
    o.non_empty(" Server Version:", text(info, "ServerVersion"));
    o.non_empty(" Storage Driver:", text(info, "Driver"));
    for pair in list(info, "DriverStatus") {
        o.line(format!("  {}", pair_text(pair)));
    }
    for pair in list(info, "SystemStatus") {
        o.line(format!(" {}", pair_text(pair)));
    }
    o.non_empty(" Logging Driver:", text(info, "LoggingDriver"));
    o.non_empty(" Cgroup Driver:", text(info, "CgroupDriver"));
    o.non_empty(" Cgroup Version:", text(info, "CgroupVersion"));
    let plugins = info
        .get("Plugins")
        .cloned()
        .unwrap_or(Value::Object(Vec::new()));
    o.line(" Plugins:");
    o.line(format!("  Volume: {}", words(&plugins, "Volume")));
    o.line(format!("  Network: {}", words(&plugins, "Network")));
    if !list(&plugins, "Authorization").is_empty() {
        o.line(format!(
            "  Authorization: {}",
            words(&plugins, "Authorization")
        ));
    }
    o.line(format!("  Log: {}", words(&plugins, "Log")));
    if !list(info, "CDISpecDirs").is_empty() {
        o.line(" CDI spec directories:");
        for dir in list(info, "CDISpecDirs") {
            o.line(format!("  {}", print_value(dir)));
        }
    }
    if !list(info, "DiscoveredDevices").is_empty() {
        o.line(" Discovered Devices:");
        for d in list(info, "DiscoveredDevices") {
            o.line(format!("  {}: {}", text(d, "Source"), text(d, "ID")));
        }
    }
    let swarm = info
        .get("Swarm")
        .cloned()
        .unwrap_or(Value::Object(Vec::new()));
    let state = text(&swarm, "LocalNodeState");
    o.line(format!(" Swarm: {state}"));
    if !state.is_empty() && state != "inactive" && state != "locked" {
        o.line(format!("  NodeID: {}", text(&swarm, "NodeID")));
        o.non_empty("  Error:", text(&swarm, "Error"));
        o.line(format!(
            "  Is Manager: {}",
            flag(&swarm, "ControlAvailable")
        ));
        o.line(format!("  Node Address: {}", text(&swarm, "NodeAddr")));
    }
    if let Some(Value::Object(runtimes)) = info
        .get("Runtimes")
        .filter(|r| matches!(r, Value::Object(f) if !f.is_empty()))
    {
        let mut names: Vec<&str> = runtimes.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        o.line(format!(" Runtimes: {}", names.join(" ")));
        o.line(format!(
            " Default Runtime: {}",
            text(info, "DefaultRuntime")
        ));
    }
    let commit = |key: &str| info.get(key).map(|c| text(c, "ID")).unwrap_or_default();
    if text(info, "OSType") == "linux" {
        o.line(format!(" Init Binary: {}", text(info, "InitBinary")));
        o.line(format!(
            " containerd version: {}",
            commit("ContainerdCommit")
        ));
        o.line(format!(" runc version: {}", commit("RuncCommit")));
        o.line(format!(" init version: {}", commit("InitCommit")));
        let security = list(info, "SecurityOptions");
        if !security.is_empty() {
            o.line(" Security Options:");
            for so in security {
                let (name, options) = decode_security_option(&print_value(so));
                o.line(format!("  {name}"));
                for (k, v) in options {
                    if k == "profile" {
                        o.line(format!("   Profile: {v}"));
                    }
                }
            }
        }
    }
    if text(info, "OSType") == "windows" {
        o.line(format!(" Default Isolation: {}", text(info, "Isolation")));
    }
    o.non_empty(" Kernel Version:", text(info, "KernelVersion"));
    o.non_empty(" Operating System:", text(info, "OperatingSystem"));
    o.non_empty(" OSType:", text(info, "OSType"));
    o.non_empty(" Architecture:", text(info, "Architecture"));
    o.line(format!(" CPUs: {}", num(info, "NCPU")));
    let mem = info.get("MemTotal").and_then(|m| match m {
        Value::Number(n) => n.as_f64(),
        _ => None,
    });
    o.line(format!(" Total Memory: {}", bytes_size(mem.unwrap_or(0.0))));
    o.non_empty(" Name:", text(info, "Name"));
    o.non_empty(" ID:", text(info, "ID"));
    o.line(format!(" Docker Root Dir: {}", text(info, "DockerRootDir")));
    o.line(format!(" Debug Mode: {}", flag(info, "Debug")));
    if flag(info, "Debug") {
        o.line(format!("  File Descriptors: {}", num(info, "NFd")));
        o.line(format!("  Goroutines: {}", num(info, "NGoroutines")));
        o.line(format!("  System Time: {}", text(info, "SystemTime")));
        o.line(format!(
            "  EventsListeners: {}",
            num(info, "NEventsListener")
        ));
    }
    o.non_empty(" HTTP Proxy:", text(info, "HttpProxy"));
    o.non_empty(" HTTPS Proxy:", text(info, "HttpsProxy"));
    o.non_empty(" No Proxy:", text(info, "NoProxy"));
    if !list(info, "Labels").is_empty() {
        o.line(" Labels:");
        for l in list(info, "Labels") {
            o.line(format!("  {}", print_value(l)));
        }
    }
    o.line(format!(
        " Experimental: {}",
        flag(info, "ExperimentalBuild")
    ));
    if let Some(reg) = info
        .get("RegistryConfig")
        .filter(|r| matches!(r, Value::Object(_)))
    {
        let cidrs = list(reg, "InsecureRegistryCIDRs");
        let mut indexes: Vec<&(String, Value)> = match reg.get("IndexConfigs") {
            Some(Value::Object(f)) => f.iter().collect(),
            _ => Vec::new(),
        };
        if !cidrs.is_empty() || !indexes.is_empty() {
            o.line(" Insecure Registries:");
            indexes.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, index) in indexes {
                if !flag(index, "Secure") {
                    o.line(format!("  {}", text(index, "Name")));
                }
            }
            for cidr in cidrs {
                o.line(format!("  {}", cidr_text(cidr)));
            }
        }
        if !list(reg, "Mirrors").is_empty() {
            o.line(" Registry Mirrors:");
            for m in list(reg, "Mirrors") {
                o.line(format!("  {}", print_value(m)));
            }
        }
    }
    o.line(format!(
        " Live Restore Enabled: {}",
        flag(info, "LiveRestoreEnabled")
    ));
    o.non_empty(" Product License:", text(info, "ProductLicense"));
    if !list(info, "DefaultAddressPools").is_empty() {
        o.line(" Default Address Pools:");
        for p in list(info, "DefaultAddressPools") {
            o.line(format!(
                "   Base: {}, Size: {}",
                text(p, "Base"),
                num(p, "Size")
            ));
        }
    }
    o.line("");
    let warnings = list(info, "Warnings").iter().map(print_value).collect();
    (o.0, warnings)
}

#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }

    /// Docker's `fprintlnNonEmpty`.
    fn non_empty(&mut self, label: &str, value: String) {
        if !value.is_empty() {
            self.line(format!("{label} {value}"));
        }
    }
}

fn pair_text(pair: &Value) -> String {
    match pair {
        Value::Array(kv) if kv.len() >= 2 => {
            format!("{}: {}", print_value(&kv[0]), print_value(&kv[1]))
        }
        other => print_value(other),
    }
}

/// `name=seccomp,profile=default` → ("seccomp", [("profile", "default")]).
fn decode_security_option(opt: &str) -> (String, Vec<(String, String)>) {
    if !opt.contains('=') {
        return (opt.to_string(), Vec::new());
    }
    let mut name = String::new();
    let mut options = Vec::new();
    for kv in opt.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k == "name" {
            name = v.to_string();
        } else {
            options.push((k.to_string(), v.to_string()));
        }
    }
    (name, options)
}

/// An insecure-registry CIDR: a string, or Go's `net.IPNet` JSON
/// (`{"IP":"127.0.0.0","Mask":"/wAAAA=="}`).
fn cidr_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        obj => {
            let ip = text(obj, "IP");
            let ones: u32 = base64::engine::general_purpose::STANDARD
                .decode(text(obj, "Mask"))
                .map(|m| m.iter().map(|b| b.count_ones()).sum())
                .unwrap_or(0);
            format!("{ip}/{ones}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_section() {
        let info = Value::from_json(
            br#"{"Containers":0,"ContainersRunning":0,"ContainersPaused":0,"ContainersStopped":0,"Images":3,
            "Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"]],"Plugins":{"Volume":["local"],"Network":["bridge","host"],"Log":["json-file"]},
            "Swarm":{"LocalNodeState":"inactive"},"Runtimes":{"runc":{},"io.containerd.runc.v2":{}},"DefaultRuntime":"runc",
            "OSType":"linux","InitBinary":"docker-init","ContainerdCommit":{"ID":"c1"},"RuncCommit":{"ID":"r1"},"InitCommit":{"ID":""},
            "SecurityOptions":["name=seccomp,profile=default"],"NCPU":2,"MemTotal":25275965440,"Name":"vm","DockerRootDir":"/d",
            "RegistryConfig":{"InsecureRegistryCIDRs":[{"IP":"127.0.0.0","Mask":"/wAAAA=="}],"IndexConfigs":{"docker.io":{"Name":"docker.io","Secure":true}}},
            "Warnings":["WARNING: x"]}"#,
        )
        .unwrap();
        let (text, warnings) = server_text(&info);
        let want = " Containers: 0\n  Running: 0\n  Paused: 0\n  Stopped: 0\n Images: 3\n Storage Driver: overlay2\n  Backing Filesystem: extfs\n Plugins:\n  Volume: local\n  Network: bridge host\n  Log: json-file\n Swarm: inactive\n Runtimes: io.containerd.runc.v2 runc\n Default Runtime: runc\n Init Binary: docker-init\n containerd version: c1\n runc version: r1\n init version: \n Security Options:\n  seccomp\n   Profile: default\n OSType: linux\n CPUs: 2\n Total Memory: 23.54GiB\n Name: vm\n Docker Root Dir: /d\n Debug Mode: false\n Experimental: false\n Insecure Registries:\n  127.0.0.0/8\n Live Restore Enabled: false\n\n";
        assert_eq!(text, want);
        assert_eq!(warnings, vec!["WARNING: x".to_string()]);
    }
}
