//! Address management: which subnet a network gets and which address an
//! endpoint gets. Pure: the caller passes what is taken.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// Docker's default address pools: 172.17–31.0.0/16, then 192.168.0.0/16 in
/// /20s. The default bridge takes the first free one, user networks the next.
pub fn default_pools() -> Vec<Ipv4Net> {
    let mut pools: Vec<Ipv4Net> = (17..=31)
        .map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid prefix"))
        .collect();
    pools.extend(
        (0..16)
            .map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).expect("valid prefix")),
    );
    pools
}

/// Whether two subnets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default pool that overlaps none of `taken` (other networks'
/// subnets and the host's routes, default routes left out by the caller).
pub fn pick_pool(taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    default_pools()
        .into_iter()
        .find(|p| !taken.iter().any(|t| overlaps(p, t)))
        .ok_or(Error::NoPool)
}

/// Parses `--subnet`: an IPv4 CIDR without host bits, as Docker insists.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| Error::InvalidSubnet(s.to_string(), "not an IPv4 CIDR".into()))?;
    if net.trunc() != net {
        return Err(Error::InvalidSubnet(
            s.to_string(),
            format!("it should be {}", net.trunc()),
        ));
    }
    if net.prefix_len() > 30 {
        return Err(Error::InvalidSubnet(
            s.to_string(),
            "a bridge network needs at least a /30".into(),
        ));
    }
    Ok(net)
}

/// The gateway: the one asked for (checked to be a host address of the
/// subnet) or the subnet's first host address.
pub fn gateway(subnet: Ipv4Net, asked: Option<&str>) -> Result<Ipv4Addr> {
    match asked {
        None => Ok(first_host(subnet)),
        Some(s) => {
            let gw: Ipv4Addr = s.parse().map_err(|_| {
                Error::InvalidSubnet(s.to_string(), "invalid gateway address".into())
            })?;
            if !is_host(subnet, gw) {
                return Err(Error::GatewayOutside {
                    gateway: gw,
                    subnet,
                });
            }
            Ok(gw)
        }
    }
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Whether `ip` is a usable host address of `subnet` (not the network or
/// broadcast address).
pub fn is_host(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

/// `--ip-range`: a CIDR inside the subnet.
pub fn parse_range(subnet: Ipv4Net, s: &str) -> Result<Ipv4Net> {
    let range: Ipv4Net = s
        .parse()
        .map_err(|_| Error::InvalidRange(s.to_string(), "not an IPv4 CIDR".into()))?;
    if !subnet.contains(&range) {
        return Err(Error::InvalidRange(
            s.to_string(),
            format!("it is not inside the subnet {subnet}"),
        ));
    }
    Ok(range.trunc())
}

/// `--aux-address name=ip`: a host address of the subnet.
pub fn parse_aux(subnet: Ipv4Net, name: &str, value: &str) -> Result<Ipv4Addr> {
    let bad = |why: String| Error::InvalidAux {
        name: name.to_string(),
        value: value.to_string(),
        why,
    };
    let ip: Ipv4Addr = value
        .parse()
        .map_err(|_| bad("not an IPv4 address".into()))?;
    if !is_host(subnet, ip) {
        return Err(bad(format!(
            "it is not a host address of the subnet {subnet}"
        )));
    }
    Ok(ip)
}

/// An address for a new endpoint: `asked` if it is free and in the subnet,
/// else the lowest free host address of `range` (the subnet when `None`).
/// `used` holds the endpoints' and the reserved (aux) addresses; the
/// gateway is never handed out.
pub fn allocate(
    subnet: Ipv4Net,
    range: Option<Ipv4Net>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    asked: Option<Ipv4Addr>,
) -> Result<Option<Ipv4Addr>> {
    if let Some(ip) = asked {
        if !is_host(subnet, ip) {
            return Err(Error::AddressOutside { ip });
        }
        if ip == gateway || used.contains(&ip) {
            return Err(Error::AddressInUse(ip));
        }
        return Ok(Some(ip));
    }
    let from = range.unwrap_or(subnet);
    Ok(from
        .hosts()
        .chain([from.network(), from.broadcast()])
        .find(|ip| is_host(subnet, *ip) && *ip != gateway && !used.contains(ip)))
}

/// Docker's MAC for an address: `02:42` and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A MAC address a container may take (`--mac-address`): six hex octets
/// split by `:` or `-`, unicast. The error says what is wrong with it.
pub fn parse_mac(s: &str) -> std::result::Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("invalid MAC address: {s}"));
    }
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(format!("invalid MAC address: {s}"));
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC address: {s}"))?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "invalid MAC address: {s} is a multicast address; a container's must be unicast"
        ));
    }
    Ok(mac)
}

/// `02:42:ac:11:00:02`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_aux_addresses_narrow_what_is_handed_out() {
        let s = net("10.9.0.0/24");
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let range = parse_range(s, "10.9.0.128/25").unwrap();
        let aux = parse_aux(s, "router", "10.9.0.129").unwrap();
        let used: BTreeSet<_> = [aux].into();
        assert_eq!(
            allocate(s, Some(range), gw, &used, None).unwrap(),
            Some(Ipv4Addr::new(10, 9, 0, 130))
        );
        // An asked address may be outside the range, not on a reserved one.
        let low = Ipv4Addr::new(10, 9, 0, 5);
        assert_eq!(
            allocate(s, Some(range), gw, &used, Some(low)).unwrap(),
            Some(low)
        );
        assert!(allocate(s, Some(range), gw, &used, Some(aux)).is_err());
        // A /31 range: both its addresses are handed out (but never the
        // subnet's broadcast).
        let tail = parse_range(s, "10.9.0.254/31").unwrap();
        assert_eq!(
            allocate(s, Some(tail), gw, &BTreeSet::new(), None).unwrap(),
            Some(Ipv4Addr::new(10, 9, 0, 254))
        );
        let taken: BTreeSet<_> = [Ipv4Addr::new(10, 9, 0, 254)].into();
        assert_eq!(allocate(s, Some(tail), gw, &taken, None).unwrap(), None);
        assert!(parse_range(s, "10.8.0.0/25")
            .unwrap_err()
            .to_string()
            .contains("not inside the subnet 10.9.0.0/24"));
        assert!(parse_range(s, "bogus").is_err());
        assert!(parse_aux(s, "x", "10.9.0.255").is_err());
        assert!(parse_aux(s, "x", "10.9.1.1").is_err());
    }

    #[test]
    fn mac_addresses_are_six_octets_and_unicast() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:99"),
            Ok([2, 0x42, 0xac, 0x11, 0, 0x99])
        );
        assert_eq!(parse_mac("02-00-00-00-00-01"), Ok([2, 0, 0, 0, 0, 1]));
        for bad in [
            "zz",
            "02:42:ac:11:00",
            "02:42:ac:11:00:999",
            "02:42:ac:11:00:g9",
        ] {
            assert_eq!(parse_mac(bad), Err(format!("invalid MAC address: {bad}")));
        }
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn pools_skip_taken_subnets_and_routes() {
        assert_eq!(pick_pool(&[]).unwrap(), net("172.17.0.0/16"));
        // A host route inside 172.17/16 makes the default bridge move on.
        assert_eq!(
            pick_pool(&[net("172.17.5.0/24")]).unwrap(),
            net("172.18.0.0/16")
        );
        // A wide route covering all of 172.16/12 leaves only 192.168.
        assert_eq!(
            pick_pool(&[net("172.16.0.0/12")]).unwrap(),
            net("192.168.0.0/20")
        );
        let all = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        assert!(matches!(pick_pool(&all), Err(Error::NoPool)));
    }

    #[test]
    fn subnets_are_checked_like_docker() {
        assert_eq!(parse_subnet("10.5.0.0/16").unwrap(), net("10.5.0.0/16"));
        let e = parse_subnet("10.5.0.7/16").unwrap_err().to_string();
        assert_eq!(e, "invalid subnet 10.5.0.7/16: it should be 10.5.0.0/16");
        assert!(parse_subnet("nonsense").is_err());
        assert!(parse_subnet("10.0.0.0/31").is_err());
        assert_eq!(
            gateway(net("10.5.0.0/16"), None).unwrap(),
            Ipv4Addr::new(10, 5, 0, 1)
        );
        assert_eq!(
            gateway(net("10.5.0.0/16"), Some("10.6.0.1"))
                .unwrap_err()
                .to_string(),
            "Invalid gateway 10.6.0.1: it is not in subnet 10.5.0.0/16"
        );
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.5.0.0/16")));
        assert!(!overlaps(&net("10.4.0.0/16"), &net("10.5.0.0/16")));
    }

    #[test]
    fn addresses_are_handed_out_lowest_first_and_checked() {
        let s = net("10.9.0.0/29");
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let mut used = BTreeSet::new();
        let a = allocate(s, None, gw, &used, None).unwrap().unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        used.insert(a);
        let b = allocate(s, None, gw, &used, Some(Ipv4Addr::new(10, 9, 0, 6))).unwrap();
        assert_eq!(b, Some(Ipv4Addr::new(10, 9, 0, 6)));
        used.insert(b.unwrap());
        assert_eq!(
            allocate(s, None, gw, &used, Some(Ipv4Addr::new(10, 9, 0, 6)))
                .unwrap_err()
                .to_string(),
            "Address already in use"
        );
        assert_eq!(
            allocate(s, None, gw, &used, Some(Ipv4Addr::new(10, 9, 1, 6)))
                .unwrap_err()
                .to_string(),
            "Invalid address 10.9.1.6: It does not belong to any of this network's subnets"
        );
        assert!(allocate(s, None, gw, &used, Some(gw)).is_err());
        for ip in [3, 4, 5] {
            used.insert(Ipv4Addr::new(10, 9, 0, ip));
        }
        assert_eq!(allocate(s, None, gw, &used, None).unwrap(), None);
    }

    #[test]
    fn macs_follow_docker() {
        let mac = mac_for(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(mac_string(mac), "02:42:ac:11:00:02");
    }
}
