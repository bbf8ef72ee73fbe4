//! Legacy container links (`--link NAME[:ALIAS]`), as Docker has them.
//!
//! On the default bridge a link gives the linking container an
//! `/etc/hosts` line for the linked one and Docker's `ALIAS_PORT_…`,
//! `ALIAS_NAME` and `ALIAS_ENV_…` variables; the linked container must be
//! running on that bridge when the linking one starts. `HostConfig.Links`
//! keeps them (`db:database`; inspect shows `/db:/web/database`).
//!
//! On a user network a link is only a name that the linking container's
//! embedded DNS answers ([`servin_network::NetLink`]); Docker keeps it in
//! the endpoint's `Links`, and so do we.

use std::net::Ipv4Addr;

use serde_json::{json, Value};
use servin_api::{Error, ErrorKind};
use servin_network::{ports, NetLink, Proto};

use crate::containers::ContainerRecord;
use crate::Engine;

pub(crate) fn parse(link: &str) -> Result<(String, String), Error> {
    servin_api::parse_link(link).map_err(Error::invalid)
}

fn given(hc: &Value) -> Vec<String> {
    crate::strs(&hc["Links"])
}

/// `HostConfig.Links` as inspect shows it: `/NAME:/PARENT/ALIAS`.
pub(crate) fn inspect_form(hc: &Value, parent: &str) -> Value {
    let links = given(hc);
    if links.is_empty() {
        return hc["Links"].clone();
    }
    links
        .iter()
        .map(|l| match parse(l) {
            Ok((name, alias)) => json!(format!("/{name}:/{parent}/{alias}")),
            Err(_) => json!(l),
        })
        .collect()
}

/// One linked container as the linking one sees it on the default bridge.
pub(crate) struct Linked {
    pub alias: String,
    pub name: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    /// Exposed ports, lowest first, TCP before UDP.
    pub ports: Vec<(u16, Proto)>,
    pub env: Vec<String>,
}

impl Linked {
    /// The `/etc/hosts` line: the alias, the linked container's hostname,
    /// and its name when the alias is not its name.
    pub(crate) fn hosts_line(&self) -> String {
        let mut names = format!("{} {}", self.alias, self.hostname);
        if self.alias != self.name {
            names.push(' ');
            names.push_str(&self.name);
        }
        format!("{}\t{names}\n", self.ip)
    }

    /// Docker's link variables. Where Docker runs consecutive ports of
    /// different protocols into one `…_START`/`…_END` range (its
    /// `7000-7002/tcp` and `7003/udp` give `…_7000_UDP_END`), a range here
    /// is one protocol's.
    pub(crate) fn env(&self, parent: &str) -> Vec<String> {
        let prefix = self.alias.to_ascii_uppercase().replace('-', "_");
        let ip = self.ip;
        let mut env = Vec::new();
        if let Some((port, proto)) = self.ports.first() {
            let proto = proto.as_str();
            env.push(format!("{prefix}_PORT={proto}://{ip}:{port}"));
        }
        let mut i = 0;
        while i < self.ports.len() {
            let (start, proto) = self.ports[i];
            let mut j = i;
            while j + 1 < self.ports.len()
                && self.ports[j + 1].1 == proto
                && self.ports[j + 1].0 == self.ports[j].0 + 1
            {
                j += 1;
            }
            if j > i {
                let end = self.ports[j].0;
                let proto = proto.as_str();
                let key = format!("{prefix}_PORT_{start}_{}", proto.to_ascii_uppercase());
                env.push(format!("{key}_START={proto}://{ip}:{start}"));
                env.push(format!("{key}_PORT_START={start}"));
                env.push(format!("{key}_END={proto}://{ip}:{end}"));
                env.push(format!("{key}_PORT_END={end}"));
            }
            i = j + 1;
        }
        for (port, proto) in &self.ports {
            let proto = proto.as_str();
            let key = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
            env.push(format!("{key}={proto}://{ip}:{port}"));
            env.push(format!("{key}_ADDR={ip}"));
            env.push(format!("{key}_PORT={port}"));
            env.push(format!("{key}_PROTO={proto}"));
        }
        env.push(format!("{prefix}_NAME=/{parent}/{}", self.alias));
        for kv in &self.env {
            if let Some((k, v)) = kv.split_once('=') {
                if k != "HOME" && k != "PATH" {
                    env.push(format!("{prefix}_ENV_{k}={v}"));
                }
            }
        }
        env
    }
}

/// The process environment: the links' variables, then the container's
/// own, which win over a link's of the same name (as Docker's).
pub(crate) fn merge_env(links: Vec<String>, own: Vec<String>) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let own_keys: std::collections::HashSet<String> = own.iter().map(|kv| key(kv)).collect();
    let mut out: Vec<String> = links
        .into_iter()
        .filter(|kv| !own_keys.contains(&key(kv)))
        .collect();
    out.extend(own);
    out
}

/// The container's exposed ports, lowest first, TCP before UDP.
fn ports_of(rec: &ContainerRecord) -> Vec<(u16, Proto)> {
    let mut ports: Vec<(u16, Proto)> = crate::networks::exposed(rec)
        .iter()
        .filter_map(|key| ports::from_api(key, "", "").ok())
        .map(|p| (p.container_port, p.proto))
        .collect();
    ports.sort();
    ports
}

impl Engine {
    /// At create: checks `HostConfig.Links` against the network mode and
    /// the containers there are, and keeps them as `NAME:ALIAS` with the
    /// linked container's name. On a user network they belong to its
    /// endpoint (see [`Engine::check_networking`]), not here.
    pub(crate) fn check_links(&self, hc: &mut Value, mode: &str) -> Result<(), Error> {
        let links = given(hc);
        if links.is_empty() {
            return Ok(());
        }
        // host and container: modes were refused (`mode_conflicts`).
        if mode != "bridge" {
            hc["Links"] = Value::Null;
            return Ok(());
        }
        let mut kept = Vec::new();
        for l in &links {
            let (name, alias) = parse(l)?;
            let child = self.containers().get(&name).map_err(|e| {
                Error::new(
                    e.kind,
                    format!("could not get container for {name}: No such container: {name}"),
                )
            })?;
            kept.push(json!(format!("{}:{alias}", child.name)));
        }
        hc["Links"] = Value::Array(kept);
        Ok(())
    }

    /// At start on the default bridge: each linked container, which must be
    /// running there.
    pub(crate) fn linked_on_bridge(&self, rec: &ContainerRecord) -> Result<Vec<Linked>, Error> {
        let mut out = Vec::new();
        for l in given(&rec.host_config) {
            let (name, alias) = parse(&l)?;
            let gone = || {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "Cannot link to a non running container: /{name} AS /{}/{alias}",
                        rec.name
                    ),
                )
            };
            let child = self.containers().get(&name).map_err(|_| gone())?;
            if !child.state.is_running() {
                return Err(gone());
            }
            let ip = self.bridge_address(&child.id).ok_or_else(|| {
                Error::internal(format!(
                    "Cannot link to /{}, as it does not belong to the default network",
                    child.name
                ))
            })?;
            out.push(Linked {
                hostname: child.config["Hostname"]
                    .as_str()
                    .filter(|h| !h.is_empty())
                    .unwrap_or(&child.id[..12])
                    .to_string(),
                ports: ports_of(&child),
                env: crate::strs(&child.config["Env"]),
                name: child.name,
                alias,
                ip,
            });
        }
        Ok(out)
    }

    /// A user network's links (an endpoint's `Links`) for attach: links to
    /// containers that do not exist are left out, as Docker leaves them.
    pub(crate) fn net_links(&self, links: &[String]) -> Result<Vec<NetLink>, Error> {
        let mut out = Vec::new();
        for l in links {
            let (name, alias) = parse(l)?;
            if let Ok(child) = self.containers().get(&name) {
                out.push(NetLink {
                    spec: l.clone(),
                    container_id: child.id,
                    alias,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_variables_follow_dockers_names_with_ranges_per_protocol() {
        let l = Linked {
            alias: "my-db".into(),
            name: "db".into(),
            hostname: "h".into(),
            ip: "10.0.0.2".parse().unwrap(),
            ports: vec![
                (7000, Proto::Tcp),
                (7001, Proto::Tcp),
                (7002, Proto::Udp),
                (9000, Proto::Tcp),
            ],
            env: vec!["PATH=/bin".into(), "SECRET=x=y".into()],
        };
        let env = l.env("web");
        assert_eq!(env[0], "MY_DB_PORT=tcp://10.0.0.2:7000");
        for v in [
            "MY_DB_PORT_7000_TCP_START=tcp://10.0.0.2:7000",
            "MY_DB_PORT_7000_TCP_PORT_END=7001",
            "MY_DB_PORT_7002_UDP=udp://10.0.0.2:7002",
            "MY_DB_PORT_9000_TCP_ADDR=10.0.0.2",
            "MY_DB_NAME=/web/my-db",
            "MY_DB_ENV_SECRET=x=y",
        ] {
            assert!(env.contains(&v.to_string()), "{v} not in {env:?}");
        }
        assert!(!env
            .iter()
            .any(|v| v.contains("_UDP_START") || v.contains("ENV_PATH")));
        assert_eq!(l.hosts_line(), "10.0.0.2\tmy-db h db\n");
        let merged = merge_env(env, vec!["MY_DB_NAME=mine".into()]);
        assert_eq!(
            merged
                .iter()
                .filter(|v| v.starts_with("MY_DB_NAME="))
                .count(),
            1
        );
        assert_eq!(merged.last().unwrap(), "MY_DB_NAME=mine");
    }
}
