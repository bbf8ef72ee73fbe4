//! `-p`/`--publish` and `--expose`, as go-connections' `nat` parses them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::body::{Empty, PortBinding};

pub type PortSet = BTreeMap<String, Empty>;
pub type PortMap = BTreeMap<String, Vec<PortBinding>>;

/// Docker's `convertToStandardNotation`: `published=8080,target=80` →
/// `8080:80/tcp`.
fn standard_notation(spec: &str) -> Result<String, String> {
    if !spec.contains('=') {
        return Ok(spec.to_string());
    }
    let mut params: BTreeMap<&str, &str> = BTreeMap::from([("protocol", "tcp")]);
    for param in spec.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => {
                return Err(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                ))
            }
        }
    }
    let get = |k: &str| params.get(k).copied().unwrap_or_default();
    Ok(format!(
        "{}:{}/{}",
        get("published"),
        get("target"),
        get("protocol")
    ))
}

/// `nat.SplitProtoPort`.
fn split_proto_port(raw: &str) -> (String, String) {
    let parts: Vec<&str> = raw.split('/').collect();
    if raw.is_empty() || parts[0].is_empty() {
        return (String::new(), String::new());
    }
    if parts.len() == 1 || parts[1].is_empty() {
        return ("tcp".into(), parts[0].to_string());
    }
    (parts[1].to_string(), parts[0].to_string())
}

/// `nat.ParsePortRange`.
fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map(u64::from)
            .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: invalid syntax"))
    };
    match ports.split_once('-') {
        None => {
            let p = parse(ports)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let b = b.split('-').next().unwrap_or_default();
            let (start, end) = (parse(a)?, parse(b)?);
            if end < start {
                return Err(format!("invalid range specified for port: {ports}"));
            }
            Ok((start, end))
        }
    }
}

/// `nat.ParsePortSpecs` over `-p` values.
pub fn parse_publish(specs: &[String]) -> Result<(PortSet, PortMap), String> {
    let mut exposed = PortSet::new();
    let mut bindings = PortMap::new();
    for spec in specs {
        let spec = standard_notation(spec)?;
        for (port, binding) in parse_port_spec(&spec)? {
            exposed.entry(port.clone()).or_default();
            bindings.entry(port).or_default().push(binding);
        }
    }
    Ok((exposed, bindings))
}

fn parse_port_spec(raw: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (mut ip, host_port, container_port) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (proto, container_port) = split_proto_port(container_port);
    if ip.starts_with('[') {
        ip = ip
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(str::to_string)
            .ok_or_else(|| format!("invalid IP address {ip}: missing ']' in address"))?;
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container_port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) = parse_port_range(&container_port)
        .map_err(|_| format!("invalid containerPort: {container_port}"))?;
    let (host_start, host_end) = if host_port.is_empty() {
        (0, 0)
    } else {
        parse_port_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?
    };
    if !host_port.is_empty() && end - start != host_end.wrapping_sub(host_start) && end != start {
        return Err(format!(
            "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
        ));
    }
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let mut out = Vec::new();
    for i in 0..=(end - start) {
        let mut host = if host_port.is_empty() {
            String::new()
        } else {
            (host_start + i).to_string()
        };
        if start == end && host_start != host_end {
            host = format!("{host}-{host_end}");
        }
        out.push((
            format!("{}/{proto}", start + i),
            PortBinding {
                host_ip: ip.clone(),
                host_port: host,
            },
        ));
    }
    Ok(out)
}

/// Adds `--expose` ports (`80`, `7000-7002/udp`) to `exposed`.
pub fn add_exposed(exposed: &mut PortSet, specs: &[String]) -> Result<(), String> {
    for e in specs {
        if e.contains(':') {
            return Err(format!("invalid port format for --expose: {e}"));
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| format!("invalid range format for --expose: {e}, error: {err}"))?;
        for p in start..=end {
            exposed.entry(format!("{p}/{proto}")).or_default();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn publish_specs() {
        let (exposed, bindings) = parse_publish(&strings(&[
            "8080:80",
            "127.0.0.1:9000:9000/udp",
            "published=81,target=8081",
            "5000-5001:6000-6001",
            "3000",
        ]))
        .unwrap();
        assert_eq!(
            exposed.keys().collect::<Vec<_>>(),
            ["3000/tcp", "6000/tcp", "6001/tcp", "80/tcp", "8081/tcp", "9000/udp"]
        );
        assert_eq!(bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(bindings["9000/udp"][0].host_ip, "127.0.0.1");
        assert_eq!(bindings["8081/tcp"][0].host_port, "81");
        assert_eq!(bindings["6001/tcp"][0].host_port, "5001");
        assert_eq!(bindings["3000/tcp"][0], PortBinding::default());
        assert_eq!(
            parse_publish(&strings(&["1.2.3:80:80"])).unwrap_err(),
            "invalid IP address: 1.2.3"
        );
        assert_eq!(
            parse_publish(&strings(&["80:x"])).unwrap_err(),
            "invalid containerPort: x"
        );
        assert_eq!(
            parse_publish(&strings(&["80/bogus"])).unwrap_err(),
            "invalid proto: bogus"
        );
    }

    #[test]
    fn expose_specs() {
        let mut set = PortSet::new();
        add_exposed(&mut set, &strings(&["7000", "7001-7002/udp"])).unwrap();
        assert_eq!(
            set.keys().collect::<Vec<_>>(),
            ["7000/tcp", "7001/udp", "7002/udp"]
        );
        assert_eq!(
            add_exposed(&mut set, &strings(&["1:2"])).unwrap_err(),
            "invalid port format for --expose: 1:2"
        );
    }
}
