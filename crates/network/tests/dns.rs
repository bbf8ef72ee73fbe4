//! The embedded DNS server end to end, as root: containers on a user
//! network find each other by name, alias and short ID at 127.0.0.11 (UDP
//! and TCP), other names go to an upstream resolver that the test runs on
//! the host's loopback, and a container of another network sees none of
//! these names.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::{ask, in_ns, Echo, Env};
use hickory_proto::op::ResponseCode;
use servin_network::{AttachRequest, CreateRequest, Networks};
use servin_testkit::resolver::FakeResolver;

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// What the resolver a container names itself (`--dns`) says instead.
const OUTSIDE_OWN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);

fn attach(container: &str, network: &str, ns: &std::path::Path, aliases: &[&str]) -> AttachRequest {
    AttachRequest {
        container_id: format!("{container}{}", "7".repeat(64 - container.len())),
        container_name: container.to_string(),
        network: network.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ip: None,
        ports: vec![],
        netns: ns.to_path_buf(),
        links: vec![],
        dns: vec![],
        mac: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_aliases_resolve_and_the_rest_is_forwarded() {
    if common::cannot_run("names_and_aliases_resolve_and_the_rest_is_forwarded") {
        return;
    }
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let upstream = FakeResolver::start(loopback, OUTSIDE).unwrap();
    let own_upstream = FakeResolver::start(loopback, OUTSIDE_OWN).unwrap();
    let mut env = Env::new("172.30.40.0/24");
    env.cfg.upstream_dns = Some(vec![upstream.addr]);
    let nets = Networks::open(env.cfg.clone()).await.unwrap();
    for (name, subnet) in [("dnsnet", "172.30.41.0/24"), ("other", "172.30.42.0/24")] {
        nets.create(CreateRequest {
            name: name.into(),
            subnet: Some(subnet.into()),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    }
    let (a, b, c, d, e) = (
        env.netns("a"),
        env.netns("b"),
        env.netns("c"),
        env.netns("d"),
        env.netns("e"),
    );
    let ea = nets
        .attach(attach("alpha", "dnsnet", &a, &["web"]))
        .await
        .unwrap();
    let eb = nets
        .attach(attach("beta", "dnsnet", &b, &[]))
        .await
        .unwrap();
    nets.attach(attach("gamma", "other", &c, &[]))
        .await
        .unwrap();
    let ed = nets
        .attach(attach("delta", "bridge", &d, &[]))
        .await
        .unwrap();
    assert_eq!(ea.dns_names, ["alpha", "alpha7777777", "web"]);
    assert!(ed.dns_names.is_empty(), "no names on the default bridge");
    assert_eq!(
        nets.resolv_conf(&eb.container_id).await.as_deref(),
        Some("nameserver 127.0.0.11\noptions ndots:0\n")
    );
    assert_eq!(nets.resolv_conf(&ed.container_id).await, None);

    // A program in the container may bind port 53 itself: the embedded
    // server still answers at 127.0.0.11:53.
    let _own53 = Echo::start(&a, 53, "own");

    let ip_a = ea.ip;
    let from_b = in_ns(&b, || {
        [
            ask("alpha", false),
            ask("web.", false),
            ask("ALPHA", false),
            ask("alpha7777777", false),
            ask("web", true),
            ask("outside.test", false),
            ask("gamma", false),
        ]
    })
    .await;
    let ok = |ips: Vec<Ipv4Addr>| Ok((ResponseCode::NoError, ips));
    assert_eq!(from_b[0], ok(vec![ip_a]), "by name");
    assert_eq!(from_b[1], ok(vec![ip_a]), "by alias, fully qualified");
    assert_eq!(from_b[2], ok(vec![ip_a]), "names are case-insensitive");
    assert_eq!(from_b[3], ok(vec![ip_a]), "by short ID");
    assert_eq!(from_b[4], ok(vec![ip_a]), "over TCP");
    assert_eq!(from_b[5], ok(vec![OUTSIDE]), "forwarded upstream");
    assert_eq!(
        from_b[6],
        Ok((ResponseCode::NXDomain, vec![])),
        "another network's container"
    );

    let from_a = in_ns(&a, || ask("beta", false)).await;
    assert_eq!(from_a, ok(vec![eb.ip]));

    // A container with its own resolvers (`--dns`) has the names it does
    // not know answered there; its network's names stay ours.
    nets.attach(AttachRequest {
        dns: vec![own_upstream.addr],
        ..attach("epsilon", "dnsnet", &e, &[])
    })
    .await
    .unwrap();
    let from_e = in_ns(&e, || [ask("outside.test", false), ask("alpha", false)]).await;
    assert_eq!(from_e[0], ok(vec![OUTSIDE_OWN]), "forwarded to its own");
    assert_eq!(from_e[1], ok(vec![ip_a]));
    let from_b = in_ns(&b, || ask("outside.test", false)).await;
    assert_eq!(from_b, ok(vec![OUTSIDE]), "the others' still the host's");
    let from_c = in_ns(&c, || ask("alpha", false)).await;
    assert_eq!(
        from_c,
        Ok((ResponseCode::NXDomain, vec![])),
        "names stay in their network"
    );

    // Leaving the network stops B's server and removes its netns rule.
    nets.detach_all(&eb.container_id).await.unwrap();
    let gone = in_ns(&b, || ask("alpha", false)).await;
    assert!(gone.is_err(), "no DNS after detach: {gone:?}");
    let b_name = b.file_name().unwrap().to_str().unwrap().to_string();
    let inside = common::output("ip", &["netns", "exec", &b_name, "nft", "list", "tables"]);
    assert!(!inside.contains(&env.cfg.table), "{inside}");
    // And A no longer finds B.
    let from_a = in_ns(&a, || ask("beta", false)).await;
    assert_eq!(from_a, Ok((ResponseCode::NXDomain, vec![])));
    env.finish(nets).await;
}
