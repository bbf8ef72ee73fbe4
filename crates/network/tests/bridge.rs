//! Bridge networks end to end, as root: network namespaces stand in for
//! containers; every test uses its own nft table, bridge and veth names and
//! data root, and checks at the end that none of them remain. No packet is
//! sent anywhere but to loopback and the test's own namespaces.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use common::{in_ns, tcp_ask, udp_ask, Echo, Env};
use servin_network::ports::parse_publish;
use servin_network::{AttachRequest, CreateRequest, Networks, Proto};

fn attach(container: &str, network: &str, ns: &std::path::Path, ports: &[&str]) -> AttachRequest {
    AttachRequest {
        container_id: format!("{container}{}", "0".repeat(64 - container.len())),
        container_name: container.to_string(),
        network: network.to_string(),
        aliases: vec![],
        ip: None,
        ports: ports.iter().map(|p| parse_publish(p).unwrap()).collect(),
        netns: ns.to_path_buf(),
        links: vec![],
        dns: vec![],
        mac: None,
    }
}

fn user_net(name: &str, subnet: &str) -> CreateRequest {
    CreateRequest {
        name: name.into(),
        subnet: Some(subnet.into()),
        ..CreateRequest::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_talk_and_published_ports_answer_on_the_host() {
    if common::cannot_run("containers_talk_and_published_ports_answer_on_the_host") {
        return;
    }
    let mut env = Env::new("172.30.10.0/24");
    let nets = Networks::open(env.cfg.clone()).await.unwrap();
    let net = nets
        .create(user_net("front", "172.30.11.0/24"))
        .await
        .unwrap();
    assert_eq!(net.network.driver, "bridge");
    let (a, b) = (env.netns("a"), env.netns("b"));
    let (p_loop, p_any, p_udp) = (free_port(), free_port(), free_port());
    let ea = nets
        .attach(attach(
            "a",
            "front",
            &a,
            &[
                &format!("127.0.0.1:{p_loop}:80"),
                &format!("{p_any}:80"),
                "80",
                &format!("{p_udp}:53/udp"),
            ],
        ))
        .await
        .unwrap();
    let eb = nets.attach(attach("b", "front", &b, &[])).await.unwrap();
    assert_eq!(ea.ip, Ipv4Addr::new(172, 30, 11, 2));
    assert_eq!(eb.ip, Ipv4Addr::new(172, 30, 11, 3));
    assert_eq!(ea.mac, "02:42:ac:1e:0b:02");
    assert_eq!(ea.ifname, "eth0");
    let random = ea.ports[2].host_port;
    assert!((32768..=60999).contains(&random), "random port {random}");

    let _echo_a = Echo::start(&a, 80, "A");
    let _echo_a53 = Echo::start(&a, 53, "A53");

    // Container to container, by address.
    let to_a = SocketAddr::V4(SocketAddrV4::new(ea.ip, 80));
    let reply = in_ns(&b, move || tcp_ask(to_a, "hi")).await.unwrap();
    assert_eq!(reply, format!("A from {} got hi", eb.ip));

    // The host, from its loopback, to the loopback-only and the any-address ports.
    for port in [p_loop, p_any, random] {
        let reply = tcp_ask(SocketAddr::from(([127, 0, 0, 1], port)), "host").unwrap();
        assert!(
            reply.starts_with("A from ") && reply.ends_with("got host"),
            "{reply}"
        );
    }
    // ... and through the bridge's address; the loopback-only port is not there.
    let gw = ea.gateway;
    let reply = tcp_ask(SocketAddr::from((gw, p_any)), "gw").unwrap();
    assert_eq!(reply, format!("A from {gw} got gw"));
    assert!(tcp_ask(SocketAddr::from((gw, p_loop)), "gw").is_err());

    // Another container reaches the published port on the host's address (hairpin).
    let hairpin = SocketAddr::from((gw, p_any));
    let reply = in_ns(&b, move || tcp_ask(hairpin, "hairpin"))
        .await
        .unwrap();
    assert!(reply.ends_with("got hairpin"), "{reply}");

    // UDP publishing.
    let reply = udp_ask(SocketAddr::from(([127, 0, 0, 1], p_udp)), "dgram").unwrap();
    assert_eq!(reply, "A53 got dgram");

    // Inspect lists both containers.
    let seen = nets.inspect("front").await.unwrap();
    assert_eq!(seen.containers.len(), 2);
    assert_eq!(
        seen.containers[&ea.container_id].ipv4_address,
        "172.30.11.2/24"
    );
    let json = serde_json::to_value(&seen).unwrap();
    assert_eq!(json["IPAM"]["Config"][0]["Subnet"], "172.30.11.0/24");
    assert_eq!(json["IPAM"]["Config"][0]["Gateway"], "172.30.11.1");
    assert_eq!(json["Containers"][&ea.container_id]["Name"], "a");

    // Detaching takes the port and the veth away at once.
    nets.detach_all(&ea.container_id).await.unwrap();
    assert!(tcp_ask(SocketAddr::from(([127, 0, 0, 1], p_any)), "x").is_err());
    assert!(!common::output("ip", &["-o", "link"]).contains(&ea.host_veth));
    assert!(
        !common::output("nft", &["list", "table", "ip", &env.cfg.table])
            .contains(&p_any.to_string())
    );
    env.finish(nets).await;
    let _ = Proto::Tcp;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_bad_input_are_refused_and_leave_nothing() {
    if common::cannot_run("conflicts_and_bad_input_are_refused_and_leave_nothing") {
        return;
    }
    let mut env = Env::new("172.30.20.0/24");
    let nets = Networks::open(env.cfg.clone()).await.unwrap();
    nets.create(user_net("back", "172.30.21.0/24"))
        .await
        .unwrap();
    let (a, b) = (env.netns("a"), env.netns("b"));
    let port = free_port();
    let ea = nets
        .attach(attach("a", "back", &a, &[&format!("{port}:80")]))
        .await
        .unwrap();
    let rules_before = common::output("nft", &["list", "table", "ip", &env.cfg.table]);
    let links_before = env.links();

    // The same host port twice: Docker's message, and B gets nothing.
    let err = nets
        .attach(attach("b", "back", &b, &[&format!("{port}:80")]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Bind for 0.0.0.0:{port} failed: port is already allocated")
    );
    assert_eq!(err.kind(), servin_api::ErrorKind::Conflict);
    // A port some other program holds on the host.
    let other = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = other.local_addr().unwrap().port();
    let err = nets
        .attach(attach("b", "back", &b, &[&format!("{taken}:80")]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Bind for 0.0.0.0:{taken} failed: port is already allocated")
    );
    // A host address that is not the host's.
    let err = nets
        .attach(attach("b", "back", &b, &["198.51.100.250:8080:80"]))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Cannot publish 198.51.100.250:8080");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "Cannot assign requested address (os error 99)"
    );
    // --ip outside the subnet, on the gateway, already taken.
    let mut req = attach("b", "back", &b, &[]);
    req.ip = Some(Ipv4Addr::new(10, 0, 0, 5));
    let err = nets.attach(req.clone()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid address 10.0.0.5: It does not belong to any of this network's subnets"
    );
    req.ip = Some(ea.ip);
    assert_eq!(
        nets.attach(req.clone()).await.unwrap_err().to_string(),
        "Address already in use"
    );
    // --ip on the default bridge.
    req.network = "bridge".into();
    req.ip = Some(Ipv4Addr::new(172, 30, 20, 9));
    assert_eq!(
        nets.attach(req).await.unwrap_err().to_string(),
        "user specified IP address is supported on user defined networks only"
    );
    // Unknown network; a netns that does not exist.
    let err = nets.attach(attach("b", "nope", &b, &[])).await.unwrap_err();
    assert_eq!(err.to_string(), "network nope not found");
    assert_eq!(err.kind(), servin_api::ErrorKind::NotFound);
    let err = nets
        .attach(attach(
            "b",
            "back",
            std::path::Path::new("/run/netns/svn-none"),
            &[],
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/run/netns/svn-none"), "{err}");

    // Nothing of B was made: no interface in its netns, no rule, no veth.
    let inside = common::output(
        "ip",
        &["-n", b.file_name().unwrap().to_str().unwrap(), "-o", "link"],
    );
    assert_eq!(inside.lines().count(), 1, "only lo in B: {inside}");
    assert_eq!(
        common::output("nft", &["list", "table", "ip", &env.cfg.table]),
        rules_before
    );
    assert_eq!(env.links(), links_before);
    // The port A holds still answers for A after the refusals.
    let _echo = Echo::start(&a, 80, "A");
    let reply = tcp_ask(SocketAddr::from(([127, 0, 0, 1], port)), "still").unwrap();
    assert!(reply.ends_with("got still"), "{reply}");

    // Networks: overlapping subnets, duplicate names, bad names, in use.
    let err = nets
        .create(user_net("over", "172.30.0.0/16"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool request: Pool overlaps with other one on this address space"
    );
    let err = nets
        .create(user_net("back", "172.30.22.0/24"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "network with name back already exists");
    assert!(nets
        .create(user_net("bad name", "172.30.23.0/24"))
        .await
        .is_err());
    let err = nets
        .create(CreateRequest {
            gateway: Some("172.30.25.1".into()),
            ..user_net("gw", "172.30.24.0/24")
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid gateway 172.30.25.1: it is not in subnet 172.30.24.0/24"
    );
    let err = nets.remove("back").await.unwrap_err();
    let id = nets.inspect("back").await.unwrap().network.id;
    assert_eq!(
        err.to_string(),
        format!("error while removing network: network back id {id} has active endpoints")
    );
    let err = nets.remove("bridge").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "bridge is a pre-defined network and cannot be removed"
    );
    let names: Vec<String> = nets
        .list()
        .await
        .into_iter()
        .map(|n| n.network.name)
        .collect();
    assert_eq!(names, ["host", "none", "bridge", "back"]);

    // Once A is gone, the network can be removed and its bridge goes too.
    nets.detach_all(&ea.container_id).await.unwrap();
    let bridge = nets.inspect("back").await.unwrap().network.bridge.unwrap();
    nets.remove(&id[..12]).await.unwrap();
    assert!(!common::output("ip", &["-o", "link"]).contains(&bridge));
    drop(other);
    env.finish(nets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_live_endpoints_and_drops_gone_ones() {
    if common::cannot_run("restart_keeps_live_endpoints_and_drops_gone_ones") {
        return;
    }
    let mut env = Env::new("172.30.30.0/24");
    let (a, b) = (env.netns("a"), env.netns("b"));
    let (pa, pb) = (free_port(), free_port());
    let (ea, eb) = {
        let nets = Networks::open(env.cfg.clone()).await.unwrap();
        nets.create(user_net("keep", "172.30.31.0/24"))
            .await
            .unwrap();
        let ea = nets
            .attach(attach("a", "keep", &a, &[&format!("{pa}:80")]))
            .await
            .unwrap();
        let eb = nets
            .attach(attach("b", "keep", &b, &[&format!("{pb}:80")]))
            .await
            .unwrap();
        (ea, eb)
        // The daemon goes away: its sockets and tasks with it.
    };
    let _echo_a = Echo::start(&a, 80, "A");
    // Rules outlive the daemon: the port still answers.
    let reply = tcp_ask(SocketAddr::from(([127, 0, 0, 1], pa)), "down").unwrap();
    assert!(reply.ends_with("got down"), "{reply}");

    // B's container ended while the daemon was down.
    common::run(
        "ip",
        &["netns", "del", b.file_name().unwrap().to_str().unwrap()],
    );
    env.namespaces.retain(|n| !n.ends_with('b'));

    let nets = Networks::open(env.cfg.clone()).await.unwrap();
    let live = HashMap::from([(ea.container_id.clone(), a.clone())]);
    let kept = nets.restore(&live).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].ip, ea.ip, "the address survives the restart");
    let rules = common::output("nft", &["list", "table", "ip", &env.cfg.table]);
    assert!(rules.contains(&pa.to_string()), "{rules}");
    assert!(
        !rules.contains(&pb.to_string()),
        "B's rule is gone: {rules}"
    );
    assert!(nets.inspect("keep").await.unwrap().containers.len() == 1);
    let reply = tcp_ask(SocketAddr::from(([127, 0, 0, 1], pa)), "up").unwrap();
    assert!(reply.ends_with("got up"), "{reply}");
    // A's embedded DNS answers again (a new server, the netns rule rewritten).
    assert!(kept[0].dns_port != 0);
    let (ip_a, ip_b) = (ea.ip, eb.ip);
    let answers = in_ns(&a, || (common::ask("a", false), common::ask("b", true))).await;
    assert_eq!(
        answers.0,
        Ok((hickory_proto::op::ResponseCode::NoError, vec![ip_a]))
    );
    // B is gone, and so is its name.
    assert_eq!(
        answers.1,
        Ok((hickory_proto::op::ResponseCode::ServFail, vec![])),
        "{ip_b}"
    );
    // The port is held again: a second publish of it is refused.
    let c = env.netns("c");
    let err = nets
        .attach(attach("c", "keep", &c, &[&format!("{pa}:80")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("port is already allocated"),
        "{err}"
    );
    // B's address is free for the next container.
    let ec = nets.attach(attach("c", "keep", &c, &[])).await.unwrap();
    assert_eq!(ec.ip, eb.ip);
    env.finish(nets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_isolated_internal_ones_closed_and_prune_takes_unused_ones() {
    if common::cannot_run("networks_are_isolated_internal_ones_closed_and_prune_takes_unused_ones")
    {
        return;
    }
    let dropped = std::time::Duration::from_secs(2);
    let mut env = Env::new("172.30.50.0/24");
    let nets = Networks::open(env.cfg.clone()).await.unwrap();
    nets.create(user_net("n1", "172.30.51.0/24")).await.unwrap();
    nets.create(user_net("n2", "172.30.52.0/24")).await.unwrap();
    let internal = nets
        .create(CreateRequest {
            internal: true,
            labels: [("team".to_string(), "x".to_string())].into(),
            ..user_net("n3", "172.30.53.0/24")
        })
        .await
        .unwrap();
    assert!(internal.network.internal);
    let (a, b, c, i) = (
        env.netns("a"),
        env.netns("b"),
        env.netns("c"),
        env.netns("i"),
    );
    let ea = nets.attach(attach("a", "n1", &a, &[])).await.unwrap();
    nets.attach(attach("b", "n1", &b, &[])).await.unwrap();
    let ec = nets.attach(attach("c", "n2", &c, &[])).await.unwrap();
    let ei = nets.attach(attach("i", "n3", &i, &[])).await.unwrap();
    let _echo = Echo::start(&a, 80, "A");
    let to_a = SocketAddr::from((ea.ip, 80));

    // Same network: reachable (the server is there).
    let reply = in_ns(&b, move || tcp_ask(to_a, "same")).await;
    assert!(reply.unwrap().ends_with("got same"));
    // Another network: its packets are routed by the host and dropped.
    let reply = in_ns(&c, move || common::tcp_ask_within(to_a, "other", dropped)).await;
    assert!(reply.is_err(), "n2 reached n1: {reply:?}");
    // An internal network has no way out at all: no default route.
    let i_name = i.file_name().unwrap().to_str().unwrap().to_string();
    let routes = common::output("ip", &["-n", &i_name, "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let reply = in_ns(&i, move || {
        common::tcp_ask_within(to_a, "internal", dropped)
    })
    .await;
    assert!(reply.is_err(), "internal reached n1: {reply:?}");
    assert!(ei.ip.octets()[2] == 53);

    // Connecting C to n1 as well gives it eth1 and the way to A.
    let ec1 = nets.attach(attach("c", "n1", &c, &[])).await.unwrap();
    assert_eq!(ec1.ifname, "eth1");
    let reply = in_ns(&c, move || tcp_ask(to_a, "joined")).await;
    assert_eq!(reply.unwrap(), format!("A from {} got joined", ec1.ip));
    let err = nets.attach(attach("c", "n1", &c, &[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "endpoint with name c already exists in network n1"
    );
    nets.detach(&ec.container_id, "n1").await.unwrap();
    let reply = in_ns(&c, move || common::tcp_ask_within(to_a, "left", dropped)).await;
    assert!(
        reply.is_err(),
        "still reaches n1 after disconnect: {reply:?}"
    );
    let err = nets.detach(&ec.container_id, "n1").await.unwrap_err();
    assert_eq!(err.kind(), servin_api::ErrorKind::NotFound);

    // Prune: only unused networks, only those matching the label filter.
    assert!(nets.prune(&["team=x".into()]).await.unwrap().is_empty());
    nets.detach_all(&ei.container_id).await.unwrap();
    assert_eq!(nets.prune(&["team=x".into()]).await.unwrap(), ["n3"]);
    nets.detach_all(&ec.container_id).await.unwrap();
    assert_eq!(nets.prune(&[]).await.unwrap(), ["n2"]);
    let names: Vec<String> = nets
        .list()
        .await
        .into_iter()
        .map(|n| n.network.name)
        .collect();
    assert_eq!(names, ["host", "none", "bridge", "n1"]);
    env.finish(nets).await;
}

#[test]
fn the_handle_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Networks>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_netns_is_pinned_until_removed() {
    if common::cannot_run("a_sandbox_netns_is_pinned_until_removed") {
        return;
    }
    let env = Env::new("172.30.60.0/24");
    let nets = Networks::open(env.cfg.clone()).await.unwrap();
    let dir = tempfile::Builder::new()
        .prefix("servin-nettest-sandbox-")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("netns");
    servin_network::netns::create(&path).await.unwrap();
    let mounted = |p: &std::path::Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(p.to_str().unwrap())
    };
    assert!(mounted(&path));

    // Pinned: no process lives in it, yet it takes an endpoint and serves.
    let e = nets
        .attach(attach("s", "bridge", &path, &[]))
        .await
        .unwrap();
    assert_eq!(e.ip, Ipv4Addr::new(172, 30, 60, 2));
    assert!(e.dns_names.is_empty());
    let echo = Echo::start(&path, 80, "S");
    let reply = tcp_ask(SocketAddr::from((e.ip, 80)), "pinned").unwrap();
    assert_eq!(reply, format!("S from {} got pinned", e.gateway));
    drop(echo);

    // The sandbox goes first (a container that died): detaching afterwards
    // still succeeds and leaves nothing.
    servin_network::netns::remove(&path).unwrap();
    assert!(!mounted(&path));
    assert!(!path.exists());
    nets.detach_all(&e.container_id).await.unwrap();
    assert!(env.links().iter().all(|l| l != &e.host_veth));
    // Removing twice is harmless; joining a removed sandbox is a clear error.
    servin_network::netns::remove(&path).unwrap();
    let err = nets
        .attach(attach("s", "bridge", &path, &[]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Cannot open the network namespace"),
        "{err}"
    );
    env.finish(nets).await;
}
