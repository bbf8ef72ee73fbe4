//! Endpoints in the Docker Engine API's terms, for a container's inspect
//! (`NetworkSettings.Networks`, `NetworkSettings.Ports`).

use std::collections::HashMap;

use servin_api::models::{EndpointIpamConfig, EndpointSettings, PortBinding, PortMap};

use crate::model::Endpoint;

/// One entry of `NetworkSettings.Networks`.
pub fn endpoint_settings(e: &Endpoint) -> EndpointSettings {
    EndpointSettings {
        ipam_config: e.requested_ip.map(|ip| EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..EndpointIpamConfig::default()
        }),
        links: (!e.links.is_empty()).then(|| e.links.iter().map(|l| l.spec.clone()).collect()),
        mac_address: Some(e.mac.clone()),
        aliases: (!e.aliases.is_empty()).then(|| e.aliases.clone()),
        driver_opts: None,
        network_id: Some(e.network_id.clone()),
        endpoint_id: Some(e.id.clone()),
        gateway: Some(e.gateway.to_string()),
        ip_address: Some(e.ip.to_string()),
        ip_prefix_len: Some(i64::from(e.prefix_len)),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        dns_names: (!e.dns_names.is_empty()).then(|| e.dns_names.clone()),
        ..EndpointSettings::default()
    }
}

/// `NetworkSettings.Ports`: every published port of the container's
/// endpoints, plus `exposed` ports (`80/tcp`) with no binding as `null`.
pub fn port_map(endpoints: &[Endpoint], exposed: &[String]) -> PortMap {
    let mut map: PortMap = HashMap::new();
    for key in exposed {
        map.entry(key.clone()).or_insert(None);
    }
    for e in endpoints {
        for p in &e.ports {
            let key = format!("{}/{}", p.container_port, p.proto.as_str());
            map.entry(key.clone())
                .or_insert(None)
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: Some(p.host_ip.to_string()),
                    host_port: Some(p.host_port.to_string()),
                });
            if p.v6 {
                map.entry(key)
                    .or_insert(None)
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: Some("::".into()),
                        host_port: Some(p.host_port.to_string()),
                    });
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Proto, PublishedPort};
    use std::net::Ipv4Addr;

    #[test]
    fn ports_are_shown_as_docker_does() {
        let e = Endpoint {
            id: "e".into(),
            network_id: "n".into(),
            container_id: "c".into(),
            container_name: "web".into(),
            aliases: vec![],
            dns_names: vec![],
            ip: Ipv4Addr::new(172, 17, 0, 2),
            prefix_len: 16,
            gateway: Ipv4Addr::new(172, 17, 0, 1),
            mac: "02:42:ac:11:00:02".into(),
            host_veth: "veth0".into(),
            ifname: "eth0".into(),
            ports: vec![PublishedPort {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 8080,
                v6: false,
            }],
            netns: "/proc/1/ns/net".into(),
            dns_port: 0,
            requested_ip: None,
            links: vec![],
            dns_servers: vec![],
        };
        let map = port_map(
            std::slice::from_ref(&e),
            &["80/tcp".into(), "443/tcp".into()],
        );
        let json = serde_json::to_value(&map).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": null})
        );
        // Served on IPv6 too: Docker's second binding.
        let mut dual = e.clone();
        dual.ports[0].v6 = true;
        let json = serde_json::to_value(port_map(&[dual], &[])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"80/tcp": [
                {"HostIp": "0.0.0.0", "HostPort": "8080"},
                {"HostIp": "::", "HostPort": "8080"}
            ]})
        );
        let s = endpoint_settings(&e);
        assert_eq!(s.ip_address.as_deref(), Some("172.17.0.2"));
        assert_eq!(s.ip_prefix_len, Some(16));
        assert!(s.ipam_config.is_none());
    }
}
